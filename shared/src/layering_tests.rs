//! The house's rules that the compiler does not hold inside this crate, checked on its source (see
//! docs/ARCHITECTURE.md): the use-case modules call each other in one direction only, the inner layers
//! (use cases, ports, the storage layer) import no adapter, and no key string is built outside the storage
//! layer. A change that breaks a rule fails here with the file and line at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

/// The `.rs` files under `dir`, with their code up to the first `#[cfg(test)]` (tests may use anything).
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.file_stem().is_some_and(|stem| stem.to_string_lossy().ends_with("tests"))
            {
                let text = std::fs::read_to_string(&path).expect("a source file");
                let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_owned();
                files.push((path, code));
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no sources under {}", dir.display());
    files
}

/// The use-case module a file belongs to (`routing/sweep.rs` → `routing`), `None` for `mod.rs`.
fn module_of(usecases: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(usecases).ok()?.components().next()?;
    let name = first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned();
    (name != "mod").then_some(name)
}

/// The use-case modules a piece of code names: `crate::usecases::x`, `crate::usecases::{x, y::z}`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("crate::usecases::") {
        let rest = &code[at + "crate::usecases::".len()..];
        let names = match rest.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap_or_default().to_owned(),
            None => rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect(),
        };
        for name in names.split(',') {
            let module = name.trim().split("::").next().unwrap_or_default().trim();
            if module.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                named.insert(module.to_owned());
            }
        }
    }
    named
}

/// Every cycle's modules in order, found by depth-first search.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(start) = path.iter().position(|n| n == node) {
            found.push(path[start..].to_vec());
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done, found);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let (mut done, mut found) = (BTreeSet::new(), Vec::new());
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn the_use_cases_call_each_other_in_one_direction() {
    let usecases = src().join("usecases");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, code) in sources(&usecases) {
        let Some(module) = module_of(&usecases, &file) else { continue };
        let named: BTreeSet<String> =
            named_modules(&code).into_iter().filter(|m| *m != module && m != "context").collect();
        graph.entry(module).or_default().extend(named);
    }
    assert!(graph.len() > 10, "the use-case modules were not found: {graph:?}");
    assert!(graph["dialogs"].contains("routing"), "the graph misses known edges: {graph:?}");
    assert_eq!(cycles(&graph), Vec::<Vec<String>>::new(), "use-case modules that call each other back");
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let edge = |a: &str, b: &str| (a.to_owned(), BTreeSet::from([b.to_owned()]));
    let graph = BTreeMap::from([edge("a", "b"), edge("b", "c"), edge("c", "a")]);
    assert_eq!(cycles(&graph), vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
    assert_eq!(
        named_modules(
            "use crate::usecases::{Context, outbox, routing::x};\ncrate::usecases::ingest::ingest("
        ),
        BTreeSet::from(["ingest".to_owned(), "outbox".to_owned(), "routing".to_owned()])
    );
}

#[test]
fn the_inner_layers_import_no_adapter() {
    let forbidden = [
        "crate::adapters",
        "crate::providers",
        "crate::bootstrap",
        "aws_sdk",
        "aws_config",
        "reqwest",
        "axum",
    ];
    let mut found = Vec::new();
    for layer in ["usecases", "ports", "repo"] {
        for (file, code) in sources(&src().join(layer)) {
            for (number, line) in code.lines().enumerate() {
                let code_part = line.split("//").next().unwrap_or_default();
                if let Some(name) = forbidden.iter().find(|name| code_part.contains(*name)) {
                    found.push(format!("{}:{}: {name}", file.display(), number + 1));
                }
            }
        }
    }
    assert_eq!(found, Vec::<String>::new(), "inner layers reaching for adapters");
}

#[test]
fn no_key_is_built_outside_the_storage_layer() {
    let mut found = Vec::new();
    for layer in ["usecases", "ports", "providers"] {
        for (file, code) in sources(&src().join(layer)) {
            if file.ends_with("ports/store.rs") {
                continue; // the key type itself
            }
            for (number, line) in code.lines().enumerate() {
                let code_part = line.split("//").next().unwrap_or_default();
                // A key's parts are upper-case words joined by '#': "DLG#", "T#", "DUE#OUTBOX#".
                let literal_key = code_part.split('"').skip(1).step_by(2).any(|literal| {
                    literal.split('#').next().is_some_and(|head| {
                        !head.is_empty() && head.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    }) && literal.contains('#')
                });
                if code_part.contains("Key::new(") || literal_key {
                    found.push(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
                }
            }
        }
    }
    assert_eq!(found, Vec::<String>::new(), "keys built outside repo/");
}
