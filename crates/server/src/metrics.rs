//! Counters of what the server did, for the admin listener's `/metrics` (Prometheus text
//! format 0.0.4). They outlive reloads; each session adds to them once, when it ends (so a
//! session's bytes count when it ends), plus the two latencies as they are measured and
//! each upstream attempt as it is made.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::access_log::AccessRecord;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Everything `/metrics` shows, but the live counts (in [`crate::Stats`]).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Sessions ended, by command ("-" before a request) and outcome.
    sessions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    auth_failures: AtomicU64,
    auth_throttled: AtomicU64,
    /// Denials by the rule (file:line, or why) that decided them.
    denials: Mutex<BTreeMap<String, u64>>,
    udp_datagrams_up: AtomicU64,
    udp_datagrams_down: AtomicU64,
    /// UDP datagrams dropped, by reason, in the access log's order.
    udp_dropped: [AtomicU64; 6],
    /// From accepting a connection to its complete request.
    pub(crate) handshake: Histogram,
    /// From starting to reach a target to being connected to it (direct CONNECTs).
    pub(crate) connect: Histogram,
    /// Attempts through upstream chains, by group, chain, and whether the chain carried it.
    upstream_attempts: Mutex<BTreeMap<(String, String, bool), u64>>,
    /// Counts per authenticated user, when switched on.
    users: UserCounters,
    /// Sessions ended, by the protocol the client spoke ("-" before it was known).
    protocols: Mutex<BTreeMap<&'static str, u64>>,
    /// HTTP requests (CONNECT and forwarded) ended, by method and status class.
    http_requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

/// The methods `/metrics` names; any other counts as `other` (a client chooses the
/// method: labels must stay few).
const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH", "TRACE",
];

/// An HTTP status's class as `/metrics` labels it: `2xx`…, or `-` for none yet.
fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "-",
    }
}

/// Sessions and bytes per authenticated user, for at most `limit` users; the others are
/// counted together as [`OTHER_USERS`]. A limit of 0 switches them off.
#[derive(Debug, Default)]
struct UserCounters {
    limit: AtomicU32,
    totals: Mutex<BTreeMap<String, UserTotals>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct UserTotals {
    sessions: u64,
    bytes_up: u64,
    bytes_down: u64,
}

/// The label of the users beyond the limit.
const OTHER_USERS: &str = "(other)";

const DROP_REASONS: [&str; 6] = [
    "unexpected_source",
    "malformed",
    "fragments",
    "unresolved",
    "unreachable",
    "denied",
];

/// How one session ended, as the metrics count it.
pub(crate) struct Ending<'a> {
    pub(crate) outcome: &'static str,
    /// The rule (or reason) of a denial.
    pub(crate) denied_by: Option<&'a str>,
    pub(crate) authentication_failed: bool,
    /// Failed by the login throttle, unchecked.
    pub(crate) login_throttled: bool,
}

