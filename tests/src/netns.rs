//! Network namespaces created by a test, for situations loopback cannot produce (no route,
//! an unreachable route, a silent host). Nothing sent inside one leaves it.

use std::fs::File;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::interop::{skip_or_fail, tool};

/// A named namespace (`ip netns add`), deleted when dropped.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a namespace with loopback up, then runs each of `setup` as `ip -n NAME …`.
    /// `None` (after skipping or failing per the interop rule) without root or `ip`.
    pub fn create(setup: &[&str]) -> Option<Self> {
        tool("ip")?;
        if !rustix::process::geteuid().is_root() {
            skip_or_fail("network namespaces need root");
            return None;
        }
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "sgtest-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run_ip(&["netns", "add", &name]);
        let namespace = Self { name };
        namespace.ip("link set lo up");
        for line in setup {
            namespace.ip(line);
        }
        Some(namespace)
    }

    /// A veth pair from this namespace (`here`, with address `here_cidr`) to `peer` (`there`,
    /// `there_cidr`), both ends up.
    pub fn veth(&self, here: &str, here_cidr: &str, peer: &NetNs, there: &str, there_cidr: &str) {
        self.ip(&format!(
            "link add {here} type veth peer name {there} netns {}",
            peer.name()
        ));
        self.ip(&format!("addr add {here_cidr} dev {here}"));
        self.ip(&format!("link set {here} up"));
        peer.ip(&format!("addr add {there_cidr} dev {there}"));
        peer.ip(&format!("link set {there} up"));
    }

    /// Two hosts one router hop apart: a client host (192.0.2.1) and a target host whose
    /// service address is 198.51.100.10, reached through 192.0.2.2 over a veth pair. Used
    /// where a client connects directly to loopback and local networks (Dante's socksify),
    /// so the target must be another host.
    pub fn two_hosts() -> Option<(Self, Self)> {
        let target_host = Self::create(&["addr add 198.51.100.10/32 dev lo"])?;
        let client_host = Self::create(&[])?;
        client_host.veth("sga", "192.0.2.1/30", &target_host, "sgb", "192.0.2.2/30");
        client_host.ip("route add 198.51.100.10/32 via 192.0.2.2");
        Some((client_host, target_host))
    }

    /// Four hosts on a line, two routers between the client host and the target host:
    ///
    /// ```text
    /// client 10.1.0.1 ── 10.1.0.2 router1 10.2.0.1 ── 10.2.0.2 router2 10.3.0.1 ── 10.3.0.2 target
    /// ```
    ///
    /// Router 2 answers for 10.9.0.0/24 with "host unreachable" (an `unreachable` route) and
    /// drops 10.8.0.0/24 silently (a `blackhole` route). Each router has forwarding on and
    /// no ICMP error rate limit, in its own namespace only.
    pub fn routed_path() -> Option<RoutedPath> {
        let client = Self::create(&[])?;
        let router1 = Self::create(&[])?;
        let router2 = Self::create(&[])?;
        let target = Self::create(&[])?;
        let links = [
            (&client, "c0", "10.1.0.1/24", &router1, "r1a", "10.1.0.2/24"),
            (
                &router1,
                "r1b",
                "10.2.0.1/24",
                &router2,
                "r2a",
                "10.2.0.2/24",
            ),
            (&router2, "r2b", "10.3.0.1/24", &target, "t0", "10.3.0.2/24"),
        ];
        for (left, left_name, left_address, right, right_name, right_address) in links {
            left.veth(left_name, left_address, right, right_name, right_address);
        }
        for router in [&router1, &router2] {
            router.sysctl("net.ipv4.ip_forward", "1");
            // Every probe answered: no ICMP error rate limit to make a test flaky.
            router.sysctl("net.ipv4.icmp_ratelimit", "0");
        }
        client.ip("route add default via 10.1.0.2");
        router1.ip("route add default via 10.2.0.2");
        router2.ip("route add 10.1.0.0/24 via 10.2.0.1");
        router2.ip("route add unreachable 10.9.0.0/24");
        router2.ip("route add blackhole 10.8.0.0/24");
        target.ip("route add default via 10.3.0.1");
        Some(RoutedPath {
            client,
            routers: [router1, router2],
            target,
        })
    }

    /// Sets a sysctl of this namespace (`net.…` keys are per namespace; the host's stay).
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run(|| std::fs::write(&path, value))
            .unwrap_or_else(|error| panic!("{key} = {value}: {error}"));
    }

    /// The namespace's name, for `ip … netns NAME`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS…` and panics if it fails.
    pub fn ip(&self, args: &str) {
        let mut full = vec!["-n", &self.name];
        full.extend(args.split_whitespace());
        run_ip(&full);
    }

    /// Runs `body` on a thread inside the namespace; threads it starts are inside too.
    pub fn run<T: Send>(&self, body: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let namespace = File::open(&path).unwrap();
                    move_into_link_name_space(namespace.as_fd(), Some(LinkNameSpaceType::Network))
                        .unwrap();
                    body()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// The namespaces of [`NetNs::routed_path`].
pub struct RoutedPath {
    /// 10.1.0.1, default route through router 1.
    pub client: NetNs,
    /// Router 1 (10.1.0.2, 10.2.0.1) and router 2 (10.2.0.2, 10.3.0.1).
    pub routers: [NetNs; 2],
    /// 10.3.0.2.
    pub target: NetNs,
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run_ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {} failed", args.join(" "));
}
