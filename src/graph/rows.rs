//! Rows that cannot be parsed are skipped, not fatal. A collection's rows are parsed one by
//! one ([`Rows`]); a row with a null or wrong-typed field, or a missing required one, is left
//! out and noted ([`RowFault`]) while the rest of the page counts. The document itself must
//! still be valid JSON: without it there are no row boundaries to skip to.
//!
//! Every document [`GraphClient`](super::GraphClient) reads goes through [`parse_document`],
//! which collects the faults of every [`Rows`] in it, however deep: a report adopts skipping
//! by declaring its row lists as `Rows<T>` (paged collections get it from their `value`).
//! Faults name the row's position and the field at fault, and what the field held only as a
//! JSON type, so they never carry user data.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use serde_path_to_error::Segment;

/// The parsed rows of a JSON array; rows that do not parse are skipped and recorded for the
/// enclosing [`parse_document`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rows<T>(pub Vec<T>);

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Rows(Vec::new())
    }
}

impl<T> Rows<T> {
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

/// Why one row was skipped. Nothing in it comes from the row's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFault {
    /// The row's index in its array, from 0.
    pub index: usize,
    /// Where in the row the fault is, such as `isSuccess` or `methodsRegistered[3]`; `.` for
    /// the row itself (a row that is not an object).
    pub field: String,
    /// What the field held: a JSON type (`null`, `boolean`, `number`, `string`, `array`,
    /// `object`), or `missing`.
    pub found: &'static str,
}

/// The bad rows of one poll of a report: how many, and the first one's position.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SkippedRows {
    pub rows: u64,
    /// The first bad row: its page (from 1) and what was wrong with it.
    pub first: Option<(u32, RowFault)>,
}

impl SkippedRows {
    /// Adds the faults of page `page` (from 1).
    pub fn add(&mut self, page: u32, faults: Vec<RowFault>) {
        self.rows += faults.len() as u64;
        if self.first.is_none() {
            self.first = faults.into_iter().next().map(|fault| (page, fault));
        }
    }
}

thread_local! {
    /// The faults of the document being parsed on this thread, if [`parse_document`] is
    /// running. Parsing is synchronous, so the document and its rows share the thread.
    static FAULTS: RefCell<Option<Vec<RowFault>>> = const { RefCell::new(None) };
}

/// Parses a whole document, skipping the rows of its [`Rows`] that do not parse. Returns the
/// document and the skipped rows' faults, in order; `Err` only for a document that is not
/// valid JSON or does not have the expected shape outside its rows.
pub fn parse_document<T: DeserializeOwned>(
    body: &[u8],
) -> Result<(T, Vec<RowFault>), serde_json::Error> {
    let outer = FAULTS.with(|faults| faults.replace(Some(Vec::new())));
    let parsed = serde_json::from_slice::<T>(body);
    let faults = FAULTS
        .with(|faults| faults.replace(outer))
        .unwrap_or_default();
    parsed.map(|document| (document, faults))
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Rows<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(RowsVisitor(PhantomData))
    }
}

struct RowsVisitor<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for RowsVisitor<T> {
    type Value = Rows<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rows<T>, A::Error> {
        // Graph pages hold at most 1,000 rows; a bigger hint is not to be trusted.
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1000));
        let mut index = 0;
        // Each row is first taken as raw text (checked JSON, not yet typed), so that a row
        // that fails to type-check leaves the rest of the array readable.
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            match serde_json::from_str::<T>(raw.get()) {
                Ok(row) => rows.push(row),
                Err(_) => record(fault_of::<T>(index, raw.get())),
            }
            index += 1;
        }
        Ok(Rows(rows))
    }
}

fn record(fault: RowFault) {
    FAULTS.with(|faults| {
        if let Some(faults) = faults.borrow_mut().as_mut() {
            faults.push(fault);
        }
    });
}

/// Parses a bad row again, tracking the path, to tell which field is at fault.
fn fault_of<T: DeserializeOwned>(index: usize, raw: &str) -> RowFault {
    let mut deserializer = serde_json::Deserializer::from_str(raw);
    let Err(err) = serde_path_to_error::deserialize::<_, T>(&mut deserializer) else {
        // Cannot happen: the same text failed a moment ago.
        return RowFault {
            index,
            field: ".".to_owned(),
            found: "invalid",
        };
    };
    let mut path: Vec<String> = err.path().iter().map(segment).collect();
    let row: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let mut at = Some(&row);
    for segment in err.path() {
        at = at.and_then(|value| match segment {
            Segment::Seq { index } => value.get(index),
            Segment::Map { key } => value.get(key),
            Segment::Enum { .. } | Segment::Unknown => None,
        });
    }
    // serde reports a missing field at the object that lacks it, naming the field (a name
    // from the row type, never from the data) in its message.
    let message = err.inner().to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    let found = match (missing, at) {
        (Some(name), Some(Value::Object(_))) => {
            path.push(identifier(name));
            "missing"
        }
        (_, Some(value)) => json_type(value),
        (_, None) => "missing",
    };
    RowFault {
        index,
        field: render(&path),
        found,
    }
}

