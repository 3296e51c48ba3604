//! One access-log event per session: who, from where, what, to where, how it ended, bytes
//! each way, how long. Never a password.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use socksgate_auth::Identity;
use socksgate_policy::LogLevel;
use socksgate_proto::{Address, Command, Reply, Version};

use crate::relay::Counters;

/// A `tracing` event at the session's level (the deciding rule's `log` option).
macro_rules! at_level {
    ($level:expr, $($event:tt)*) => {
        match $level {
            LogLevel::Off => {}
            LogLevel::Debug => tracing::debug!($($event)*),
            LogLevel::Info => tracing::info!($($event)*),
            LogLevel::Warn => tracing::warn!($($event)*),
        }
    };
}

/// What is known about a session, filled in as it goes.
#[derive(Debug)]
pub(crate) struct AccessRecord {
    pub(crate) client: SocketAddr,
    pub(crate) listener: SocketAddr,
    pub(crate) started: Instant,
    pub(crate) version: Option<Version>,
    /// The user name: authenticated, attempted, or the SOCKS4 USERID.
    pub(crate) user: Option<String>,
    /// Who authenticated, for policy.
    pub(crate) identity: Option<Identity>,
    pub(crate) command: Option<Command>,
    pub(crate) target: Option<Address>,
    pub(crate) reply: Option<Reply>,
    pub(crate) counters: Counters,
    /// BIND: the peer that connected.
    pub(crate) peer: Option<SocketAddr>,
    /// BIND: connections from other hosts than the expected peer, closed.
    pub(crate) rejected_peers: u64,
    /// UDP ASSOCIATE: what the association relayed and dropped.
    pub(crate) udp: Option<UdpStats>,
    /// The policy rule that decided (`file:line`), or why no rule did.
    pub(crate) rule: Option<String>,
    /// The level of this session's event (the deciding rule's `log` option).
    pub(crate) log: LogLevel,
}

/// Datagrams and bytes each way, and drops by reason, of one association.
#[derive(Debug, Default)]
pub(crate) struct UdpStats {
    pub(crate) datagrams_up: u64,
    pub(crate) bytes_up: u64,
    pub(crate) datagrams_down: u64,
    pub(crate) bytes_down: u64,
    pub(crate) drops: UdpDrops,
}

/// Why datagrams were dropped.
#[derive(Debug, Default)]
pub(crate) struct UdpDrops {
    /// From neither the client nor a permitted outside sender (anti-spoofing, filtering).
    pub(crate) unexpected_source: u64,
    /// Too short or otherwise not a SOCKS UDP datagram.
    pub(crate) malformed: u64,
    /// Fragments dropped: out of order, timed out, too large, or fragments switched off.
    pub(crate) fragments: u64,
    /// The target's name did not resolve.
    pub(crate) unresolved: u64,
    /// The target could not be sent to (wrong address family, no route).
    pub(crate) unreachable: u64,
    /// The policy does not allow the target.
    pub(crate) denied: u64,
}

impl AccessRecord {
    pub(crate) fn new(client: SocketAddr, listener: SocketAddr) -> Self {
        Self {
            client,
            listener,
            started: Instant::now(),
            version: None,
            user: None,
            identity: None,
            command: None,
            target: None,
            reply: None,
            counters: Counters::default(),
            peer: None,
            rejected_peers: 0,
            udp: None,
            rule: None,
            log: LogLevel::Info,
        }
    }

    /// Writes the event; `outcome` is a short word (`closed`, `refused`, `idle-timeout`, …).
    pub(crate) fn emit(&self, outcome: &str, detail: Option<&dyn std::fmt::Display>) {
        if let Some(udp) = &self.udp {
            return self.emit_association(outcome, detail, udp);
        }
        let none = "-";
        at_level!(
            self.log,
            target: "socksgate::access",
            client = %self.client,
            listener = %self.listener,
            protocol = self.version.map_or(none.to_owned(), |v| v.to_string()),
            user = self.user.as_deref().unwrap_or(none),
            command = self.command.map_or(none.to_owned(), |c| c.to_string()),
            target = self.target.as_ref().map_or(none.to_owned(), ToString::to_string),
            outcome,
            reply = self.reply.map_or(none.to_owned(), |r| format!("{:#04x}", r.0)),
            rule = self.rule.as_deref().unwrap_or(none),
            detail = detail.map_or(none.to_owned(), ToString::to_string),
            peer = self.peer.map_or(none.to_owned(), |p| p.to_string()),
            rejected_peers = self.rejected_peers,
            bytes_up = self.counters.up.load(Ordering::Relaxed),
            bytes_down = self.counters.down.load(Ordering::Relaxed),
            duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "session"
        );
    }

    fn emit_association(
        &self,
        outcome: &str,
        detail: Option<&dyn std::fmt::Display>,
        udp: &UdpStats,
    ) {
        let none = "-";
        let drops = &udp.drops;
        at_level!(
            self.log,
            target: "socksgate::access",
            client = %self.client,
            listener = %self.listener,
            protocol = self.version.map_or(none.to_owned(), |v| v.to_string()),
            user = self.user.as_deref().unwrap_or(none),
            command = self.command.map_or(none.to_owned(), |c| c.to_string()),
            target = self.target.as_ref().map_or(none.to_owned(), ToString::to_string),
            outcome,
            reply = self.reply.map_or(none.to_owned(), |r| format!("{:#04x}", r.0)),
            rule = self.rule.as_deref().unwrap_or(none),
            detail = detail.map_or(none.to_owned(), ToString::to_string),
            datagrams_up = udp.datagrams_up,
            datagrams_down = udp.datagrams_down,
            bytes_up = udp.bytes_up,
            bytes_down = udp.bytes_down,
            dropped = drops.total(),
            dropped_unexpected_source = drops.unexpected_source,
            dropped_malformed = drops.malformed,
            dropped_fragments = drops.fragments,
            dropped_unresolved = drops.unresolved,
            dropped_unreachable = drops.unreachable,
            dropped_denied = drops.denied,
            duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "association"
        );
    }
}