impl Metrics {
    /// Adds one ended session.
    pub(crate) fn session_ended(&self, record: &AccessRecord, ending: &Ending<'_>) {
        let command = record.command.map_or("-", socksgate_config::command_name);
        *self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((command, ending.outcome))
            .or_insert(0) += 1;
        *self
            .protocols
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(record.protocol().unwrap_or("-"))
            .or_insert(0) += 1;
        if let Some(http) = &record.http {
            let method = HTTP_METHODS
                .iter()
                .find(|known| **known == http.method)
                .copied()
                .unwrap_or(if http.method.is_empty() { "-" } else { "other" });
            *self
                .http_requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry((method, status_class(http.status)))
                .or_insert(0) += 1;
        }
        // UDP associations count their payload bytes here too.
        let up = record.counters.up.load(Ordering::Relaxed);
        let down = record.counters.down.load(Ordering::Relaxed);
        self.bytes_up.fetch_add(up, Ordering::Relaxed);
        self.bytes_down.fetch_add(down, Ordering::Relaxed);
        if let Some(user) = record.subject.user() {
            self.users.add(user, up, down);
        }
        if let Some(udp) = &record.udp {
            self.udp_datagrams_up
                .fetch_add(udp.datagrams_up, Ordering::Relaxed);
            self.udp_datagrams_down
                .fetch_add(udp.datagrams_down, Ordering::Relaxed);
            let drops = &udp.drops;
            let counts = [
                drops.unexpected_source,
                drops.malformed,
                drops.fragments,
                drops.unresolved,
                drops.unreachable,
                drops.denied,
            ];
            for (total, count) in self.udp_dropped.iter().zip(counts) {
                total.fetch_add(count, Ordering::Relaxed);
            }
        }
        if ending.authentication_failed {
            self.auth_failures.fetch_add(1, Ordering::Relaxed);
        }
        if ending.login_throttled {
            self.auth_throttled.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(rule) = ending.denied_by {
            *self
                .denials
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(rule.to_owned())
                .or_insert(0) += 1;
        }
    }

    /// Counts one attempt through an upstream chain.
    pub(crate) fn upstream_attempt(&self, group: &str, chain: &str, carried: bool) {
        *self
            .upstream_attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((group.to_owned(), chain.to_owned(), carried))
            .or_insert(0) += 1;
    }

    /// Switches the per-user counters on for at most `users` users, or off.
    pub(crate) fn count_users(&self, users: Option<u32>) {
        self.users
            .limit
            .store(users.unwrap_or(0), Ordering::Relaxed);
    }

    /// The Prometheus text of every metric; `sessions_in_progress` and `associations` (open)
    /// are the gauges (`…_live` in Prometheus, as published), and
    /// `upstreams` the members of the upstream groups (group, chain, in service).
    pub(crate) fn render(
        &self,
        sessions_in_progress: usize,
        associations: usize,
        upstreams: &[(&str, &str, bool)],
    ) -> String {
        let mut text = Text::default();
        let sessions = "socksgate_sessions_total";
        text.family(
            sessions,
            "counter",
            "Sessions ended, by command and outcome.",
        );
        for ((command, outcome), count) in self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            text.sample(
                sessions,
                &[("command", command), ("outcome", outcome)],
                count,
            );
        }
        let by_protocol = "socksgate_sessions_by_protocol_total";
        text.family(
            by_protocol,
            "counter",
            "Sessions ended, by the protocol the client spoke (each HTTP request counts).",
        );
        for (protocol, count) in self
            .protocols
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            text.sample(by_protocol, &[("protocol", protocol)], count);
        }
        let http_requests = "socksgate_http_requests_total";
        text.family(
            http_requests,
            "counter",
            "HTTP requests (CONNECT and forwarded) ended, by method and status class.",
        );
        for ((method, status), count) in self
            .http_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            text.sample(
                http_requests,
                &[("method", method), ("status", status)],
                count,
            );
        }
        text.family("socksgate_sessions_live", "gauge", "Sessions being served.");
        text.sample("socksgate_sessions_live", &[], sessions_in_progress);
        let associations_live = "socksgate_udp_associations_live";
        text.family(associations_live, "gauge", "UDP associations open.");
        text.sample(associations_live, &[], associations);
        let bytes = "socksgate_bytes_total";
        text.family(
            bytes,
            "counter",
            "Bytes relayed by ended sessions, up (from clients) and down.",
        );
        for (direction, total) in [("up", &self.bytes_up), ("down", &self.bytes_down)] {
            text.sample(
                bytes,
                &[("direction", direction)],
                total.load(Ordering::Relaxed),
            );
        }
        let failures = "socksgate_auth_failures_total";
        text.family(failures, "counter", "Logins refused (passwords, GSS-API).");
        text.sample(failures, &[], self.auth_failures.load(Ordering::Relaxed));
        let throttled = "socksgate_auth_throttled_total";
        text.family(
            throttled,
            "counter",
            "Logins failed unchecked: too many pending from their source or for their user.",
        );
        text.sample(throttled, &[], self.auth_throttled.load(Ordering::Relaxed));
        let denials = "socksgate_policy_denials_total";
        text.family(
            denials,
            "counter",
            "Requests and clients refused, by the rule that decided.",
        );
        for (rule, count) in self
            .denials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            text.sample(denials, &[("rule", rule)], count);
        }
        let datagrams = "socksgate_udp_datagrams_total";
        text.family(
            datagrams,
            "counter",
            "UDP datagrams relayed by ended associations.",
        );
        let directions = [
            ("up", &self.udp_datagrams_up),
            ("down", &self.udp_datagrams_down),
        ];
        for (direction, total) in directions {
            text.sample(
                datagrams,
                &[("direction", direction)],
                total.load(Ordering::Relaxed),
            );
        }
        let dropped = "socksgate_udp_dropped_total";
        text.family(dropped, "counter", "UDP datagrams dropped, by reason.");
        for (reason, count) in DROP_REASONS.iter().zip(&self.udp_dropped) {
            text.sample(
                dropped,
                &[("reason", reason)],
                count.load(Ordering::Relaxed),
            );
        }
        self.handshake.render(
            &mut text,
            "socksgate_handshake_seconds",
            "From accepting a client to its complete request.",
        );
        self.connect.render(
            &mut text,
            "socksgate_connect_seconds",
            "From starting to reach a target to being connected to it.",
        );
        self.render_upstreams(&mut text, upstreams);
        self.users.render(&mut text);
        text.0
    }

    fn render_upstreams(&self, text: &mut Text, upstreams: &[(&str, &str, bool)]) {
        let up = "socksgate_upstream_up";
        text.family(
            up,
            "gauge",
            "1 while an upstream chain is in service, 0 while set aside after failures.",
        );
        for (group, chain, in_service) in upstreams {
            text.sample(
                up,
                &[("group", group), ("chain", chain)],
                u8::from(*in_service),
            );
        }
        let attempts = "socksgate_upstream_attempts_total";
        text.family(
            attempts,
            "counter",
            "Requests tried through an upstream chain, by whether the chain carried them.",
        );
        for ((group, chain, carried), count) in self
            .upstream_attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let result = if *carried { "carried" } else { "failed" };
            text.sample(
                attempts,
                &[("group", group), ("chain", chain), ("result", result)],
                count,
            );
        }
    }
}

