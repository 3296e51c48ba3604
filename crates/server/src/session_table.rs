//! The sessions in progress, for the admin listener's `GET /sessions` and a fleet's byte
//! quota: a session is listed from the moment its request is granted until it ends, with its
//! bytes so far. Kept only when the admin listener or a fleet is on; the table is split in
//! shards so that sessions starting and ending on different threads rarely meet on a lock
//! (never per byte). With a fleet, each sweep hands the bytes moved since the last one to
//! it, and stops the sessions of users over their quota.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use socksgate_proto::{Address, Command};

use crate::access_log::AccessRecord;
use crate::counters::SharedCounters;
use crate::fleet::FleetLimits;

const SHARDS: usize = 16;

/// The sessions in progress.
#[derive(Default)]
pub(crate) struct SessionTable {
    next_id: AtomicU64,
    shards: [Mutex<HashMap<u64, Entry>>; SHARDS],
    /// The fleet that counts bytes against quotas, when there is one.
    pub(crate) fleet: std::sync::OnceLock<Arc<dyn FleetLimits>>,
}

impl std::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTable")
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}

/// What `/sessions` shows of one session.
#[derive(Debug)]
struct Entry {
    client: SocketAddr,
    via: Option<SocketAddr>,
    listener: SocketAddr,
    user: Option<String>,
    command: Option<Command>,
    target: Option<Address>,
    rule: Option<String>,
    /// The wall-clock time the session was accepted (none if the clock cannot say: set
    /// before the epoch).
    started: Option<SystemTime>,
    since: Instant,
    counters: Arc<SharedCounters>,
    /// Bytes already handed to the fleet.
    reported: u64,
}

/// A session's place in the table, held by the session; it leaves the table when this is
/// dropped (with the session).
#[derive(Debug)]
pub(crate) struct Listing {
    sessions: Arc<SessionTable>,
    id: u64,
}

impl Drop for Listing {
    fn drop(&mut self) {
        let entry = self.sessions.shard(self.id).remove(&self.id);
        // What moved since the last sweep still counts.
        if let (Some(entry), Some(fleet)) = (entry, self.sessions.fleet.get()) {
            if let Some(user) = &entry.user {
                fleet.add_bytes(user, entry.unreported());
            }
        }
    }
}

impl SessionTable {
    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.shards[id as usize % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists a granted session; its counts are shared with the table from now on, and it
    /// stays listed as long as the returned listing is held.
    pub(crate) fn list(self: &Arc<Self>, record: &mut AccessRecord) -> Listing {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let counters = record.counters.share();
        let entry = Entry {
            client: record.subject.client(),
            via: record.subject.via(),
            listener: record.subject.listener(),
            user: record.subject.user().map(str::to_owned),
            command: record.command,
            target: record.target.clone(),
            rule: record.rule.clone(),
            started: started_at(record.started),
            since: record.started,
            counters,
            reported: 0,
        };
        self.shard(id).insert(id, entry);
        Listing {
            sessions: self.clone(),
            id,
        }
    }

    /// Hands each user's bytes since the last sweep to the fleet, and stops the sessions of
    /// users over their quota.
    pub(crate) fn sweep(&self) {
        let Some(fleet) = self.fleet.get() else {
            return;
        };
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for entry in shard.values_mut() {
                let Some(user) = &entry.user else { continue };
                // The fleet adds up each user's sessions itself.
                let bytes = entry.unreported();
                entry.reported += bytes;
                fleet.add_bytes(user, bytes);
                if fleet.over_quota(user) {
                    entry.counters.halt();
                }
            }
        }
    }

    /// `{"sessions": [...]}`, oldest first.
    pub(crate) fn to_json(&self) -> String {
        let mut listed: Vec<(u64, String)> = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            listed.extend(shard.iter().map(|(id, entry)| (*id, entry.to_json(*id))));
        }
        listed.sort_unstable_by_key(|(id, _)| *id);
        let mut out = String::from("{\"sessions\":[");
        for (index, (_, json)) in listed.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str("\n  ");
            out.push_str(json);
        }
        out.push_str("\n]}\n");
        out
    }
}

impl Entry {
    /// Bytes moved since the fleet was last told.
    fn unreported(&self) -> u64 {
        self.counters.counters.total().saturating_sub(self.reported)
    }

