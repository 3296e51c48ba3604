//! CONNECT: reach the target, reply with the outbound address, relay.

use socksgate_proto::{Address, Reply};

use crate::authorize::Grant;
use crate::outbound;
use crate::relay::{self, RelayEnd};
use crate::reply;
use crate::session::{Failure, Requested};

pub(crate) async fn connect(mut session: Requested<'_>, grant: Grant) -> Result<RelayEnd, Failure> {
    let shared = session.shared;
    if let Some(route) = &grant.route {
        return connect_through(session, route, &grant).await;
    }
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

/// CONNECT through an upstream group: the last hop's reply is passed on.
async fn connect_through(
    mut session: Requested<'_>,
    route: &str,
    grant: &Grant,
) -> Result<RelayEnd, Failure> {
    let shared = session.shared;
    let Some(group) = shared.upstreams.get(route) else {
        session.refuse(Reply::GENERAL_FAILURE).await;
        return Err(Failure::Upstream(format!("no upstream group {route}")));
    };
    let target = session.request.target.clone();
    let attempt = group.run(session.record.client.ip(), |chain| {
        let target = target.clone();
        async move { chain.connect_reporting(&target).await }
    });
    let (mut upstream, bound) = match tokio::time::timeout(shared.timeouts.connect, attempt).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(error)) => {
            session.refuse(error.reply()).await;
            return Err(Failure::Upstream(format!("via {route}: {error}")));
        }
        Err(_) => {
            session.refuse(Reply::TTL_EXPIRED).await;
            return Err(Failure::Upstream(format!("via {route}: timed out")));
        }
    };
    session.record.rule = session
        .record
        .rule
        .take()
        .map(|rule| format!("{rule} via {route}"));
    session
        .reply(Reply::SUCCEEDED, &bound)
        .await
        .map_err(Failure::ClientGone)?;
    Ok(relay::relay(
        session.client,
        &mut upstream,
        &session.pipelined,
        shared.timeouts.idle,
        grant.options.bandwidth,
        &session.record.counters,
    )
    .await)
}
