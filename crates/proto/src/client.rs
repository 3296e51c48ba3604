//! The client side of a SOCKS4, SOCKS4a or SOCKS5 handshake, as a state machine without I/O.
//!
//! The machine queues its first message when it is created. The caller sends
//! [`ClientHandshake::pending_output`], reads the server's answer and calls
//! [`ClientHandshake::feed`] with everything not yet used. Every [`Step::NeedMore`] says how
//! many bytes at least are still missing, so a blocking caller (the LD_PRELOAD shim) can read
//! exactly that many and never swallow application data that follows the final reply.
//!
//! ```
//! use socksgate_proto::client::{ClientEvent, ClientHandshake, ClientProtocol};
//! use socksgate_proto::{Command, Step};
//!
//! let target = "example.com:443".parse().unwrap();
//! let mut handshake = ClientHandshake::new(ClientProtocol::socks5(), Command::CONNECT, target).unwrap();
//! assert_eq!(handshake.pending_output(), [5, 1, 0]);
//! handshake.output_written(3);
//! let step = handshake.feed(&[5, 0]).unwrap(); // the server chose "no authentication"
//! assert!(matches!(step, Step::Event { used: 2, .. }));
//! assert_eq!(handshake.pending_output()[..4], [5, 1, 0, 3]); // CONNECT to a domain name
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::addr::{Address, Host};
use crate::handshake::{whole_or_return, Methods, Output, Step, Version};
use crate::password::{self, Credentials};
use crate::v5::{self, Command, Method, Reply};
use crate::wire::{ProtocolError, Wire};
use crate::{gssapi, v4};

/// Which protocol to speak to the server, with what authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientProtocol {
    /// SOCKS4: the target must be an IPv4 address.
    Socks4 {
        /// The USERID field.
        user_id: Vec<u8>,
    },
    /// SOCKS4a: domain targets are resolved by the server.
    Socks4a {
        /// The USERID field.
        user_id: Vec<u8>,
    },
    /// SOCKS5.
    Socks5 {
        /// Username and password to offer (RFC 1929), if any.
        credentials: Option<Credentials>,
        /// Whether to offer GSS-API (RFC 1961); the caller then runs the context exchange.
        gssapi: bool,
    },
}

impl ClientProtocol {
    /// SOCKS5 without authentication.
    pub const fn socks5() -> Self {
        Self::Socks5 {
            credentials: None,
            gssapi: false,
        }
    }

    /// The methods a SOCKS5 client offers: "no authentication" first, then those it has
    /// credentials for (as curl does).
    fn offered_methods(credentials: Option<&Credentials>, gssapi: bool) -> Methods {
        let mut methods = vec![Method::NO_AUTH];
        if gssapi {
            methods.push(Method::GSSAPI);
        }
        if credentials.is_some() {
            methods.push(Method::PASSWORD);
        }
        Methods::new(&methods).unwrap_or(Methods::one(Method::NO_AUTH))
    }
}

/// What happened in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server chose a SOCKS5 method. For GSS-API, run the context exchange with
    /// [`ClientHandshake::send_gssapi`] and finish with [`ClientHandshake::gssapi_established`].
    MethodSelected(Method),
    /// An RFC 1961 message from the server during the GSS-API context exchange.
    Gssapi(gssapi::Message),
    /// The server accepted the username and password; the request has been queued.
    Authenticated,
    /// The request was granted. For CONNECT the relay may start; for BIND, `bound` is where
    /// the peer must connect, and a second reply follows; for UDP ASSOCIATE, where to send
    /// datagrams.
    Granted {
        /// BND.ADDR and BND.PORT.
        bound: Address,
    },
    /// BIND only: a peer connected, from `peer`; the relay may start.
    PeerConnected {
        /// The peer's address.
        peer: Address,
    },
}

