//! Dante's SOCKS server (danted) on a loopback port.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::interop::{skip_or_fail, tool};

/// danted on a loopback port, with `extra` appended to its configuration.
pub struct Danted {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Danted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Danted {
    /// Dante's log so far (one `pass` line per session it served).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts danted; `None` (after the interop rule) without danted or root.
    pub fn start(extra: &str) -> Option<Self> {
        let danted = tool("danted")?;
        if !rustix::process::geteuid().is_root() {
            skip_or_fail("danted needs root here (user.privileged)");
            return None;
        }
        let address = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "sg-danted-{}-{}",
            std::process::id(),
            address.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sockd.conf");
        std::fs::write(
            &conf,
            format!(
                "logoutput: {log}\ninternal: 127.0.0.1 port = {}\nexternal: 127.0.0.1\n\
                 socksmethod: none\nclientmethod: none\nuser.privileged: root\n\
                 user.unprivileged: nobody\n\
                 client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\n\
                 socks pass {{ from: 0.0.0.0/0 to: 0.0.0.0/0 log: connect }}\n{extra}",
                address.port(),
                log = dir.join("danted.log").display()
            ),
        )
        .unwrap();
        let child = Command::new(danted)
            .args(["-f", conf.to_str().unwrap()])
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "danted did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self {
            child,
            address,
            log: dir.join("danted.log"),
        })
    }
}
