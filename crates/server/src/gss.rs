//! The GSS-API method (RFC 1961) in a session: context establishment (§3), then the
//! protection-level sub-negotiation (§4); the session then encapsulates (§5) when a level
//! above "none" was granted.

use std::sync::Arc;

use socksgate_config::{Config, Protection};
use socksgate_gssapi::{choose_level, Acceptor, Context, Delivery, Level, ServerContext};
use socksgate_proto::gssapi::{Message, MessageType};
use socksgate_proto::server::ServerHandshake;
use socksgate_proto::Method;

/// The server's GSS-API side: its credentials and what it grants.
pub(crate) struct GssSetup {
    acceptor: Acceptor,
    protection: Vec<Level>,
    nec: bool,
}

/// The credentials for the configured service, when a listener offers GSS-API.
pub(crate) fn setup(config: &Config) -> Result<Option<Arc<GssSetup>>, String> {
    let offered = config
        .listeners
        .iter()
        .any(|listener| listener.methods.contains(&Method::GSSAPI));
    if !offered {
        // Upstream hops authenticate with the same library: a missing one is said at start.
        if config.upstreams.iter().any(|group| group.gssapi.is_some()) {
            socksgate_gssapi::available().map_err(|error| format!("upstreams: {error}"))?;
        }
        return Ok(None);
    }
    let acceptor = Acceptor::new(Some(&config.gssapi.service))
        .map_err(|error| format!("service {:?}: {error}", config.gssapi.service))?;
    let protection = config
        .gssapi
        .protection
        .iter()
        .map(|level| match level {
            Protection::None => Level::None,
            Protection::Integrity => Level::Integrity,
            Protection::Confidentiality => Level::Confidentiality,
        })
        .collect();
    Ok(Some(Arc::new(GssSetup {
        acceptor,
        protection,
        nec: config.gssapi.nec,
    })))
}

/// Where one client's negotiation stands.
#[derive(Default)]
pub(crate) struct Negotiation {
    context: Option<ServerContext>,
}

/// What a message led to.
pub(crate) enum Progress {
    /// More context tokens to come.
    Continue,
    /// Authenticated, at this level: the client's principal, and the context for §5.
    Established {
        level: Level,
        principal: String,
        context: ServerContext,
    },
}

impl Negotiation {
    /// Takes one RFC 1961 message; queues the answer on `machine`. An error says why the
    /// client is refused (the caller sends the abort message).
    pub(crate) fn on_message(
        &mut self,
        setup: &GssSetup,
        message: Message,
        machine: &mut ServerHandshake,
    ) -> Result<Progress, String> {
        let context = match &mut self.context {
            Some(context) => context,
            empty => empty.insert(setup.acceptor.context().map_err(|e| e.to_string())?),
        };
        match message.kind {
            // §3.4: a context-establishment token; answer with the acceptor's, if any.
            MessageType::AUTHENTICATION if !context.is_complete() => {
                let reply = context.step(&message.token).map_err(|e| e.to_string())?;
                if let Some(reply) = reply {
                    let answer = Message::new(MessageType::AUTHENTICATION, reply)
                        .ok_or("a context token over 64 KiB")?;
                    machine.send_gssapi(&answer).map_err(|e| e.to_string())?;
                }
                Ok(Progress::Continue)
            }
            // §4.3: the requested level, wrapped (or bare, from NEC-style clients).
            MessageType::PROTECTION if context.is_complete() => {
                let bare = setup.nec && message.token.len() == 1;
                let requested = if bare {
                    message.token.clone()
                } else {
                    context
                        .unwrap(&message.token, Delivery::InOrder)
                        .map_err(|e| e.to_string())?
                        .data
                };
                let [octet] = requested[..] else {
                    return Err("the protection level is not one octet".to_owned());
                };
                let level = choose_level(octet, &setup.protection).ok_or_else(|| {
                    format!("the client asks for protection level {octet}, which is not allowed")
                })?;
                let reply = if bare {
                    vec![level.octet()]
                } else {
                    context
                        .wrap(false, &[level.octet()])
                        .map_err(|e| e.to_string())?
                };
                let answer = Message::new(MessageType::PROTECTION, reply)
                    .ok_or("a protection token over 64 KiB")?;
                // Who it is, before anything counts as authenticated.
                let principal = context.client_name().map_err(|e| e.to_string())?;
                machine.send_gssapi(&answer).map_err(|e| e.to_string())?;
                machine.authenticated(true).map_err(|e| e.to_string())?;
                let context = self.context.take().ok_or("no context")?;
                Ok(Progress::Established {
                    level,
                    principal,
                    context,
                })
            }
            MessageType::ABORT => Err("the client aborted".to_owned()),
            other => Err(format!("unexpected {other} message")),
        }
    }
}
