//! A Redis server on loopback for the fleet tests: no persistence, its own port, stopped
//! when dropped; it can be stopped and started again on the same port.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::interop::tool;

/// A running (or stopped) Redis server.
pub struct Redis {
    program: std::path::PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Redis {
    /// Starts `redis-server` on a free loopback port; `None` (after skipping or failing per
    /// the interop rule) without it.
    pub fn start() -> Option<Self> {
        let program = tool("redis-server")?;
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|probe| probe.local_addr())
            .expect("a free port");
        let mut redis = Self {
            program,
            addr,
            child: None,
        };
        redis.resume();
        Some(redis)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Stops the server (its data is gone: nothing is saved).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): it keeps its connections but answers nothing, like a
    /// Redis that hangs.
    pub fn freeze(&self) {
        self.signal(rustix::process::Signal::STOP);
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal(rustix::process::Signal::CONT);
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let child = self.child.as_ref().expect("Redis is running");
        let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("a pid"))
            .expect("a pid");
        rustix::process::kill_process(pid, signal).expect("Redis takes the signal");
    }

    /// Starts it again on the same port, and waits until it answers.
    pub fn resume(&mut self) {
        let child = Command::new(&self.program)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.addr.port().to_string(),
            ])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        crate::client::wait_until_listening(self.addr, "redis-server");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
