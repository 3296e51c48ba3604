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
