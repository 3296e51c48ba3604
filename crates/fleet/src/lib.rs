//! Limits that hold across several socksgate nodes behind one load balancer, with the little
//! state they share kept in Redis (`[fleet]`).
//!
//! - Sessions at once, per user and per source: a session holds a permit under each limit,
//!   a member of a sorted set per limit scored by its lease's expiry (Redis's own clock).
//!   Taking permits is one script run, atomic over every limit, so the fleet never holds more
//!   than the limit. A session that ends keeps its permits on the node for the next session
//!   there (no request at all); permits no session used for a whole tick go back to Redis,
//!   so another node may have to wait up to a tick for a slot freed elsewhere. Leases are
//!   renewed on every tick, and those of a node that died expire.
//! - Bytes per user and period: counted here and added to the period's counter on every
//!   tick, which answers with the fleet's total; a user over the quota is refused and their
//!   sessions stopped (by the server's sweep), within what the fleet moves in a tick or two.
//! - Failed logins per user: counted in Redis with the window as expiry; past the limit,
//!   every node holds back each failure reply for that user (a success never waits).
//!
//! Nothing waits on Redis per byte or per datagram. When Redis cannot be reached, each limit
//! does what its `*_on_redis_down` says (open: serve; closed: refuse), the change is logged
//! once, counted in the metrics, and normal service resumes when Redis answers again.

use std::collections::HashMap;
use std::fmt::Write;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};
use socksgate_config::{FailMode, Fleet, QuotaPeriod};
use socksgate_server::fleet::{Admission, FleetFuture, FleetLimits};

/// The longest any one Redis request may take before the limit counts Redis as down.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Takes a lease under every limit, or says which is full (its 1-based index).
/// KEYS: the limits' sets. ARGV: member, lease in ms, then each key's limit.
const ACQUIRE: &str = r"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lease = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ms)
  if redis.call('ZCARD', key) >= tonumber(ARGV[2 + i]) then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ms + lease, ARGV[1])
  redis.call('PEXPIRE', key, lease * 2)
end
return 0
";

/// Renews leases (and writes again those a restarted Redis lost). KEYS: sets; ARGV: lease
/// in ms, then the member in each set.
const RENEW: &str = r"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, ms + lease, ARGV[i + 1])
  redis.call('PEXPIRE', key, lease * 2)
end
return 0
";

/// Counts a failed login; the window starts with the first. KEYS: counter; ARGV: window ms.
const FAILED_LOGIN: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
";

/// The limits a fleet's state can fail open or closed.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Sessions,
    Quota,
    Logins,
}

impl Limit {
    const ALL: [Self; 3] = [Self::Sessions, Self::Quota, Self::Logins];

    fn name(self) -> &'static str {
        match self {
            Self::Sessions => "sessions",
            Self::Quota => "quota",
            Self::Logins => "logins",
        }
    }
}

/// The fleet's limits, kept in Redis.
pub struct RedisFleet {
    /// Itself, for the leases and tasks that must not keep it alive.
    this: Weak<Self>,
    config: Fleet,
    node: String,
    redis: ConnectionManager,
    scripts: Scripts,
    /// Lease length: three ticks, at least two seconds.
    lease: Duration,
    sequence: AtomicU64,
    /// Permits this node holds, per limit key: renewed on every tick.
    permits: Mutex<HashMap<String, Permits>>,
    /// Bytes not yet added to Redis, and the fleet's totals as last heard, per user.
    bytes: Mutex<HashMap<String, UserBytes>>,
    reachable: AtomicBool,
    /// Decisions made without Redis, per limit: [open, closed].
    unavailable: [[AtomicU64; 2]; 3],
}

struct Scripts {
    acquire: Script,
    renew: Script,
    failed_login: Script,
}

#[derive(Debug, Default, Clone, Copy)]
struct UserBytes {
    pending: u64,
    total: u64,
    /// Heard of since the last tick (a user no session here mentions is forgotten).
    seen: bool,
}

/// The permits of one limit key held by this node.
#[derive(Debug, Default)]
struct Permits {
    in_use: std::collections::HashSet<String>,
    /// Free for the next session here; `true` once used since the last tick.
    spare: Vec<(String, bool)>,
}

/// A session's permits (limit key, member); back to the node's spares when dropped.
struct Lease {
    permits: Vec<(String, String)>,
    fleet: Weak<RedisFleet>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(fleet) = self.fleet.upgrade() {
            fleet.put_back(std::mem::take(&mut self.permits));
        }
    }
}