fn segment(segment: &Segment) -> String {
    match segment {
        Segment::Seq { index } => format!("[{index}]"),
        Segment::Map { key } => identifier(key),
        Segment::Enum { variant } => identifier(variant),
        Segment::Unknown => "?".to_owned(),
    }
}

/// A key as it may appear in a log line: the rows' keys are Graph's field names; anything else
/// (which the row types never produce) is not shown.
fn identifier(key: &str) -> String {
    if !key.is_empty()
        && key.len() <= 64
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        key.to_owned()
    } else {
        "?".to_owned()
    }
}

fn render(path: &[String]) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let mut text = String::new();
    for part in path {
        if !text.is_empty() && !part.starts_with('[') {
            text.push('.');
        }
        text.push_str(part);
    }
    text
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        id: String,
        is_success: bool,
        #[serde(default)]
        methods: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    struct Page {
        value: Rows<Row>,
        #[serde(default)]
        counts: Rows<u64>,
    }

    fn parse(json: &str) -> (Vec<Row>, Vec<RowFault>) {
        let (page, faults) = parse_document::<Page>(json.as_bytes()).unwrap();
        (page.value.into_inner(), faults)
    }

    fn fault(index: usize, field: &str, found: &'static str) -> RowFault {
        RowFault {
            index,
            field: field.to_owned(),
            found,
        }
    }

    #[test]
    fn bad_rows_are_skipped_and_named_by_position_field_and_type() {
        let (rows, faults) = parse(
            r#"{"value":[
                {"id":"a","isSuccess":true},
                {"id":"b","isSuccess":null},
                {"isSuccess":false},
                {"id":"d","isSuccess":"alice@contoso.com"},
                {"id":"e","isSuccess":false,"methods":["x",7]},
                null,
                "Alice Example",
                {"id":"h","isSuccess":false}
            ]}"#,
        );
        assert_eq!(
            rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a", "h"]
        );
        assert_eq!(
            faults,
            [
                fault(1, "isSuccess", "null"),
                fault(2, "id", "missing"),
                fault(3, "isSuccess", "string"),
                fault(4, "methods[1]", "number"),
                fault(5, ".", "null"),
                fault(6, ".", "string"),
            ]
        );
        let text = format!("{faults:?}");
        assert!(!text.contains("alice") && !text.contains("Alice"), "{text}");
    }

    #[test]
    fn every_rows_list_of_a_document_reports_its_faults_and_nothing_leaks_between_documents() {
        let (page, faults) =
            parse_document::<Page>(br#"{"value":[],"counts":[1,-2,"3",4]}"#).unwrap();
        assert_eq!(page.counts.into_inner(), [1, 4]);
        assert_eq!(faults, [fault(1, ".", "number"), fault(2, ".", "string")]);
        // A document that fails whole is an error, and its faults go nowhere.
        assert!(parse_document::<Page>(br#"{"value":[{"id":1}],"counts":{}}"#).is_err());
        assert!(parse_document::<Page>(br#"{"value":[{"id":"x""#).is_err());
        let (_, faults) = parse_document::<Page>(br#"{"value":[]}"#).unwrap();
        assert!(faults.is_empty());
        // Outside parse_document rows are still skipped, and recorded nowhere.
        let page: Page = serde_json::from_str(r#"{"value":[{"id":"a"}]}"#).unwrap();
        assert!(page.value.0.is_empty());
        let (_, faults) = parse_document::<Page>(br#"{"value":[]}"#).unwrap();
        assert!(faults.is_empty());
    }

    #[test]
    fn a_row_list_that_is_not_an_array_fails_the_document() {
        for body in [
            r#"{"value":null}"#,
            r#"{"value":{}}"#,
            r#"{"value":"rows"}"#,
        ] {
            assert!(parse_document::<Page>(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn keys_that_are_not_field_names_are_not_shown() {
        assert_eq!(identifier("isSuccess"), "isSuccess");
        assert_eq!(identifier("alice@contoso.com"), "?");
        assert_eq!(identifier(""), "?");
        assert_eq!(render(&[]), ".");
        assert_eq!(render(&["a".into(), "[2]".into(), "b".into()]), "a[2].b");
    }

    #[test]
    fn skipped_rows_keep_the_count_and_the_first_position() {
        let mut skipped = SkippedRows::default();
        skipped.add(1, Vec::new());
        skipped.add(3, vec![fault(7, "id", "null"), fault(9, "id", "null")]);
        skipped.add(4, vec![fault(0, "x", "null")]);
        assert_eq!(skipped.rows, 3);
        assert_eq!(skipped.first, Some((3, fault(7, "id", "null"))));
    }
}
