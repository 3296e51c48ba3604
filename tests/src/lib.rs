//! Test support for socksgate's socket-level tests: an in-process server with its access log
//! captured, loopback targets, a blocking SOCKS client on `socksgate-proto`'s machine,
//! network namespaces for situations loopback cannot produce (and an impaired link between
//! two, `impaired`), third-party servers run for a test (`dante`, `haproxy`, `sshd`,
//! `redis`), a throwaway Kerberos realm (`kdc`) and PKI (`pki`), and the rule for
//! third-party programs (skip on a laptop, fail in CI: `interop`).

// A panic in test support is a failed test; a skip notice on stderr is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod client;
pub mod dante;
pub mod freeradius;
pub mod haproxy;
pub mod impaired;
pub mod interop;
pub mod kdc;
pub mod netns;
pub mod pki;
pub mod redis;
pub mod server;
pub mod squid;
pub mod sshd;
pub mod target;

pub use client::{assert_echoes, handshake, raw_exchange, rejected_with, socks5_connect};
pub use interop::tool;
pub use netns::NetNs;
pub use server::{
    count_where, fresh_scratch_dir, scratch_dir, scratch_file, AccessEntry, StaticResolver,
    TestServer,
};
pub use target::{download_rates, endless_source, DnsResponder, EchoTarget, HttpTarget, UdpEcho};

/// A TCP port nothing listens on at `ip` now (the kernel's pick for a listener that is
/// closed at once): for a server a test starts on a known port, or a target that refuses.
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}
