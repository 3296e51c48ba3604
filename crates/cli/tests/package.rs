//! The Debian package (`dist/build-deb`, whose path CI passes in SOCKSGATE_DEB): installed
//! with dpkg on this machine, its files are in place, the shipped configuration checks, the
//! system user exists, and a purge removes it all.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::Path;
use std::process::Command;

use socksgate_tests::interop::{skip_or_fail, tool};

const INSTALLED: [&str; 9] = [
    "/usr/bin/socksgate",
    "/usr/lib/socksgate/libsocksgate_preload.so",
    "/lib/systemd/system/socksgate.service",
    "/lib/systemd/system/socksgate.socket",
    "/lib/systemd/system/socksgate@.service",
    "/etc/socksgate/socksgate.toml",
    "/usr/share/bash-completion/completions/socksgate",
    "/usr/share/zsh/vendor-completions/_socksgate",
    "/usr/share/fish/vendor_completions.d/socksgate.fish",
];

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap()
}

fn man_page(name: &str, section: u8) -> bool {
    ["", ".gz"].iter().any(|suffix| {
        Path::new(&format!(
            "/usr/share/man/man{section}/{name}.{section}{suffix}"
        ))
        .exists()
    })
}

#[test]
fn the_debian_package_installs_checks_and_purges_cleanly() {
    let Some(deb) = std::env::var_os("SOCKSGATE_DEB") else {
        skip_or_fail("SOCKSGATE_DEB is not set (dist/build-deb makes the package)");
        return;
    };
    let Some(dpkg) = tool("dpkg") else {
        return;
    };
    if !rustix::process::geteuid().is_root() {
        skip_or_fail("installing a package needs root");
        return;
    }
    let dpkg = dpkg.to_str().unwrap().to_owned();
    let deb = deb.to_str().unwrap().to_owned();
    // GSS-API and PAM are loaded at run time, which dpkg-shlibdeps cannot see: the package
    // names their libraries itself, and the binary links neither.
    let recommends = run("dpkg-deb", &["--field", &deb, "Recommends"]);
    let recommends = String::from_utf8_lossy(&recommends.stdout).into_owned();
    assert!(
        recommends.contains("libgssapi-krb5-2") && recommends.contains("libpam0g"),
        "Recommends: {recommends}"
    );
    let depends = run("dpkg-deb", &["--field", &deb, "Depends"]);
    let depends = String::from_utf8_lossy(&depends.stdout).into_owned();
    assert!(
        !depends.contains("libgssapi") && !depends.contains("libpam"),
        "Depends: {depends}"
    );
    let installed = run(&dpkg, &["-i", &deb]);
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );

    for file in INSTALLED {
        assert!(Path::new(file).exists(), "{file} is not installed");
    }
    assert!(man_page("socksgate", 1) && man_page("socksgate-serve", 1));
    assert!(man_page("socksgate.toml", 5));
    assert!(
        run("getent", &["passwd", "socksgate"]).status.success(),
        "no socksgate user"
    );
    let check = run(
        "/usr/bin/socksgate",
        &["check", "-c", "/etc/socksgate/socksgate.toml"],
    );
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let listed = String::from_utf8_lossy(&run(&dpkg, &["-L", "socksgate"]).stdout).into_owned();
    assert!(listed.contains("/usr/share/doc/socksgate"), "{listed}");

    let purged = run(&dpkg, &["--purge", "socksgate"]);
    assert!(
        purged.status.success(),
        "{}",
        String::from_utf8_lossy(&purged.stderr)
    );
    for file in INSTALLED {
        assert!(!Path::new(file).exists(), "{file} is left after the purge");
    }
    assert!(
        !Path::new("/etc/socksgate").exists(),
        "/etc/socksgate is left after the purge"
    );
    assert!(!man_page("socksgate.toml", 5));
    assert!(
        !run("getent", &["passwd", "socksgate"]).status.success(),
        "the user is left"
    );
}
