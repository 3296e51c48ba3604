//! HAProxy on loopback, for the tests of socksgate behind a load balancer.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use crate::interop::tool;

/// A running HAProxy, stopped when dropped.
pub struct Haproxy {
    _child: crate::interop::KillOnDrop,
    /// Its frontend's address.
    pub front: SocketAddr,
}

impl Haproxy {
    /// Starts HAProxy on `config` (written to `name` in a directory of this test process)
    /// and waits until `front`, its frontend, listens; `None` (after the interop rule)
    /// without haproxy.
    pub fn start(name: &str, config: &str, front: SocketAddr) -> Option<Self> {
        let program = tool("haproxy")?;
        let dir = crate::server::scratch_dir("haproxy");
        let path = dir.join(name);
        std::fs::write(&path, config).expect("HAProxy's configuration written");
        let child = Command::new(program)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts");
        crate::client::wait_until_listening(front, "haproxy");
        Some(Self {
            _child: crate::interop::KillOnDrop(child),
            front,
        })
    }
}
