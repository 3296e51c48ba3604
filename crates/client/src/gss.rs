//! GSS-API with a SOCKS5 hop (RFC 1961), for chains built with [`Chain::with_gssapi`]:
//! the context exchange, the protection level, then encapsulation of the stream.
//!
//! [`Chain::with_gssapi`]: crate::Chain::with_gssapi

use socksgate_gssapi::{ClientContext, Context, Delivery, GssLayer, Level};
use socksgate_proto::client::ClientHandshake;
use socksgate_proto::gssapi::{Message, MessageType};

use crate::ProxyStream;

/// How GSS-API hops are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssapiOptions {
    /// The proxy's service name: the context is with `SERVICE@HOST` (`rcmd` by default,
    /// as curl and Dante).
    pub service: String,
    /// The level asked for; the proxy may grant a weaker one.
    pub protection: Level,
    /// Send the protection level unprotected (the NEC reference implementation's way).
    pub nec: bool,
}

impl Default for GssapiOptions {
    fn default() -> Self {
        Self {
            service: "rcmd".to_owned(),
            protection: Level::Confidentiality,
            nec: false,
        }
    }
}

/// One hop's exchange in progress.
pub(crate) struct Exchange {
    context: ClientContext,
    options: GssapiOptions,
}

impl Exchange {
    /// The proxy chose GSS-API: the first token goes out.
    pub(crate) fn start(
        options: &GssapiOptions,
        host: &str,
        machine: &mut ClientHandshake,
    ) -> Result<Self, String> {
        let mut context =
            ClientContext::new(&options.service, host).map_err(|error| error.to_string())?;
        let token = context.step(None).map_err(|error| error.to_string())?;
        let mut exchange = Self {
            context,
            options: options.clone(),
        };
        exchange.send_token(token, machine)?;
        Ok(exchange)
    }

    fn send_token(
        &mut self,
        token: Option<Vec<u8>>,
        machine: &mut ClientHandshake,
    ) -> Result<(), String> {
        if let Some(token) = token {
            let message = Message::new(MessageType::AUTHENTICATION, token)
                .ok_or("a context token over 64 KiB")?;
            machine.send_gssapi(&message).map_err(|e| e.to_string())?;
        }
        if self.context.is_complete() {
            // §4: ask for the protection level.
            let octet = [self.options.protection.octet()];
            let token = if self.options.nec {
                octet.to_vec()
            } else {
                self.context
                    .wrap(false, &octet)
                    .map_err(|e| e.to_string())?
            };
            let message = Message::new(MessageType::PROTECTION, token)
                .ok_or("a protection token over 64 KiB")?;
            machine.send_gssapi(&message).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// A message from the proxy. Returns `true` once the level is agreed (the request is
    /// then queued, and `stream` encapsulates from here on when the level asks for it).
    pub(crate) fn on_message(
        &mut self,
        message: &Message,
        machine: &mut ClientHandshake,
    ) -> Result<Option<Level>, String> {
        match message.kind {
            MessageType::AUTHENTICATION if !self.context.is_complete() => {
                let token = self
                    .context
                    .step(Some(&message.token))
                    .map_err(|e| e.to_string())?;
                self.send_token(token, machine)?;
                Ok(None)
            }
            MessageType::PROTECTION if self.context.is_complete() => {
                let granted = if self.options.nec {
                    message.token.clone()
                } else {
                    self.context
                        .unwrap(&message.token, Delivery::InOrder)
                        .map_err(|e| e.to_string())?
                        .data
                };
                let level = match granted[..] {
                    [octet] => Level::from_octet(octet),
                    _ => None,
                }
                .ok_or("the proxy answered with no protection level")?;
                machine.gssapi_established().map_err(|e| e.to_string())?;
                Ok(Some(level))
            }
            MessageType::ABORT => Err("the proxy refused the GSS-API context".to_owned()),
            other => Err(format!("unexpected {other} message")),
        }
    }

    /// Encapsulates `stream` at `level` (nothing to do for level 0).
    pub(crate) fn protect(self, stream: &mut ProxyStream, level: Level, read_ahead: Vec<u8>) {
        if level != Level::None {
            stream
                .layered()
                .encapsulate(GssLayer::new(Box::new(self.context), level, read_ahead));
        }
    }
}
