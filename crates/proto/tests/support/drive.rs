//! Drives a handshake machine over input split into chunks, answering its events with fixed
//! rules, and records everything it did. Shared by the property tests and the fuzz targets:
//! the same bytes must give the same transcript however they are split.

use socksgate_proto::client::{ClientError, ClientEvent, ClientHandshake};
use socksgate_proto::gssapi::{Message, MessageType};
use socksgate_proto::server::{ServerError, ServerEvent, ServerHandshake};
use socksgate_proto::{Address, Command, Reply, Step};

/// Everything observable about one run of a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transcript<E, F> {
    /// Events in order.
    pub(crate) events: Vec<E>,
    /// Every byte the machine asked to send.
    pub(crate) output: Vec<u8>,
    /// The error that ended the handshake, if one did.
    pub(crate) error: Option<F>,
    /// Input the machine did not use (application data, once established); empty after an
    /// error.
    pub(crate) leftover: Vec<u8>,
    /// Whether the handshake completed.
    pub(crate) established: bool,
}

impl<E, F> Default for Transcript<E, F> {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            output: Vec::new(),
            error: None,
            leftover: Vec::new(),
            established: false,
        }
    }
}

/// The steps a machine exposes, so one loop drives both sides.
pub(crate) trait Machine {
    type Event: Clone;
    type Error;
    fn feed(&mut self, input: &[u8]) -> Result<Step<Self::Event>, Self::Error>;
    fn answer(&mut self, event: &Self::Event);
    fn pending_output(&self) -> &[u8];
    fn output_written(&mut self, written: usize);
    fn take_output(&mut self, into: &mut Vec<u8>) {
        into.extend_from_slice(self.pending_output());
        let written = self.pending_output().len();
        self.output_written(written);
    }
    fn is_established(&self) -> bool;
}

/// Feeds `chunks` in order; after each chunk, runs the machine until it needs more input.
pub(crate) fn drive<'a, M: Machine>(
    machine: &mut M,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Transcript<M::Event, M::Error> {
    let mut transcript = Transcript::default();
    let mut buffer = Vec::new();
    machine.take_output(&mut transcript.output);
    for chunk in chunks {
        buffer.extend_from_slice(chunk);
        loop {
            match machine.feed(&buffer) {
                Ok(Step::Event { used, event }) => {
                    assert!(
                        used > 0 && used <= buffer.len(),
                        "used {used} of {}",
                        buffer.len()
                    );
                    buffer.drain(..used);
                    machine.answer(&event);
                    transcript.events.push(event);
                    machine.take_output(&mut transcript.output);
                }
                Ok(Step::NeedMore { .. } | Step::Idle) => break,
                Err(error) => {
                    machine.take_output(&mut transcript.output);
                    // The session ends here: unused input, delivered or not, is dropped.
                    transcript.error = Some(error);
                    return transcript;
                }
            }
        }
    }
    transcript.leftover = buffer;
    transcript.established = machine.is_established();
    transcript
}

/// A reply chosen from the target alone, so runs are repeatable.
fn reply_for(target: &Address) -> Reply {
    if target.port % 10 == 9 {
        Reply::CONNECTION_REFUSED
    } else {
        Reply::SUCCEEDED
    }
}

impl Machine for ServerHandshake {
    type Event = ServerEvent;
    type Error = ServerError;

    fn feed(&mut self, input: &[u8]) -> Result<Step<ServerEvent>, ServerError> {
        ServerHandshake::feed(self, input)
    }

    fn answer(&mut self, event: &ServerEvent) {
        let result = match event {
            ServerEvent::MethodSelected(_) => Ok(()),
            ServerEvent::Credentials(credentials) => {
                self.authenticated(credentials.password() != b"wrong")
            }
            // An even-length token completes the context; an odd one asks for another round.
            ServerEvent::Gssapi(message) if message.token.len() % 2 == 0 => {
                self.authenticated(message.kind != MessageType::ABORT)
            }
            ServerEvent::Gssapi(message) => {
                let answer = Message::new(MessageType::AUTHENTICATION, message.token.clone());
                self.send_gssapi(&answer.unwrap_or_else(Message::abort))
            }
            ServerEvent::Request(request) => {
                let reply = reply_for(&request.target);
                let bound = Address::from(std::net::SocketAddr::from(([10, 0, 0, 1], 4000)));
                let first = self.reply(reply, &bound);
                if reply.is_success() && request.command == Command::BIND {
                    self.reply(Reply::SUCCEEDED, &request.target)
                } else {
                    first
                }
            }
        };
        assert!(result.is_ok(), "the driver answers in order: {result:?}");
    }

    fn pending_output(&self) -> &[u8] {
        ServerHandshake::pending_output(self)
    }

    fn output_written(&mut self, written: usize) {
        ServerHandshake::output_written(self, written);
    }

    fn is_established(&self) -> bool {
        ServerHandshake::is_established(self)
    }
}

impl Machine for ClientHandshake {
    type Event = ClientEvent;
    type Error = ClientError;

    fn feed(&mut self, input: &[u8]) -> Result<Step<ClientEvent>, ClientError> {
        ClientHandshake::feed(self, input)
    }

    fn answer(&mut self, event: &ClientEvent) {
        let result = match event {
            ClientEvent::MethodSelected(socksgate_proto::Method::GSSAPI) => {
                let token = Message::new(MessageType::AUTHENTICATION, vec![0x60, 0x01, 0x02]);
                self.send_gssapi(&token.unwrap_or_else(Message::abort))
            }
            ClientEvent::Gssapi(message) if message.token.len() % 2 == 0 => {
                self.gssapi_established()
            }
            ClientEvent::Gssapi(message) => {
                let answer = Message::new(MessageType::AUTHENTICATION, message.token.clone());
                self.send_gssapi(&answer.unwrap_or_else(Message::abort))
            }
            _ => Ok(()),
        };
        assert!(result.is_ok(), "the driver answers in order: {result:?}");
    }

    fn pending_output(&self) -> &[u8] {
        ClientHandshake::pending_output(self)
    }

    fn output_written(&mut self, written: usize) {
        ClientHandshake::output_written(self, written);
    }

    fn is_established(&self) -> bool {
        ClientHandshake::is_established(self)
    }
}
