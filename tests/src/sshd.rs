//! An OpenSSH server on a loopback port, for the test's own key.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::interop::{run, skip_or_fail, tool};

/// A running sshd; stopped when dropped.
pub struct Sshd {
    _child: crate::interop::KillOnDrop,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The private key it accepts (for the current user).
    pub client_key: PathBuf,
}

impl Sshd {
    /// Starts one with keys in `dir`; `None` (after the interop rule) without sshd or root.
    pub fn start(dir: &Path) -> Option<Self> {
        let (Some(sshd), Some(keygen)) = (tool("sshd"), tool("ssh-keygen")) else {
            return None;
        };
        if !rustix::process::geteuid().is_root() {
            skip_or_fail("running sshd needs root");
            return None;
        }
        std::fs::create_dir_all("/run/sshd").unwrap();
        for key in ["host", "client"] {
            let path = dir.join(key);
            let _ = std::fs::remove_file(&path);
            let made = run(
                &keygen,
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-f",
                    path.to_str().unwrap(),
                ],
                &[],
                20,
            );
            assert!(made.success, "ssh-keygen: {}", made.stderr);
        }
        std::fs::copy(dir.join("client.pub"), dir.join("authorized_keys")).unwrap();
        let port = crate::free_port("127.0.0.1");
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nPidFile {dir}/sshd.pid\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f", config.to_str().unwrap()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self {
            _child: crate::interop::KillOnDrop(child),
            port,
            client_key: dir.join("client"),
        })
    }

    /// `ssh` arguments that log in with the test key, trusting any host key, and run
    /// `command` (the ProxyCommand, if any, comes in `extra`).
    pub fn ssh_args(&self, extra: &[String], command: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "-F",
            "/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(["-i".to_owned(), self.client_key.display().to_string()]);
        args.extend(extra.iter().cloned());
        args.extend([
            "-p".to_owned(),
            self.port.to_string(),
            "root@localhost".to_owned(),
        ]);
        args.extend(command.iter().map(|s| (*s).to_owned()));
        args
    }
}
