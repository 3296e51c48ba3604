//! Loopback targets for the proxy to connect to, served by a background runtime.

use std::future::Future;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// The runtime every target runs on.
pub fn background() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Accepts on `listener` forever, running `handler` for each connection.
pub fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    background().spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handler(stream));
        }
    });
}

/// Binds `127.0.0.1` and `[::1]` on the same free port, so a name that resolves to either
/// reaches the target. Returns the port.
fn bind_dual_stack() -> (TcpListener, Option<TcpListener>, u16) {
    background().block_on(async {
        for _ in 0..20 {
            let v4 = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = v4.local_addr().unwrap().port();
            match TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await {
                Ok(v6) => return (v4, Some(v6), port),
                Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => continue,
                // No IPv6 on this machine: serve IPv4 only.
                Err(_) => return (v4, None, port),
            }
        }
        panic!("no port free on both 127.0.0.1 and [::1]");
    })
}

/// A minimal HTTP/1.1 server answering every request with the same body.
pub struct HttpTarget {
    /// The port, on `127.0.0.1` and (when available) `[::1]`.
    pub port: u16,
    /// Whether `[::1]` is served too.
    pub ipv6: bool,
    requests: Arc<AtomicUsize>,
}

impl HttpTarget {
    /// Starts serving `body`.
    pub fn start(body: &str) -> Self {
        let (v4, v6, port) = bind_dual_stack();
        let requests = Arc::new(AtomicUsize::new(0));
        let body: Arc<str> = body.into();
        let ipv6 = v6.is_some();
        for listener in std::iter::once(v4).chain(v6) {
            let (body, requests) = (body.clone(), requests.clone());
            serve(listener, move |stream| {
                requests.fetch_add(1, Ordering::SeqCst);
                answer_http(stream, body.clone())
            });
        }
        Self {
            port,
            ipv6,
            requests,
        }
    }

    /// Serves `body` on `ip` only (an address the caller owns, e.g. in a test namespace).
    pub fn start_at(ip: std::net::IpAddr, body: &str) -> Self {
        let listener = background()
            .block_on(TcpListener::bind(SocketAddr::new(ip, 0)))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let (body, counter): (Arc<str>, _) = (body.into(), requests.clone());
        serve(listener, move |stream| {
            counter.fetch_add(1, Ordering::SeqCst);
            answer_http(stream, body.clone())
        });
        Self {
            port,
            ipv6: ip.is_ipv6(),
            requests,
        }
    }

    /// A URL on `host` (`127.0.0.1`, `[::1]`, `localhost`).
    pub fn url(&self, host: &str) -> String {
        format!("http://{host}:{}/", self.port)
    }

    /// Connections the target accepted so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn answer_http(mut stream: TcpStream, body: Arc<str>) {
    let mut request = Vec::new();
    let mut chunk = [0u8; 2048];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Echoes everything back until the client closes.
pub struct EchoTarget {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
}

impl EchoTarget {
    /// Starts the echo server.
    pub fn start() -> Self {
        let listener = background()
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        serve(listener, |mut stream| async move {
            let (mut reader, mut writer) = stream.split();
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
            let _ = writer.shutdown().await;
        });
        Self { addr }
    }
}

/// Echoes UDP datagrams back to their sender, on every IPv6 and IPv4 address (dual stack),
/// counting them.
pub struct UdpEcho {
    /// The port.
    pub port: u16,
    received: Arc<AtomicUsize>,
    last: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl UdpEcho {
    /// Starts the echo on a thread of its own.
    pub fn start() -> Self {
        let socket = std::net::UdpSocket::bind("[::]:0")
            .or_else(|_| std::net::UdpSocket::bind("0.0.0.0:0"))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let received = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, kept) = (received.clone(), last.clone());
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 65536];
            while let Ok((len, from)) = socket.recv_from(&mut buffer) {
                count.fetch_add(1, Ordering::SeqCst);
                *kept.lock().unwrap() = buffer[..len].to_vec();
                let _ = socket.send_to(&buffer[..len], from);
            }
        });
        Self {
            port,
            received,
            last,
        }
    }

    /// Datagrams received so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    /// The last datagram received.
    pub fn last(&self) -> Vec<u8> {
        self.last.lock().unwrap().clone()
    }
}

/// A DNS server that answers every A question with one address: enough for `dig`.
pub struct DnsResponder {
    /// The UDP port.
    pub port: u16,
    /// The address every name resolves to.
    pub answer: std::net::Ipv4Addr,
    queries: Arc<AtomicUsize>,
}

impl DnsResponder {
    /// Serves on `ip` (an address the caller owns), on a thread of its own.
    pub fn start_at(ip: std::net::IpAddr) -> Self {
        Self::start_on(SocketAddr::new(ip, 0))
    }

    /// Serves on `address` (port 53 of a namespace's loopback, say: where a resolv.conf can
    /// point), on a thread of its own.
    pub fn start_on(address: SocketAddr) -> Self {
        let socket = std::net::UdpSocket::bind(address).unwrap();
        let port = socket.local_addr().unwrap().port();
        let answer = std::net::Ipv4Addr::new(192, 0, 2, 53);
        let queries = Arc::new(AtomicUsize::new(0));
        let count = queries.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 1500];
            while let Ok((len, from)) = socket.recv_from(&mut buffer) {
                if let Some(response) = dns_answer(&buffer[..len], answer) {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = socket.send_to(&response, from);
                }
            }
        });
        Self {
            port,
            answer,
            queries,
        }
    }

    /// Questions answered so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

/// A response to a one-question query (RFC 1035 §4.1): the question, and one A record.
fn dns_answer(query: &[u8], answer: std::net::Ipv4Addr) -> Option<Vec<u8>> {
    let header = query.get(..12)?;
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    let question = query.get(12..end + 5)?;
    let mut response = Vec::with_capacity(64);
    response.extend_from_slice(&header[..2]); // ID
    response.extend_from_slice(&[0x81, 0x80]); // response, recursion desired and available
    response.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]); // 1 question, 1 answer
    response.extend_from_slice(question);
    response.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]); // A, IN, TTL 60
    response.extend_from_slice(&answer.octets());
    Some(response)
}

/// A target that sends as fast as it is taken, on every connection, until the reader goes
/// (for bandwidth caps and quotas). Returns where it listens (127.0.0.1).
pub fn endless_source() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let block = vec![7u8; 64 * 1024];
                while std::io::Write::write_all(&mut stream, &block).is_ok() {}
            });
        }
    });
    address
}

/// Bytes per second each stream delivers over 5 s, after a first second (bursts, start-up)
/// that is not counted: for bandwidth caps.
pub fn download_rates(streams: Vec<std::net::TcpStream>) -> Vec<f64> {
    use std::io::Read;
    let begin = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let end = begin + std::time::Duration::from_secs(5);
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            std::thread::spawn(move || {
                let mut buffer = vec![0u8; 64 * 1024];
                let mut counted = 0usize;
                loop {
                    let read = stream.read(&mut buffer).unwrap();
                    assert!(read > 0, "the target stopped");
                    let now = std::time::Instant::now();
                    if now >= end {
                        return counted as f64 / 5.0;
                    }
                    if now >= begin {
                        counted += read;
                    }
                }
            })
        })
        .collect();
    readers.into_iter().map(|r| r.join().unwrap()).collect()
}
