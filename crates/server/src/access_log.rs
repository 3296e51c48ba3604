//! One access-log event per session: who, from where, what, to where, how it ended, bytes
//! each way, how long. Never a password.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use socksgate_policy::LogLevel;
use socksgate_proto::{Address, Command, Reply, Version};

use crate::counters::Tally;
use crate::subject::Subject;

/// A session's access event, at the session's level (the deciding rule's `log` option):
/// the fields every event has, then `$extra` (what a session or an association adds), then
/// its duration. Outside the session's debug span (`parent: None`): the record names the
/// client itself, and its fields are the access log's whole schema.
macro_rules! access_event {
    ($record:expr, $outcome:expr, $detail:expr, $message:literal, $($extra:tt)*) => {
        access_event!(@at $record.log,
            target: "socksgate::access",
            parent: None,
            client = %$record.subject.client(),
            listener = %$record.subject.listener(),
            via = %OrDash($record.subject.via()),
            protocol = %OrDash($record.protocol()),
            user = $record.subject.logged_user().unwrap_or("-"),
            claimed_user = $record.subject.claimed_user().unwrap_or("-"),
            command = %OrDash($record.command),
            target = %OrDash($record.target.as_ref()),
            outcome = $outcome,
            reply = %OrDash($record.reply.map(ReplyCode)),
            rule = %OrDash($record.rule.as_deref()),
            method = %OrDash($record.http.as_ref().map(|http| &http.method).filter(|m| !m.is_empty())),
            status = %OrDash($record.http.as_ref().and_then(|http| http.status)),
            detail = %OrDash($detail),
            $($extra)*
            duration_ms = $record.duration_ms(),
            $message
        )
    };
    (@at $level:expr, $($event:tt)*) => {
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
    /// Who the session acts for: client, balancer, listener, proven user, claimed name.
    pub(crate) subject: Subject,
    pub(crate) started: Instant,
    pub(crate) version: Option<Version>,
    pub(crate) command: Option<Command>,
    pub(crate) target: Option<Address>,
    pub(crate) reply: Option<Reply>,
    /// Bytes each way (shared with `/sessions` once listed there).
    pub(crate) counters: Tally,
    /// BIND: the peer that connected.
    pub(crate) peer: Option<Box<SocketAddr>>,
    /// BIND: connections from other hosts than the expected peer, closed.
    pub(crate) rejected_peers: u64,
    /// UDP ASSOCIATE: what the association relayed and dropped.
    pub(crate) udp: Option<Box<UdpStats>>,
    /// The policy rule that decided (`file:line`), or why no rule did.
    pub(crate) rule: Option<String>,
    /// The level of this session's event (the deciding rule's `log` option).
    pub(crate) log: LogLevel,
    /// An HTTP request: its method and the status it got.
    pub(crate) http: Option<Box<HttpExchange>>,
}

/// What the access log says of an HTTP request beyond what every session has.
#[derive(Debug)]
pub(crate) struct HttpExchange {
    /// The request's method (a token: RFC 9110 §9.1).
    pub(crate) method: String,
    /// The status it got, from socksgate or from the target; `None` before any.
    pub(crate) status: Option<u16>,
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

impl UdpDrops {
    /// All drops, whatever the reason (every field named, so that a new reason cannot be
    /// left out of the total).
    pub(crate) fn total(&self) -> u64 {
        let Self {
            unexpected_source,
            malformed,
            fragments,
            unresolved,
            unreachable,
            denied,
        } = *self;
        unexpected_source + malformed + fragments + unresolved + unreachable + denied
    }
}

impl AccessRecord {
    pub(crate) fn new(client: SocketAddr, listener: SocketAddr) -> Self {
        Self {
            subject: Subject::new(client, listener),
            started: Instant::now(),
            version: None,
            command: None,
            target: None,
            reply: None,
            counters: Tally::default(),
            peer: None,
            rejected_peers: 0,
            udp: None,
            rule: None,
            log: LogLevel::Info,
            http: None,
        }
    }

    /// The record of one request of an HTTP client's connection: the connection's subject,
    /// its own start, method, command and target.
    pub(crate) fn for_http_request(
        &self,
        method: &str,
        target: Option<&Address>,
        command: Command,
    ) -> Self {
        let mut record = Self::new(self.subject.client(), self.subject.listener());
        record.subject = self.subject.clone();
        record.command = Some(command);
        record.target = target.cloned();
        record.http = Some(Box::new(HttpExchange {
            method: method.to_owned(),
            status: None,
        }));
        record
    }

    /// The protocol the client spoke: `http`, or the SOCKS version.
    pub(crate) fn protocol(&self) -> Option<&'static str> {
        if self.http.is_some() {
            return Some("http");
        }
        self.version.map(|version| match version {
            Version::Socks4 => "socks4",
            Version::Socks4a => "socks4a",
            Version::Socks5 => "socks5",
        })
    }

    /// Records the status an HTTP request got (a SOCKS session has none).
    pub(crate) fn set_status(&mut self, status: u16) {
        if let Some(http) = &mut self.http {
            http.status = Some(status);
        }
    }

    /// Writes the event; `outcome` is a short word (`closed`, `refused`, `idle-timeout`, …).
    pub(crate) fn emit(&self, outcome: &str, detail: Option<&dyn fmt::Display>) {
        if let Some(udp) = &self.udp {
            return self.emit_association(outcome, detail, udp);
        }
        access_event!(
            self,
            outcome,
            detail,
            "session",
            peer = %OrDash(self.peer.as_deref()),
            rejected_peers = self.rejected_peers,
            bytes_up = self.counters.up.load(Ordering::Relaxed),
            bytes_down = self.counters.down.load(Ordering::Relaxed),
        );
    }

    fn emit_association(&self, outcome: &str, detail: Option<&dyn fmt::Display>, udp: &UdpStats) {
        let drops = &udp.drops;
        access_event!(
            self,
            outcome,
            detail,
            "association",
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
        );
    }

    fn duration_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// User names are recorded as text, not displayed: the human format quotes them (a name
/// with a space and `outcome=` in it cannot pass for another field) and escapes what they
/// hold, the JSON format writes them as they are. Other client-chosen text (a target's
/// name, an error naming it) is displayed through [`Escaped`]: names hold no spaces.
///
/// A field not known (yet) shows as `-`; formatted straight into the event, with no
/// `String` per field.
struct OrDash<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for OrDash<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => {
                use fmt::Write;
                write!(Escaped(f), "{value}")
            }
            None => f.write_str("-"),
        }
    }
}

/// Writes through with control characters escaped (`\n`, `\u{1b}`): a name or message a
/// client chose (a SOCKS4 USERID, an attempted user name, an error naming them) can neither
/// start a forged line of the human log nor drive the terminal it is read on. (JSON logs
/// escape on their own.)
struct Escaped<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if !text.chars().any(char::is_control) {
            return self.0.write_str(text);
        }
        for c in text.chars() {
            if c.is_control() {
                write!(self.0, "{}", c.escape_default())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// The reply code as the RFC writes it: `0x05`.
struct ReplyCode(Reply);

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.0 .0)
    }
}
