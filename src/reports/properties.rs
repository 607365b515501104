//! Property tests: arbitrary bytes, arbitrary JSON and rows of Graph's field names with values
//! of any type go through every report's parser and aggregation. Each returns a value or an
//! error; none panics (debug builds check integer overflow). A page that parses accounts for
//! every row it holds, parsed or skipped, and a skipped row's fault never repeats a value from
//! the page. A new report adds its parser to `PARSERS` below (a test fails until it does).

use std::sync::LazyLock;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use super::legacy::{
    credential_usage_summary, credential_user_registration_count,
    credential_user_registration_details,
};
use super::shared::{activity, daily, events};
use super::successor::{
    user_mfa_sign_in_summary, user_password_resets_and_changes_summary, user_registration_activity,
    user_registration_details, user_sign_ins_by_auth_method_summary, users_registered_by_feature,
    users_registered_by_method,
};
use super::*;
use crate::graph::{ParsedPage, parse_page};
use crate::labels::BoundedLabel;

/// Every field name the report rows read (the specs' `fields`), so that generated rows reach
/// the field parsers.
fn fields() -> &'static [&'static str] {
    static FIELDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        let mut fields: Vec<&str> = ALL.iter().flat_map(|spec| spec.fields).copied().collect();
        fields.sort_unstable();
        fields.dedup();
        fields
    });
    &FIELDS
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[0-9]{1,25}".prop_map(Value::from),
        "(true|false|True| 7 |-1|1e3|2024-02-29T23:59:59Z|2024-13-01T00:00:00Z|)"
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    crate::testing::key(fields())
}

/// Any JSON value, nested a few levels, with Graph's field names as most keys.
fn json() -> impl Strategy<Value = Value> {
    crate::testing::document(fields(), scalar().boxed())
}

/// A page of rows whose keys are Graph's field names and whose values are anything.
fn page() -> impl Strategy<Value = Vec<u8>> {
    let row = prop::collection::btree_map(key(), json(), 0..fields().len())
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()));
    (
        prop::collection::vec(row, 0..6),
        prop::option::of(".{0,20}"),
    )
        .prop_map(|(rows, next)| {
            let mut page = Map::new();
            page.insert("value".into(), Value::Array(rows));
            if let Some(next) = next {
                page.insert("@odata.nextLink".into(), Value::from(next));
            }
            serde_json::to_vec(&Value::Object(page)).unwrap_or_default()
        })
}

/// Parses a page, checks what it skipped, and aggregates it as the report does when it parses.
fn parse<T: DeserializeOwned>(body: &[u8], aggregate: impl FnOnce(Vec<T>)) {
    if let Ok(ParsedPage { rows, skipped, .. }) = parse_page::<T>(body) {
        let page: Value = serde_json::from_slice(body).expect("a page that parses is JSON");
        let listed = first_member(&page, "value").map_or(0, Vec::len);
        assert_eq!(
            rows.len() + skipped.len(),
            listed,
            "every row is parsed or skipped"
        );
        assert_no_values_in(&skipped, &page);
        aggregate(rows);
    }
}

/// The list a document's first member `name` holds: serde also reads a struct from an array,
/// by position.
fn first_member<'a>(document: &'a Value, name: &str) -> Option<&'a Vec<Value>> {
    match document {
        Value::Object(map) => map.get(name),
        Value::Array(items) => items.first(),
        _ => None,
    }
    .and_then(Value::as_array)
}

/// The faults of skipped rows name fields and JSON types only: no string of the document (a
/// user name, an id) appears in them, unless it is also a field name or a type.
fn assert_no_values_in(faults: &[crate::graph::RowFault], document: &Value) {
    fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Object(map) => map.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut values = Vec::new();
    strings(document, &mut values);
    for fault in faults {
        let text = format!("{fault:?}");
        for value in &values {
            let harmless = value.len() < 4
                || fields().iter().any(|f| f.contains(*value))
                || [
                    "missing", "boolean", "number", "string", "array", "object", "null",
                ]
                .iter()
                .any(|t| t.contains(*value));
            assert!(
                harmless || !text.contains(*value),
                "{value:?} leaked into {text}"
            );
        }
    }
}

type Parser = fn(&[u8]);

