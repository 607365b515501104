//! Label values from Graph data: how open sets of strings stay bounded, and how free text
//! becomes a tidy label. Escaping of quotes, backslashes and newlines is left to the text
//! encoder, which does it per the exposition format.

use std::collections::{HashMap, HashSet};

/// The label value that stands for every value beyond a [`BoundedLabel`]'s limit.
pub const OTHER: &str = "other";
/// The label value for a null or empty enum or method.
pub const UNKNOWN: &str = "unknown";
/// Longest failure reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 100;

/// An open set of label values kept to at most `limit` distinct values per tenant.
///
/// Admission is sticky: a value once admitted keeps its series for the life of the process, so
/// counters never jump between series. Free slots go to the most frequent new values of each
/// poll; everything else is reported as [`OTHER`].
#[derive(Debug, Clone)]
pub struct BoundedLabel {
    limit: usize,
    admitted: HashSet<String>,
}

impl BoundedLabel {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            admitted: HashSet::new(),
        }
    }

    /// Admits the most frequent values not yet admitted while slots remain. Ties go to the
    /// alphabetically first value, so the outcome does not depend on hash order.
    pub fn admit(&mut self, counts: &HashMap<String, u64>) {
        let free = self.limit.saturating_sub(self.admitted.len());
        if free == 0 {
            return;
        }
        let mut candidates: Vec<(&String, u64)> = counts
            .iter()
            .filter(|(value, _)| !self.admitted.contains(*value))
            .map(|(value, count)| (value, *count))
            .collect();
        candidates.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        for (value, _) in candidates.into_iter().take(free) {
            self.admitted.insert(value.clone());
        }
    }

    /// A bound that already admitted `values` (kept from an earlier run, so series do not move
    /// across a restart), even if they exceed `limit`.
    pub fn with_admitted(limit: usize, values: impl IntoIterator<Item = String>) -> Self {
        Self {
            limit,
            admitted: values.into_iter().collect(),
        }
    }

    /// The admitted values, sorted.
    pub fn admitted(&self) -> Vec<String> {
        let mut values: Vec<String> = self.admitted.iter().cloned().collect();
        values.sort_unstable();
        values
    }

    /// The label for a value: itself if admitted, otherwise [`OTHER`].
    pub fn label<'a>(&self, value: &'a str) -> &'a str {
        if self.admitted.contains(value) {
            value
        } else {
            OTHER
        }
    }
}

/// A failure reason as a label: trimmed, whitespace runs collapsed to one space, and capped at
/// [`MAX_REASON_CHARS`] characters.
pub fn failure_reason(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_REASON_CHARS * 4));
    for (i, word) in raw.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() > MAX_REASON_CHARS * 4 {
            break;
        }
    }
    if let Some((cut, _)) = out.char_indices().nth(MAX_REASON_CHARS) {
        out.truncate(cut);
        out.truncate(out.trim_end().len());
    }
    out
}

/// `"true"`/`"false"`, as boolean label values are spelled.
pub fn bool_label(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn most_frequent_values_win_and_admission_is_sticky() {
        let mut bounded = BoundedLabel::new(2);
        bounded.admit(&counts(&[("a", 1), ("b", 5), ("c", 3)]));
        assert_eq!(bounded.label("b"), "b");
        assert_eq!(bounded.label("c"), "c");
        assert_eq!(bounded.label("a"), OTHER);
        // A later, more frequent value does not evict an admitted one.
        bounded.admit(&counts(&[("d", 100)]));
        assert_eq!(bounded.label("d"), OTHER);
        assert_eq!(bounded.label("c"), "c");
    }

    #[test]
    fn admitted_values_survive_a_round_trip_even_above_the_limit() {
        let mut bounded = BoundedLabel::new(2);
        bounded.admit(&counts(&[("b", 5), ("a", 3)]));
        let restored = BoundedLabel::with_admitted(1, bounded.admitted());
        assert_eq!(restored.admitted(), ["a", "b"]);
        assert_eq!(restored.label("a"), "a");
        assert_eq!(restored.label("b"), "b");
        let mut restored = restored;
        restored.admit(&counts(&[("c", 100)]));
        assert_eq!(restored.label("c"), OTHER);
    }

    #[test]
    fn ties_are_broken_alphabetically() {
        let mut bounded = BoundedLabel::new(1);
        bounded.admit(&counts(&[("zeta", 2), ("alpha", 2)]));
        assert_eq!(bounded.label("alpha"), "alpha");
        assert_eq!(bounded.label("zeta"), OTHER);
    }

    #[test]
    fn failure_reasons_are_tidied_and_capped() {
        assert_eq!(failure_reason("  a \n\t b  "), "a b");
        assert_eq!(failure_reason(""), "");
        let long = "é".repeat(500);
        let capped = failure_reason(&long);
        assert_eq!(capped.chars().count(), MAX_REASON_CHARS);
        let words = "word ".repeat(100);
        let capped = failure_reason(&words);
        assert!(capped.chars().count() <= MAX_REASON_CHARS);
        assert!(!capped.ends_with(' '));
        assert_eq!(
            failure_reason("Benutzer hat \"Zurücksetzen\" abgebrochen\n"),
            "Benutzer hat \"Zurücksetzen\" abgebrochen"
        );
    }
}
