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

/// A program at a fixed path (Debian's python3 rather than a pyenv one on PATH), under the
/// same skip-or-fail rule.
pub fn tool_at(path: &str) -> Option<PathBuf> {
    let path = PathBuf::from(path);
    if path.is_file() {
        Some(path)
    } else {
        skip_or_fail(&format!("{} is missing", path.display()));
        None
    }
}

/// Panics in CI, prints a skip notice elsewhere.
pub fn skip_or_fail(why: &str) {
    assert!(!required(), "SOCKSGATE_REQUIRE_INTEROP=1 but {why}");
    eprintln!("skipping: {why}");
}

/// Output of a third-party program run under `timeout(1)`.
#[derive(Debug)]
pub struct Run {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `program` with `args` (and `env`), killed after `seconds`; proxy variables from the
/// caller's environment are removed so only the test's settings apply.
pub fn run(program: &std::path::Path, args: &[&str], env: &[(&str, &str)], seconds: u32) -> Run {
    let mut command = std::process::Command::new("timeout");
    command.arg(seconds.to_string()).arg(program).args(args);
    for variable in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "SOCKS_SERVER",
        "SOCKS5_SERVER",
    ] {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("timeout(1) runs");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A child process killed and reaped when dropped: when its test ends, passed or not, so a
/// failed test leaves no server behind holding a port or the harness's output.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;

    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}
