//! Third-party programs: tests that need one skip when it is missing on a developer's machine
//! and fail when it is missing in CI (`SOCKSGATE_REQUIRE_INTEROP=1`).

use std::path::PathBuf;

/// Whether CI demands every interop test to run.
pub fn required() -> bool {
    std::env::var("SOCKSGATE_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

/// The path of `program`, or `None` (after saying so) when it is missing and not required.
pub fn tool(program: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        skip_or_fail(&format!("{program} is not installed"));
    }
    found
}

/// Panics in CI, prints a skip notice elsewhere.
pub fn skip_or_fail(why: &str) {
    assert!(!required(), "SOCKSGATE_REQUIRE_INTEROP=1 but {why}");
    eprintln!("skipping: {why}");
}
