//! The handshake through the chain, on the program's own socket, with blocking libc calls.
//!
//! A non-blocking socket is made blocking for the handshake and restored afterwards; the
//! `connect` then returns 0 at once, which every event loop accepts (a connect may complete
//! immediately). The cost is that the program waits for the proxies' round trips inside
//! `connect`, bounded by a timeout.

use libc::{c_int, c_void};
use socksgate_proto::client::{ClientError, ClientEvent, ClientHandshake, ClientProtocol};
use socksgate_proto::hop::{Flavour, Hop};
use socksgate_proto::{Address, Command, Reply, Step};

use crate::address::SockAddr;
use crate::real;
use crate::sys::{errno, fcntl, socket_option};

/// The longest a handshake may take.
const HANDSHAKE_SECONDS: libc::time_t = 30;

/// Why a connection through the chain failed: the errno the program's call gets, and what
/// a person is told (`hop 1 (127.0.0.1:1080): cannot reach the proxy: …`, as `socksgate
/// connect` says it).
#[derive(Debug)]
pub(crate) struct Failure {
    /// What the program's call fails with.
    pub(crate) errno: c_int,
    /// The 1-based hop it happened at (0: before any, on the program's own socket).
    pub(crate) hop: usize,
    pub(crate) cause: Cause,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The first proxy could not be connected to.
    Unreachable,
    /// The proxy answered with a refusal, or broke the protocol.
    Refused(String),
    /// The credentials, or the methods offered, were refused: every connection will be.
    Credentials(String),
    /// What answered is not a SOCKS proxy, or broke the protocol.
    Broken(String),
    /// The handshake's time ran out.
    TimedOut,
    /// The connection to the proxy broke during the handshake, or the socket failed.
    Lost,
}

impl Failure {
    fn on_socket(errno: c_int) -> Self {
        Self {
            errno,
            hop: 0,
            cause: Cause::Lost,
        }
    }

    /// For a person, with the hop's address.
    pub(crate) fn describe(&self, chain: &[Hop]) -> String {
        let errno = std::io::Error::from_raw_os_error(self.errno);
        let hop = match self.hop.checked_sub(1).and_then(|index| chain.get(index)) {
            Some(hop) => format!("hop {} ({}): ", self.hop, hop.address),
            None => String::new(),
        };
        let what = match &self.cause {
            Cause::Unreachable => format!("cannot reach the proxy: {errno}"),
            Cause::Refused(why) | Cause::Credentials(why) | Cause::Broken(why) => why.clone(),
            Cause::TimedOut => "no answer from the proxy in time".to_owned(),
            Cause::Lost => format!("connection lost: {errno}"),
        };
        format!("{hop}{what}")
    }
}

/// An errno met during hop `hop`'s exchange.
fn lost(hop: usize) -> impl Fn(c_int) -> Failure {
    move |errno| Failure {
        errno,
        hop,
        cause: if errno == libc::ETIMEDOUT {
            Cause::TimedOut
        } else {
            Cause::Lost
        },
    }
}

