//! The server side of a SOCKS4, SOCKS4a or SOCKS5 handshake, as a state machine without I/O.
//!
//! The caller reads bytes from the client into a buffer and calls [`ServerHandshake::feed`]
//! with everything it has not yet handed over; each call recognises at most one message and
//! says how many bytes it used and what happened. Whatever the machine wants sent waits in
//! [`ServerHandshake::pending_output`]. Events that need a decision (credentials, the
//! request) are answered with [`ServerHandshake::authenticated`] and
//! [`ServerHandshake::reply`]; until then `feed` returns [`Step::Idle`].
//!
//! ```
//! use socksgate_proto::server::{ServerEvent, ServerHandshake, ServerOptions};
//! use socksgate_proto::{Address, Reply, Step};
//!
//! let mut handshake = ServerHandshake::new(ServerOptions::default());
//! // Greeting (no authentication) and a CONNECT to 127.0.0.1:80, pipelined, then data.
//! let input = [5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80, b'G', b'E', b'T'];
//! let mut rest = &input[..];
//! let request = loop {
//!     match handshake.feed(rest).unwrap() {
//!         Step::Event { used, event } => {
//!             rest = &rest[used..];
//!             if let ServerEvent::Request(request) = event {
//!                 break request;
//!             }
//!         }
//!         other => panic!("{other:?}"),
//!     }
//! };
//! assert_eq!(request.target.to_string(), "127.0.0.1:80");
//! handshake.reply(Reply::SUCCEEDED, &"10.0.0.1:4000".parse().unwrap()).unwrap();
//! assert!(handshake.is_established());
//! assert_eq!(rest, b"GET"); // pipelined data, to forward to the target
//! assert_eq!(handshake.pending_output()[..2], [5, 0]); // method selection, then the reply
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::addr::{Address, Host};
use crate::handshake::{whole_or_return, Methods, Output, Step, Version};
use crate::password::{self, Credentials};
use crate::v5::{self, Command, Method, Reply};
use crate::wire::{ProtocolError, Wire};
use crate::{gssapi, v4};

/// What a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// SOCKS5 methods in order of preference: the first one the client also offers is chosen.
    pub methods: Methods,
    /// Whether SOCKS4 and SOCKS4a requests are served. They carry no authentication, so a
    /// listener that requires it should refuse them.
    pub allow_socks4: bool,
}

impl Default for ServerOptions {
    /// No authentication; SOCKS4 allowed.
    fn default() -> Self {
        Self {
            methods: Methods::one(Method::NO_AUTH),
            allow_socks4: true,
        }
    }
}

/// A request, whatever the protocol version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The protocol of the session.
    pub version: Version,
    /// The command; unknown values are passed on so the caller can answer
    /// [`Reply::COMMAND_NOT_SUPPORTED`] (or serve a private command).
    pub command: Command,
    /// The target.
    pub target: Address,
    /// The SOCKS4 USERID (empty for SOCKS5).
    pub user_id: Vec<u8>,
}

/// What happened in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A SOCKS5 method was chosen and its selection queued. For [`Method::NO_AUTH`] the
    /// request comes next; for the others, the method's sub-negotiation.
    MethodSelected(Method),
    /// The client sent a username and password: answer with [`ServerHandshake::authenticated`].
    Credentials(Credentials),
    /// An RFC 1961 message during GSS-API context establishment: answer with
    /// [`ServerHandshake::send_gssapi`] and finally [`ServerHandshake::authenticated`].
    Gssapi(gssapi::Message),
    /// The request: answer with [`ServerHandshake::reply`].
    Request(Request),
}

/// Why the handshake ended. The machine is closed afterwards; a reply telling the client why
/// may be waiting in [`ServerHandshake::pending_output`] and should be sent before closing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerError {
    /// The client sent bytes that are not a valid message (the client is at fault).
    Protocol(ProtocolError),
    /// The client offered none of the methods this listener accepts.
    NoAcceptableMethod,
    /// A SOCKS4 request on a listener that does not serve SOCKS4.
    Socks4NotAllowed,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(error) => write!(f, "protocol error: {error}"),
            Self::NoAcceptableMethod => f.write_str("client offered no acceptable method"),
            Self::Socks4NotAllowed => f.write_str("SOCKS4 is not allowed on this listener"),
        }
    }
}

impl std::error::Error for ServerError {}

/// A method of the machine was called in a state where it means nothing (a caller bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfOrder(pub &'static str);

impl fmt::Display for OutOfOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handshake call out of order: {}", self.0)
    }
}

