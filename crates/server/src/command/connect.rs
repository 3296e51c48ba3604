//! CONNECT: reach the target, reply with the outbound address, relay.

use socksgate_client::ProxyStream;
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
    let (target, bound) = crate::boxed(reach(&mut session, &grant)).await?;
    session
        .reply(Reply::SUCCEEDED, &bound)
        .await
        .map_err(Failure::ClientGone)?;
    established(&mut session, target, grant).await
}

/// Reaches the request's target, directly or through the grant's route: the connection
/// and its local address (a route's: the last hop's reply). On failure the client has had
/// the reply that says why.
pub(crate) async fn reach(
    session: &mut Requested<'_>,
    grant: &Grant,
) -> Result<(ProxyStream, Address), Failure> {
    let shared = session.shared;
    if let Some(route) = &grant.route {
        return reach_through(session, route, grant).await;
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
    Ok((target.into(), bound))
}

/// Reaches the target through an upstream group: the last hop's reply is passed on.
async fn reach_through(
    session: &mut Requested<'_>,
    route: &str,
    grant: &Grant,
) -> Result<(ProxyStream, Address), Failure> {
    let target = session.request.target.clone();
    let reached = through_route(session, route, &grant.outbound, |chain| {
        let target = target.clone();
        async move { chain.connect_reporting(&target).await }
    })
    .await?;
    session.record.rule = session
        .record
        .rule
        .take()
        .map(|rule| format!("{rule} via {route}"));
    Ok(reached)
}
