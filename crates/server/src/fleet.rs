//! Limits shared with other nodes of a fleet (`[fleet]`): the server asks, an implementation
//! that keeps the state elsewhere (Redis, in `socksgate-fleet`) answers. The hot path never
//! waits on it per byte or per datagram: a session asks once when it is granted, a failed password
//! login once before its reply, and bytes are handed over on a tick.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, so implementations can be trait objects.
pub type FleetFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a fleet-wide session limit says.
pub enum Admission {
    /// Within every limit; the slot is given back when this is dropped.
    Admitted(Option<Box<dyn Send + Sync>>),
    /// Over a limit (its name, for the log).
    Refused(&'static str),
}

/// Limits that hold across several servers.
pub trait FleetLimits: Send + Sync + 'static {
    /// Takes a fleet-wide slot for a session of `user` (when it has one) from `source`, if
    /// the session limits and the user's byte quota allow one.
    fn admit<'a>(&'a self, user: Option<&'a str>, source: IpAddr) -> FleetFuture<'a, Admission>;

    /// Counts a failed login of `user`; returns how long its failure reply waits (failures
    /// elsewhere count too). A success is never delayed, so it is not asked about.
    fn login_failed<'a>(&'a self, user: &'a str) -> FleetFuture<'a, Duration>;

    /// Hands over `bytes` that `user`'s sessions moved since the last time (0 to learn the
    /// fleet's total all the same).
    fn add_bytes(&self, user: &str, bytes: u64);

    /// Whether `user` has used up the byte quota, by the last known total (never waits).
    fn over_quota(&self, user: &str) -> bool;

    /// How often bytes are handed over.
    fn sync_interval(&self) -> Duration;

    /// Appends the fleet's own metrics (Prometheus text).
    fn render_metrics(&self, out: &mut String);
}