impl std::error::Error for OutOfOrder {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing received: the first byte picks the protocol.
    Start,
    /// SOCKS5 password method chosen; expecting the RFC 1929 request.
    ExpectCredentials,
    /// Credentials handed to the caller; waiting for its verdict.
    AwaitVerdict { method: Method },
    /// SOCKS5 GSS-API method chosen; relaying RFC 1961 messages to the caller.
    Gssapi,
    /// Authenticated; expecting the SOCKS5 request.
    ExpectRequest,
    /// Request handed to the caller; waiting for the reply.
    AwaitReply { version: Version, command: Command },
    /// BIND granted and listening; waiting for the second reply (the peer's address).
    AwaitBindPeer { version: Version },
    /// The relay may start.
    Established,
    /// Failed; nothing more is read.
    Closed,
}

/// The server side of one handshake.
#[derive(Debug, Clone)]
pub struct ServerHandshake {
    options: ServerOptions,
    state: State,
    output: Output,
}

impl ServerHandshake {
    /// A machine waiting for the client's first byte.
    pub fn new(options: ServerOptions) -> Self {
        Self {
            options,
            state: State::Start,
            output: Output::default(),
        }
    }

    /// Hands over the bytes received and not yet used; recognises at most one message.
    pub fn feed(&mut self, input: &[u8]) -> Result<Step<ServerEvent>, ServerError> {
        let step = match self.state {
            State::Start => match input.first() {
                None => Ok(Step::NeedMore {
                    at_least: std::num::NonZeroUsize::MIN,
                }),
                Some(&v5::VERSION) => self.on_greeting(input),
                Some(&v4::VERSION) => self.on_socks4_request(input),
                Some(&other) => Err(ServerError::Protocol(ProtocolError::UnsupportedVersion(
                    other,
                ))),
            },
            State::ExpectCredentials => self.on_credentials(input),
            State::Gssapi => self.on_gssapi(input),
            State::ExpectRequest => self.on_request(input),
            State::AwaitVerdict { .. }
            | State::AwaitReply { .. }
            | State::AwaitBindPeer { .. }
            | State::Established
            | State::Closed => Ok(Step::Idle),
        };
        if step.is_err() {
            self.state = State::Closed;
        }
        step
    }

    fn on_greeting(&mut self, input: &[u8]) -> Result<Step<ServerEvent>, ServerError> {
        let (greeting, used) = whole_or_return!(v5::Greeting::decode(input), |error| {
            self.queue_method(Method::NO_ACCEPTABLE);
            ServerError::Protocol(error)
        });
        let preferred = self.options.methods.as_slice().iter().copied();
        let Some(method) = preferred.into_iter().find(|m| greeting.methods.contains(m)) else {
            self.queue_method(Method::NO_ACCEPTABLE);
            return Err(ServerError::NoAcceptableMethod);
        };
        self.queue_method(method);
        self.state = match method {
            Method::PASSWORD => State::ExpectCredentials,
            Method::GSSAPI => State::Gssapi,
            _ => State::ExpectRequest,
        };
        Ok(Step::Event {
            used,
            event: ServerEvent::MethodSelected(method),
        })
    }

    fn queue_method(&mut self, method: Method) {
        self.output.queue(&v5::MethodSelection { method });
    }

    fn on_credentials(&mut self, input: &[u8]) -> Result<Step<ServerEvent>, ServerError> {
        let (credentials, used) = whole_or_return!(Credentials::decode(input), |error| {
            self.output.queue(&password::Status::FAILURE);
            ServerError::Protocol(error)
        });
        self.state = State::AwaitVerdict {
            method: Method::PASSWORD,
        };
        Ok(Step::Event {
            used,
            event: ServerEvent::Credentials(credentials),
        })
    }

    fn on_gssapi(&mut self, input: &[u8]) -> Result<Step<ServerEvent>, ServerError> {
        let (message, used) = whole_or_return!(gssapi::Message::decode(input), |error| {
            ServerError::Protocol(error)
        });
        Ok(Step::Event {
            used,
            event: ServerEvent::Gssapi(message),
        })
    }

    fn on_request(&mut self, input: &[u8]) -> Result<Step<ServerEvent>, ServerError> {
        let (request, used) = whole_or_return!(v5::Request::decode(input), |error| {
            let reply = match error {
                ProtocolError::UnsupportedAddressType(_) => Reply::ADDRESS_TYPE_NOT_SUPPORTED,
                ProtocolError::InvalidDomainName => Reply::HOST_UNREACHABLE,
                _ => Reply::GENERAL_FAILURE,
            };
            self.queue_reply(Version::Socks5, reply, &Address::unspecified());
            ServerError::Protocol(error)
        });
        Ok(self.await_reply(
            used,
            Request {
                version: Version::Socks5,
                command: request.command,
                target: request.target,
                user_id: Vec::new(),
            },
        ))
    }

