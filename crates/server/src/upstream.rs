//! Upstream groups: chains of proxies that `route` rules send traffic through, with
//! failover, round-robin or hash-by-client selection, and members set aside after repeated
//! failures and tried again after a while.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use socksgate_client::{Chain, ChainError, HopFailure};
use socksgate_config::{Selection, UpstreamGroup};
use socksgate_proto::client::ClientError;
use socksgate_proto::Reply;
use socksgate_tls::rustls::ClientConfig;
use socksgate_tls::{ClientTls, TlsError};

use crate::metrics::Metrics;

/// Every configured group, by name.
#[derive(Debug, Default)]
pub(crate) struct Upstreams {
    groups: HashMap<Arc<str>, Group>,
}

impl Upstreams {
    /// The groups, their TLS hops checked with `tls` (by group name; the system's
    /// authorities for a group not in it).
    pub(crate) fn new(groups: &[UpstreamGroup], tls: &UpstreamTls) -> Self {
        Self {
            groups: groups
                .iter()
                .map(|group| {
                    let config = tls.get(&group.name).cloned();
                    (Arc::from(group.name.as_str()), Group::new(group, config))
                })
                .collect(),
        }
    }

    /// Every member of every group: group, chain, and whether it is in service (not set
    /// aside), for `/metrics`.
    pub(crate) fn health(&self) -> Vec<(&str, &str, bool)> {
        let now = Instant::now();
        let mut health: Vec<_> = self
            .groups
            .iter()
            .flat_map(|(name, group)| {
                group
                    .members
                    .iter()
                    .enumerate()
                    .map(move |(index, member)| {
                        (&**name, member.label.as_str(), group.is_healthy(index, now))
                    })
            })
            .collect();
        health.sort_unstable();
        health
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }
}

/// The TLS client configuration of each group that configures one, by name.
pub(crate) type UpstreamTls = std::collections::HashMap<String, Arc<ClientConfig>>;

/// Reads each group's TLS files (authorities, client certificate).
pub(crate) fn upstream_tls(groups: &[UpstreamGroup]) -> Result<UpstreamTls, (String, TlsError)> {
    let mut configs = UpstreamTls::new();
    for group in groups {
        if group.tls != ClientTls::default() {
            let config = socksgate_tls::client_config(&group.tls)
                .map_err(|error| (group.name.clone(), error))?;
            configs.insert(group.name.clone(), config);
        }
    }
    Ok(configs)
}

/// Offers GSS-API to the chain's SOCKS5 hops, as the group says.
#[cfg(feature = "gssapi")]
fn with_gssapi(chain: Chain, gssapi: Option<&socksgate_config::UpstreamGssapi>) -> Chain {
    use socksgate_client::{GssapiLevel, GssapiOptions};
    use socksgate_config::Protection;
    let Some(gssapi) = gssapi else {
        return chain;
    };
    chain.with_gssapi(GssapiOptions {
        service: gssapi.service.clone(),
        protection: match gssapi.protection {
            Protection::None => GssapiLevel::None,
            Protection::Integrity => GssapiLevel::Integrity,
            Protection::Confidentiality => GssapiLevel::Confidentiality,
        },
        nec: gssapi.nec,
    })
}

/// Without the gssapi feature, configuration loading refuses groups that ask for it.
#[cfg(not(feature = "gssapi"))]
fn with_gssapi(chain: Chain, _gssapi: Option<&socksgate_config::UpstreamGssapi>) -> Chain {
    chain
}

/// Why a routed request failed.
#[derive(Debug)]
pub(crate) enum RouteError {
    /// The upstream reached its last hop, which answered for the target: pass the reply on.
    Target(Reply, ChainError),
    /// No member of the group could carry the request.
    Upstream(ChainError),
}

impl RouteError {
    /// The reply for the client.
    pub(crate) fn reply(&self) -> Reply {
        match self {
            Self::Target(reply, _) => *reply,
            Self::Upstream(_) => Reply::GENERAL_FAILURE,
        }
    }
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Target(_, error) => write!(f, "upstream: {error}"),
            Self::Upstream(error) => write!(f, "no upstream could carry it; last: {error}"),
        }
    }
}

#[derive(Debug)]
struct Member {
    chain: Chain,
    /// The chain's hops without passwords, for metrics.
    label: String,
    failures: AtomicU32,
    set_aside_until: Mutex<Option<Instant>>,
}

/// One group.
#[derive(Debug)]
pub(crate) struct Group {
    name: Arc<str>,
    members: Vec<Member>,
    selection: Selection,
    turn: AtomicUsize,
    max_failures: u32,
    retry_after: Duration,
    /// Whether connections to a first hop begin with a PROXY v2 header naming the client.
    pub(crate) send_proxy_protocol: bool,
}

impl Group {
    fn new(config: &UpstreamGroup, tls: Option<Arc<ClientConfig>>) -> Self {
        Self {
            name: Arc::from(config.name.as_str()),
            members: config
                .chains
                .iter()
                .map(|hops| Member {
                    label: hops
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                    chain: {
                        let chain: Chain = hops.iter().cloned().collect();
                        // Each member bounded on its own, so that a black-holed one fails
                        // over to the next within the session's connect timeout.
                        let chain = chain.with_timeouts(socksgate_client::HopTimeouts {
                            connect: config.connect_timeout,
                            handshake: config.handshake_timeout,
                        });
                        let chain = match &tls {
                            Some(tls) => chain.with_client_config(tls.clone()),
                            None => chain,
                        };
                        with_gssapi(chain, config.gssapi.as_ref())
                    },
                    failures: AtomicU32::new(0),
                    set_aside_until: Mutex::new(None),
                })
                .collect(),
            selection: config.selection,
            turn: AtomicUsize::new(0),
            max_failures: config.max_failures,
            retry_after: config.retry_after,
            send_proxy_protocol: config.send_proxy_protocol,
        }
    }

