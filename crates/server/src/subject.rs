//! Who a session acts for: the one place a session's client and identity are assembled.
//!
//! A [`Subject`] is made when a connection is accepted and completed as the session proves
//! things: a trusted balancer's PROXY header names the real client ([`Subject::proxied`]),
//! a TLS client certificate, RFC 1929 credentials or a GSS-API context prove a user
//! ([`Subject::prove`]). Everything that decides or counts reads it — the rules (client and
//! request rules, each UDP datagram), session limits, bandwidth, the fleet, metrics,
//! `/sessions` and the access log — and none of them builds identity on its own.
//!
//! Two rules keep it honest. A proven user is never replaced: a second proof must name the
//! same user, or it is refused. And a name the client merely says (a SOCKS4 USERID) is
//! kept apart as a claim, logged as `claimed_user`, and matches no `users` rule and keys no
//! per-user limit — unless the listener trusts USERIDs (`trust_socks4_userid`).

use std::net::{IpAddr, SocketAddr};

use socksgate_auth::Identity;
use socksgate_policy::{Moment, Request};
use socksgate_proto::{Command, Host, Method};

/// Who a session acts for.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    /// The client: the PROXY header's behind a trusted balancer, else the TCP peer.
    client: SocketAddr,
    /// The balancer it came through, when one sent a PROXY header. Boxed: a long-lived
    /// session carries its subject, and most have none.
    via: Option<Box<SocketAddr>>,
    /// The listener it reached (as configured).
    listener: SocketAddr,
    /// The SOCKS method the handshake settled on (`NO_AUTH` for SOCKS4).
    method: Method,
    /// Who the client proved to be. Boxed, as `via` is.
    identity: Option<Box<Identity>>,
    /// The user name of credentials not (yet) accepted: for the log only.
    attempted: Option<Box<str>>,
    /// A name the client said but did not prove: for the log only.
    claimed: Option<Box<str>>,
}

/// A second proof of identity for another user than the first: refused, never taken over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    /// The user already proven.
    pub(crate) proven: String,
    /// The other user.
    pub(crate) offered: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not {}, whom the client already proved to be",
            self.offered, self.proven
        )
    }
}

impl Subject {
    /// A connection from `peer` to `listener`, nobody proven yet.
    pub(crate) fn new(peer: SocketAddr, listener: SocketAddr) -> Self {
        Self {
            client: canonical(peer),
            via: None,
            listener,
            method: Method::NO_AUTH,
            identity: None,
            attempted: None,
            claimed: None,
        }
    }

    /// A trusted balancer's PROXY header named `client`: the session acts for it, and the
    /// balancer is kept as `via`.
    pub(crate) fn proxied(&mut self, client: SocketAddr) {
        self.via = Some(Box::new(self.client));
        self.client = canonical(client);
    }

    /// The handshake settled on `method`.
    pub(crate) fn method_selected(&mut self, method: Method) {
        self.method = method;
    }

    /// Credentials for `user` are being checked (logged as the user should they fail).
    pub(crate) fn attempt(&mut self, user: &str) {
        self.attempted = Some(user.into());
    }

    /// Whether credentials for `user` would conflict with the user already proven.
    pub(crate) fn conflicts_with(&self, user: &str) -> Option<Conflict> {
        let proven = self.identity.as_deref()?;
        (proven.user != user).then(|| Conflict {
            proven: proven.user.clone(),
            offered: user.to_owned(),
        })
    }

    /// The client proved to be `identity`. A first proof names the subject; a later one
    /// (RFC 1929 after a client certificate, say) must name the same user, and then takes
    /// the first one's place (its groups, its method: it knows more than a certificate).
    pub(crate) fn prove(&mut self, identity: Identity) -> Result<(), Conflict> {
        if let Some(conflict) = self.conflicts_with(&identity.user) {
            return Err(conflict);
        }
        self.attempted = None;
        self.identity = Some(Box::new(identity));
        Ok(())
    }

    /// The client said it is `name` without proving it (a SOCKS4 USERID). Taken as the user
    /// only where the listener trusts such names, and never over a proven user; otherwise
    /// kept as a claim.
    pub(crate) fn claim(&mut self, name: String, trusted: bool) {
        if trusted && self.identity.is_none() {
            self.identity = Some(Box::new(Identity {
                user: name,
                groups: Vec::new(),
                method: Method::NO_AUTH,
            }));
        } else {
            self.claimed = Some(name.into_boxed_str());
        }
    }

