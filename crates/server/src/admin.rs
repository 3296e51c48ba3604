//! The admin listener: a small HTTP/1.1 endpoint for operators, on the `[admin] address`
//! (off without one). `GET /metrics` (Prometheus text), `GET /health` (200 while
//! the server accepts), `GET /sessions` (the sessions in progress, JSON). One request per
//! connection; anything else gets 404 or 405.
//!
//! Who may read it ([`AdminAccess`], the configuration's, so a reload changes it): with
//! `token_file`, every page but `/health` wants `Authorization: Bearer TOKEN` (401 without);
//! with `tls`, the connection is HTTPS, and with a `client_ca` the TLS handshake itself
//! refuses clients without a certificate from it. Both may be set; then both are asked.
//! `/health` answers everyone, as balancers and probes need, and tells nothing but "ok".
//! At most [`MAX_CONNECTIONS`] connections are served at once — [`MAX_PER_SOURCE`] from one
//! address once half are taken — each sending its request within [`HEAD_TIMEOUT`] and answered within
//! [`REQUEST_TIMEOUT`] (TLS handshake included); the excess is closed at once.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use socksgate_tls::tokio_rustls::TlsAcceptor;
use socksgate_tls::MaybeTls;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::session_table::SessionTable;
use crate::Current;

/// The longest request head read; a scraper's is a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take from connecting to having its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long it may take to send its request head (the TLS handshake included): a client
/// that trickles it holds a connection slot for no more than this.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once; a scraper or an operator needs one or two.
pub(crate) const MAX_CONNECTIONS: usize = 32;
/// Connections served at once from one address (an IPv6 /64, as `limits.ipv6_source_prefix`
/// groups them) once half the slots are taken: one host cannot take every slot (and the
/// balancer's or the kubelet's health checks with them).
const MAX_PER_SOURCE: usize = 4;
/// The shortest token accepted: shorter ones can be guessed.
const MIN_TOKEN: usize = 16;

/// Who may read the admin listener's pages.
#[derive(Default)]
pub(crate) struct AdminAccess {
    token: Option<Token>,
    tls: Option<TlsAcceptor>,
}

/// The bearer token: never shown, compared in constant time.
struct Token(Box<[u8]>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl AdminAccess {
    /// Reads what `admin` names: the token file, the TLS files. The error names the file.
    pub(crate) fn load(admin: &socksgate_config::Admin) -> Result<Self, String> {
        let token = match &admin.token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        let tls = match &admin.tls {
            Some(tls) => Some(TlsAcceptor::from(
                socksgate_tls::server_config(&tls.cert, &tls.key, tls.client_ca.as_deref())
                    .map_err(|error| format!("admin.tls: {error}"))?,
            )),
            None => None,
        };
        Ok(Self { token, tls })
    }

    /// Whether the listener speaks HTTPS.
    pub(crate) fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether a request with this head may read a page other than `/health`.
    pub(crate) fn admits(&self, head: &[u8]) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        bearer_token(head).is_some_and(|given| socksgate_auth::constant_time_eq(&token.0, given))
    }
}

fn read_token(path: &Path) -> Result<Token, String> {
    let text = std::fs::read(path)
        .map_err(|error| format!("admin.token_file {}: {error}", path.display()))?;
    let token = text.trim_ascii();
    if token.len() < MIN_TOKEN || token.iter().any(|byte| !byte.is_ascii_graphic()) {
        return Err(format!(
            "admin.token_file {}: the token must be at least {MIN_TOKEN} printable characters \
             without spaces (for example: openssl rand -hex 32)",
            path.display()
        ));
    }
    Ok(Token(token.into()))
}

/// The token of an `Authorization: Bearer TOKEN` header (names and scheme in any case).
fn bearer_token(head: &[u8]) -> Option<&[u8]> {
    head.split(|&byte| byte == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&byte| byte == b':')?;
        let (name, value) = line.split_at(colon);
        if !name.eq_ignore_ascii_case(b"authorization") {
            return None;
        }
        let value = value[1..].trim_ascii();
        let (scheme, token) = value.split_at(value.iter().position(|&b| b == b' ')?);
        scheme
            .eq_ignore_ascii_case(b"bearer")
            .then(|| token.trim_ascii())
    })
}