    /// The members to try, in order: healthy ones as the selection says, then the ones set
    /// aside (a last resort is better than no service).
    fn order(&self, client: IpAddr, now: Instant) -> Vec<usize> {
        let count = self.members.len();
        let start = match self.selection {
            Selection::Failover => 0,
            Selection::RoundRobin => self.turn.fetch_add(1, Ordering::Relaxed) % count,
            Selection::HashByClient => {
                let mut hasher = DefaultHasher::new();
                client.hash(&mut hasher);
                (hasher.finish() % count as u64) as usize
            }
        };
        let rotated = (0..count).map(|offset| (start + offset) % count);
        let (healthy, aside): (Vec<usize>, Vec<usize>) =
            rotated.partition(|&index| self.is_healthy(index, now));
        healthy.into_iter().chain(aside).collect()
    }

    fn is_healthy(&self, index: usize, now: Instant) -> bool {
        let until = *self.members[index]
            .set_aside_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        until.is_none_or(|until| now >= until)
    }

    fn record(&self, index: usize, healthy: bool) {
        let member = &self.members[index];
        if healthy {
            member.failures.store(0, Ordering::Relaxed);
            *member
                .set_aside_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
            return;
        }
        let failures = member.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.max_failures {
            tracing::warn!(
                upstream = %member.chain.hops().first().map_or_else(String::new, ToString::to_string),
                failures,
                "upstream set aside for {:?}",
                self.retry_after
            );
            member.failures.store(0, Ordering::Relaxed);
            *member
                .set_aside_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + self.retry_after);
        }
    }

    /// Runs `attempt` on the members in order until one carries it. A failure of the target
    /// itself (the last hop's reply to the request) ends the search: every member would
    /// say the same, and the member is healthy.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        client: IpAddr,
        metrics: &Metrics,
        attempt: F,
    ) -> Result<T, RouteError>
    where
        F: Fn(Chain) -> Fut,
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let mut last = None;
        for index in self.order(client, Instant::now()) {
            let member = &self.members[index];
            let chain = member.chain.clone();
            let hops = chain.hops().len();
            let result = attempt(chain).await;
            // The target's own refusal (the last hop's reply) says the member works.
            let carried = match &result {
                Ok(_) => true,
                Err(error) => matches!(
                    (error.hop == hops, &error.failure),
                    (true, HopFailure::Refused(ClientError::Rejected(_)))
                ),
            };
            self.record(index, carried);
            metrics.upstream_attempt(&self.name, &member.label, carried);
            match result {
                Ok(value) => return Ok(value),
                Err(error) => {
                    if let (true, HopFailure::Refused(ClientError::Rejected(reply))) =
                        (carried, &error.failure)
                    {
                        let reply = *reply;
                        return Err(RouteError::Target(reply, error));
                    }
                    last = Some(error);
                }
            }
        }
        Err(RouteError::Upstream(last.unwrap_or(ChainError {
            hop: 0,
            proxy: "-".to_owned(),
            failure: HopFailure::Io(std::io::Error::other("the group has no member")),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(selection: Selection, members: usize) -> Group {
        let chains = (0..members)
            .map(|i| {
                vec![format!("socks5://10.0.0.{}:1080", i + 1)
                    .parse()
                    .unwrap_or_else(|_| unreachable!())]
            })
            .collect();
        let config = UpstreamGroup {
            name: "g".to_owned(),
            chains,
            selection,
            max_failures: 2,
            retry_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            tls: ClientTls::default(),
            gssapi: None,
            send_proxy_protocol: false,
        };
        Group::new(&config, None)
    }

    fn client(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn failover_keeps_the_order_and_puts_set_aside_members_last() {
        let group = group(Selection::Failover, 3);
        let now = Instant::now();
        assert_eq!(group.order(client(1), now), [0, 1, 2]);
        group.record(0, false);
        assert_eq!(
            group.order(client(1), now),
            [0, 1, 2],
            "one failure of two allowed"
        );
        group.record(0, false);
        assert_eq!(group.order(client(1), Instant::now()), [1, 2, 0]);
        assert_eq!(
            group.order(client(1), Instant::now() + Duration::from_secs(31)),
            [0, 1, 2]
        );
        group.record(0, true);
        assert_eq!(group.order(client(1), Instant::now()), [0, 1, 2]);
    }

    #[test]
    fn round_robin_takes_turns() {
        let group = group(Selection::RoundRobin, 3);
        let firsts: Vec<usize> = (0..6)
            .map(|_| group.order(client(1), Instant::now())[0])
            .collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn hash_by_client_sticks_to_one_member_per_client() {
        let group = group(Selection::HashByClient, 4);
        let now = Instant::now();
        for last in 0..50 {
            let first = group.order(client(last), now)[0];
            assert!((0..5).all(|_| group.order(client(last), now)[0] == first));
        }
        let spread: std::collections::HashSet<usize> = (0..50)
            .map(|last| group.order(client(last), now)[0])
            .collect();
        assert!(spread.len() > 1, "clients spread over members");
    }
}
