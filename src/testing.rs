//! Strategies the property tests share: documents shaped like what a parser reads, with
//! values of any type.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// An object key: mostly one of `keys` (the names the parser under test reads), sometimes any.
pub fn key(keys: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        4 => prop::sample::select(keys).prop_map(str::to_owned),
        1 => "[a-zA-Z_@.]{0,12}",
    ]
}

/// Any JSON value nested a few levels, its leaves from `scalar` and most keys from `keys`.
pub fn document(
    keys: &'static [&'static str],
    scalar: BoxedStrategy<Value>,
) -> impl Strategy<Value = Value> {
    scalar.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(keys), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}
