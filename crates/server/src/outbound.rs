//! Reaching the target: name resolution behind a trait, and connecting to every address of a
//! name, IPv6 and IPv4 interleaved, with staggered attempts (Happy Eyeballs, RFC 8305).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use socksgate_client::Outbound;
use socksgate_proto::{Address, DomainName, Host};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// How long an attempt runs alone before the next address is tried alongside it (RFC 8305 §5
/// recommends 250 ms).
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// A boxed future, so resolvers can be used as trait objects.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Turns a host name into socket addresses.
pub trait Resolver: Send + Sync + 'static {
    /// Every address of `name`, in the order the resolver prefers, with `port` set.
    fn resolve<'a>(&'a self, name: &'a DomainName, port: u16) -> ResolveFuture<'a>;
}

/// The operating system's resolver (`getaddrinfo`: /etc/hosts, then DNS, per nsswitch.conf),
/// run on tokio's blocking threads.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(&'a self, name: &'a DomainName, port: u16) -> ResolveFuture<'a> {
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((name.as_str(), port)).await?;
            Ok(addresses.collect())
        })
    }
}

/// Why the target could not be reached.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The name did not resolve, or resolved to nothing.
    Resolve(io::Error),
    /// Every address failed; this is the most telling of their errors.
    Connect(io::Error),
    /// The connect timeout ran out.
    TimedOut,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Resolve(error) => write!(f, "cannot resolve: {error}"),
            Self::Connect(error) => write!(f, "cannot connect: {error}"),
            Self::TimedOut => f.write_str("connect timed out"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Connects to `target` within `timeout`.
pub(crate) async fn connect(
    target: &Address,
    resolver: &dyn Resolver,
    egress: &Outbound,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let attempt = async {
        let addresses = match &target.host {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, target.port)],
            Host::Domain(name) => {
                let addresses = resolver
                    .resolve(name, target.port)
                    .await
                    .map_err(ConnectError::Resolve)?;
                tracing::debug!(%name, ?addresses, "resolved");
                if addresses.is_empty() {
                    return Err(ConnectError::Resolve(io::Error::new(
                        io::ErrorKind::NotFound,
                        "name has no addresses",
                    )));
                }
                interleave_families(addresses)
            }
        };
        race(addresses, egress).await.map_err(ConnectError::Connect)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(ConnectError::TimedOut))
}

/// Connects to the first of `addresses` that answers (already resolved, and allowed by the
/// policy), within `timeout`.
pub(crate) async fn connect_to(
    addresses: Vec<SocketAddr>,
    egress: &Outbound,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    if addresses.is_empty() {
        return Err(ConnectError::Resolve(io::Error::new(
            io::ErrorKind::NotFound,
            "name has no addresses",
        )));
    }
    let attempt = race(interleave_families(addresses), egress);
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result.map_err(ConnectError::Connect),
        Err(_) => Err(ConnectError::TimedOut),
    }
}

/// Alternates address families, starting with the resolver's first choice (RFC 8305 §4).
fn interleave_families(addresses: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addresses.first() else {
        return addresses;
    };
    let first_is_v6 = first.is_ipv6();
    let (mut preferred, mut other): (Vec<_>, Vec<_>) = addresses
        .into_iter()
        .partition(|a| a.is_ipv6() == first_is_v6);
    let mut ordered = Vec::with_capacity(preferred.len() + other.len());
    preferred.reverse();
    other.reverse();
    while !preferred.is_empty() || !other.is_empty() {
        ordered.extend(preferred.pop());
        ordered.extend(other.pop());
    }
    ordered
}

/// Tries the addresses in order, starting the next one when an attempt fails or has run for
/// [`ATTEMPT_DELAY`]; the first connection wins and the others are dropped.
async fn race(addresses: Vec<SocketAddr>, egress: &Outbound) -> io::Result<TcpStream> {
    if let [only] = addresses[..] {
        return attempt(egress, only).await;
    }
    let mut waiting = addresses.into_iter();
    let mut attempts = JoinSet::new();
    let mut best_error: Option<io::Error> = None;
    loop {
        if let Some(address) = waiting.next() {
            let egress = egress.clone();
            attempts.spawn(tracing::Instrument::in_current_span(async move {
                attempt(&egress, address).await
            }));
        }
        let more_waiting = waiting.len() > 0;
        tokio::select! {
            finished = attempts.join_next() => match finished {
                Some(Ok(Ok(stream))) => return Ok(stream),
                Some(Ok(Err(error)))
                    if best_error.as_ref().is_none_or(|best| rank(&error) >= rank(best)) =>
                {
                    best_error = Some(error);
                }
                Some(Ok(Err(_))) => {}
                Some(Err(join_error)) => best_error = Some(io::Error::other(join_error)),
                None if !more_waiting => {
                    return Err(best_error.unwrap_or_else(|| io::Error::other("no address to try")))
                }
                None => {}
            },
            () = tokio::time::sleep(ATTEMPT_DELAY), if more_waiting => {}
        }
    }
}

/// One connection attempt, each step at debug level.
async fn attempt(egress: &Outbound, address: SocketAddr) -> io::Result<TcpStream> {
    tracing::debug!(%address, "connecting");
    let connected = egress.connect(address).await;
    match &connected {
        Ok(stream) => tracing::debug!(%address, local = ?stream.local_addr().ok(), "connected"),
        Err(error) => tracing::debug!(%address, %error, "connect attempt failed"),
    }
    connected
}

/// How much an error tells the client: a refusal proves the host is up, which beats
/// "unreachable", which beats a missing route for one address family.
fn rank(error: &io::Error) -> u8 {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => 3,
        io::ErrorKind::HostUnreachable | io::ErrorKind::TimedOut => 2,
        io::ErrorKind::NetworkUnreachable => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse()
            .unwrap_or_else(|_| unreachable!("test address {text}"))
    }

    #[test]
    fn families_alternate_starting_with_the_first() {
        let given = vec![
            addr("[::1]:1"),
            addr("[::2]:1"),
            addr("[::3]:1"),
            addr("10.0.0.1:1"),
        ];
        let expected = vec![
            addr("[::1]:1"),
            addr("10.0.0.1:1"),
            addr("[::2]:1"),
            addr("[::3]:1"),
        ];
        assert_eq!(interleave_families(given), expected);
    }
}
