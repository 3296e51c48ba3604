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

    /// Two hosts one router hop apart: a client host (192.0.2.1) and a target host whose
    /// service address is 198.51.100.10, reached through 192.0.2.2 over a veth pair. Used
    /// where a client connects directly to loopback and local networks (Dante's socksify),
    /// so the target must be another host.
    pub fn two_hosts() -> Option<(Self, Self)> {
        let target_host = Self::create(&["addr add 198.51.100.10/32 dev lo"])?;
        let client_host = Self::create(&[])?;
        client_host.ip(&format!(
            "link add sga type veth peer name sgb netns {}",
            target_host.name()
        ));
        client_host.ip("addr add 192.0.2.1/30 dev sga");
        client_host.ip("link set sga up");
        target_host.ip("addr add 192.0.2.2/30 dev sgb");
        target_host.ip("link set sgb up");
        client_host.ip("route add 198.51.100.10/32 via 192.0.2.2");
        Some((client_host, target_host))
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