    /// The client's address (IPv4-mapped IPv6 as IPv4).
    pub(crate) fn client(&self) -> SocketAddr {
        self.client
    }

    /// The balancer the client came through.
    pub(crate) fn via(&self) -> Option<SocketAddr> {
        self.via.as_deref().copied()
    }

    pub(crate) fn listener(&self) -> SocketAddr {
        self.listener
    }

    /// The proven user, the only one rules, limits and per-user counters know.
    pub(crate) fn user(&self) -> Option<&str> {
        self.identity
            .as_deref()
            .map(|identity| identity.user.as_str())
    }

    /// The proven user's groups.
    pub(crate) fn groups(&self) -> &[String] {
        self.identity
            .as_deref()
            .map_or(&[][..], |identity| &identity.groups[..])
    }

    /// The user the access log names: the proven one, else the one attempted.
    pub(crate) fn logged_user(&self) -> Option<&str> {
        self.user().or(self.attempted.as_deref())
    }

    /// The name claimed and not taken as the user.
    pub(crate) fn claimed_user(&self) -> Option<&str> {
        self.claimed.as_deref()
    }

    /// The request `command` to `host:port` at `moment`, as the rules see it.
    pub(crate) fn request<'a>(
        &'a self,
        command: Command,
        host: &'a Host,
        port: u16,
        moment: Moment,
    ) -> Request<'a> {
        Request {
            source: self.client.ip(),
            listener: self.listener,
            user: self.user(),
            groups: self.groups(),
            method: self.method,
            command,
            host,
            port,
            address: None,
            moment,
        }
    }
}

fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(IpAddr::to_canonical(&address.ip()), address.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject::new(
            "[::ffff:192.0.2.7]:4000".parse().unwrap(),
            "0.0.0.0:1080".parse().unwrap(),
        )
    }

    fn identity(user: &str, groups: &[&str]) -> Identity {
        Identity {
            user: user.to_owned(),
            groups: groups.iter().map(|&g| g.to_owned()).collect(),
            method: Method::PASSWORD,
        }
    }

    #[test]
    fn a_proven_user_is_never_replaced() {
        let mut subject = subject();
        subject.prove(identity("bob", &[])).unwrap();
        let refused = subject.prove(identity("alice", &["admins"]));
        assert_eq!(
            refused,
            Err(Conflict {
                proven: "bob".into(),
                offered: "alice".into()
            })
        );
        assert_eq!(subject.user(), Some("bob"));
        // The same user again adds what the second proof knows.
        subject.prove(identity("bob", &["staff"])).unwrap();
        assert_eq!(subject.groups(), ["staff"]);
    }

    #[test]
    fn a_claimed_name_is_no_user_unless_trusted_and_never_over_a_proven_one() {
        let mut subject = subject();
        subject.claim("alice".into(), false);
        assert_eq!(subject.user(), None);
        assert_eq!(subject.logged_user(), None);
        assert_eq!(subject.claimed_user(), Some("alice"));
        let mut trusting = Subject::new(subject.client(), subject.listener());
        trusting.claim("alice".into(), true);
        assert_eq!(trusting.user(), Some("alice"));
        let mut certified = Subject::new(subject.client(), subject.listener());
        certified.prove(identity("bob", &[])).unwrap();
        certified.claim("alice".into(), true);
        assert_eq!(certified.user(), Some("bob"));
        assert_eq!(certified.claimed_user(), Some("alice"));
    }

    #[test]
    fn an_attempt_is_logged_but_matches_nothing() {
        let mut subject = subject();
        subject.attempt("mallory");
        assert_eq!(subject.user(), None);
        assert_eq!(subject.logged_user(), Some("mallory"));
        let host = Host::Domain("example.com".parse().unwrap());
        let moment = Moment {
            weekday: 0,
            minute: 0,
        };
        let request = subject.request(Command::CONNECT, &host, 443, moment);
        assert_eq!(request.user, None);
        assert_eq!(request.source, IpAddr::from([192, 0, 2, 7]));
    }

    #[test]
    fn behind_a_balancer_the_header_names_the_client() {
        let mut subject = subject();
        subject.proxied("[2001:db8::5]:6000".parse().unwrap());
        assert_eq!(subject.client().to_string(), "[2001:db8::5]:6000");
        assert_eq!(subject.via().unwrap().to_string(), "192.0.2.7:4000");
    }
}
