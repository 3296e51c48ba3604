//! A throwaway MIT Kerberos realm on loopback for GSS-API tests: its own krb5.conf, database,
//! KDC process and ticket cache in a directory of the test's; nothing system-wide changes.
//! The user `alice` has a ticket; the service `rcmd/localhost` has its keys in a keytab.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::interop::tool;

/// The realm's name.
pub const REALM: &str = "SOCKSGATE.TEST";

/// A running KDC and the files a client and a server need.
pub struct Kdc {
    dir: PathBuf,
    process: Child,
    /// The realm's client configuration (`KRB5_CONFIG`).
    pub krb5_conf: PathBuf,
    /// The service's keys (`KRB5_KTNAME`).
    pub keytab: PathBuf,
    /// alice's tickets (`KRB5CCNAME`).
    pub ccache: PathBuf,
}

impl Kdc {
    /// Creates the realm and starts its KDC; `None` (after the skip-or-fail rule) when the
    /// Kerberos programs are not installed.
    pub fn start() -> Option<Self> {
        let kdb5_util = tool("kdb5_util").or_else(|| sbin("kdb5_util"))?;
        let kadmin = sbin("kadmin.local").or_else(|| tool("kadmin.local"))?;
        let krb5kdc = sbin("krb5kdc").or_else(|| tool("krb5kdc"))?;
        let kinit = tool("kinit")?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("socksgate-kdc-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = crate::free_port("127.0.0.1");
        let krb5_conf = dir.join("krb5.conf");
        std::fs::write(
            &krb5_conf,
            format!(
                "[libdefaults]\n default_realm = {REALM}\n dns_lookup_kdc = false\n \
                 dns_lookup_realm = false\n dns_canonicalize_hostname = false\n rdns = false\n \
                 ignore_acceptor_hostname = true\n udp_preference_limit = 1\n\
                 [realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{port}\n }}\n\
                 [domain_realm]\n localhost = {REALM}\n"
            ),
        )
        .unwrap();
        let kdc_conf = dir.join("kdc.conf");
        std::fs::write(
            &kdc_conf,
            format!(
                "[kdcdefaults]\n kdc_listen = 127.0.0.1:{port}\n kdc_tcp_listen = 127.0.0.1:{port}\n\
                 [realms]\n {REALM} = {{\n  database_name = {db}\n  key_stash_file = {stash}\n  \
                 acl_file = {acl}\n  max_life = 1h\n }}\n[logging]\n kdc = FILE:{log}\n",
                db = dir.join("principal").display(),
                stash = dir.join("stash").display(),
                acl = dir.join("kadm5.acl").display(),
                log = dir.join("kdc.log").display(),
            ),
        )
        .unwrap();
        std::fs::write(dir.join("kadm5.acl"), "").unwrap();
        let keytab = dir.join("socksgate.keytab");
        let ccache = dir.join("alice.ccache");
        let env = [
            ("KRB5_CONFIG", krb5_conf.clone()),
            ("KRB5_KDC_PROFILE", kdc_conf.clone()),
            ("KRB5CCNAME", ccache.clone()),
        ];
        let run = |program: &Path, args: &[&str], input: Option<&str>| {
            let mut command = Command::new(program);
            command
                .args(args)
                .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())));
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = command.spawn().unwrap();
            if let Some(input) = input {
                use std::io::Write;
                let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
            }
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{} {args:?}: {}",
                program.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(
            &kdb5_util,
            &["create", "-s", "-r", REALM, "-P", "master-password"],
            None,
        );
        for query in [
            "addprinc -pw alice-password alice".to_owned(),
            "addprinc -randkey rcmd/localhost".to_owned(),
            format!("ktadd -k {} rcmd/localhost", keytab.display()),
            // Dante's client names the proxy by the address in its route.
            "addprinc -randkey rcmd/127.0.0.1".to_owned(),
            format!("ktadd -k {} rcmd/127.0.0.1", keytab.display()),
        ] {
            run(&kadmin, &["-r", REALM, "-q", &query], None);
        }
        // A watchdog shell runs the KDC and stops it when this test process is gone (a
        // realm kept in a static is never dropped) or when the shell is told to stop.
        let script = format!(
            "\"$0\" -n -r {REALM} & kdc=$!; trap 'kill $kdc; exit 0' TERM; \
             while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill $kdc",
            parent = std::process::id()
        );
        let process = Command::new("sh")
            .args(["-c", &script])
            .arg(&krb5kdc)
            .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // From here on, dropping the realm (a failed assertion included) stops the KDC.
        let kdc = Self {
            dir,
            process,
            krb5_conf,
            keytab,
            ccache,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "krb5kdc did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        run(&kinit, &["alice"], Some("alice-password\n"));
        Some(kdc)
    }

    /// The environment a client or server of this realm runs with.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KRB5_CONFIG", self.krb5_conf.display().to_string()),
            ("KRB5_KTNAME", format!("FILE:{}", self.keytab.display())),
            ("KRB5CCNAME", format!("FILE:{}", self.ccache.display())),
        ]
    }
}

/// Debian installs the KDC's programs in /usr/sbin, which a user's PATH may lack.
fn sbin(program: &str) -> Option<PathBuf> {
    let path = Path::new("/usr/sbin").join(program);
    path.is_file().then_some(path)
}

impl Drop for Kdc {
    fn drop(&mut self) {
        // SIGTERM: the watchdog stops the KDC, then exits.
        let _ = Command::new("kill")
            .arg(self.process.id().to_string())
            .status();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
