//! Issue #30: the help and the documentation agree. Every command README.md and the user
//! guide show (in code blocks, and inline as `socksgate …`) names a subcommand that exists
//! and only flags its `--help` lists; the ones that can run here, on the repository's own
//! files, run and succeed as shown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_socksgate");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn help(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).arg("--help").output().unwrap();
    assert!(output.status.success(), "{args:?} --help failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The subcommands `socksgate --help` lists, each with the flags its own `--help` lists.
fn subcommands() -> BTreeMap<String, BTreeSet<String>> {
    let top = help(&[]);
    let listed = top
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("    "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(listed.len() >= 10, "{listed:?}");
    listed
        .into_iter()
        .map(|name| {
            let flags = flags_in(&help(&[&name]));
            (name, flags)
        })
        .collect()
}

/// The flags a help text defines (`-x, --proxy <URL>` gives `-x` and `--proxy`).
fn flags_in(help: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for line in help.lines().map(str::trim_start) {
        if !line.starts_with('-') {
            continue;
        }
        for token in line.split([',', ' ']) {
            let name = token.split(['=', '<', '[']).next().unwrap_or("");
            if name.starts_with('-') && name.len() > 1 {
                flags.insert(name.to_owned());
            }
        }
    }
    flags
}

/// A command line as the documentation shows it: file:line, its words, and whether it is
/// in a shell block (to be run as shown) or mentioned in prose.
struct Shown {
    place: String,
    words: Vec<String>,
    in_block: bool,
}

/// Splits a shell line into words (quotes kept together, a `#` comment dropped).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '#') if !started => break,
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (_, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// The words of each `socksgate` command `line` runs: a command (of those `&&`, `;` or a
/// pipe join) that begins with socksgate after `sudo` and variables, or `cargo run … --`.
fn socksgate_commands(line: &str) -> Vec<Vec<String>> {
    let all = words(line.trim().trim_start_matches("$ "));
    // A command quoted inside another (`ssh -o ProxyCommand='socksgate connect …'`).
    let inner: Vec<Vec<String>> = all
        .iter()
        .filter_map(|word| {
            let command = word
                .split_once('=')
                .map_or(word.as_str(), |(_, value)| value);
            command
                .starts_with("socksgate ")
                .then(|| socksgate_commands(command))
        })
        .flatten()
        .collect();
    all.split(|word| matches!(word.as_str(), "|" | "&&" | ";" | "||"))
        .filter_map(|command| {
            let mut rest = command
                .iter()
                .skip_while(|word| word.as_str() == "sudo" || word.contains('='))
                .cloned()
                .collect::<Vec<_>>();
            let first = rest.first()?.clone();
            if first == "cargo" {
                let after = rest.iter().position(|word| word == "--")?;
                rest.drain(..after);
                rest[0] = "socksgate".to_owned();
            } else if first != "socksgate" && !first.ends_with("/socksgate") {
                return None;
            }
            // A redirection ends its words.
            let end = rest
                .iter()
                .position(|word| word.starts_with('>') || word.starts_with('<'))
                .unwrap_or(rest.len());
            rest.truncate(end);
            Some(rest)
        })
        .chain(inner)
        .collect()
}

/// Every command README.md and the guide's pages show.
fn shown_commands(subcommands: &BTreeMap<String, BTreeSet<String>>) -> Vec<Shown> {
    let mut documents = vec![root().join("README.md")];
    let mut pending = vec![root().join("docs")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                documents.push(path);
            }
        }
    }
    let mut shown = Vec::new();
    for document in documents {
        let text = std::fs::read_to_string(&document).unwrap();
        let name = document
            .strip_prefix(root())
            .unwrap_or(&document)
            .display()
            .to_string();
        let mut in_block = None;
        let mut continued = String::new();
        for (index, line) in text.lines().enumerate() {
            let place = format!("{name}:{}", index + 1);
            if let Some(fence) = line.trim_start().strip_prefix("```") {
                in_block = match in_block {
                    None => Some(fence.trim().to_owned()),
                    Some(_) => None,
                };
                continue;
            }
            match &in_block {
                // Shell blocks: each command, continuation lines joined.
                Some(kind) if matches!(kind.as_str(), "sh" | "console" | "shell" | "bash" | "") => {
                    if let Some(head) = line.strip_suffix('\\') {
                        continued.push_str(head);
                        continue;
                    }
                    let whole = std::mem::take(&mut continued) + line;
                    for words in socksgate_commands(&whole) {
                        shown.push(Shown {
                            place: place.clone(),
                            words,
                            in_block: true,
                        });
                    }
                }
                Some(_) => {}
                // Prose: inline code that runs a subcommand.
                None => {
                    for (number, span) in line.split('`').enumerate() {
                        let runs_one = span
                            .strip_prefix("socksgate ")
                            .and_then(|rest| rest.split_whitespace().next())
                            .is_some_and(|sub| subcommands.contains_key(sub));
                        if number % 2 == 1 && runs_one {
                            shown.push(Shown {
                                place: place.clone(),
                                words: words(span),
                                in_block: false,
                            });
                        }
                    }
                }
            }
        }
    }
    shown
}

/// The flags of a shown command (up to `--`, after which the words are a program's).
fn used_flags(words: &[String]) -> Vec<String> {
    words
        .iter()
        .skip(2)
        .take_while(|word| word.as_str() != "--")
        .filter(|word| word.starts_with('-') && word.len() > 1)
        .map(|word| word.split('=').next().unwrap().to_owned())
        .collect()
}

#[test]
fn every_documented_command_uses_flags_its_help_lists() {
    let subcommands = subcommands();
    let shown = shown_commands(&subcommands);
    assert!(
        shown.len() >= 40,
        "only {} commands found in the docs",
        shown.len()
    );
    let global: BTreeSet<String> = flags_in(&help(&[]));
    let mut wrong = Vec::new();
    for Shown { place, words, .. } in &shown {
        let Some(sub) = words.get(1) else {
            continue;
        };
        if sub.starts_with('-') {
            if !global.contains(sub.split('=').next().unwrap()) {
                wrong.push(format!("{place}: socksgate {sub}: not in socksgate --help"));
            }
            continue;
        }
        let Some(flags) = subcommands.get(sub) else {
            wrong.push(format!(
                "{place}: no subcommand {sub:?} ({})",
                words.join(" ")
            ));
            continue;
        };
        for flag in used_flags(words) {
            // A value glued to a short flag (`-c3`) is the short flag.
            let short = flag.get(..2).unwrap_or(&flag).to_owned();
            let glued = flag.len() > 2 && !flag.starts_with("--") && flags.contains(&short);
            if !(flags.contains(&flag) || glued) {
                wrong.push(format!(
                    "{place}: socksgate {sub} {flag}: not in its --help"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the docs and the help disagree:\n{}",
        wrong.join("\n")
    );
}

/// Whether a word stands for something to fill in (FILE, DIR, bash|zsh|fish, [--user NAME]).
fn placeholder(word: &str) -> bool {
    word.contains(['|', '[', '<', '…'])
        || (word.len() > 1 && word.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
}

#[test]
fn the_documented_commands_that_run_on_the_repository_work_as_shown() {
    let subcommands = subcommands();
    let scratch = socksgate_tests::server::scratch_dir("documented");
    let mut ran = Vec::new();
    for Shown {
        place,
        words,
        in_block,
    } in shown_commands(&subcommands)
    {
        let Some(sub) = words.get(1).filter(|_| in_block) else {
            continue;
        };
        // What runs to completion on its own (a client needs a peer); a server is checked
        // as starting it would (`--check-only`), and passwd writes into a scratch file.
        if !matches!(
            sub.as_str(),
            "check"
                | "completions"
                | "man"
                | "import"
                | "serve"
                | "passwd"
                | "--version"
                | "--help"
        ) {
            continue;
        }
        // Files it names must be the repository's (not /etc/… of an installed system); the
        // file passwd writes is made in a scratch directory.
        let names_a_file = |word: &&String| {
            !word.starts_with('-')
                && !word.contains(':')
                && (word.contains('/') || word.contains('.'))
        };
        let files: Vec<&String> = words[2..]
            .iter()
            .skip(usize::from(sub == "passwd"))
            .filter(names_a_file)
            .collect();
        // One of the repository's own files must be there (a typo is a broken example).
        for file in &files {
            let ours = ["examples/", "docs/", "dist/"]
                .iter()
                .any(|top| file.starts_with(top));
            assert!(
                !ours || root().join(file).exists(),
                "{place}: `{}` names {file}, which the repository does not have",
                words.join(" ")
            );
        }
        let files_here = files
            .iter()
            .all(|word| !word.starts_with('/') && root().join(word).exists());
        if !files_here {
            continue;
        }
        let mut arguments = words[2..].to_vec();
        let mut input = None;
        match sub.as_str() {
            "serve" => arguments.insert(0, "--check-only".to_owned()),
            "passwd" => {
                if !arguments.iter().any(|word| word == "--stdin") {
                    continue;
                }
                let Some(file) = arguments.first_mut() else {
                    continue;
                };
                *file = scratch.join(&*file).display().to_string();
                input = Some("a password\n");
            }
            _ => {}
        }
        let arguments = &arguments;
        if arguments.iter().any(|word| placeholder(word)) {
            continue;
        }
        let mut command = Command::new(BIN);
        command
            .arg(sub)
            .args(arguments.iter().map(|word| {
                // `man DIR` writes into a directory: one of the test's.
                if sub == "man" && !word.starts_with('-') {
                    scratch.display().to_string()
                } else {
                    word.clone()
                }
            }))
            .current_dir(root())
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            use std::io::Write;
            stdin.write_all(text.as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{place}: `{}` failed: {}",
            words.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        ran.push(place);
    }
    // The README's `check` and `serve` of examples/gateway.toml, its `--listen`, passwd.
    assert!(ran.len() >= 5, "{ran:?}");
}

/// ARCHITECTURE.md's map of the crates says, for each, which crates of the workspace it
/// uses: exactly the `socksgate-*` entries of its Cargo.toml `[dependencies]`.
#[test]
fn the_architecture_map_names_each_crates_dependencies() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let block = map
        .split("```text")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let mut checked = 0;
    for line in block.lines().filter(|line| line.starts_with("socksgate")) {
        let (_, rest) = line.split_once('(').unwrap();
        let (folder, rest) = rest.split_once(')').unwrap();
        let uses = rest.trim_start();
        let uses = uses.split("  ").next().unwrap().trim_end_matches(';');
        let said: BTreeSet<String> = uses
            .split(", ")
            .map(|name| name.trim_end_matches(" (feature)").trim().to_owned())
            .filter(|name| name != "-")
            .collect();
        let manifest =
            std::fs::read_to_string(root().join("crates").join(folder).join("Cargo.toml")).unwrap();
        let dependencies = manifest
            .split("[dependencies]")
            .nth(1)
            .unwrap()
            .split("\n[")
            .next()
            .unwrap();
        let actual: BTreeSet<String> = dependencies
            .lines()
            .filter_map(|line| line.strip_prefix("socksgate-"))
            .map(|line| line.split(['.', ' ', '=']).next().unwrap().to_owned())
            .collect();
        assert_eq!(said, actual, "ARCHITECTURE.md on crates/{folder}");
        checked += 1;
    }
    assert_eq!(checked, 14, "every crate in the map");
}