/// Each report's parser and aggregation of Graph pages or documents, by report name. A report
/// missing here fails `every_report_has_a_parser`.
const PARSERS: &[(&str, Parser)] = &[
    ("credentialUserRegistrationCount", |body| {
        parse::<credential_user_registration_count::Row>(body, |rows| {
            let mut aggregate = credential_user_registration_count::Aggregate::default();
            aggregate.add(rows);
            let _ = aggregate.finish();
        })
    }),
    ("credentialUsageSummary", |body| {
        parse::<activity::Row>(body, |rows| {
            let mut aggregate = activity::Aggregate::default();
            aggregate.add("D1", rows);
            let _ = aggregate.finish(&credential_usage_summary::ACTIVITIES);
        })
    }),
    ("userRegistrationActivity", |body| {
        parse::<activity::Row>(body, |rows| {
            let mut aggregate = activity::Aggregate::default();
            aggregate.add("d1", rows);
            let _ = aggregate.finish(&user_registration_activity::ACTIVITIES);
        })
    }),
    ("credentialUserRegistrationDetails", |body| {
        parse::<credential_user_registration_details::Row>(body, |rows| {
            let mut aggregate =
                credential_user_registration_details::Aggregate::new(std::sync::Arc::default());
            aggregate.add(rows);
            let _ = aggregate.finish(&mut BoundedLabel::new(3));
        })
    }),
    ("userCredentialUsageDetails", |body| {
        parse::<events::Row>(body, |_| {})
    }),
    ("userEventsSummary", |body| {
        parse::<events::Row>(body, |_| {})
    }),
    ("userSignInsByAuthMethodSummary", |body| {
        parse::<user_sign_ins_by_auth_method_summary::Row>(body, |rows| {
            let mut counts = std::collections::BTreeMap::new();
            user_sign_ins_by_auth_method_summary::add(&mut counts, "d1", rows);
            let _ = user_sign_ins_by_auth_method_summary::finish(counts);
        })
    }),
    ("userMfaSignInSummary", |body| {
        parse::<user_mfa_sign_in_summary::Row>(body, |rows| {
            let mut newest = None;
            daily::keep_newest(&mut newest, rows);
        })
    }),
    ("userPasswordResetsAndChangesSummary", |body| {
        parse::<user_password_resets_and_changes_summary::Row>(body, |rows| {
            let mut newest = None;
            daily::keep_newest(&mut newest, rows);
        })
    }),
    ("userRegistrationDetails", |body| {
        parse::<user_registration_details::Row>(body, |rows| {
            let mut aggregate =
                user_registration_details::Aggregate::new(std::sync::Arc::default());
            aggregate.add(rows);
            let _ = aggregate.finish(&mut user_registration_details::Bounds::default());
        })
    }),
    // The two summaries and the policy are single documents, not pages.
    ("authenticationMethodsPolicy", |body| {
        if let Ok((policy, _)) =
            crate::graph::parse_document::<authentication_methods_policy::Policy>(body)
        {
            let _ = authentication_methods_policy::snapshot(&policy, &mut BoundedLabel::new(3));
        }
    }),
    ("usersRegisteredByFeature", |body| {
        summary::<users_registered_by_feature::Summary>(
            body,
            "userRegistrationFeatureCounts",
            |s| s.user_registration_feature_counts.0.len(),
        )
    }),
    ("usersRegisteredByMethod", |body| {
        summary::<users_registered_by_method::Summary>(body, "userRegistrationMethodCounts", |s| {
            s.user_registration_method_counts.0.len()
        })
    }),
];

fn every_parser(body: &[u8]) {
    for (_, parser) in PARSERS {
        parser(body);
    }
}

#[test]
fn every_report_has_a_parser() {
    let mut parsed: Vec<&str> = PARSERS.iter().map(|(name, _)| *name).collect();
    parsed.sort_unstable();
    let mut reports = names();
    reports.sort_unstable();
    assert_eq!(parsed, reports, "PARSERS must hold each report of ALL once");
}

/// Parses a summary as the Graph client does; every row of its list is parsed or skipped.
fn summary<T: DeserializeOwned>(body: &[u8], list: &str, rows: impl FnOnce(&T) -> usize) {
    if let Ok((summary, skipped)) = crate::graph::parse_document::<T>(body) {
        let document: Value = serde_json::from_slice(body).expect("a summary that parses is JSON");
        let listed = first_member(&document, list).map_or(0, Vec::len);
        assert_eq!(rows(&summary) + skipped.len(), listed);
        assert_no_values_in(&skipped, &document);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        every_parser(&body);
    }

    #[test]
    fn arbitrary_json(value in json()) {
        every_parser(&serde_json::to_vec(&value).unwrap_or_default());
    }

    #[test]
    fn pages_of_graph_fields_with_any_values(body in page()) {
        every_parser(&body);
    }

    #[test]
    fn summaries_with_any_values(counts in prop::collection::vec(prop::collection::btree_map(key(), json(), 0..4), 0..5)) {
        for list in [
            "userRegistrationFeatureCounts",
            "userRegistrationMethodCounts",
            "authenticationMethodConfigurations",
        ] {
            let rows: Vec<Value> = counts
                .iter()
                .map(|m| Value::Object(m.clone().into_iter().collect()))
                .collect();
            let document = serde_json::json!({ list: rows });
            every_parser(&serde_json::to_vec(&document).unwrap_or_default());
        }
    }
}

#[test]
fn counts_near_the_top_of_u64_saturate_instead_of_overflowing() {
    let body = format!(
        r#"{{"value":[{{"feature":"reset","authMethod":"sms","successfulActivityCount":{max},"failureActivityCount":"{max}"}},
                     {{"feature":"reset","authMethod":"sms","successfulActivityCount":{max},"failureActivityCount":1}}]}}"#,
        max = u64::MAX
    );
    let rows = parse_page::<activity::Row>(body.as_bytes()).unwrap().rows;
    let mut aggregate = activity::Aggregate::default();
    aggregate.add("D1", rows);
    let snapshot = aggregate.finish(&credential_usage_summary::ACTIVITIES);
    assert_eq!(
        snapshot.value(
            &credential_usage_summary::ACTIVITIES,
            &["D1", "reset", "sms", "success"]
        ),
        Some(u64::MAX as f64)
    );
}