impl RedisFleet {
    /// Whether `config`'s Redis URL is one the client takes (what [`RedisFleet::start`]
    /// checks first, without connecting): for `socksgate check`.
    pub fn check_url(config: &Fleet) -> Result<(), String> {
        redis::Client::open(config.redis.as_str())
            .map(drop)
            .map_err(|error| error.to_string())
    }

    /// Connects (lazily: a node starts while Redis is down) and starts the background work:
    /// renewing leases and sending bytes on every tick, giving leases back as sessions end.
    /// Must be called within a tokio runtime.
    pub fn start(config: &Fleet) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(config.redis.as_str())
            .map_err(|error| format!("fleet.redis: {error}"))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REQUEST_TIMEOUT))
            .set_response_timeout(Some(REQUEST_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let redis = ConnectionManager::new_lazy_with_config(client, manager)
            .map_err(|error| format!("fleet.redis: {error}"))?;
        let node = config.node.clone().unwrap_or_else(host_name);
        let fleet = Arc::new_cyclic(|this| Self {
            this: this.clone(),
            lease: (config.sync_interval * 3).max(Duration::from_secs(2)),
            config: config.clone(),
            node,
            redis,
            scripts: Scripts {
                acquire: Script::new(ACQUIRE),
                renew: Script::new(RENEW),
                failed_login: Script::new(FAILED_LOGIN),
            },
            sequence: AtomicU64::new(0),
            permits: Mutex::default(),
            bytes: Mutex::default(),
            reachable: AtomicBool::new(true),
            unavailable: Default::default(),
        });
        let weak = Arc::downgrade(&fleet);
        let period = config.sync_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(fleet) = weak.upgrade() else { return };
                fleet.sync().await;
            }
        });
        Ok(fleet)
    }

    fn permits_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Permits>> {
        self.permits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Permits of an ended session (or of one refused midway) become spares.
    fn put_back(&self, permits: Vec<(String, String)>) {
        let mut held = self.permits_lock();
        for (key, member) in permits {
            let entry = held.entry(key).or_default();
            entry.in_use.remove(&member);
            entry.spare.push((member, true));
        }
    }

    fn bytes_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserBytes>> {
        self.bytes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = String::from("socksgate");
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// Runs a Redis request within the timeout; notes whether Redis answered.
    async fn ask<T>(&self, request: impl Future<Output = RedisResult<T>>) -> Option<T> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, request).await;
        let answer = match result {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                self.went_down(&error.to_string());
                return None;
            }
            Err(_) => {
                self.went_down("no answer within a second");
                return None;
            }
        };
        if !self.reachable.swap(true, Ordering::Relaxed) {
            tracing::info!(node = %self.node, "fleet: Redis answers again; shared limits apply");
        }
        answer
    }

    fn went_down(&self, why: &str) {
        if self.reachable.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                node = %self.node,
                why,
                "fleet: Redis cannot be reached; each limit does what its *_on_redis_down says"
            );
        }
    }

    /// A decision made without Redis: counted, and what the limit's mode says.
    fn without_redis(&self, limit: Limit) -> FailMode {
        let mode = match limit {
            Limit::Sessions => self.config.sessions_on_redis_down,
            Limit::Quota => self.config.quota_on_redis_down,
            Limit::Logins => self.config.logins_on_redis_down,
        };
        let column = usize::from(mode == FailMode::Closed);
        self.unavailable[limit as usize][column].fetch_add(1, Ordering::Relaxed);
        mode
    }

    /// Renews the leases held and sends the bytes counted, learning the fleet's totals.
    async fn sync(&self) {
        // Spares no session used for a whole tick go back; the rest are renewed.
        let mut held = Vec::new();
        let mut unused = Vec::new();
        {
            let mut permits = self.permits_lock();
            for (key, entry) in permits.iter_mut() {
                held.extend(
                    entry
                        .in_use
                        .iter()
                        .map(|member| (key.clone(), member.clone())),
                );
                for (member, used) in std::mem::take(&mut entry.spare) {
                    if used {
                        held.push((key.clone(), member.clone()));
                        entry.spare.push((member, false));
                    } else {
                        unused.push((key.clone(), member));
                    }
                }
            }
            permits.retain(|_, entry| !entry.in_use.is_empty() || !entry.spare.is_empty());
        }
        let mut redis = self.redis.clone();
        if !unused.is_empty() {
            let mut pipe = redis::pipe();
            for (key, member) in &unused {
                pipe.zrem(key, member).ignore();
            }
            // Not given back (Redis down): they expire on their own.
            let _ = self.ask(pipe.query_async::<()>(&mut redis)).await;
        }
        if !held.is_empty() {
            let mut renew = self.scripts.renew.prepare_invoke();
            renew.arg(self.lease_ms());
            for (key, member) in &held {
                renew.key(key).arg(member);
            }
            let _ = self.ask(renew.invoke_async::<i64>(&mut redis)).await;
        }
        let Some(quota) = self.config.quota else {
            return;
        };
        let pending: Vec<(String, u64)> = {
            let mut known = self.bytes_lock();
            known.retain(|_, bytes| std::mem::take(&mut bytes.seen));
            known
                .iter_mut()
                .map(|(user, bytes)| (user.clone(), std::mem::take(&mut bytes.pending)))
                .collect()
        };
        if pending.is_empty() {
            return;
        }
        let period = period_id(quota.period);
        let keep = match quota.period {
            QuotaPeriod::Day => 2 * 86_400,
            QuotaPeriod::Month => 62 * 86_400,
        };
        let mut pipe = redis::pipe();
        for (user, bytes) in &pending {
            let key = self.key(&["quota", &period, user]);
            pipe.incr(&key, *bytes).expire(&key, keep).ignore();
        }
        match self.ask(pipe.query_async::<Vec<u64>>(&mut redis)).await {
            Some(totals) => {
                let mut known = self.bytes_lock();
                for ((user, _), total) in pending.iter().zip(totals) {
                    known.entry(user.clone()).or_default().total = total;
                }
            }
            None => {
                // Sent again on the next tick.
                let mut known = self.bytes_lock();
                for (user, bytes) in pending {
                    known.entry(user).or_default().pending += bytes;
                }
            }
        }
    }

    /// Whether `user` may start a session by the byte quota: the total known here, or, for
    /// a user this node has not heard of, the fleet's (one request).
    async fn within_quota(&self, user: &str) -> bool {
        let Some(quota) = self.config.quota else {
            return true;
        };
        let known = self.bytes_lock().get(user).map(|bytes| bytes.total);
        let total = match known {
            Some(total) => total,
            None => {
                let key = self.key(&["quota", &period_id(quota.period), user]);
                let mut redis = self.redis.clone();
                let mut get = redis::cmd("GET");
                get.arg(&key);
                match self.ask(get.query_async::<Option<u64>>(&mut redis)).await {
                    Some(total) => {
                        let total = total.unwrap_or(0);
                        let mut known = self.bytes_lock();
                        let entry = known.entry(user.to_owned()).or_default();
                        entry.total = total;
                        entry.seen = true;
                        total
                    }
                    None => return self.without_redis(Limit::Quota) == FailMode::Open,
                }
            }
        };
        total < quota.bytes
    }

    fn lease(&self, permits: Vec<(String, String)>) -> Admission {
        if permits.is_empty() {
            return Admission::Admitted(None);
        }
        let fleet = self.this.clone();
        Admission::Admitted(Some(Box::new(Lease { permits, fleet })))
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The quota's current period, in UTC: `2026-11-27` or `2026-11`.
fn period_id(period: QuotaPeriod) -> String {
    let format = match period {
        QuotaPeriod::Day => "%Y-%m-%d",
        QuotaPeriod::Month => "%Y-%m",
    };
    jiff::Timestamp::now().strftime(format).to_string()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "node".to_owned())
}

