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

/// The source without comments and without the trailing `#[cfg(test)] mod tests` (a test
/// module may reach anywhere; it is not part of the design).
fn code_of(source: &str) -> String {
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(at) => &source[..at],
        None => source,
    };
    let mut code = String::new();
    let mut rest = source;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, after)| after);
        } else if rest.starts_with("//") {
            rest = rest.split_once('\n').map_or("", |(_, after)| after);
            code.push('\n');
        } else if rest.starts_with('"') {
            // A string literal is skipped whole, so a "//" inside it is not a comment.
            let mut end = 1;
            let bytes = rest.as_bytes();
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            rest = rest.get(end + 1..).unwrap_or("");
            code.push_str("\"\"");
        } else {
            let next = rest.chars().next().unwrap();
            code.push(next);
            rest = &rest[next.len_utf8()..];
        }
    }
    code
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Reads one use tree at `text` (what follows a `crate::`), returning each path it names.
fn paths_in_tree(text: &str) -> (Vec<ModulePath>, usize) {
    let mut prefix = ModulePath::new();
    let mut at = 0;
    let bytes = text.as_bytes();
    loop {
        while at < bytes.len() && (bytes[at] as char).is_whitespace() {
            at += 1;
        }
        if text[at..].starts_with('{') {
            at += 1;
            let mut all = Vec::new();
            loop {
                let (inner, used) = paths_in_tree(&text[at..]);
                at += used;
                all.extend(inner.into_iter().map(|tail| {
                    let mut path = prefix.clone();
                    path.extend(tail);
                    path
                }));
                while at < bytes.len() && (bytes[at] as char).is_whitespace() {
                    at += 1;
                }
                match bytes.get(at) {
                    Some(b',') => at += 1,
                    Some(b'}') => return (all, at + 1),
                    _ => return (all, at),
                }
                while at < bytes.len() && (bytes[at] as char).is_whitespace() {
                    at += 1;
                }
                if bytes.get(at) == Some(&b'}') {
                    return (all, at + 1);
                }
            }
        }
        let start = at;
        while at < bytes.len() && is_ident(bytes[at] as char) {
            at += 1;
        }
        if at > start {
            prefix.push(text[start..at].to_owned());
        }
        if text[at..].starts_with("::") {
            at += 2;
        } else {
            return (vec![prefix], at);
        }
    }
}

/// Every module path `module`'s code names, made absolute.
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
        for relative in paths {
            let mut base = match word {
                "crate" => ModulePath::new(),
                "super" => module[..module.len().saturating_sub(1)].to_vec(),
                _ => module.clone(),
            };
            let mut rest = relative.as_slice();
            while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
                base.pop();
                rest = tail;
            }
            base.extend(rest.iter().filter(|part| *part != "self").cloned());
            found.push(base);
        }
    }
    found
}

/// The deepest module of `known` that `path` lies in.
fn module_of(path: &ModulePath, known: &BTreeSet<ModulePath>) -> ModulePath {
    (0..=path.len())
        .rev()
        .map(|length| path[..length].to_vec())
        .find(|prefix| known.contains(prefix))
        .unwrap_or_default()
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
    let sources = modules(src);
    let known: BTreeSet<ModulePath> = sources.keys().cloned().collect();
    // At each parent, its children's graph.
    let mut levels: BTreeMap<ModulePath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, source) in &sources {
        for named in references(module, &code_of(source)) {
            let target = module_of(&named, &known);
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

#[test]
fn the_check_sees_a_cycle_through_a_third_module_and_in_a_use_tree() {
    let planted = std::env::temp_dir().join(format!("module-graph-{}", std::process::id()));
    std::fs::create_dir_all(planted.join("a")).unwrap();
    std::fs::write(planted.join("lib.rs"), "mod a; mod b; mod c;\n").unwrap();
    std::fs::write(planted.join("a.rs"), "use crate::{b::Thing, c};\n").unwrap();
    std::fs::write(planted.join("a/inner.rs"), "use super::super::b;\n").unwrap();
    std::fs::write(planted.join("b.rs"), "// use crate::a;\nuse crate::c::X;\n").unwrap();
    std::fs::write(planted.join("c.rs"), "fn f() { crate::a::inner::g() }\n").unwrap();
    let found = cycles_in(&planted);
    std::fs::remove_dir_all(&planted).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].ends_with("in crate: a, b, c reach each other"),
        "{found:?}"
    );
}
