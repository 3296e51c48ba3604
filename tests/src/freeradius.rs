//! FreeRADIUS (Debian's freeradius) on loopback, started by a test with a configuration of
//! its own: Debian's modules, one site with PAP on `auth_port` and accounting on the next
//! port into a detail file, one client (127.0.0.1) and the test's users. The site adds a
//! Message-Authenticator to every answer, as a server fixed for CVE-2024-3596 does
//! (Debian 12's 3.2.1 does not on its own), unless `sign_answers` is off.

use std::path::PathBuf;
use std::time::Duration;

use crate::interop::{tool_at, KillOnDrop};

/// A running freeradius; killed when dropped.
pub struct FreeRadius {
    /// The authentication port on 127.0.0.1 (accounting is the next one).
    pub auth_port: u16,
    /// The detail file accounting requests are written to.
    pub detail: PathBuf,
    _process: KillOnDrop,
}

impl FreeRadius {
    /// Starts freeradius with `secret` and `users` (the `files` module's syntax), or `None`
    /// when it is not installed.
    pub fn start(name: &str, secret: &str, users: &str, sign_answers: bool) -> Option<Self> {
        let binary = tool_at("/usr/sbin/freeradius")?;
        let system = std::path::Path::new("/etc/freeradius/3.0");
        if !system.is_dir() {
            return None;
        }
        let root = crate::fresh_scratch_dir(&format!("radius-{name}"));
        let conf = root.join("conf");
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(system)
            .arg(&conf)
            .status()
            .ok()?;
        if !copied.success() {
            return None;
        }
        // The accounting directory is written by the freerad user; the configuration must
        // not be writable by others, or freeradius refuses it.
        let accounting = root.join("accounting");
        std::fs::create_dir_all(&accounting).ok()?;
        let _ = std::process::Command::new("chmod")
            .arg("777")
            .arg(&accounting)
            .status();
        for stale in [
            "sites-enabled/default",
            "sites-enabled/inner-tunnel",
            "mods-enabled/eap",
        ] {
            let _ = std::fs::remove_file(conf.join(stale));
        }
        let auth_port = crate::free_port("127.0.0.1");
        let sign = if sign_answers {
            "update reply {\n\t\tMessage-Authenticator := 0x00\n\t}"
        } else {
            ""
        };
        let site = format!(
            "server default {{\n\
             listen {{\n\ttype = auth\n\tipaddr = 127.0.0.1\n\tport = {auth_port}\n}}\n\
             listen {{\n\ttype = acct\n\tipaddr = 127.0.0.1\n\tport = {acct_port}\n}}\n\
             authorize {{\n\tfiles\n\tpap\n}}\n\
             authenticate {{\n\tAuth-Type PAP {{\n\t\tpap\n\t}}\n}}\n\
             preacct {{\n}}\naccounting {{\n\tdetail_test\n}}\n\
             post-auth {{\n\t{sign}\n\tPost-Auth-Type REJECT {{\n\t{sign}\n\t}}\n}}\n}}\n",
            acct_port = auth_port + 1,
        );
        std::fs::write(conf.join("sites-enabled/test"), site).ok()?;
        let detail = accounting.join("detail");
        std::fs::write(
            conf.join("mods-enabled/detail_test"),
            format!(
                "detail detail_test {{\n\tfilename = \"{}\"\n\tpermissions = 0666\n}}\n",
                detail.display()
            ),
        )
        .ok()?;
        std::fs::write(
            conf.join("clients.conf"),
            format!(
                "client local {{\n\tipaddr = 127.0.0.1\n\tsecret = {secret}\n\t\
                 require_message_authenticator = yes\n}}\n"
            ),
        )
        .ok()?;
        std::fs::write(conf.join("mods-config/files/authorize"), users).ok()?;
        let log = std::fs::File::create(root.join("radius.log")).ok()?;
        let child = std::process::Command::new(binary)
            // -X: foreground, and the log says when it is ready.
            .arg("-X")
            .arg("-d")
            .arg(&conf)
            .stdout(log)
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let process = KillOnDrop(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let text = std::fs::read_to_string(root.join("radius.log")).unwrap_or_default();
            if text.contains("Ready to process requests") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "freeradius did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self {
            auth_port,
            detail,
            _process: process,
        })
    }
}
