//! CONNECT: reach the target, reply with the outbound address, relay.

use socksgate_proto::{Address, Reply};

use crate::authorize::Grant;
use crate::outbound;
use crate::relay::{self, RelayEnd};
use crate::reply;
use crate::session::{Failure, Requested};

pub(crate) async fn connect(mut session: Requested<'_>, grant: Grant) -> Result<RelayEnd, Failure> {
    let shared = session.shared;
    let connected = match grant.addresses.clone() {
        // The policy resolved the name and kept the addresses it allows.
        Some(addresses) => outbound::connect_to(addresses, shared.timeouts.connect).await,
        None => {
            outbound::connect(
                &session.request.target,
                shared.resolver.as_ref(),
                shared.timeouts.connect,
            )
            .await
        }
    };
    let mut target = match connected {
        Ok(target) => target,
        Err(error) => {
            session.refuse(reply::for_connect_error(&error)).await;
            return Err(Failure::Connect(error));
        }
    };
    let _ = target.set_nodelay(true);
    let bound = target
        .local_addr()
        .map_or(Address::unspecified(), Address::from);
    session
        .reply(Reply::SUCCEEDED, &bound)
        .await
        .map_err(Failure::ClientGone)?;
    Ok(relay::relay(
        session.client,
        &mut target,
        &session.pipelined,
        shared.timeouts.idle,
        grant.options.bandwidth,
        &session.record.counters,
    )
    .await)
}