impl FleetLimits for RedisFleet {
    fn admit<'a>(&'a self, user: Option<&'a str>, source: IpAddr) -> FleetFuture<'a, Admission> {
        Box::pin(async move {
            if let Some(user) = user {
                if !self.within_quota(user).await {
                    return Admission::Refused("fleet.quota_per_user");
                }
            }
            let mut keys = Vec::new();
            let mut limits = Vec::new();
            let mut names = Vec::new();
            if let (Some(user), Some(limit)) = (user, self.config.max_sessions_per_user) {
                keys.push(self.key(&["sessions", "user", user]));
                limits.push(limit);
                names.push("fleet.max_sessions_per_user");
            }
            if let Some(limit) = self.config.max_sessions_per_source {
                keys.push(self.key(&["sessions", "source", &source.to_string()]));
                limits.push(limit);
                names.push("fleet.max_sessions_per_source");
            }
            if keys.is_empty() {
                return Admission::Admitted(None);
            }
            // Spares of this node first: no request at all.
            let mut taken = Vec::new();
            let mut missing = Vec::new();
            {
                let mut permits = self.permits_lock();
                for (index, key) in keys.into_iter().enumerate() {
                    let entry = permits.entry(key.clone()).or_default();
                    match entry.spare.pop() {
                        Some((member, _)) => {
                            entry.in_use.insert(member.clone());
                            taken.push((key, member));
                        }
                        None => missing.push((index, key)),
                    }
                }
            }
            if missing.is_empty() {
                return self.lease(taken);
            }
            let number = self.sequence.fetch_add(1, Ordering::Relaxed);
            let member = format!("{}:{}:{number}", self.node, std::process::id());
            let mut acquire = self.scripts.acquire.prepare_invoke();
            acquire.arg(&member).arg(self.lease_ms());
            for (index, key) in &missing {
                acquire.key(key).arg(limits[*index]);
            }
            let mut redis = self.redis.clone();
            let answer = self.ask(acquire.invoke_async::<usize>(&mut redis)).await;
            match answer {
                Some(0) => {
                    {
                        let mut permits = self.permits_lock();
                        for (_, key) in &missing {
                            let entry = permits.entry(key.clone()).or_default();
                            entry.in_use.insert(member.clone());
                        }
                    }
                    taken.extend(missing.into_iter().map(|(_, key)| (key, member.clone())));
                    self.lease(taken)
                }
                Some(full) => {
                    self.put_back(taken);
                    let index = missing.get(full - 1).map_or(0, |(index, _)| *index);
                    Admission::Refused(names.get(index).copied().unwrap_or("fleet"))
                }
                None => match self.without_redis(Limit::Sessions) {
                    FailMode::Open => self.lease(taken),
                    FailMode::Closed => {
                        self.put_back(taken);
                        Admission::Refused("fleet: Redis unreachable")
                    }
                },
            }
        })
    }

