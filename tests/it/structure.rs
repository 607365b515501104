//! The module graph of every crate in the workspace, read from whole source files (test
//! modules included) with `syn`: every path a file names that resolves into its crate
//! (`crate::…`, `super::…`, `self::…`, or a child module's name) is an edge from that file to the
//! file defining the module it reaches. Checked in every crate: no two files import each
//! other, and the top-level modules have no cycle. In the exporter, dependencies point one way,
//! config → auth → graph → reports → snapshot → scrape_cache → server, and `errors` is a
//! leaf every layer may use. The fake Graph
//! (crates/fake-graph) must not know the exporter: neither its sources nor its manifest may
//! name it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Edges the exporter's layering forbids, between its top-level modules, whatever else changes.
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

/// The exporter's library, as other crates name it.
const EXPORTER: &str = "entra_authmethods_exporter";

/// A module path from the crate root: `[]` for the root, `["reports", "groups"]`.
type ModulePath = Vec<String>;

/// A path a file names, made absolute from the crate root, and whether only tests name it.
type Reference = (ModulePath, Code);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Product,
    /// In a `#[cfg(test)]` or `#[test]` item, or a file declared under `#[cfg(test)]`.
    Test,
}

/// One crate's files: module path → the paths its code names.
struct Crate {
    name: String,
    dir: PathBuf,
    files: BTreeMap<ModulePath, Vec<Reference>>,
    /// Per file, whether it names the exporter's library ([`EXPORTER`]).
    external: BTreeMap<ModulePath, BTreeSet<String>>,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every crate of the workspace: the exporter at the root and each one under crates/.
fn workspace_crates() -> Vec<Crate> {
    let root = workspace_root();
    let mut dirs = vec![root.clone()];
    for entry in std::fs::read_dir(root.join("crates")).expect("crates directory") {
        let dir = entry.expect("entry").path();
        if dir.join("Cargo.toml").is_file() {
            dirs.push(dir);
        }
    }
    dirs.into_iter().map(|dir| read_crate(&dir)).collect()
}

fn read_crate(dir: &Path) -> Crate {
    let src = dir.join("src");
    let mut files = BTreeMap::new();
    let mut external = BTreeMap::new();
    let mut test_only = Vec::new();
    let mut pending = vec![src.clone()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("source directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(&src).expect("under src");
                // The binary is a crate of its own, on top of the library.
                if relative == Path::new("main.rs") || relative.starts_with("bin") {
                    continue;
                }
                let module = module_of(relative);
                let text = std::fs::read_to_string(&path).expect("source file");
                let read = references(&text, &module)
                    .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
                files.insert(module.clone(), read.paths);
                external.insert(module, read.external);
                test_only.extend(read.test_children);
            }
        }
    }
    mark_test_files(&mut files, &test_only);
    Crate {
        name: dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        dir: dir.to_owned(),
        files,
        external,
    }
}

/// Everything in a file declared `#[cfg(test)] mod x;` (and below it) is test code.
fn mark_test_files(files: &mut BTreeMap<ModulePath, Vec<Reference>>, test_only: &[ModulePath]) {
    for (module, paths) in files {
        if test_only.iter().any(|test| module.starts_with(test)) {
            for (_, code) in paths {
                *code = Code::Test;
            }
        }
    }
}

/// `lib.rs` → `[]`, `graph/mod.rs` → `["graph"]`, `graph/rows.rs` → `["graph", "rows"]`.
fn module_of(relative: &Path) -> ModulePath {
    let mut module: ModulePath = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(module.last().map(String::as_str), Some("lib" | "mod")) {
        module.pop();
    }
    module
}

/// What a file's code names: the paths that start at `crate`, `super`, `self` or a possible
/// child module, made absolute from the crate root (whether the first segment is a module is
/// settled later, against the crate's files); whether it names the exporter; and the child
/// module files it declares under `#[cfg(test)]`.
fn references(text: &str, module: &ModulePath) -> syn::Result<Reader> {
    let file = syn::parse_file(text)?;
    let mut reader = Reader {
        file_module: module.clone(),
        inline: Vec::new(),
        in_test: 0,
        paths: Vec::new(),
        external: BTreeSet::new(),
        test_children: Vec::new(),
    };
    reader.visit_file(&file);
    Ok(reader)
}

struct Reader {
    file_module: ModulePath,
    /// Inline modules (`mod tests { … }`) around the code being read.
    inline: Vec<String>,
    /// How many test items (`#[cfg(test)]`, `#[test]`) the code being read is in.
    in_test: usize,
    paths: Vec<Reference>,
    external: BTreeSet<String>,
    test_children: Vec<ModulePath>,
}

/// Whether an item is test code: `#[cfg(test)]`, `#[test]`, `#[tokio::test]`.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let path = attr.path();
        path.segments.last().is_some_and(|s| s.ident == "test")
            || (path.is_ident("cfg")
                && attr
                    .meta
                    .require_list()
                    .is_ok_and(|list| list.tokens.to_string() == "test"))
    })
}

