//! Moving bytes between the client and the target until both directions are closed.
//!
//! Each direction runs until its source reaches end of file, then shuts down the writing side
//! of its destination (half-close), so a client that has finished sending still receives the
//! whole response. An error in either direction ends both. With an idle timeout, a relay
//! that moved nothing either way for that long is ended.
//!
//! The relay is one hand-written future over both directions: a [`Flow`] each when both
//! sides are bare TCP, a `BufferedFlow` each (pooled buffers) when either is wrapped (TLS,
//! RFC 1961 protection). Waiting costs no future state beyond the two flows (the sockets
//! keep the wakers): the relay's own state is a few hundred bytes. A [`Flow`] reads small
//! messages into a per-thread buffer and writes them straight on; on Linux a direction that
//! fills that buffer switches to `splice(2)` through a pooled pipe until the burst ends, so
//! bulk data never enters user space. A relay also ends when the fleet halts its session
//! (the user is over the byte quota).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socksgate_client::ProxyStream;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

mod bucket;
mod buffered;
mod flow;
#[cfg(target_os = "linux")]
mod pipe;

pub(crate) use bucket::{Caps, Direction, Limiter, SharedCap};

/// Descriptors the relay may hold beyond the sessions' own sockets: the pooled pipes.
#[cfg(target_os = "linux")]
pub(crate) const POOLED_DESCRIPTORS: usize = 2 * pipe::POOL_SIZE;
#[cfg(not(target_os = "linux"))]
pub(crate) const POOLED_DESCRIPTORS: usize = 0;
use buffered::BufferedFlow;
use flow::Flow;

use crate::counters::{Counters, Tally};
use crate::stream::{ClientStream, ClientTcp};

/// How a relay ended.
#[derive(Debug)]
pub(crate) enum RelayEnd {
    /// Both sides closed their writing halves.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A socket failed (usually a reset).
    Error(io::Error),
    /// Stopped: the user used up the fleet's byte quota.
    Halted,
}

/// Relays between `client` and `target` until both directions are closed, a socket fails,
/// or (with `idle`) nothing moves for that long, under the bandwidth `caps`.
/// The relay owns `target` and `held` (what must live as long as it does), so a session
/// keeps them in one place.
pub(crate) fn relay<'a, H>(
    client: &'a mut ClientStream,
    target: ProxyStream,
    held: H,
    idle: Option<Duration>,
    caps: &Caps,
    counters: &'a Tally,
) -> Relay<'a, H> {
    let target = match target.into_tcp() {
        Ok(tcp) if client.bare_tcp().is_some() => Ok(tcp),
        Ok(tcp) => Err(ProxyStream::from(tcp)),
        Err(wrapped) => Err(wrapped),
    };
    let connections = match target {
        Ok(target) => Connections::Splice {
            client: &*client,
            target,
            up: Flow::new(caps.limiter(Direction::Up)),
            down: Flow::new(caps.limiter(Direction::Down)),
        },
        Err(target) => Connections::Buffered {
            client,
            target,
            up: BufferedFlow::new(caps.limiter(Direction::Up)),
            down: BufferedFlow::new(caps.limiter(Direction::Down)),
        },
    };
    Relay {
        connections,
        _held: held,
        counters,
        idle: idle.map(|limit| Box::new(IdleTimer::new(limit))),
    }
}

/// The relay future (see [`relay`]).
pub(crate) struct Relay<'a, H> {
    connections: Connections<'a>,
    _held: H,
    counters: &'a Tally,
    /// Boxed: most relays have no idle timeout and should not carry a timer's room.
    idle: Option<Box<IdleTimer>>,
}

/// The two connections and the state of each direction.
enum Connections<'a> {
    /// Plain TCP both ways: read and write directly, splice bursts.
    Splice {
        /// Bare TCP (checked when the relay was built).
        client: &'a ClientStream,
        target: TcpStream,
        up: Flow,
        down: Flow,
    },
    /// A wrapped connection on either side (TLS): through pooled buffers.
    Buffered {
        client: &'a mut ClientStream,
        target: ProxyStream,
        up: BufferedFlow,
        down: BufferedFlow,
    },
}

impl<H: Unpin> Future for Relay<'_, H> {
    type Output = RelayEnd;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RelayEnd> {
        let this = self.get_mut();
        if this.counters.halted(cx) {
            return Poll::Ready(RelayEnd::Halted);
        }
        let before = this.idle.as_ref().map(|_| this.counters.total());
        let counters: &Counters = this.counters;
        let (up, down) = match &mut this.connections {
            Connections::Splice {
                client,
                target,
                up,
                down,
            } => {
                let Some(client) = client.bare_tcp() else {
                    return Poll::Ready(RelayEnd::Error(io::Error::other("client not bare TCP")));
                };
                (
                    up.poll(cx, client, target, &counters.up),
                    down.poll(cx, target, client, &counters.down),
                )
            }
            Connections::Buffered {
                client,
                target,
                up,
                down,
            } => (
                up.poll(cx, *client, target, &counters.up),
                down.poll(cx, target, *client, &counters.down),
            ),
        };
        match (up, down) {
            (Poll::Ready(Err(error)), _) | (_, Poll::Ready(Err(error))) => {
                return Poll::Ready(RelayEnd::Error(error))
            }
            (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => return Poll::Ready(RelayEnd::Closed),
            _ => {}
        }
        if let (Some(idle), Some(before)) = (&mut this.idle, before) {
            if this.counters.total() != before {
                idle.last_activity = Instant::now();
            }
            if idle.poll_expired(cx).is_ready() {
                return Poll::Ready(RelayEnd::Idle);
            }
        }
        Poll::Pending
    }
}

/// Ends a relay after `limit` without traffic. The timer is only re-armed when it fires
/// early, not on every byte.
struct IdleTimer {
    limit: Duration,
    last_activity: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl IdleTimer {
    fn new(limit: Duration) -> Self {
        let now = Instant::now();
        Self {
            limit,
            last_activity: now,
            sleep: Box::pin(tokio::time::sleep_until(now + limit)),
        }
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            std::task::ready!(self.sleep.as_mut().poll(cx));
            let deadline = self.last_activity + self.limit;
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}