/// Answers requests until `stop` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    current: Current,
    sessions: Arc<SessionTable>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_source: PerSource = Arc::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let Ok((stream, peer)) = accepted else {
            // Out of descriptors and the like: try again shortly, as the SOCKS listeners do.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closed at once: a flood of connections must not hold the listener's memory.
            continue;
        };
        let shared = current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // One host (an IPv6 /64) may not take every slot: once half are taken, it gets no
        // more than its share.
        let scarce = slots.available_permits() < MAX_CONNECTIONS / 2;
        let source = shared.source_group(peer.ip());
        let Some(source_slot) = SourceSlot::take(&per_source, source, scarce) else {
            continue;
        };
        let shown = Shown {
            current: current.clone(),
            sessions: sessions.clone(),
            access: shared.admin.clone(),
        };
        tokio::spawn(async move {
            let _slots = (slot, source_slot);
            let exchange = async {
                let head_by = tokio::time::Instant::now() + HEAD_TIMEOUT;
                let secured = async {
                    Ok(match &shown.access.tls {
                        Some(acceptor) => MaybeTls::Tls(Box::new(acceptor.accept(stream).await?)),
                        None => MaybeTls::Plain(stream),
                    })
                };
                let mut stream = within(head_by, secured).await?;
                let head = within(head_by, read_head(&mut stream)).await?;
                match head {
                    Some(head) => answer(stream, &head, &shown).await,
                    None => {
                        respond(
                            &mut stream,
                            "400 Bad Request",
                            "text/plain",
                            "bad request\n",
                        )
                        .await
                    }
                }
            };
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await;
        });
    }
}

/// What the admin listener shows, and to whom.
struct Shown {
    /// The configuration in force (the counters in it outlive reloads).
    current: Current,
    sessions: Arc<SessionTable>,
    access: Arc<AdminAccess>,
}

/// Connections being served, by source address.
type PerSource = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One of a source's connection slots, given back when dropped.
struct SourceSlot {
    table: PerSource,
    source: std::net::IpAddr,
}

impl SourceSlot {
    /// A slot for `source`; with `scarce`, none beyond its share.
    fn take(table: &PerSource, source: std::net::IpAddr, scarce: bool) -> Option<Self> {
        let mut counts = table.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(source).or_insert(0);
        if scarce && *count >= MAX_PER_SOURCE {
            return None;
        }
        *count += 1;
        Some(Self {
            table: table.clone(),
            source,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut counts = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

/// `step`, unless `deadline` comes first (then a timed-out error).
async fn within<T>(
    deadline: tokio::time::Instant,
    step: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout_at(deadline, step)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// The request head, up to its blank line; `None` when it is too long or cut short.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST || stream.read_buf(&mut head).await? == 0 {
            return Ok(None);
        }
    }
    Ok(Some(head))
}

async fn answer(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    head: &[u8],
    shown: &Shown,
) -> std::io::Result<()> {
    let line = head.split(|&byte| byte == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&byte| byte == b' ');
    let (method, path) = (parts.next(), parts.next());
    if method == Some(b"GET") && path != Some(b"/health") && !shown.access.admits(head) {
        return respond_unauthorized(&mut stream).await;
    }
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
            let body = shown.sessions.to_json();
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

async fn respond_unauthorized(stream: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
    respond_with(
        stream,
        "401 Unauthorized",
        "WWW-Authenticate: Bearer realm=\"socksgate admin\"\r\n",
        "text/plain",
        "a bearer token is required\n",
    )
    .await
}

async fn respond(
    stream: &mut (impl AsyncWrite + Unpin),
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    respond_with(stream, status, "", content_type, body).await
}

async fn respond_with(
    stream: &mut (impl AsyncWrite + Unpin),
    status: &str,
    extra_headers: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra_headers}Content-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_token_is_found_in_any_case_and_nothing_else_is() {
        let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nauthorization:  bearer  abc123 \r\n\r\n";
        assert_eq!(bearer_token(head), Some(&b"abc123"[..]));
        assert_eq!(
            bearer_token(b"GET / HTTP/1.1\r\nAuthorization: Basic YTpi\r\n\r\n"),
            None
        );
        assert_eq!(
            bearer_token(b"GET / HTTP/1.1\r\nX-Authorization: Bearer a\r\n\r\n"),
            None
        );
        // The request line is no header, whatever it holds.
        assert_eq!(bearer_token(b"Authorization: Bearer a\r\n\r\n"), None);
        assert_eq!(
            bearer_token(b"GET / HTTP/1.1\r\nAuthorization:\r\n\r\n"),
            None
        );
    }
}