    fn on_socks4_request(&mut self, input: &[u8]) -> Result<Step<ServerEvent>, ServerError> {
        let (request, used) = whole_or_return!(v4::Request::decode(input), |error| {
            self.queue_reply(
                Version::Socks4,
                Reply::GENERAL_FAILURE,
                &Address::unspecified(),
            );
            ServerError::Protocol(error)
        });
        if !self.options.allow_socks4 {
            self.queue_reply(Version::Socks4, Reply::NOT_ALLOWED, &Address::unspecified());
            return Err(ServerError::Socks4NotAllowed);
        }
        let version = if request.is_socks4a() {
            Version::Socks4a
        } else {
            Version::Socks4
        };
        Ok(self.await_reply(
            used,
            Request {
                version,
                command: request.command,
                target: request.target(),
                user_id: request.user_id,
            },
        ))
    }

    fn await_reply(&mut self, used: usize, request: Request) -> Step<ServerEvent> {
        self.state = State::AwaitReply {
            version: request.version,
            command: request.command,
        };
        Step::Event {
            used,
            event: ServerEvent::Request(request),
        }
    }

    /// The most bytes the client may have sent, unanswered, for the message the machine
    /// waits for now: a SOCKS message is at most a SOCKS4a request (8 + 256 + 256 bytes),
    /// but an RFC 1961 message carries a token of up to 65,535 bytes (a Kerberos ticket
    /// with a Windows PAC is often 2–12 KB) after its 4-byte header.
    pub fn longest_message(&self) -> usize {
        match self.state {
            State::Gssapi => 4 + usize::from(u16::MAX),
            _ => 1024,
        }
    }

    /// Queues an RFC 1961 message for the client during GSS-API context establishment.
    pub fn send_gssapi(&mut self, message: &gssapi::Message) -> Result<(), OutOfOrder> {
        match self.state {
            State::Gssapi => {
                self.output.queue(message);
                Ok(())
            }
            _ => Err(OutOfOrder("send_gssapi outside GSS-API negotiation")),
        }
    }

    /// The verdict on the credentials (or on the GSS-API context). Accepted: the request comes
    /// next. Refused: the failure status is queued (RFC 1929 §2) and the machine closes.
    pub fn authenticated(&mut self, accepted: bool) -> Result<(), OutOfOrder> {
        let method = match self.state {
            State::AwaitVerdict { method } => method,
            State::Gssapi => Method::GSSAPI,
            _ => return Err(OutOfOrder("authenticated without an authentication step")),
        };
        if method == Method::PASSWORD {
            self.output.queue(&if accepted {
                password::Status::SUCCESS
            } else {
                password::Status::FAILURE
            });
        }
        self.state = if accepted {
            State::ExpectRequest
        } else {
            State::Closed
        };
        Ok(())
    }

    /// Answers the request (or, for a granted BIND, reports the connecting peer).
    ///
    /// For SOCKS4 any failure becomes 0x5B and an address that is not IPv4 is sent as
    /// 0.0.0.0. After a failure the machine is closed: send the reply, then close the
    /// connection.
    pub fn reply(&mut self, reply: Reply, bound: &Address) -> Result<(), OutOfOrder> {
        let (version, next) = match self.state {
            State::AwaitReply {
                version,
                command: Command::BIND,
            } => (version, State::AwaitBindPeer { version }),
            State::AwaitReply { version, .. } | State::AwaitBindPeer { version } => {
                (version, State::Established)
            }
            _ => return Err(OutOfOrder("reply without a pending request")),
        };
        self.queue_reply(version, reply, bound);
        self.state = if reply.is_success() {
            next
        } else {
            State::Closed
        };
        Ok(())
    }

    fn queue_reply(&mut self, version: Version, reply: Reply, bound: &Address) {
        match version {
            Version::Socks5 => self.output.queue(&v5::Response {
                reply,
                bound: bound.clone(),
            }),
            Version::Socks4 | Version::Socks4a => {
                let (ip, port) = match bound.host {
                    Host::Ip(IpAddr::V4(ip)) => (ip, bound.port),
                    _ => (Ipv4Addr::UNSPECIFIED, 0),
                };
                let reply = if reply.is_success() {
                    v4::Reply::GRANTED
                } else {
                    v4::Reply::REJECTED
                };
                self.output.queue(&v4::Response { reply, port, ip });
            }
        }
    }

    /// Bytes to send to the client.
    pub fn pending_output(&self) -> &[u8] {
        self.output.pending()
    }

    /// Drops the first `written` bytes of [`Self::pending_output`].
    pub fn output_written(&mut self, written: usize) {
        self.output.advance(written);
    }

    /// Whether the request was granted and the relay may start (for BIND: after the second
    /// reply). Input not used by the machine is application data.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the handshake failed; send what is pending, then close.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }
}