    fn to_json(&self, id: u64) -> String {
        let started = self.started.and_then(|started| {
            jiff::Timestamp::try_from(started)
                .map(|at| at.round(jiff::Unit::Millisecond).unwrap_or(at).to_string())
                .ok()
        });
        let mut out = format!("{{\"id\":{id}");
        let fields: [(&str, Option<String>); 8] = [
            ("client", Some(self.client.to_string())),
            ("via", self.via.map(|via| via.to_string())),
            ("listener", Some(self.listener.to_string())),
            ("user", self.user.clone()),
            (
                "command",
                self.command
                    .map(|command| socksgate_config::command_name(command).to_owned()),
            ),
            ("target", self.target.as_ref().map(ToString::to_string)),
            ("rule", self.rule.clone()),
            ("started", started),
        ];
        for (name, value) in fields {
            let _ = write!(out, ",\"{name}\":");
            match value {
                Some(text) => quote(&mut out, &text),
                None => out.push_str("null"),
            }
        }
        let _ = write!(
            out,
            ",\"duration_ms\":{},\"bytes_up\":{},\"bytes_down\":{}}}",
            self.since.elapsed().as_millis(),
            self.counters.counters.up.load(Ordering::Relaxed),
            self.counters.counters.down.load(Ordering::Relaxed),
        );
        out
    }
}

/// The wall-clock time of `accepted`, if the clock goes back that far.
fn started_at(accepted: Instant) -> Option<SystemTime> {
    wall_clock_before(SystemTime::now(), accepted.elapsed())
}

/// `now - elapsed`, or none where that is not a time the clock can show: before the epoch
/// (a clock that was never set) or past what `SystemTime` holds (where plain subtraction
/// panics).
fn wall_clock_before(now: SystemTime, elapsed: std::time::Duration) -> Option<SystemTime> {
    now.checked_sub(elapsed)
        .filter(|started| *started >= SystemTime::UNIX_EPOCH)
}

/// A JSON string: quotes, backslashes and control characters escaped (a user name or a
/// target name comes from the client).
fn quote(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            character if u32::from(character) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(character));
            }
            character => out.push(character),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_escaped() {
        let mut out = String::new();
        quote(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(out, r#""a\"b\\c\n\u0001é""#.replace("\\n", "\\u000a"));
    }

    #[test]
    fn a_clock_near_the_epoch_gives_no_start_time() {
        let near_epoch = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1);
        let elapsed = std::time::Duration::from_secs(5);
        assert_eq!(wall_clock_before(near_epoch, elapsed), None);
        assert_eq!(
            wall_clock_before(near_epoch, std::time::Duration::MAX),
            None
        );
        let later = near_epoch + std::time::Duration::from_secs(10);
        assert_eq!(
            wall_clock_before(later, elapsed),
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(6))
        );
    }

    fn record_of(like: &AccessRecord) -> AccessRecord {
        let mut record = AccessRecord::new(like.subject.client(), like.subject.listener());
        record.subject = like.subject.clone();
        record.command = like.command;
        record
    }

    #[test]
    fn a_session_is_listed_until_dropped() {
        let sessions = Arc::new(SessionTable::default());
        let mut record = AccessRecord::new(
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:1080".parse().unwrap(),
        );
        record.subject.claim("alice".into(), true);
        record.command = Some(Command::CONNECT);
        let mut first = record_of(&record);
        let first_listing = sessions.list(&mut first);
        let mut second = record_of(&record);
        let second_listing = sessions.list(&mut second);
        second.counters.add_up(5);
        let json = sessions.to_json();
        assert_eq!(json.matches("\"user\":\"alice\"").count(), 2, "{json}");
        assert!(json.contains("\"bytes_up\":5"), "{json}");
        assert!(json.contains("\"command\":\"connect\""), "{json}");
        assert!(json.find("\"id\":1").unwrap() < json.find("\"id\":2").unwrap());
        drop(first_listing);
        let json = sessions.to_json();
        assert!(
            !json.contains("\"id\":1,") && json.contains("\"id\":2,"),
            "{json}"
        );
        drop(second_listing);
        assert_eq!(sessions.to_json(), "{\"sessions\":[\n]}\n");
    }
}