fn attrs_of(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

impl Reader {
    fn record(&mut self, segments: &[String]) {
        let Some(first) = segments.first() else {
            return;
        };
        let current: ModulePath = self
            .file_module
            .iter()
            .chain(&self.inline)
            .cloned()
            .collect();
        let absolute = match first.as_str() {
            "crate" => segments[1..].to_vec(),
            "self" => current
                .into_iter()
                .chain(segments[1..].iter().cloned())
                .collect(),
            "super" => {
                let ups = segments.iter().take_while(|s| *s == "super").count();
                let mut base = current;
                base.truncate(base.len().saturating_sub(ups));
                base.into_iter()
                    .chain(segments[ups..].iter().cloned())
                    .collect()
            }
            _ => {
                if first == EXPORTER {
                    self.external.insert(first.clone());
                }
                // A child module of the current one, if the crate has it.
                current
                    .into_iter()
                    .chain(segments.iter().cloned())
                    .collect()
            }
        };
        let code = match self.in_test {
            0 => Code::Product,
            _ => Code::Test,
        };
        self.paths.push((absolute, code));
    }

    /// Paths inside macro arguments (`matches!(x, crate::a::B)`), which syn leaves as tokens.
    fn record_tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut index = 0;
        while index < trees.len() {
            match &trees[index] {
                TokenTree::Group(group) => {
                    self.record_tokens(group.stream());
                    index += 1;
                }
                TokenTree::Ident(ident) => {
                    let mut segments = vec![ident.to_string()];
                    let mut next = index + 1;
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(name)),
                    ) = (trees.get(next), trees.get(next + 1), trees.get(next + 2))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(name.to_string());
                        next += 3;
                    }
                    if segments.len() > 1 {
                        self.record(&segments);
                    }
                    index = next;
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => index += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Reader {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let test = is_test(attrs_of(item));
        self.in_test += usize::from(test);
        syn::visit::visit_item(self, item);
        self.in_test -= usize::from(test);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let name = item.ident.to_string();
        if item.content.is_some() {
            self.inline.push(name);
            syn::visit::visit_item_mod(self, item);
            self.inline.pop();
        } else if self.in_test > 0 {
            // `mod x;` declares a file, it does not import it; under `#[cfg(test)]` the file
            // is test code.
            let mut child = self.file_module.clone();
            child.extend(self.inline.iter().cloned());
            child.push(name);
            self.test_children.push(child);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        flatten(&item.tree, &mut Vec::new(), &mut paths);
        for path in paths {
            self.record(&path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.record(&segments);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.record_tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// Each path a `use` tree brings in: `a::{b, c::*}` → `a::b`, `a::c`.
fn flatten(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            flatten(&path.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(name) => out.push(with(prefix, &name.ident)),
        syn::UseTree::Rename(rename) => out.push(with(prefix, &rename.ident)),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(group) => {
            for item in &group.items {
                flatten(item, prefix, out);
            }
        }
    }
}

fn with(prefix: &[String], ident: &syn::Ident) -> Vec<String> {
    let mut path = prefix.to_vec();
    // `use a::{self}` names `a`.
    if ident != "self" {
        path.push(ident.to_string());
    }
    path
}

/// File → the other files of its crate it imports from (`tests`: with test code's imports,
/// or `Product` code's only): each path goes to the deepest module
/// file it reaches. A path that names another crate or a local item was made absolute from the
/// file's own module, so it reaches that module and is no edge.
fn file_graph(krate: &Crate, tests: Code) -> BTreeMap<ModulePath, BTreeSet<ModulePath>> {
    let modules: BTreeSet<&ModulePath> = krate.files.keys().collect();
    let mut graph = BTreeMap::new();
    for (file, paths) in &krate.files {
        let edges: &mut BTreeSet<ModulePath> = graph.entry(file.clone()).or_default();
        for (path, code) in paths {
            if *code == Code::Test && tests == Code::Product {
                continue;
            }
            let Some(target) = (0..=path.len())
                .rev()
                .map(|len| path[..len].to_vec())
                .find(|prefix| modules.contains(prefix))
            else {
                continue;
            };
            if target != *file {
                edges.insert(target);
            }
        }
    }
    graph
}

/// `reports::groups` → `reports`; the root is `(root)`.
fn top_level(module: &ModulePath) -> String {
    module
        .first()
        .cloned()
        .unwrap_or_else(|| "(root)".to_owned())
}

fn top_level_graph(
    files: &BTreeMap<ModulePath, BTreeSet<ModulePath>>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, targets) in files {
        let from = top_level(file);
        let edges = graph.entry(from.clone()).or_default();
        for target in targets {
            let to = top_level(target);
            if to != from {
                edges.insert(to);
            }
        }
    }
    graph
}

fn show(module: &ModulePath) -> String {
    match module.is_empty() {
        true => "(root)".to_owned(),
        false => module.join("::"),
    }
}

/// Pairs of files that import each other.
fn mutual_imports(
    graph: &BTreeMap<ModulePath, BTreeSet<ModulePath>>,
) -> Vec<(ModulePath, ModulePath)> {
    let mut pairs = Vec::new();
    for (a, targets) in graph {
        for b in targets {
            if a < b && graph.get(b).is_some_and(|back| back.contains(a)) {
                pairs.push((a.clone(), b.clone()));
            }
        }
    }
    pairs
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
fn no_two_files_import_each_other_and_top_level_modules_have_no_cycle_in_any_crate() {
    let crates = workspace_crates();
    let names: Vec<&str> = crates.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"fake-graph"), "crates read: {names:?}");
    let mut problems = Vec::new();
    for krate in &crates {
        assert!(krate.files.len() > 5, "{}: too few files read", krate.name);
        let files = file_graph(krate, Code::Test);
        for (a, b) in mutual_imports(&files) {
            problems.push(format!(
                "{}: files that import each other: {} ⇄ {}",
                krate.name,
                show(&a),
                show(&b)
            ));
        }
        let top = top_level_graph(&files);
        for module in top.keys() {
            if let Some(cycle) = cycle_from(&top, module) {
                problems.push(format!(
                    "{}: module cycle: {}",
                    krate.name,
                    cycle.join(" → ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_exporter_follows_the_layers() {
    let exporter = read_crate(&workspace_root());
    // Product code only: a test may check how two layers work together.
    let graph = top_level_graph(&file_graph(&exporter, Code::Product));
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
    for (from, to) in FORBIDDEN {
        assert!(
            !graph[*from].contains(*to),
            "{from} must not depend on {to}"
        );
    }
}

#[test]
fn the_fake_graph_does_not_know_the_exporter() {
    let fake = read_crate(&workspace_root().join("crates/fake-graph"));
    for (file, names) in &fake.external {
        assert!(
            !names.contains(EXPORTER),
            "fake-graph's {} names the exporter ({EXPORTER})",
            show(file)
        );
    }
    let manifest = std::fs::read_to_string(fake.dir.join("Cargo.toml")).expect("manifest");
    let manifest: String = manifest
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "entra-authmethods-exporter",
        EXPORTER,
        "\"../..\"",
        "\"../../\"",
    ] {
        assert!(
            !manifest.contains(needle),
            "crates/fake-graph/Cargo.toml depends on the exporter ({needle})"
        );
    }
}

#[test]
fn the_reader_follows_whole_files_and_finds_mutual_imports() {
    let module = |path: &str| -> ModulePath {
        path.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut files = BTreeMap::new();
    let mut test_only = Vec::new();
    let mut read = |text: &str, at: &str| {
        let reader = references(text, &module(at)).expect("parses");
        test_only.extend(reader.test_children);
        files.insert(module(at), reader.paths);
    };
    // A test module at the end of a file counts, as do macro arguments and child modules.
    read(
        "use crate::b::X;\nfn f() { assert!(matches!(x, crate::c::Y)); }\n\
         // crate::d in a comment\n#[cfg(test)]\nmod tests { use super::*; use crate::d::Z; }\n",
        "a",
    );
    read("use std::fmt;\nfn g() -> crate::Error {}\n", "b");
    read("pub fn h() {}\n", "c");
    read("use super::{a::{self}, e};\n", "d");
    read("", "e");
    read("use crate::e::E;\n", "t");
    read("mod a; mod b; #[cfg(test)] mod t; use c::h;\n", "");
    mark_test_files(&mut files, &test_only);
    let krate = Crate {
        name: "planted".into(),
        dir: PathBuf::new(),
        files,
        external: BTreeMap::new(),
    };
    let graph = file_graph(&krate, Code::Test);
    let edges = |from: &str| -> Vec<String> { graph[&module(from)].iter().map(show).collect() };
    assert_eq!(edges("a"), ["b", "c", "d"]);
    assert_eq!(edges("b"), ["(root)"], "crate::Error is the root's");
    assert!(edges("c").is_empty());
    assert_eq!(edges("d"), ["a", "e"]);
    assert_eq!(edges("t"), ["e"]);
    assert_eq!(edges(""), ["c"], "`mod a;` declares, `use c::h` imports");
    assert_eq!(
        mutual_imports(&graph),
        [(module("a"), module("d"))],
        "the test module's import counts"
    );
    let top = top_level_graph(&graph);
    assert_eq!(
        cycle_from(&top, "a"),
        Some(vec!["a".into(), "d".into(), "a".into()])
    );
    assert_eq!(cycle_from(&top, "e"), None);
    // Without test code: neither the test module's import nor the test-only file's.
    let product = file_graph(&krate, Code::Product);
    assert_eq!(
        product[&module("a")].iter().map(show).collect::<Vec<_>>(),
        ["b", "c"]
    );
    assert!(product[&module("t")].is_empty());
    assert!(mutual_imports(&product).is_empty());
}
