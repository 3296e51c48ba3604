//! Dante's SOCKS server (danted) on a loopback port.

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};

use crate::interop::{skip_or_fail, tool};

/// danted on a loopback port, with `extra` appended to its configuration.
pub struct Danted {
    _child: crate::interop::KillOnDrop,
    /// Where it listens.
    pub address: SocketAddr,
    log: std::path::PathBuf,
}

impl Danted {
    /// Dante's log so far (one `pass` line per session it served).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts danted; `None` (after the interop rule) without danted or root.
    pub fn start(extra: &str) -> Option<Self> {
        let danted = tool("danted")?;
        Self::start_with(&danted, "none", "", extra)
    }

    /// Starts a Dante built with GSS-API (`$SOCKSGATE_DANTE_GSSAPI/sbin/sockd`: Debian's
    /// package has it compiled out, so CI builds it from Debian's source) asking clients for
    /// GSS-API with the service keys in `keytab`.
    pub fn start_gssapi(keytab: &std::path::Path) -> Option<Self> {
        let sockd = gssapi_build()?.join("sbin/sockd");
        // One option per line (Dante reads a method list up to the end of its line), in both
        // rules: the negotiation takes the keytab from the client rule.
        let options = format!(
            "\n gssapi.keytab: FILE:{}\n gssapi.servicename: rcmd\n",
            keytab.display()
        );
        Self::start_with(&sockd, "gssapi", &options, "")
    }

    fn start_with(danted: &std::path::Path, method: &str, rule: &str, extra: &str) -> Option<Self> {
        let template = format!(
            "logoutput: {{log}}\ninternal: 127.0.0.1 port = {{port}}\nexternal: 127.0.0.1\n\
             socksmethod: {method}\nclientmethod: none\nuser.privileged: root\n\
             user.unprivileged: nobody\n\
             client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 {rule} }}\n\
             socks pass {{ from: 0.0.0.0/0 to: 0.0.0.0/0 {rule} log: connect }}\n{extra}"
        );
        Self::start_config(danted, &template)
    }

    /// Starts `danted` on the configuration `template`, whose `{port}` and `{log}` are
    /// replaced by a free loopback port and a log file; `None` (after the interop rule)
    /// without root.
    pub fn start_config(danted: &std::path::Path, template: &str) -> Option<Self> {
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
        let log = dir.join("danted.log");
        let text = template
            .replace("{port}", &address.port().to_string())
            .replace("{log}", &log.display().to_string());
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(danted)
            .args(["-f", conf.to_str().unwrap()])
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        crate::client::wait_until_listening(address, "danted");
        Some(Self {
            _child: crate::interop::KillOnDrop(child),
            address,
            log,
        })
    }
}

/// Where CI installed Dante built with GSS-API (`SOCKSGATE_DANTE_GSSAPI`), under the
/// interop rule.
pub fn gssapi_build() -> Option<std::path::PathBuf> {
    let prefix = std::env::var_os("SOCKSGATE_DANTE_GSSAPI").map(std::path::PathBuf::from);
    match prefix {
        Some(prefix) if prefix.join("sbin/sockd").is_file() => Some(prefix),
        _ => {
            skip_or_fail("no Dante built with GSS-API (SOCKSGATE_DANTE_GSSAPI)");
            None
        }
    }
}
