//! What a packaged socksgate ships besides the binary: man pages that render, shell
//! completions that load, a version that says what the build is, and a configuration
//! reference that names every key the parser knows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::process::Command;

use socksgate_tests::interop::tool;

const SOCKSGATE: &str = env!("CARGO_BIN_EXE_socksgate");

#[test]
fn the_man_pages_render_without_warnings() {
    let dir = std::env::temp_dir().join(format!("sg-man-{}", std::process::id()));
    let status = Command::new(SOCKSGATE)
        .arg("man")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    for page in ["socksgate.1", "socksgate-serve.1", "socksgate-socksify.1"] {
        assert!(dir.join(page).exists(), "{page} missing");
    }
    // Hidden internal commands get no page.
    assert!(!dir.join("socksgate-__tun-exec.1").exists());
    let Some(man) = tool("man") else {
        return;
    };
    for (page, expected) in [
        ("socksgate.1", "serve"),
        ("socksgate-serve.1", "--check-only"),
        ("socksgate.toml.5", "max_sessions_per_source"),
    ] {
        let output = Command::new(&man)
            .args(["--warnings", "-l"])
            .arg(dir.join(page))
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let warnings = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{page}: {warnings}");
        assert!(warnings.trim().is_empty(), "{page}: {warnings}");
        // Rendered text may carry overstrike for bold; compare without it.
        assert!(
            strip_overstrike(&text).contains(expected),
            "{page} does not mention {expected}:\n{text}"
        );
    }
}

/// Removes `x\bx` (bold) and `_\bx` (underline) overstrikes.
fn strip_overstrike(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for character in text.chars() {
        if character == '\u{8}' {
            out.pop();
            continue;
        }
        out.push(character);
    }
    out.into_iter().collect()
}

#[test]
fn bash_completions_load() {
    let Some(bash) = tool("bash") else {
        return;
    };
    let output = Command::new(bash)
        .arg("-c")
        .arg(format!(
            "source <({SOCKSGATE} completions bash) && complete -p socksgate"
        ))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains("complete") && said.trim_end().ends_with("socksgate"),
        "{said}"
    );
    for shell in ["zsh", "fish"] {
        let output = Command::new(SOCKSGATE)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(
            output.status.success() && !output.stdout.is_empty(),
            "{shell}"
        );
    }
}

#[test]
fn the_version_says_what_the_build_is() {
    let output = Command::new(SOCKSGATE).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&output.stdout);
    assert!(
        version.starts_with(&format!("socksgate {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert!(version.contains("rustc "), "{version}");
    assert!(
        version.contains("git ") || version.contains("no git commit"),
        "{version}"
    );
}

/// Every field the configuration parser accepts (read from its raw structs) is in
/// docs/configuration.md, which socksgate.toml(5) is made from.
#[test]
fn the_configuration_reference_names_every_key() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let raw = std::fs::read_to_string(format!("{root}/crates/config/src/raw.rs")).unwrap();
    let reference = std::fs::read_to_string(format!("{root}/docs/configuration.md")).unwrap();
    let mut keys = 0;
    for line in raw.lines() {
        let Some(field) = line.trim().strip_prefix("pub(crate) ") else {
            continue;
        };
        let Some((name, _)) = field.split_once(':') else {
            continue;
        };
        if name.contains(' ') || name.contains('(') {
            continue;
        }
        // Keys of inline tables are shown inside their example (`{ cert = "FILE" }`), the
        // top-level tables as headings.
        let as_key = format!("`{name}`");
        let in_example = format!("{name} = ");
        let as_table = [format!("[{name}]"), format!("[[{name}]]")];
        assert!(
            reference.contains(&as_key)
                || reference.contains(&in_example)
                || as_table.iter().any(|t| reference.contains(t)),
            "docs/configuration.md does not mention {name}"
        );
        keys += 1;
    }
    assert!(keys > 100, "only {keys} fields read");
}

/// The user guide (docs/, with docs/SUMMARY.md) builds with mdBook, every page it lists
/// present (`create-missing = false`).
#[test]
fn the_user_guide_builds_with_mdbook() {
    let Some(mdbook) = tool("mdbook") else {
        return;
    };
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs");
    let out = std::env::temp_dir().join(format!("sg-book-{}", std::process::id()));
    let output = Command::new(mdbook)
        .arg("build")
        .arg(docs)
        .arg("--dest-dir")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for page in [
        "index.html",
        "quick-start.html",
        "migration.html",
        "fleet.html",
        "extensions/icmp.html",
    ] {
        assert!(out.join(page).exists(), "{page} not built");
    }
}
