//! `socksgate check`: validate a configuration and show what it means.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use socksgate_config::Config;

use crate::exit;

/// Validates the file, reads every file and library it names as starting would, and prints
/// the effective configuration with warnings about rules that can never match.
pub(crate) fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error}");
            return exit::code(exit::CONFIG);
        }
    };
    // What starting reads besides the file, read the same way (`serve` shares this).
    let stage = crate::preflight::Stage::Start {
        start_logging: || Ok(()),
    };
    if let Err(error) = crate::preflight::load(&config, path, stage) {
        let _ = writeln!(std::io::stderr(), "error: {error}");
        return exit::code(exit::CONFIG);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "# {}: OK. The effective configuration:",
        path.display()
    );
    let _ = write!(out, "{}", config.to_toml_redacted());
    let mut err = std::io::stderr().lock();
    for (rule, earlier) in config.policy.shadowed_rules() {
        let _ = writeln!(
            err,
            "warning: rule {} can never match: rule {} above it matches everything it does",
            rule.origin, earlier.origin
        );
    }
    for (rule, earlier) in config.policy.udp_routes_behind_allows() {
        let _ = writeln!(
            err,
            "warning: rule {} routes UDP, but rule {} above it allows UDP: an association it \
             grants goes out directly and drops the datagrams rule {} would route",
            rule.origin, earlier.origin, rule.origin
        );
    }
    if let Some(user) = &config.process.user {
        for (field, file) in crate::service::unreadable_after_the_drop(&config, path) {
            let _ = writeln!(
                err,
                "warning: {field} {}: {user} cannot read it; the server runs as {user} once \
                 its listeners are open and reads it again then (a reload, a change, a renewal) \
                 — give {user} read access (and search on its directories)",
                file.display()
            );
        }
    }
    for (rule, block) in config.policy.guarded_rules() {
        let _ = writeln!(
            err,
            "warning: rule {} allows {block}, which deny_private_destinations refuses whatever \
             the rules say; set it to false under [policy] if the rule is meant",
            rule.origin
        );
    }
    ExitCode::SUCCESS
}
