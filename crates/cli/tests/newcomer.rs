//! Issue #30: the newcomer's path — the commands of the README and the guides as a new user
//! types them, and the mistakes every user makes, each with the message and the exit code
//! it must give.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};

fn socksgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_socksgate"))
}

fn scratch(name: &str, text: &str) -> PathBuf {
    socksgate_tests::server::scratch_file("newcomer", name, text)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Point 1, as the README has it: the example gateway checks, and what `check` accepts
/// starts (`serve --check-only` runs everything starting reads).
#[test]
fn point_1_the_example_gateway_checks_and_starts_as_shipped() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/gateway.toml");
    let check = socksgate().args(["check", "-c", example]).output().unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let start = socksgate()
        .args(["serve", "--check-only", "-c", example])
        .output()
        .unwrap();
    assert!(start.status.success(), "{}", stderr(&start));
}

/// Point 1, and the acceptance's agreement test: broken configurations — a missing password
/// file, a mistyped one, a missing group file, a log in a missing directory, an unreadable
/// TLS key, a missing admin token — get the same file:line:column: field error from `check`
/// and from `serve --check-only`, exit status 2, and nothing else on standard error.
#[test]
fn point_1_check_and_serve_agree_on_every_file_a_configuration_names() {
    let users = scratch("agree-users", "# nobody yet\n");
    let users = users.display();
    let garbage = scratch("agree-cert.pem", "not a certificate\n");
    let garbage = garbage.display();
    let authority = socksgate_tests::pki::Authority::new("agree");
    let server = authority.server("agree");
    let cert = server.cert.display();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing password file",
            "[auth]\npassword_file = \"no-such-users\"\n".to_owned(),
            ":2:17: field `auth.password_file`: ",
        ),
        (
            "mistyped password file",
            "[auth]\n# the users\npassword_file = \"agree-usr\"\n".to_owned(),
            ":3:17: field `auth.password_file`: ",
        ),
        (
            "missing group file",
            format!("[auth]\npassword_file = \"{users}\"\ngroup_file = \"no-groups\"\n"),
            ":3:14: field `auth.group_file`: ",
        ),
        (
            "log in a missing directory",
            "[log]\noutput = \"/nonexistent-dir/socksgate.log\"\n".to_owned(),
            ":2:10: field `log.output`: ",
        ),
        (
            "unusable TLS certificate",
            format!(
                "[[listen]]\naddress = \"127.0.0.1:1080\"\n\n[[listen]]\naddress = \"127.0.0.1:1443\"\ntls = {{ cert = \"{garbage}\", key = \"no-key.pem\" }}\n"
            ),
            ":6:16: field `listen[1].tls.cert`: ",
        ),
        (
            "unreadable TLS key",
            format!(
                "[[listen]]\naddress = \"127.0.0.1:1443\"\n[listen.tls]\ncert = \"{cert}\"\nkey = \"no-key.pem\"\n"
            ),
            ":5:7: field `listen[0].tls.key`: ",
        ),
        (
            "missing admin token",
            "[admin]\naddress = \"127.0.0.1:9180\"\ntoken_file = \"no-token\"\n".to_owned(),
            ":3:14: field `admin.token_file`: ",
        ),
    ];
    for (what, text, expected) in cases {
        let path = scratch(&format!("agree-{}.toml", what.replace(' ', "-")), &text);
        let check = socksgate()
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let serve = socksgate()
            .args(["serve", "--check-only", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let (check_says, serve_says) = (stderr(&check), stderr(&serve));
        assert_eq!(check.status.code(), Some(2), "{what}: check: {check_says}");
        assert_eq!(serve.status.code(), Some(2), "{what}: serve: {serve_says}");
        let prefix = format!("error: {}{expected}", path.display());
        assert!(
            check_says.starts_with(&prefix),
            "{what}: check said {check_says}"
        );
        assert_eq!(check_says, serve_says, "{what}: check and serve disagree");
        assert_eq!(check_says.lines().count(), 1, "{what}: {check_says}");
        // And the running server would not have started either.
        assert!(
            check.stdout.is_empty(),
            "{what}: check printed a configuration"
        );
    }
}
