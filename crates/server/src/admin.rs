//! The admin listener: a small HTTP/1.1 endpoint for operators (`[admin] address`), loopback
//! unless configured otherwise. `GET /metrics` (Prometheus text), `GET /health` (200 while
//! the server accepts), `GET /sessions` (the sessions in progress, JSON). One request per connection; anything else gets 404 or 400.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::live::LiveSessions;
use crate::Current;

/// The longest request head read; a scraper's is a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers requests until `stop` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    current: Current,
    live: Arc<LiveSessions>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors and the like: try again shortly, as the SOCKS listeners do.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let shown = Shown {
            current: current.clone(),
            live: live.clone(),
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &shown)).await;
        });
    }
}

/// What the admin listener shows.
struct Shown {
    /// The configuration in force (the counters in it outlive reloads).
    current: Current,
    live: Arc<LiveSessions>,
}

async fn answer(mut stream: TcpStream, shown: &Shown) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST || stream.read_buf(&mut head).await? == 0 {
            return respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                "bad request\n",
            )
            .await;
        }
    }
    let line = head.split(|&byte| byte == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&byte| byte == b' ');
    let (method, path) = (parts.next(), parts.next());
    match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => {
            let shared = shown
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let stats = &shared.stats;
            let upstreams = shared.upstreams.health();
            let mut body =
                shared
                    .metrics
                    .render(stats.sessions(), stats.associations(), &upstreams);
            if let Some(fleet) = &shared.fleet {
                fleet.render_metrics(&mut body);
            }
            respond(&mut stream, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        (Some(b"GET"), Some(b"/sessions")) => {
            let body = shown.live.to_json();
            respond(&mut stream, "200 OK", "application/json", &body).await
        }
        (Some(b"GET"), Some(b"/health")) => {
            respond(&mut stream, "200 OK", "text/plain", "ok\n").await
        }
        (Some(b"GET"), _) => {
            respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await
        }
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n",
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