    fn login_failed<'a>(&'a self, user: &'a str) -> FleetFuture<'a, Duration> {
        Box::pin(async move {
            let Some(logins) = self.config.logins else {
                return Duration::ZERO;
            };
            let mut redis = self.redis.clone();
            let window = u64::try_from(logins.window.as_millis()).unwrap_or(u64::MAX);
            let mut count = self.scripts.failed_login.prepare_invoke();
            count.key(self.key(&["logins", user])).arg(window);
            match self.ask(count.invoke_async::<u64>(&mut redis)).await {
                Some(count) if count > u64::from(logins.failures) => logins.delay,
                Some(_) => Duration::ZERO,
                None => match self.without_redis(Limit::Logins) {
                    FailMode::Open => Duration::ZERO,
                    FailMode::Closed => logins.delay,
                },
            }
        })
    }

    fn add_bytes(&self, user: &str, bytes: u64) {
        if self.config.quota.is_none() {
            return;
        }
        let mut known = self.bytes_lock();
        // Called for every session on every tick: no new key unless the user is new here.
        let entry = match known.get_mut(user) {
            Some(entry) => entry,
            None => known.entry(user.to_owned()).or_default(),
        };
        entry.pending += bytes;
        entry.seen = true;
    }

    fn over_quota(&self, user: &str) -> bool {
        let Some(quota) = self.config.quota else {
            return false;
        };
        if !self.reachable.load(Ordering::Relaxed) {
            if let FailMode::Closed = self.without_redis(Limit::Quota) {
                return true;
            }
        }
        self.bytes_lock()
            .get(user)
            .is_some_and(|bytes| bytes.total >= quota.bytes)
    }

    fn sync_interval(&self) -> Duration {
        self.config.sync_interval
    }

    fn render_metrics(&self, out: &mut String) {
        let up = "socksgate_fleet_redis_up";
        let _ = writeln!(
            out,
            "# HELP {up} 1 while Redis answers, 0 while the fleet's limits run without it.\n\
             # TYPE {up} gauge\n{up} {}",
            u8::from(self.reachable.load(Ordering::Relaxed))
        );
        let decisions = "socksgate_fleet_decisions_without_redis_total";
        let _ = writeln!(
            out,
            "# HELP {decisions} Decisions a fleet limit made while Redis could not be reached.\n\
             # TYPE {decisions} counter"
        );
        for limit in Limit::ALL {
            for (column, mode) in ["open", "closed"].iter().enumerate() {
                let count = self.unavailable[limit as usize][column].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{decisions}{{limit=\"{}\",mode=\"{mode}\"}} {count}",
                    limit.name()
                );
            }
        }
    }
}
