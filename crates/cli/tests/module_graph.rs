//! Issue #24: no two modules of a crate import each other, directly or through others.
//!
//! For every crate of the workspace (`crates/*` and the test support in `tests/`) this reads each module's source (its file, without
//! comments and without its `#[cfg(test)]` module), finds every path it names through
//! `crate::`, `super::` or `self::` (use trees with braces included), and resolves each to
//! the deepest module of the crate it reaches. A module naming its own ancestor or
//! descendant is how Rust nests modules and is not an edge; any other reference is. The
//! edges are then lifted to every level of the tree: at each module, its children form a
//! graph (a child depends on a sibling when anything inside the one names anything inside
//! the other), and that graph must have no cycle.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModulePath = Vec<String>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Every module file of a crate's `src`, by its module path (`lib.rs` and `main.rs` are the
/// root; `a/mod.rs` and `a.rs` are `a`; `a/b.rs` is `a::b`).
fn modules(src: &Path) -> BTreeMap<ModulePath, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: ModulePath = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod")) {
                module.pop();
            }
            if module.len() == 1 && matches!(module[0].as_str(), "lib" | "main") {
                module.clear();
            }
            found.insert(module, std::fs::read_to_string(&path).unwrap());
        }
    }
    found
}

/// The source without comments, literals and the trailing `#[cfg(test)] mod tests` (a test
/// module may reach anywhere; it is not part of the design).
fn code_of(source: &str) -> String {
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(at) => &source[..at],
        None => source,
    };
    let mut code = String::new();
    let mut rest = source;
    while let Some(next) = rest.chars().next() {
        let after_ident = code.ends_with(is_ident);
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, after)| after);
        } else if rest.starts_with("//") {
            rest = rest.split_once('\n').map_or("", |(_, after)| after);
            code.push('\n');
        } else if let Some(raw) = rest
            .strip_prefix('r')
            .filter(|raw| !after_ident && raw.trim_start_matches('#').starts_with('"'))
        {
            // A raw string, r"…" or r#"…"#: it ends only at a quote with as many hashes.
            let hashes = raw.len() - raw.trim_start_matches('#').len();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = &raw[hashes + 1..];
            rest = body.split_once(&close).map_or("", |(_, after)| after);
            code.push_str("\"\"");
        } else if next == '"' {
            // A string literal is skipped whole, so a "//" inside it is not a comment.
            let mut end = 1;
            let bytes = rest.as_bytes();
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            rest = rest.get(end + 1..).unwrap_or("");
            code.push_str("\"\"");
        } else if let Some(length) = char_literal(rest) {
            rest = &rest[length..];
            code.push_str("' '");
        } else {
            code.push(next);
            rest = &rest[next.len_utf8()..];
        }
    }
    code
}

