//! The commands — SOCKS's CONNECT, BIND and UDP ASSOCIATE, and socksgate's ICMP echo
//! extension — each run on a session whose request is known.

mod associate;
mod bind;
mod connect;
mod icmp;

pub(crate) use associate::{associate, AssociationEnd, PreparedAssociation};
pub(crate) use bind::bind;
pub(crate) use connect::{connect, reach};
pub(crate) use icmp::{icmp, IcmpSession};

use std::future::Future;
use std::time::Duration;

use socksgate_client::{Chain, ChainError, Outbound, ProxyStream};
use socksgate_proto::proxy_header::ProxyHeader;
use socksgate_proto::Reply;
use tokio::io::AsyncWriteExt;

use crate::authorize::Grant;
use crate::counters::Tally;
use crate::failure::Failure;
use crate::limits::LimitSlot;
use crate::relay::{self, Caps, Relay};
use crate::requested::Requested;
use crate::stream::ClientStream;

/// Runs `attempt` through the members of upstream group `route`, within the connect
/// timeout; on failure the client gets the reply that says why, and the session ends.
async fn through_route<T, F, Fut>(
    session: &mut Requested<'_>,
    route: &str,
    outbound: &Outbound,
    attempt: F,
) -> Result<T, Failure>
where
    F: Fn(Chain) -> Fut,
    Fut: Future<Output = Result<T, ChainError>>,
{
    let shared = session.shared;
    let Some(group) = shared.upstreams.get(route) else {
        session.refuse(Reply::GENERAL_FAILURE).await;
        return Err(Failure::Upstream(format!("no upstream group {route}")));
    };
    // The rule's egress applies to the connections to the first hop, and the group may want
    // to know who the client is.
    let header = group.send_proxy_protocol.then_some(ProxyHeader::Proxied {
        source: session.record.subject.client(),
        destination: session.record.subject.listener(),
    });
    let attempt = |chain: Chain| {
        let chain = chain.with_outbound(outbound.clone());
        attempt(match header {
            Some(header) => chain.with_proxy_header(header),
            None => chain,
        })
    };
    let attempt = group.run(
        session.record.subject.client().ip(),
        &shared.metrics,
        attempt,
    );
    match tokio::time::timeout(shared.timeouts.connect, attempt).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            session.refuse(error.reply()).await;
            Err(Failure::Upstream(format!("via {route}: {error}")))
        }
        Err(_) => {
            session.refuse(Reply::TTL_EXPIRED).await;
            Err(Failure::Upstream(format!("via {route}: timed out")))
        }
    }
}

/// A CONNECT or BIND whose replies have been sent: what the relay needs, and nothing of the
/// handshake (which is freed before the relay starts, so a long-lived session stays small).
pub(crate) struct Established {
    /// The target (CONNECT) or the peer (BIND), or the upstream carrying either.
    pub(crate) other: ProxyStream,
    /// The bandwidth caps of the relay.
    pub(crate) caps: Caps,
    /// The rule's session-limit slots, held for as long as the relay runs.
    pub(crate) _slots: Box<[LimitSlot]>,
}

impl Established {
    /// The relay between the client and `other`; it holds the slots until it ends.
    pub(crate) fn relay<'a>(
        self,
        client: &'a mut ClientStream,
        idle: Option<Duration>,
        counters: &'a Tally,
    ) -> Relay<'a, Box<[LimitSlot]>> {
        relay::relay(client, self.other, self._slots, idle, &self.caps, counters)
    }
}

/// Delivers the bytes the client sent after its request (here, so the long-lived relay state
/// does not carry them), and keeps what the relay needs.
async fn established(
    session: &mut Requested<'_>,
    other: impl Into<ProxyStream>,
    grant: Grant,
) -> Result<Established, Failure> {
    let mut other = other.into();
    let pipelined = std::mem::take(&mut session.pipelined);
    if !pipelined.is_empty() {
        other.write_all(&pipelined).await.map_err(Failure::Reset)?;
        other.flush().await.map_err(Failure::Reset)?;
        session.record.counters.add_up(pipelined.len());
    }
    Ok(Established {
        other,
        caps: grant.caps,
        _slots: grant._slots.into_boxed_slice(),
    })
}
