//! The three SOCKS commands, each run on a session whose request is known.

mod associate;
mod bind;
mod connect;

pub(crate) use associate::{associate, AssociationEnd};
pub(crate) use bind::bind;
pub(crate) use connect::connect;

use std::future::Future;

use socksgate_client::{Chain, ChainError};
use socksgate_proto::Reply;
use tokio::net::TcpStream;

use crate::authorize::Grant;
use crate::relay::{self, RelayEnd};
use crate::session::{Failure, Requested};

/// Runs `attempt` through the members of upstream group `route`, within the connect
/// timeout; on failure the client gets the reply that says why, and the session ends.
async fn through_route<T, F, Fut>(
    session: &mut Requested<'_>,
    route: &str,
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
    let attempt = group.run(session.record.client.ip(), attempt);
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

/// Relays between the client and `other` until both close, with the rule's options.
async fn relay_to(session: &mut Requested<'_>, other: &mut TcpStream, grant: &Grant) -> RelayEnd {
    relay::relay(
        session.client,
        other,
        &session.pipelined,
        session.shared.timeouts.idle,
        grant.options.bandwidth,
        &session.record.counters,
    )
    .await
}