/// The length of the character literal `text` starts with (`'"'`, `'\''`, `'é'`), if it
/// starts with one rather than a lifetime.
fn char_literal(text: &str) -> Option<usize> {
    let inner = text.strip_prefix('\'')?;
    let mut chars = inner.char_indices();
    let (_, first) = chars.next()?;
    if first == '\\' {
        // An escape: up to the closing quote (`'\n'`, `'\u{1F600}'`).
        return inner[1..].find('\'').map(|end| end + 3);
    }
    match chars.next() {
        Some((at, '\'')) => Some(1 + at + 1),
        _ => None,
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn skip_spaces(text: &str, mut at: usize) -> usize {
    while text[at..].starts_with(char::is_whitespace) {
        at += 1;
    }
    at
}

/// Reads one use tree at `text` (what follows `use ` or a `crate::`), returning each path it
/// names, with the name it is given there when `as` renames it.
fn paths_in_tree(text: &str) -> (Vec<(ModulePath, Option<String>)>, usize) {
    let mut prefix = ModulePath::new();
    let mut at = 0;
    loop {
        at = skip_spaces(text, at);
        if text[at..].starts_with('{') {
            at += 1;
            let mut all = Vec::new();
            loop {
                let (inner, used) = paths_in_tree(&text[at..]);
                at += used;
                all.extend(inner.into_iter().map(|(tail, alias)| {
                    let mut path = prefix.clone();
                    path.extend(tail);
                    (path, alias)
                }));
                at = skip_spaces(text, at);
                match text.as_bytes().get(at) {
                    Some(b',') => at += 1,
                    Some(b'}') => return (all, at + 1),
                    _ => return (all, at),
                }
                at = skip_spaces(text, at);
                if text[at..].starts_with('}') {
                    return (all, at + 1);
                }
            }
        }
        let start = at;
        while text[at..].starts_with(is_ident) {
            at += 1;
        }
        if at > start {
            prefix.push(text[start..at].to_owned());
        }
        if text[at..].starts_with("::") {
            at += 2;
            continue;
        }
        let mut alias = None;
        let after = skip_spaces(text, at);
        if let Some(renamed) = text[after..].strip_prefix("as ") {
            let name_at = skip_spaces(renamed, 0);
            let length = renamed[name_at..]
                .find(|c: char| !is_ident(c))
                .unwrap_or(renamed.len() - name_at);
            alias = Some(renamed[name_at..name_at + length].to_owned());
            at = after + 3 + name_at + length;
        }
        return (vec![(prefix, alias)], at);
    }
}

/// `relative` (what follows `crate::`, `super::` or `self::` in `module`) as an absolute
/// path.
fn absolute(module: &ModulePath, word: &str, relative: &[String]) -> ModulePath {
    let mut base = match word {
        "crate" => ModulePath::new(),
        "super" => module[..module.len().saturating_sub(1)].to_vec(),
        _ => module.clone(),
    };
    let mut rest = relative;
    while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
        base.pop();
        rest = tail;
    }
    base.extend(rest.iter().filter(|part| *part != "self").cloned());
    base
}

/// Every path `module`'s code names through `crate::`, `super::` or `self::`, made absolute.
fn references(module: &ModulePath, code: &str) -> Vec<ModulePath> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("::") {
        let before = &code[..at];
        let word_start = before
            .rfind(|c: char| !is_ident(c))
            .map_or(0, |index| index + 1);
        let word = &before[word_start..];
        let preceded_by_path = before[..word_start].ends_with("::");
        if preceded_by_path || !matches!(word, "crate" | "super" | "self") {
            continue;
        }
        let (paths, _) = paths_in_tree(&code[at + 2..]);
        found.extend(
            paths
                .into_iter()
                .map(|(relative, _)| absolute(module, word, &relative)),
        );
    }
    found
}

/// The names `module`'s `use` items bring in from this crate, each with the absolute path it
/// stands for: how a re-export (`pub use inner::Item;`, then `crate::Item`) is followed.
fn use_items(
    module: &ModulePath,
    code: &str,
    known: &BTreeSet<ModulePath>,
) -> BTreeMap<String, ModulePath> {
    let mut items = BTreeMap::new();
    for (at, _) in code.match_indices("use ") {
        if code[..at].ends_with(is_ident) {
            continue;
        }
        let (paths, _) = paths_in_tree(&code[at + 4..]);
        for (path, alias) in paths {
            let Some(first) = path.first() else { continue };
            let target = if matches!(first.as_str(), "crate" | "super" | "self") {
                absolute(module, first, &path[1..])
            } else {
                let mut child = module.clone();
                child.push(first.clone());
                if !known.contains(&child) {
                    continue; // another crate's
                }
                let mut target = module.clone();
                target.extend(path.iter().cloned());
                target
            };
            let leaf = path.iter().rev().find(|part| *part != "self");
            let Some(name) = alias.or_else(|| leaf.cloned()) else {
                continue;
            };
            if name != "_" {
                items.insert(name, target);
            }
        }
    }
    items
}

/// The deepest module of `known` that `path` lies in, following `use` re-exports.
fn module_of(
    path: &ModulePath,
    known: &BTreeSet<ModulePath>,
    uses: &BTreeMap<ModulePath, BTreeMap<String, ModulePath>>,
) -> ModulePath {
    let mut path = path.clone();
    for _ in 0..8 {
        let module = (0..=path.len())
            .rev()
            .map(|length| path[..length].to_vec())
            .find(|prefix| known.contains(prefix))
            .unwrap_or_default();
        let imported = path
            .get(module.len())
            .and_then(|name| uses.get(&module)?.get(name));
        match imported {
            Some(target) if *target != path[..=module.len()] => {
                let mut followed = target.clone();
                followed.extend(path[module.len() + 1..].iter().cloned());
                path = followed;
            }
            _ => return module,
        }
    }
    ModulePath::new()
}