/// Why the handshake failed; the machine is closed afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The server sent bytes that are not a valid message (the server is at fault).
    Protocol(ProtocolError),
    /// The server accepts none of the methods offered.
    NoAcceptableMethod,
    /// The server chose a method that was not offered (the server is at fault).
    UnexpectedMethod(Method),
    /// The server refused the username and password.
    AuthenticationFailed,
    /// The SOCKS5 server refused the request.
    Rejected(Reply),
    /// The SOCKS4 server refused the request.
    RejectedV4(v4::Reply),
    /// The target cannot be expressed in the chosen protocol (IPv6 or a name over SOCKS4).
    TargetNotSupported,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(error) => write!(f, "server broke the protocol: {error}"),
            Self::NoAcceptableMethod => {
                f.write_str("server accepts none of the offered authentication methods")
            }
            Self::UnexpectedMethod(method) => {
                write!(f, "server chose a method that was not offered: {method}")
            }
            Self::AuthenticationFailed => f.write_str("server refused the username or password"),
            Self::Rejected(reply) => write!(f, "the proxy answered: {reply}"),
            Self::RejectedV4(reply) => write!(f, "the proxy answered: {reply}"),
            Self::TargetNotSupported => {
                f.write_str("SOCKS4 can only reach IPv4 addresses (use SOCKS4a or SOCKS5)")
            }
        }
    }
}

impl std::error::Error for ClientError {}

pub use crate::server::OutOfOrder;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Greeting sent; expecting the method selection.
    ExpectMethod { offered: Methods },
    /// Credentials sent; expecting the RFC 1929 status.
    ExpectPasswordStatus,
    /// GSS-API chosen; the caller runs the context exchange.
    Gssapi,
    /// Request sent; expecting the reply.
    ExpectReply { version: Version },
    /// BIND granted; expecting the second reply.
    ExpectBindPeer { version: Version },
    /// The relay may start.
    Established,
    /// Failed.
    Closed,
}

/// The client side of one handshake.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    state: State,
    command: Command,
    target: Address,
    credentials: Option<Credentials>,
    output: Output,
}

impl ClientHandshake {
    /// A machine for `command` to `target`, with its first message queued.
    pub fn new(
        protocol: ClientProtocol,
        command: Command,
        target: Address,
    ) -> Result<Self, ClientError> {
        let mut handshake = Self {
            state: State::Closed,
            command,
            target,
            credentials: None,
            output: Output::default(),
        };
        match protocol {
            ClientProtocol::Socks5 {
                credentials,
                gssapi,
            } => {
                let offered = ClientProtocol::offered_methods(credentials.as_ref(), gssapi);
                handshake.output.queue(&v5::Greeting {
                    methods: offered.as_slice().to_vec(),
                });
                handshake.credentials = credentials;
                handshake.state = State::ExpectMethod { offered };
            }
            ClientProtocol::Socks4 { user_id } => handshake.queue_socks4(user_id, false)?,
            ClientProtocol::Socks4a { user_id } => handshake.queue_socks4(user_id, true)?,
        }
        Ok(handshake)
    }

    fn queue_socks4(&mut self, user_id: Vec<u8>, domains: bool) -> Result<(), ClientError> {
        let destination = match &self.target.host {
            Host::Ip(IpAddr::V4(ip)) => v4::Destination::Ip(*ip),
            Host::Domain(name) if domains => v4::Destination::Domain(name.clone()),
            _ => return Err(ClientError::TargetNotSupported),
        };
        let request = v4::Request {
            command: self.command,
            port: self.target.port,
            destination,
            user_id,
        };
        self.output.queue(&request);
        self.state = State::ExpectReply {
            version: if request.is_socks4a() {
                Version::Socks4a
            } else {
                Version::Socks4
            },
        };
        Ok(())
    }

    fn queue_request(&mut self) {
        self.output.queue(&v5::Request {
            command: self.command,
            target: self.target.clone(),
        });
        self.state = State::ExpectReply {
            version: Version::Socks5,
        };
    }

    /// Hands over the bytes received from the server and not yet used; recognises at most
    /// one message.
    pub fn feed(&mut self, input: &[u8]) -> Result<Step<ClientEvent>, ClientError> {
        let step = match self.state.clone() {
            State::ExpectMethod { offered } => self.on_method(input, offered),
            State::ExpectPasswordStatus => self.on_password_status(input),
            State::Gssapi => {
                let (message, used) = whole_or_return!(gssapi::Message::decode(input), |error| {
                    self.state = State::Closed;
                    ClientError::Protocol(error)
                });
                Ok(Step::Event {
                    used,
                    event: ClientEvent::Gssapi(message),
                })
            }
            State::ExpectReply { version } => self.on_reply(input, version, false),
            State::ExpectBindPeer { version } => self.on_reply(input, version, true),
            State::Established | State::Closed => Ok(Step::Idle),
        };
        if step.is_err() {
            self.state = State::Closed;
        }
        step
    }

