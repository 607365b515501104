//! The Markdown documentation (README.md, docs/, the READMEs under deploy/) as the tests read
//! it: a file by its path in the repository, the anchors GitHub gives its headings, its links.

use std::collections::BTreeSet;
use std::path::Path;

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

/// A file of the repository, by its path from the repository root.
pub fn read(path: impl AsRef<Path>) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path.as_ref());
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of every heading of `markdown`, whatever its level; as on GitHub, a heading
/// whose anchor is taken already gets `-1`, `-2`, ...
pub fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(text) | Event::Code(text) => {
                if let Some(heading) = heading.as_mut() {
                    heading.push_str(&text);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let base = anchor(&heading.take().unwrap_or_default());
                let unique = (0..)
                    .map(|n| {
                        if n == 0 {
                            base.clone()
                        } else {
                            format!("{base}-{n}")
                        }
                    })
                    .find(|candidate| !found.contains(candidate))
                    .expect("an unused suffix");
                found.insert(unique);
            }
            _ => {}
        }
    }
    found
}

/// Every link of `markdown` (code blocks and code spans hold none): its line and destination.
pub fn links(markdown: &str) -> Vec<(usize, String)> {
    Parser::new(markdown)
        .into_offset_iter()
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::Link { dest_url, .. }) => {
                let line = markdown[..range.start].matches('\n').count() + 1;
                Some((line, dest_url.into_string()))
            }
            _ => None,
        })
        .collect()
}
