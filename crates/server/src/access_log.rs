//! One access-log event per session: who, from where, what, to where, how it ended, bytes
//! each way, how long. Never a password.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use socksgate_proto::{Address, Command, Reply, Version};

use crate::relay::Counters;

/// What is known about a session, filled in as it goes.
#[derive(Debug)]
pub(crate) struct AccessRecord {
    pub(crate) client: SocketAddr,
    pub(crate) listener: SocketAddr,
    pub(crate) started: Instant,
    pub(crate) version: Option<Version>,
    pub(crate) user: Option<String>,
    pub(crate) command: Option<Command>,
    pub(crate) target: Option<Address>,
    pub(crate) reply: Option<Reply>,
    pub(crate) counters: Counters,
}

impl AccessRecord {
    pub(crate) fn new(client: SocketAddr, listener: SocketAddr) -> Self {
        Self {
            client,
            listener,
            started: Instant::now(),
            version: None,
            user: None,
            command: None,
            target: None,
            reply: None,
            counters: Counters::default(),
        }
    }

    /// Writes the event; `outcome` is a short word (`closed`, `refused`, `idle-timeout`, …).
    pub(crate) fn emit(&self, outcome: &str, detail: Option<&dyn std::fmt::Display>) {
        let none = "-";
        tracing::info!(
            target: "socksgate::access",
            client = %self.client,
            listener = %self.listener,
            protocol = self.version.map_or(none.to_owned(), |v| v.to_string()),
            user = self.user.as_deref().unwrap_or(none),
            command = self.command.map_or(none.to_owned(), |c| c.to_string()),
            target = self.target.as_ref().map_or(none.to_owned(), ToString::to_string),
            outcome,
            reply = self.reply.map_or(none.to_owned(), |r| format!("{:#04x}", r.0)),
            detail = detail.map_or(none.to_owned(), ToString::to_string),
            bytes_up = self.counters.up.load(Ordering::Relaxed),
            bytes_down = self.counters.down.load(Ordering::Relaxed),
            duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "session"
        );
    }
}
