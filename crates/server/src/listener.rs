//! Accepting clients: a cap on concurrent sessions, a burst taken in batches, and back-off
//! when the process runs out of file descriptors instead of spinning.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;
use std::sync::PoisonError;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{session, Current};

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Clients accepted back to back, without waiting, while the kernel's queue holds more and
/// slots are free; after a full batch the loop yields to the sessions it started.
const BATCH: usize = 64;

/// Accepts until `stop` is cancelled, spawning one task per session on `sessions`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    configured: SocketAddr,
    current: Current,
    slots: Arc<Semaphore>,
    sessions: TaskTracker,
    stop: CancellationToken,
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    let mut backoff = MIN_BACKOFF;
    let initial = current
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let Some(mut setup) = initial.listener_setups.get(&configured).cloned() else {
        return;
    };
    drop(initial);
    loop {
        // Wait for a free slot first: while the server is full, clients queue in the
        // kernel's backlog instead of being accepted and starved.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = stop.cancelled() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let mut next = Some((accepted, permit));
        let mut taken = 0;
        while let Some((accepted, permit)) = next.take() {
            match accepted {
                Ok((client, peer)) => {
                    backoff = MIN_BACKOFF;
                    // The configuration in force now; a reload later does not change it
                    // for this session.
                    let shared = current
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    // A reload that drops this listener keeps its last setup (never the
                    // defaults, which would open it).
                    if let Some(current) = shared.listener_setups.get(&configured) {
                        setup.clone_from(current);
                    }
                    let session =
                        session::serve(client, peer, local, setup.clone(), shared, permit);
                    sessions.spawn(session);
                }
                Err(error) if is_resource_exhaustion(&error) => {
                    drop(permit);
                    tracing::warn!(listener = %local, %error, "accept failed; backing off for {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    break;
                }
                // ECONNABORTED and the like concern one client only.
                Err(error) => tracing::debug!(listener = %local, %error, "accept failed"),
            }
            taken += 1;
            if taken == BATCH {
                // A full batch: the sessions just started run before the next one.
                tokio::task::yield_now().await;
            } else if !stop.is_cancelled() {
                if let Ok(permit) = slots.clone().try_acquire_owned() {
                    next = accepted_now(&listener)
                        .await
                        .map(|accepted| (accepted, permit));
                }
            }
        }
    }
}

/// The next client if the kernel's queue holds one now, else `None` — with this task's
/// waker registered, as any `accept` leaves it, so the next one is woken as usual.
async fn accepted_now(listener: &TcpListener) -> Option<io::Result<(TcpStream, SocketAddr)>> {
    std::future::poll_fn(|context| match listener.poll_accept(context) {
        std::task::Poll::Ready(accepted) => std::task::Poll::Ready(Some(accepted)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once would fail again.
fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(23 | 24 | 105 | 12))
}