    fn on_method(
        &mut self,
        input: &[u8],
        offered: Methods,
    ) -> Result<Step<ClientEvent>, ClientError> {
        let (selection, used) = whole_or_return!(v5::MethodSelection::decode(input), |error| {
            ClientError::Protocol(error)
        });
        match selection.method {
            Method::NO_ACCEPTABLE => return Err(ClientError::NoAcceptableMethod),
            method if !offered.contains(method) => {
                return Err(ClientError::UnexpectedMethod(method))
            }
            Method::PASSWORD => {
                if let Some(credentials) = &self.credentials {
                    self.output.queue(credentials);
                }
                self.state = State::ExpectPasswordStatus;
            }
            Method::GSSAPI => self.state = State::Gssapi,
            _ => self.queue_request(),
        }
        Ok(Step::Event {
            used,
            event: ClientEvent::MethodSelected(selection.method),
        })
    }

    fn on_password_status(&mut self, input: &[u8]) -> Result<Step<ClientEvent>, ClientError> {
        let (status, used) = whole_or_return!(password::Status::decode(input), |error| {
            ClientError::Protocol(error)
        });
        if !status.is_success() {
            return Err(ClientError::AuthenticationFailed);
        }
        // The password has done its job; do not keep it for the session's lifetime.
        self.credentials = None;
        self.queue_request();
        Ok(Step::Event {
            used,
            event: ClientEvent::Authenticated,
        })
    }

    fn on_reply(
        &mut self,
        input: &[u8],
        version: Version,
        second: bool,
    ) -> Result<Step<ClientEvent>, ClientError> {
        let (bound, used) = match version {
            Version::Socks5 => {
                let (response, used) = whole_or_return!(v5::Response::decode(input), |error| {
                    ClientError::Protocol(error)
                });
                if !response.reply.is_success() {
                    return Err(ClientError::Rejected(response.reply));
                }
                (response.bound, used)
            }
            Version::Socks4 | Version::Socks4a => {
                let (response, used) = whole_or_return!(v4::Response::decode(input), |error| {
                    ClientError::Protocol(error)
                });
                if !response.reply.is_success() {
                    return Err(ClientError::RejectedV4(response.reply));
                }
                (
                    Address::from(SocketAddr::from((response.ip, response.port))),
                    used,
                )
            }
        };
        let event = if second {
            self.state = State::Established;
            ClientEvent::PeerConnected { peer: bound }
        } else {
            self.state = if self.command == Command::BIND {
                State::ExpectBindPeer { version }
            } else {
                State::Established
            };
            ClientEvent::Granted { bound }
        };
        Ok(Step::Event { used, event })
    }

    /// Queues an RFC 1961 message for the server during the GSS-API context exchange.
    pub fn send_gssapi(&mut self, message: &gssapi::Message) -> Result<(), OutOfOrder> {
        if self.state != State::Gssapi {
            return Err(OutOfOrder("send_gssapi outside GSS-API negotiation"));
        }
        self.output.queue(message);
        Ok(())
    }

    /// The GSS-API context and protection level are agreed: queues the request.
    ///
    /// With integrity or confidentiality, the caller wraps everything the machine outputs
    /// from here on and unwraps what it feeds (RFC 1961 §5).
    pub fn gssapi_established(&mut self) -> Result<(), OutOfOrder> {
        if self.state != State::Gssapi {
            return Err(OutOfOrder("gssapi_established outside GSS-API negotiation"));
        }
        self.queue_request();
        Ok(())
    }

    /// Bytes to send to the server.
    pub fn pending_output(&self) -> &[u8] {
        self.output.pending()
    }

    /// Drops the first `written` bytes of [`Self::pending_output`].
    pub fn output_written(&mut self, written: usize) {
        self.output.advance(written);
    }

    /// Whether the relay may start; input not used by the machine is application data.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the handshake failed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }
}