/// Connects `fd` through `chain` and asks the last hop for `command` to `target`; returns
/// the last reply's address (BND), or why not.
pub(crate) fn establish(
    fd: c_int,
    chain: &[Hop],
    command: Command,
    target: &Address,
) -> Result<Address, Failure> {
    let Some(first) = chain.first() else {
        return Err(Failure::on_socket(libc::ECONNREFUSED));
    };
    let Some(proxy) = first.address.socket_addr() else {
        // `socksgate socksify` passes proxies as addresses; a name here is a mistake.
        return Err(Failure {
            errno: libc::EHOSTUNREACH,
            hop: 1,
            cause: Cause::Unreachable,
        });
    };
    let flags = fcntl(fd, libc::F_GETFL, 0).map_err(Failure::on_socket)?;
    let blocking = flags & !libc::O_NONBLOCK;
    if blocking != flags {
        fcntl(fd, libc::F_SETFL, blocking).map_err(Failure::on_socket)?;
    }
    // The program's own timeouts, put back whatever happens; its send timeout (a blocking
    // connect's on Linux) bounds the whole handshake when it has one.
    let saved = Timeouts::of(fd).map_err(Failure::on_socket)?;
    let limit = if saved.send.tv_sec > 0 || saved.send.tv_usec > 0 {
        saved.send
    } else {
        libc::timeval {
            tv_sec: HANDSHAKE_SECONDS,
            tv_usec: 0,
        }
    };
    // One bound for the whole handshake: the connection to the proxy and every hop's
    // exchange share it.
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_secs(limit.tv_sec.max(0) as u64)
        + std::time::Duration::from_micros(limit.tv_usec.max(0) as u64);
    // Whether this call began a connection on the socket (to the proxy): only then is a
    // failure's connection the shim's to undo. A socket the program had connected already
    // (its second `connect` is EISCONN) keeps its connection.
    let mut started = false;
    let result = (|| {
        let unreachable = |errno| Failure {
            errno,
            hop: 1,
            cause: match errno {
                libc::ETIMEDOUT => Cause::TimedOut,
                libc::ECONNREFUSED
                | libc::ENETUNREACH
                | libc::EHOSTUNREACH
                | libc::ECONNRESET
                | libc::EADDRNOTAVAIL
                | libc::EACCES
                | libc::EPERM => Cause::Unreachable,
                // The program's socket, not the proxy (EISCONN, EALREADY, EBADF…).
                _ => return Failure::on_socket(errno),
            },
        };
        time_left(fd, deadline).map_err(lost(1))?;
        let address = SockAddr::for_socket(fd, proxy)
            .ok_or(libc::EAFNOSUPPORT)
            .map_err(Failure::on_socket)?;
        // SAFETY: `address` holds a valid socket address of the length given.
        if unsafe { real::connect(fd, address.as_ptr(), address.len()) } != 0 {
            match errno() {
                // A signal interrupted the wait, not the connection: it goes on, and the
                // handshake with it — never a socket left half way to the proxy.
                libc::EINTR | libc::EINPROGRESS => {
                    started = true;
                    wait_connected(fd, deadline).map_err(unreachable)?
                }
                error => return Err(unreachable(error)),
            }
        }
        started = true;
        let mut bound = Address::unspecified();
        for (index, hop) in chain.iter().enumerate() {
            let number = index + 1;
            bound = match chain.get(index + 1) {
                Some(next) => handshake(
                    fd,
                    (number, hop, false),
                    Command::CONNECT,
                    next.address.clone(),
                    deadline,
                )?,
                None => handshake(fd, (number, hop, true), command, target.clone(), deadline)?,
            };
        }
        Ok(bound)
    })();
    if result.is_err() && started {
        // The program's `connect` fails: its socket must not stay connected (or connecting)
        // to the proxy half way through a handshake, where its next write would land.
        disconnect(fd);
    }
    let restored = saved.apply(fd);
    if blocking != flags {
        let _ = fcntl(fd, libc::F_SETFL, flags);
    }
    let bound = result?;
    restored.map_err(Failure::on_socket)?;
    Ok(bound)
}

