//! Builds the LD_PRELOAD library and hands it to the binary, which embeds it: `socksgate
//! socksify` then works from any build, with nothing to install beside the binary.
//!
//! The library is built by a nested cargo in a target directory of its own (inside OUT_DIR),
//! so it never waits on the outer build's lock.

// A build script reports failure by panicking.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    build_info();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let target_dir = out.join("preload-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "--offline", "-p", "socksgate-preload"])
        .arg("--manifest-path")
        .arg(manifest_dir.join("../../Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_TARGET_DIR");
    if release {
        build.arg("--release");
    }
    let status = build
        .status()
        .expect("running cargo for the preload library");
    assert!(status.success(), "building socksgate-preload failed");
    let built = target_dir
        .join(if release { "release" } else { "debug" })
        .join("libsocksgate_preload.so");
    std::fs::copy(&built, out.join("libsocksgate_preload.so"))
        .expect("copying the preload library");
    for dir in [
        "preload/src",
        "preload/Cargo.toml",
        "proto/src",
        "policy/src",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            Path::new("..").join(dir).display()
        );
    }
}

/// What `--version` says of this build: the commit (when built from git), the compiler and
/// the optional features.
fn build_info() {
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let commit = run("git", &["rev-parse", "--short=12", "HEAD"]).map_or_else(
        || "no git commit".to_owned(),
        |commit| {
            let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|status| !status.is_empty());
            format!("git {commit}{}", if dirty { "+changes" } else { "" })
        },
    );
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let compiler = run(&rustc, &["--version"]).unwrap_or_else(|| "rustc".to_owned());
    let features: Vec<&str> = [
        ("pam", "CARGO_FEATURE_PAM"),
        ("gssapi", "CARGO_FEATURE_GSSAPI"),
    ]
    .into_iter()
    .filter(|(_, variable)| std::env::var_os(variable).is_some())
    .map(|(name, _)| name)
    .collect();
    let features = if features.is_empty() {
        "no optional features".to_owned()
    } else {
        format!("features: {}", features.join(", "))
    };
    println!("cargo:rustc-env=SOCKSGATE_BUILD={commit}, {compiler}, {features}");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/index");
}
