//! Tidy checks on the crate's own sources, in the spirit of rust-analyzer's
//! `xtask/src/tidy.rs`: no two modules import each other (directly or round a longer circle),
//! and no file is over 800 lines.
//!
//! A module's imports are the `crate::NAME` paths in its code (comments are passed over, and
//! so is `$crate::` inside a `macro_rules!`, which names the crate where the macro is used, not
//! where it is defined); paths through the crate root's re-exports (`crate::Backend`) are not
//! counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The longest a source file may be.
const MAX_LINES: usize = 800;

/// Every `src/*.rs` file of the crate, by module name, with its text.
fn sources() -> BTreeMap<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("the crate's src directory is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            let name = path
                .file_stem()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).expect("a source file is readable");
            files.insert(name, text);
        }
    }
    files
}

/// The leading identifier of `text`.
fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first names of the `crate::` paths in `code`: `use crate::a::X`, `crate::b::f()` and
/// each path of `use crate::{c::Y, d}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in code.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            let after = &rest[at + "crate::".len()..];
            rest = after;
            if before.is_some_and(|c| c == '$' || c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = after.strip_prefix('{') {
                // One level of braces: `use crate::{a::X, b::{Y, Z}}` names a and b.
                let mut depth = 0_usize;
                let mut start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if start && !c.is_whitespace() => {
                            names.insert(ident(&group[i..]).to_owned());
                            start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                names.insert(ident(after).to_owned());
            }
        }
    }
    names
}

/// Which modules each module imports (only names that are modules of `files`; the crate root,
/// `lib`, is no node).
fn imports(files: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    files
        .iter()
        .filter(|(name, _)| name.as_str() != "lib")
        .map(|(name, text)| {
            let used = crate_paths(text)
                .into_iter()
                .filter(|used| used != name && used != "lib" && files.contains_key(used))
                .collect();
            (name.clone(), used)
        })
        .collect()
}

/// A circle of imports, as the modules round it (the first repeated at the end), if any.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_modules_of_the_store_import_each_other() {
    let graph = imports(&sources());
    assert!(graph.contains_key("grants") && graph.contains_key("metering"));
    if let Some(found) = circle(&graph) {
        panic!("an import circle in proctor-store: {}", found.join(" -> "));
    }
}

#[test]
fn no_source_file_of_the_store_is_over_800_lines() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter(|(_, text)| text.lines().count() > MAX_LINES)
        .map(|(name, text)| format!("{name}.rs: {} lines", text.lines().count()))
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

// The rule holds for the whole workspace; the store's tidy checks keep it in one place.
#[test]
fn no_source_file_of_any_crate_is_over_800_lines() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&crates)
        .expect("crates/ is readable")
        .flatten()
    {
        rust_files(&entry.path().join("src"), &mut files);
    }
    assert!(files.len() > 50, "found only {} files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path).ok()?.lines().count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_circle_check_finds_a_circle_through_a_grouped_import_and_a_path() {
    let files: BTreeMap<String, String> = [
        ("a", "use crate::{error::Result, b::Thing};\n"),
        (
            "b",
            "fn f() { crate::c::g() }\n// crate::a in a comment is no import\n",
        ),
        (
            "c",
            "use crate::a::X;\nmacro_rules! m { () => { $crate::b::Y } }\n",
        ),
        ("error", "use crate::Backend;\n"),
        ("lib", "pub use a::X;\n"),
    ]
    .into_iter()
    .map(|(name, text)| (name.to_owned(), text.to_owned()))
    .collect();
    let graph = imports(&files);
    assert_eq!(
        graph["a"],
        BTreeSet::from(["b".to_owned(), "error".to_owned()])
    );
    assert_eq!(graph["c"], BTreeSet::from(["a".to_owned()]));
    assert!(graph["error"].is_empty());
    assert_eq!(
        circle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let mut broken = files;
    broken.insert("c".to_owned(), "use crate::error::StoreError;\n".to_owned());
    assert_eq!(circle(&imports(&broken)), None);
}