/// The groups of nodes that reach each other (strongly connected components of more than
/// one node, or a node naming itself), each sorted.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut pending: Vec<&String> = graph.get(from).into_iter().flatten().collect();
        while let Some(node) = pending.pop() {
            if seen.insert(node.clone()) {
                pending.extend(graph.get(node).into_iter().flatten());
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|node| (node, reach(node))).collect();
    let mut groups = BTreeSet::new();
    for (node, from_node) in &reached {
        let group: Vec<String> = from_node
            .iter()
            .filter(|other| reached.get(other).is_some_and(|back| back.contains(*node)))
            .cloned()
            .collect();
        if !group.is_empty() {
            groups.insert(group);
        }
    }
    groups.into_iter().collect()
}

/// The cycles among sibling modules of one crate, each as `in parent: a, b reach each other`.
fn cycles_in(src: &Path) -> Vec<String> {
    let sources: BTreeMap<ModulePath, String> = modules(src)
        .into_iter()
        .map(|(module, source)| (module, code_of(&source)))
        .collect();
    let known: BTreeSet<ModulePath> = sources.keys().cloned().collect();
    let uses: BTreeMap<ModulePath, BTreeMap<String, ModulePath>> = sources
        .iter()
        .map(|(module, code)| (module.clone(), use_items(module, code, &known)))
        .collect();
    // At each parent, its children's graph.
    let mut levels: BTreeMap<ModulePath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, code) in &sources {
        for named in references(module, code) {
            let target = module_of(&named, &known, &uses);
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.len() || common == target.len() {
                continue; // an ancestor or a descendant
            }
            levels
                .entry(module[..common].to_vec())
                .or_default()
                .entry(module[common].clone())
                .or_default()
                .insert(target[common].clone());
        }
    }
    levels
        .iter()
        .flat_map(|(parent, graph)| {
            let parent = if parent.is_empty() {
                "crate".to_owned()
            } else {
                parent.join("::")
            };
            cycles(graph).into_iter().map(move |group| {
                format!(
                    "{}: in {parent}: {} reach each other",
                    src.display(),
                    group.join(", ")
                )
            })
        })
        .collect()
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let mut cycles = Vec::new();
    let mut crates = 0;
    let members = std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .chain([workspace().join("tests")]);
    for member in members {
        let src = member.join("src");
        if src.is_dir() {
            crates += 1;
            cycles.extend(cycles_in(&src));
        }
    }
    assert!(crates >= 14, "found {crates} crates");
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

/// A planted crate in which each feature of the reader carries an edge no other one does:
/// the cycle a → b → c → a and b ↔ d (so a, b, c and d reach each other) holds only if a
/// nested use group with a rename (a → b), a re-export through the crate root (b → c),
/// `super::super` (d → b) and a path after a `'"'` literal (c → a) are all read; and e
/// joins them if a comment, a string, a raw string or a test module in c counts (c → e,
/// where e → c).
#[test]
fn the_check_reads_each_kind_of_path_and_nothing_else() {
    let planted = std::env::temp_dir().join(format!("module-graph-{}", std::process::id()));
    std::fs::create_dir_all(planted.join("d")).unwrap();
    let files = [
        (
            "lib.rs",
            "mod a;\nmod b;\nmod c;\nmod d;\nmod e;\npub use c::Item;\n",
        ),
        ("a.rs", "use crate::{b::{Thing, Other as Another}};\n"),
        ("b.rs", "use crate::d;\nfn f() { let _ = crate::Item; }\n"),
        ("d.rs", "mod inner;\n"),
        ("d/inner.rs", "use super::super::b::Thing;\n"),
        (
            "c.rs",
            "// use crate::e;\nconst S: &str = \"crate::e::X\";\n\
             const R: &str = r#\"x\" crate::e::Z \"#;\n\
             fn g() { let _ = '\"'; crate::a::h(); }\n\
             #[cfg(test)]\nmod tests {\n    use crate::e;\n}\n",
        ),
        ("e.rs", "use crate::c::g;\n"),
    ];
    for (name, text) in files {
        std::fs::write(planted.join(name), text).unwrap();
    }
    let found = cycles_in(&planted);
    std::fs::remove_dir_all(&planted).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].ends_with("in crate: a, b, c, d reach each other"),
        "{found:?}"
    );
}

#[test]
fn literals_are_not_code() {
    assert_eq!(code_of("let q = '\"'; crate::x"), "let q = ' '; crate::x");
    assert_eq!(
        code_of("fn f<'a>(x: &'a str) {}"),
        "fn f<'a>(x: &'a str) {}"
    );
    assert_eq!(code_of("r#\"a \" b\"# c"), "\"\" c");
    assert_eq!(code_of("for r in x {} \"s\""), "for r in x {} \"\"");
    assert_eq!(code_of("'\\n' '\\u{1F600}' y"), "' ' ' ' y");
}
