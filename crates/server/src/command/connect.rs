//! CONNECT: reach the target, reply with the outbound address, relay.

use socksgate_proto::{Address, Reply};

use super::{established, through_route, Established};
use crate::authorize::Grant;
use crate::failure::Failure;
use crate::outbound;
use crate::reply;
use crate::requested::Requested;

pub(crate) async fn connect(
    mut session: Requested<'_>,
    grant: Grant,
) -> Result<Established, Failure> {
    let shared = session.shared;
    if let Some(route) = &grant.route {
        let route = route.clone();
        return crate::boxed(connect_through(session, &route, grant)).await;
    }
    let started = std::time::Instant::now();
    let connected = match grant.addresses.clone() {
        // The policy resolved the name and kept the addresses it allows.
        Some(addresses) => {
            outbound::connect_to(addresses, &grant.outbound, shared.timeouts.connect).await
        }
        None => {
            outbound::connect(
                &session.request.target,
                shared.resolver.as_ref(),
                &grant.outbound,
                shared.timeouts.connect,
            )
            .await
        }
    };
    let target = match connected {
        Ok(target) => {
            shared.metrics.connect.observe(started.elapsed());
            target
        }
        Err(error) => {
            crate::boxed(session.refuse(reply::for_connect_error(&error))).await;
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
    established(&mut session, target, grant).await
}

/// CONNECT through an upstream group: the last hop's reply is passed on.
async fn connect_through(
    mut session: Requested<'_>,
    route: &str,
    grant: Grant,
) -> Result<Established, Failure> {
    let target = session.request.target.clone();
    let (upstream, bound) = through_route(&mut session, route, &grant.outbound, |chain| {
        let target = target.clone();
        async move { chain.connect_reporting(&target).await }
    })
    .await?;
    session.record.rule = session
        .record
        .rule
        .take()
        .map(|rule| format!("{rule} via {route}"));
    session
        .reply(Reply::SUCCEEDED, &bound)
        .await
        .map_err(Failure::ClientGone)?;
    established(&mut session, upstream, grant).await
}
