//! Who the client is.
//!
//! An [`Authenticator`] checks a username and password (RFC 1929) and returns an [`Identity`]
//! — user name, groups, method — or a [`Refusal`]. Back ends: a password file in Apache's
//! htpasswd format ([`PasswordFile`]: bcrypt, SHA-512-crypt, SHA-256-crypt; plaintext only
//! when allowed), and PAM ([`Pam`], cargo feature `pam`). [`Throttle`] slows password
//! guessing down per source group and per user.
//!
//! Verification is blocking on purpose — bcrypt costs tens of milliseconds, PAM may ask
//! other services — so callers run it off their async threads. Passwords are never logged:
//! the types that hold them redact `Debug` and wipe themselves when dropped.

mod cache;
mod hash;
#[cfg(feature = "pam")]
mod pam;
mod password_file;
pub mod radius;
mod recent;
mod throttle;

use std::fmt;

pub use cache::LoginCache;
pub use hash::{constant_time_eq, hash_password, HashError, PasswordHash};
#[cfg(feature = "pam")]
pub use pam::Pam;
pub use password_file::{FileError, PasswordFile};
pub use socksgate_proto::password::Credentials;
pub use socksgate_proto::Method;
pub use throttle::{Crowded, Throttle, ThrottleSettings};

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name.
    pub user: String,
    /// The groups the user belongs to.
    pub groups: Vec<String>,
    /// How the user was authenticated.
    pub method: Method,
}

/// Why credentials were refused. The client is only ever told "failure"; the reason is for
/// the operator's log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No such user.
    UnknownUser,
    /// The password does not match.
    WrongPassword,
    /// The credentials cannot be checked (not UTF-8, empty user name, …).
    Unusable(&'static str),
    /// The back end failed (PAM error, unreadable file); the user may be fine.
    BackEnd(String),
    /// Not checked: too many logins pending from this source or for this user.
    Throttled(Crowded),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownUser => f.write_str("unknown user"),
            Self::WrongPassword => f.write_str("wrong password"),
            Self::Unusable(why) => write!(f, "unusable credentials: {why}"),
            Self::BackEnd(why) => write!(f, "authentication back end failed: {why}"),
            Self::Throttled(crowded) => write!(f, "not checked: {crowded}"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Checks credentials. Blocking: run it off async threads.
pub trait Authenticator: Send + Sync + 'static {
    /// The identity behind `credentials`, or why not.
    fn verify(&self, credentials: &Credentials) -> Result<Identity, Refusal>;

    /// The groups `user` has once logged in, as `verify` would give them, without a
    /// password (for `socksgate explain`); `None` when this back end cannot tell.
    fn groups_of(&self, _user: &str) -> Option<GroupsOf> {
        None
    }
}

/// A user's groups, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsOf {
    /// The group names.
    pub groups: Vec<String>,
    /// Where they came from, for a person ("the group file /etc/socksgate/groups").
    pub source: String,
}

/// The user name as text; user names that are not UTF-8 are refused.
pub(crate) fn user_name(credentials: &Credentials) -> Result<&str, Refusal> {
    let user = std::str::from_utf8(credentials.username())
        .map_err(|_| Refusal::Unusable("user name is not UTF-8"))?;
    if user.is_empty() {
        return Err(Refusal::Unusable("empty user name"));
    }
    Ok(user)
}