/// Dissolves `fd`'s connection, or the attempt at one (`connect` to `AF_UNSPEC`): the socket
/// is unconnected again, as after a refused `connect`, and may be connected anew.
fn disconnect(fd: c_int) {
    // SAFETY: all-zero is a valid sockaddr; its family is then AF_UNSPEC.
    let mut nowhere: libc::sockaddr = unsafe { std::mem::zeroed() };
    nowhere.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: `nowhere` is a valid sockaddr of the length given.
    unsafe {
        real::connect(
            fd,
            &nowhere,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
}

/// One hop's handshake (`number` in the chain): `command` to `target`; returns the reply's
/// address.
fn handshake(
    fd: c_int,
    (number, hop, last): (usize, &Hop, bool),
    command: Command,
    target: Address,
    deadline: std::time::Instant,
) -> Result<Address, Failure> {
    let refused = |error: ClientError| Failure {
        errno: errno_for(&error),
        hop: number,
        cause: match error {
            ClientError::AuthenticationFailed | ClientError::NoAcceptableMethod => {
                Cause::Credentials(error.to_string())
            }
            ClientError::Protocol(_) | ClientError::UnexpectedMethod(_) => {
                Cause::Broken(error.to_string())
            }
            _ => Cause::Refused(error.to_string()),
        },
    };
    // Once the last hop has answered (its method, its login), it is up: a silence or a
    // hang-up after that is its answer about the target (Dante waits out an unreachable
    // target, `ssh -D` just closes), the program's to report, not the proxy's failure.
    let answered = std::cell::Cell::new(false);
    let lost = |errno| {
        let failure = lost(number)(errno);
        if !(answered.get() && last) {
            return failure;
        }
        let why = if errno == libc::ETIMEDOUT {
            "no answer to the request in time (the target may be unreachable)"
        } else {
            "the proxy hung up before answering the request"
        };
        Failure {
            cause: Cause::Refused(why.to_owned()),
            ..failure
        }
    };
    if hop.flavour == Flavour::Http {
        return http_connect(fd, number, hop, command, &target, deadline, &refused, &lost);
    }
    let user_id = || {
        hop.credentials
            .as_ref()
            .map(|c| c.username().to_vec())
            .unwrap_or_default()
    };
    let protocol = match hop.flavour {
        Flavour::Socks4 => ClientProtocol::Socks4 { user_id: user_id() },
        Flavour::Socks4a => ClientProtocol::Socks4a { user_id: user_id() },
        // An HTTP hop took `http_connect` above.
        Flavour::Socks5 | Flavour::Socks5h | Flavour::Http => ClientProtocol::Socks5 {
            credentials: hop.credentials.clone(),
            gssapi: false,
        },
    };
    let mut machine = ClientHandshake::new(protocol, command, target).map_err(refused)?;
    let mut input = Vec::new();
    let mut bound = Address::unspecified();
    loop {
        let pending = machine.pending_output().to_vec();
        if !pending.is_empty() {
            time_left(fd, deadline).map_err(&lost)?;
            send_all(fd, &pending).map_err(&lost)?;
            machine.output_written(pending.len());
        }
        if machine.is_established() {
            return Ok(bound);
        }
        match machine.feed(&input).map_err(refused)? {
            Step::Event { used, event } => {
                input.drain(..used);
                answered.set(true);
                if let ClientEvent::Granted { bound: granted } = event {
                    bound = granted;
                }
            }
            Step::NeedMore { at_least } => {
                let start = input.len();
                input.resize(start + at_least.get(), 0);
                time_left(fd, deadline).map_err(&lost)?;
                recv_exact(fd, &mut input[start..]).map_err(&lost)?;
            }
            Step::Idle => return Err(lost(libc::EPROTO)),
        }
    }
}

/// CONNECT through an HTTP proxy (RFC 9110 §9.3.6), with Basic credentials from its URL.
/// The answer's head is read a byte at a time, so that the target's first bytes stay on the
/// socket for the program. The status becomes the SOCKS reply it stands for.
#[allow(clippy::too_many_arguments)]
fn http_connect(
    fd: c_int,
    number: usize,
    hop: &Hop,
    command: Command,
    target: &Address,
    deadline: std::time::Instant,
    refused: &dyn Fn(ClientError) -> Failure,
    lost: &dyn Fn(c_int) -> Failure,
) -> Result<Address, Failure> {
    let broken = |why: String| Failure {
        errno: libc::ECONNREFUSED,
        hop: number,
        cause: Cause::Broken(why),
    };
    if command != Command::CONNECT {
        return Err(broken(format!(
            "an HTTP proxy carries only TCP connections, not {command}"
        )));
    }
    let request =
        socksgate_http::tunnel::request(target, hop.credentials.as_ref()).map_err(broken)?;
    time_left(fd, deadline).map_err(lost)?;
    send_all(fd, &request).map_err(lost)?;
    let mut head = Vec::with_capacity(128);
    while !socksgate_http::tunnel::head_complete(&head) {
        if head.len() >= socksgate_http::request::MAX_HEAD {
            return Err(broken("an answer head longer than 32 KiB".to_owned()));
        }
        let mut byte = [0u8; 1];
        time_left(fd, deadline).map_err(lost)?;
        recv_exact(fd, &mut byte).map_err(lost)?;
        head.push(byte[0]);
    }
    let status = match socksgate_http::tunnel::answer(&head) {
        Ok(Some((status, _, _))) => status,
        Ok(None) => return Err(broken("an incomplete HTTP answer".to_owned())),
        Err(error) => return Err(broken(format!("not an HTTP proxy's answer: {error}"))),
    };
    if (200..300).contains(&status) {
        return Ok(Address::unspecified());
    }
    Err(refused(socksgate_http::tunnel::refusal(status)))
}

/// The errno a program expects for a proxy's refusal.
fn errno_for(error: &ClientError) -> c_int {
    match error {
        ClientError::Rejected(reply) => match *reply {
            Reply::NETWORK_UNREACHABLE => libc::ENETUNREACH,
            Reply::HOST_UNREACHABLE => libc::EHOSTUNREACH,
            Reply::TTL_EXPIRED => libc::ETIMEDOUT,
            Reply::NOT_ALLOWED => libc::EACCES,
            _ => libc::ECONNREFUSED,
        },
        ClientError::AuthenticationFailed | ClientError::NoAcceptableMethod => libc::EACCES,
        _ => libc::ECONNREFUSED,
    }
}

fn send_all(fd: c_int, mut bytes: &[u8]) -> Result<(), c_int> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for its length.
        let sent = unsafe {
            real::send(
                fd,
                bytes.as_ptr().cast::<c_void>(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        match sent {
            n if n > 0 => bytes = &bytes[n as usize..],
            _ if errno() == libc::EINTR => {}
            // The handshake's time (SO_SNDTIMEO) ran out.
            _ if errno() == libc::EAGAIN => return Err(libc::ETIMEDOUT),
            _ => return Err(errno()),
        }
    }
    Ok(())
}

fn recv_exact(fd: c_int, mut buffer: &mut [u8]) -> Result<(), c_int> {
    while !buffer.is_empty() {
        // SAFETY: `buffer` is valid and writable for its length.
        let received =
            unsafe { real::recv(fd, buffer.as_mut_ptr().cast::<c_void>(), buffer.len(), 0) };
        match received {
            0 => return Err(libc::ECONNRESET),
            n if n > 0 => buffer = &mut buffer[n as usize..],
            _ if errno() == libc::EINTR => {}
            // The handshake's time (SO_RCVTIMEO) ran out.
            _ if errno() == libc::EAGAIN => return Err(libc::ETIMEDOUT),
            _ => return Err(errno()),
        }
    }
    Ok(())
}

/// Sets both socket timeouts to what is left until `deadline` (the whole handshake's bound,
/// however many hops and reads), or `ETIMEDOUT` when nothing is.
fn time_left(fd: c_int, deadline: std::time::Instant) -> Result<(), c_int> {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        return Err(libc::ETIMEDOUT);
    }
    let left = libc::timeval {
        tv_sec: left.as_secs() as libc::time_t,
        // At least a microsecond: a zero timeval would mean "no timeout".
        tv_usec: libc::suseconds_t::from(left.subsec_micros().max(1)),
    };
    Timeouts {
        receive: left,
        send: left,
    }
    .apply(fd)
}

/// A socket's `SO_RCVTIMEO` and `SO_SNDTIMEO`.
struct Timeouts {
    receive: libc::timeval,
    send: libc::timeval,
}

impl Timeouts {
    fn of(fd: c_int) -> Result<Self, c_int> {
        let read = |option| {
            let mut value = libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            };
            let mut length = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
            // SAFETY: `value` is a writable timeval and `length` its size.
            let done = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    option,
                    (&raw mut value).cast::<c_void>(),
                    &mut length,
                )
            };
            if done == 0 {
                Ok(value)
            } else {
                Err(errno())
            }
        };
        Ok(Self {
            receive: read(libc::SO_RCVTIMEO)?,
            send: read(libc::SO_SNDTIMEO)?,
        })
    }

    fn apply(&self, fd: c_int) -> Result<(), c_int> {
        for (option, value) in [
            (libc::SO_RCVTIMEO, &self.receive),
            (libc::SO_SNDTIMEO, &self.send),
        ] {
            // SAFETY: `value` is a valid timeval of the size given.
            let done = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    option,
                    (value as *const libc::timeval).cast::<c_void>(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            if done != 0 {
                return Err(errno());
            }
        }
        Ok(())
    }
}

/// Waits, until `deadline`, for a connection a signal interrupted (or a non-blocking one)
/// to finish; its outcome as `connect` would have said it.
fn wait_connected(fd: c_int, deadline: std::time::Instant) -> Result<(), c_int> {
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(libc::ETIMEDOUT);
        }
        let mut wanted = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        let milliseconds = c_int::try_from(left.as_millis().max(1)).unwrap_or(c_int::MAX);
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut wanted, 1, milliseconds) } {
            1 => break,
            0 => return Err(libc::ETIMEDOUT),
            _ if errno() == libc::EINTR => {}
            _ => return Err(errno()),
        }
    }
    match socket_option(fd, libc::SO_ERROR) {
        Some(0) => Ok(()),
        Some(error) => Err(error),
        None => Err(errno()),
    }
}
