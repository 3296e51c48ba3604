//! Accepting clients: a cap on concurrent sessions, a burst taken in batches, and back-off
//! when the process runs out of file descriptors instead of spinning.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;
use std::sync::PoisonError;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{session, Current};

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Clients accepted back to back, without waiting, while the kernel's queue holds more and
/// slots are free; then the loop yields to the sessions it started.
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
            if taken < BATCH && !stop.is_cancelled() {
                next = slots.clone().try_acquire_owned().ok().and_then(|permit| {
                    ready_now(listener.accept()).map(|accepted| (accepted, permit))
                });
            }
        }
    }
}

/// The future's output if it is ready at its first poll; otherwise it is dropped. (A
/// listener's `accept` that finds the queue empty has cleared its readiness, so the next
/// `accept().await` waits for the kernel's next event: nothing is missed.)
fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once would fail again.
fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(23 | 24 | 105 | 12))
}
