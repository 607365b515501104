//! The documentation holds together: every relative link of every Markdown file in the
//! repository (README.md, docs/, the READMEs under deploy/) leads to a file that exists, and its
//! `#anchor` to a heading of that file; the README's map lists every page of docs/.

use std::path::{Path, PathBuf};

use crate::common::docs;

/// The Markdown files of the repository, from its root; build output and hidden folders aside.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(root.join(dir)).expect("repository folder") {
            let name = entry.expect("folder entry").file_name();
            let path = dir.join(&name);
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            if root.join(&path).is_dir() {
                walk(root, &path, found);
            } else if name.ends_with(".md") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        Path::new(""),
        &mut found,
    );
    found.sort();
    found
}

/// What is wrong with the link `dest` of the file `from` (a path from the repository root), if
/// anything: web links are not followed, every other one must resolve in the repository.
fn broken(from: &Path, dest: &str) -> Option<String> {
    if dest.starts_with("https://") || dest.starts_with("http://") || dest.starts_with("mailto:") {
        return None;
    }
    let (path, fragment) = dest.split_once('#').unwrap_or((dest, ""));
    let target = if path.is_empty() {
        from.to_path_buf()
    } else {
        from.parent().unwrap_or(Path::new("")).join(path)
    };
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(&target);
    if !full.exists() {
        return Some(format!("{} does not exist", target.display()));
    }
    if fragment.is_empty() {
        return None;
    }
    if target.extension().is_none_or(|ext| ext != "md") {
        return Some(format!(
            "#{fragment} into {}, not Markdown",
            target.display()
        ));
    }
    if docs::anchors(&docs::read(&target)).contains(fragment) {
        None
    } else {
        Some(format!("{} has no heading #{fragment}", target.display()))
    }
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let files = markdown_files();
    for page in [
        "README.md",
        "docs/runbooks.md",
        "deploy/kubernetes/README.md",
    ] {
        assert!(files.contains(&PathBuf::from(page)), "{page} in {files:?}");
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        for (line, dest) in docs::links(&docs::read(file)) {
            checked += 1;
            if let Some(problem) = broken(file, &dest) {
                problems.push(format!("{}:{line}: ({dest}): {problem}", file.display()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
    assert!(checked > 50, "only {checked} links found");
}

#[test]
fn the_readme_maps_every_page_of_docs() {
    let linked: Vec<String> = docs::links(&docs::read("README.md"))
        .into_iter()
        .map(|(_, dest)| dest)
        .collect();
    let pages: Vec<PathBuf> = markdown_files()
        .into_iter()
        .filter(|file| file.starts_with("docs"))
        .collect();
    assert!(pages.len() >= 7, "{pages:?}");
    for page in pages {
        let page = page.to_string_lossy();
        assert!(
            linked.iter().any(|dest| dest == &*page),
            "README.md does not link to {page}"
        );
    }
}

/// The README says what the exporter is, how to try it and where the rest is; the rest lives
/// under docs/.
#[test]
fn the_readme_stays_short() {
    let lines = docs::read("README.md").lines().count();
    assert!(lines <= 300, "README.md has {lines} lines");
}
