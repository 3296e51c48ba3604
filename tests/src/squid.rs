//! Squid (Debian's squid) on loopback, started by a test with a configuration of its own in
//! a scratch directory: an HTTP proxy to chain through, or one whose parent is socksgate.

use std::path::PathBuf;
use std::time::Duration;

use crate::interop::{tool, KillOnDrop};

/// A running squid; killed when dropped.
pub struct Squid {
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    _process: KillOnDrop,
}

impl Squid {
    /// Starts squid with `extra` lines of configuration (a `cache_peer`, …), or `None`
    /// when squid is not installed.
    pub fn start(name: &str, extra: &str) -> Option<Self> {
        let squid = tool("squid").or_else(|| crate::interop::tool_at("/usr/sbin/squid"))?;
        let dir = crate::fresh_scratch_dir(&format!("squid-{name}"));
        // Squid runs as the `proxy` user once started: its files must be writable by it.
        let _ = std::process::Command::new("chmod")
            .arg("777")
            .arg(&dir)
            .status();
        let port = crate::free_port("127.0.0.1");
        let conf = format!(
            "http_port 127.0.0.1:{port}\n\
             pid_filename {dir}/squid.pid\n\
             access_log stdio:{dir}/access.log\n\
             cache_log {dir}/cache.log\n\
             cache_store_log none\n\
             cache deny all\n\
             coredump_dir {dir}\n\
             acl loopback src 127.0.0.0/8\n\
             http_access allow loopback\n\
             http_access deny all\n\
             shutdown_lifetime 1 seconds\n\
             {extra}\n",
            dir = dir.display()
        );
        let conf_path = dir.join("squid.conf");
        std::fs::write(&conf_path, conf).ok()?;
        let child = std::process::Command::new(squid)
            .arg("-N")
            .arg("-f")
            .arg(&conf_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let process = KillOnDrop(child);
        crate::client::wait_until_listening(("127.0.0.1", port), "squid");
        Some(Self {
            port,
            dir,
            _process: process,
        })
    }

    /// Its access log's lines so far, waiting up to 5 s for `lines` of them that contain
    /// `needle` (squid writes a line as a transaction ends; the start-up probe writes one).
    pub fn access_log(&self, needle: &str, lines: usize) -> Vec<String> {
        let path = self.dir.join("access.log");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let seen: Vec<String> = text.lines().map(str::to_owned).collect();
            let matching = seen.iter().filter(|line| line.contains(needle)).count();
            if matching >= lines || std::time::Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
