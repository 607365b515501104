//! The module graph: dependencies point one way, config → auth → graph → reports → snapshot →
//! scrape_cache → server, with no cycles. Read from the sources: every `crate::module` path (and
//! every name in `use crate::{...}`) outside comments and test modules is an edge from the
//! module of the file to that module. `errors` is a leaf every layer may use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Edges the layering forbids, whatever else changes.
const FORBIDDEN: &[(&str, &str)] = &[
    ("config", "reports"),
    ("config", "auth"),
    ("config", "graph"),
    ("graph", "auth"),
    ("auth", "graph"),
    ("auth", "reports"),
    ("graph", "reports"),
    ("graph", "snapshot"),
    ("reports", "scrape_cache"),
    ("snapshot", "reports"),
    ("snapshot", "scrape_cache"),
    ("scrape_cache", "server"),
];

/// Top-level module → the modules its code (tests aside) names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source file");
        let edges = graph.entry(module.clone()).or_default();
        for name in crate_references(&code_of(&text)) {
            if name != module {
                edges.insert(name);
            }
        }
    }
    graph
}

/// The code of a file without comments and without its test module (at the end of a file,
/// after `#[cfg(test)]`).
fn code_of(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(tests) => &text[..tests],
        None => text,
    };
    code.lines()
        .map(|line| match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every `crate::` path, and each name inside `use crate::{...}`.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (index, _) in code.match_indices("crate::") {
        let rest = &code[index + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group into its items at its own depth; each item's first name counts.
            let mut depth = 0;
            let mut items = vec![String::new()];
            for c in group.chars() {
                match c {
                    '}' if depth == 0 => break,
                    ',' if depth == 0 => items.push(String::new()),
                    _ => {
                        depth += usize::from(c == '{');
                        depth -= usize::from(c == '}');
                        items.last_mut().expect("an item").push(c);
                    }
                }
            }
            for item in items {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    names.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(node).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if visit(graph, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    visit(graph, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_module_graph_has_no_cycles_and_follows_the_layers() {
    let graph = module_graph();
    for module in [
        "config",
        "auth",
        "graph",
        "reports",
        "snapshot",
        "scrape_cache",
        "errors",
    ] {
        assert!(graph.contains_key(module), "module {module} not found");
    }
    assert!(
        graph["errors"].is_empty(),
        "errors is a leaf, yet names {:?}",
        graph["errors"]
    );
    for (module, edges) in &graph {
        for target in edges {
            assert!(
                graph.contains_key(target),
                "{module} names crate::{target}, which is no module"
            );
        }
    }
    for (from, to) in FORBIDDEN {
        assert!(
            !graph[*from].contains(*to),
            "{from} must not depend on {to}"
        );
    }
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            panic!("module cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_reader_finds_paths_and_groups_and_skips_comments_and_tests() {
    let text = "use crate::config::X;\nuse crate::{auth, graph::{self, Y}};\n\
                // crate::reports in a comment\nfn f() { crate::snapshot::g(); }\n\
                #[cfg(test)]\nmod tests { use crate::server; }\n";
    let names = crate_references(&code_of(text));
    let expected: BTreeSet<String> = ["config", "auth", "graph", "snapshot"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, expected);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    graph.entry("c".into()).or_default();
    assert_eq!(cycle_from(&graph, "a"), None);
    graph.get_mut("c").unwrap().insert("a".into());
    assert_eq!(
        cycle_from(&graph, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