impl UserCounters {
    fn add(&self, user: &str, up: u64, down: u64) {
        let limit = self.limit.load(Ordering::Relaxed) as usize;
        if limit == 0 {
            return;
        }
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        // The users counted by name: the first `limit` seen (other than the catch-all).
        let named = totals.len() - usize::from(totals.contains_key(OTHER_USERS));
        let key = if totals.contains_key(user) || named < limit {
            user
        } else {
            OTHER_USERS
        };
        let entry = totals.entry(key.to_owned()).or_default();
        entry.sessions += 1;
        entry.bytes_up += up;
        entry.bytes_down += down;
    }

    fn render(&self, text: &mut Text) {
        if self.limit.load(Ordering::Relaxed) == 0 {
            return;
        }
        let totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        let sessions = "socksgate_user_sessions_total";
        text.family(
            sessions,
            "counter",
            "Sessions ended, by authenticated user.",
        );
        for (user, counts) in totals.iter() {
            text.sample(sessions, &[("user", user)], counts.sessions);
        }
        let bytes = "socksgate_user_bytes_total";
        text.family(
            bytes,
            "counter",
            "Bytes relayed by ended sessions, by user.",
        );
        for (user, counts) in totals.iter() {
            for (direction, total) in [("up", counts.bytes_up), ("down", counts.bytes_down)] {
                text.sample(bytes, &[("user", user), ("direction", direction)], total);
            }
        }
    }
}

/// The text format being written.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// `name{label="value",…} value`, label values escaped.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(label, text)| format!("{label}=\"{}\"", escape(text)))
                .collect();
            let _ = write!(self.0, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A latency histogram with fixed buckets; no lock.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// Observations in each bucket (not cumulative), and above the last.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, text: &mut Text, name: &str, help: &str) {
        text.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            text.sample(&bucket, &[("le", &bound.to_string())], cumulative);
        }
        cumulative += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        text.sample(&bucket, &[("le", "+Inf")], cumulative);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        text.sample(&format!("{name}_sum"), &[], sum);
        text.sample(&format!("{name}_count"), &[], cumulative);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(60));
        let mut text = Text::default();
        histogram.render(&mut text, "x_seconds", "test");
        let out = text.0;
        assert!(out.contains("x_seconds_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(
            out.contains("x_seconds_sum 60.0033\nx_seconds_count 3\n"),
            "{out}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
