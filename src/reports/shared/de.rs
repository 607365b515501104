//! Lenient field parsers. The JSON itself must be valid, but values vary: Int64 counts arrive
//! as numbers or strings, and nullable enums arrive as null or "".

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::labels::UNKNOWN;

/// A count given as a JSON number or a string of digits.
pub fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct CountVisitor;

    impl Visitor<'_> for CountVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a non-negative count as a number or a string of digits")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            if v.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::invalid_value(de::Unexpected::Float(v), &self))
            }
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }

    deserializer.deserialize_any(CountVisitor)
}

/// A boolean given as `true`/`false` or as the strings `"true"`/`"false"`.
pub fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct FlagVisitor;

    impl Visitor<'_> for FlagVisitor {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a boolean")
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            match v.trim() {
                s if s.eq_ignore_ascii_case("true") => Ok(true),
                s if s.eq_ignore_ascii_case("false") => Ok(false),
                _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
            }
        }
    }

    deserializer.deserialize_any(FlagVisitor)
}

/// A nullable boolean: `true`, `false`, their string forms, or null.
pub fn optional_flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    struct Flag(#[serde(deserialize_with = "flag")] bool);
    Ok(Option::<Flag>::deserialize(deserializer)?.map(|Flag(value)| value))
}

/// A required object id: a non-empty string. The error never quotes the value.
pub fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let id = String::deserialize(deserializer)?;
    if id.is_empty() {
        return Err(de::Error::invalid_length(0, &"a non-empty object id"));
    }
    Ok(id)
}

/// Text that may be null: null becomes empty.
pub fn optional_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

/// Seconds since the epoch of an RFC 3339 time such as `2023-03-13T19:15:41.6195833Z`, or
/// `None` when it does not parse: a bad date loses a freshness gauge, not the whole poll.
pub fn timestamp(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

/// An enum or method name as a label value, spelled as Graph spells it; null or empty becomes
/// `unknown`. Unknown members pass through untouched.
pub fn label<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(match value {
        Some(v) if !v.trim().is_empty() => v,
        _ => UNKNOWN.to_owned(),
    })
}

/// Default for a label field that is missing altogether.
pub fn unknown() -> String {
    UNKNOWN.to_owned()
}

/// A list that may be null: null becomes empty.
pub fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<Option<String>>>::deserialize(deserializer)?
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .filter(|v| !v.trim().is_empty())
        .collect())
}

/// A user object id, kept only as its hash ([`crate::reports::shared::groups::id_hash`]) so that no id stays in
/// memory; null, missing or empty is `None`. Borrowed strings are hashed in place.
pub fn id_hash<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct IdVisitor;

    impl<'de> Visitor<'de> for IdVisitor {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object id string or null")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u64>, E> {
            Ok((!v.is_empty()).then(|| crate::reports::shared::groups::id_hash(v)))
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
            d.deserialize_str(IdVisitor)
        }
    }

    deserializer.deserialize_option(IdVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Row {
        #[serde(deserialize_with = "count")]
        n: u64,
        #[serde(default, deserialize_with = "flag")]
        b: bool,
        #[serde(default = "unknown", deserialize_with = "label")]
        l: String,
        #[serde(default, deserialize_with = "list")]
        v: Vec<String>,
    }

    fn row(json: &str) -> Result<Row, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn counts_from_numbers_and_strings() {
        assert_eq!(row(r#"{"n": 12345}"#).unwrap().n, 12345);
        assert_eq!(row(r#"{"n": "12345"}"#).unwrap().n, 12345);
        assert_eq!(row(r#"{"n": " 7 "}"#).unwrap().n, 7);
        assert_eq!(row(r#"{"n": 3.0}"#).unwrap().n, 3);
        assert_eq!(
            row(r#"{"n": 9007199254740993}"#).unwrap().n,
            9_007_199_254_740_993
        );
        for bad in [
            r#"{"n": -1}"#,
            r#"{"n": "12a"}"#,
            r#"{"n": 1.5}"#,
            r#"{"n": null}"#,
            r#"{"n": true}"#,
        ] {
            let err = row(bad).unwrap_err().to_string();
            assert!(err.contains("count"), "{bad}: {err}");
        }
    }

    #[test]
    fn flags_from_booleans_and_strings() {
        assert!(row(r#"{"n":0,"b":true}"#).unwrap().b);
        assert!(row(r#"{"n":0,"b":"True"}"#).unwrap().b);
        assert!(!row(r#"{"n":0,"b":"false"}"#).unwrap().b);
        assert!(row(r#"{"n":0,"b":"yes"}"#).is_err());
        assert!(row(r#"{"n":0,"b":1}"#).is_err());
    }

    #[test]
    fn labels_default_to_unknown_and_pass_new_values_through() {
        assert_eq!(row(r#"{"n":0}"#).unwrap().l, "unknown");
        assert_eq!(row(r#"{"n":0,"l":null}"#).unwrap().l, "unknown");
        assert_eq!(row(r#"{"n":0,"l":""}"#).unwrap().l, "unknown");
        assert_eq!(row(r#"{"n":0,"l":"qrCode"}"#).unwrap().l, "qrCode");
        assert!(row(r#"{"n":0,"l":5}"#).is_err());
    }

    #[derive(Debug, Deserialize)]
    struct Nullable {
        #[serde(default, deserialize_with = "optional_flag")]
        b: Option<bool>,
    }

    #[test]
    fn optional_flags() {
        let parse = |json| serde_json::from_str::<Nullable>(json).map(|n| n.b);
        assert_eq!(parse(r#"{"b":null}"#).unwrap(), None);
        assert_eq!(parse(r#"{}"#).unwrap(), None);
        assert_eq!(parse(r#"{"b":"true"}"#).unwrap(), Some(true));
        assert_eq!(parse(r#"{"b":false}"#).unwrap(), Some(false));
        assert!(parse(r#"{"b":"x"}"#).is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp("2019-04-01T00:00:00Z"), Some(1_554_076_800));
        assert_eq!(
            timestamp("2023-03-13T19:15:41.6195833Z"),
            Some(1_678_734_941)
        );
        assert_eq!(timestamp("2023-03-13T19:15:41+02:00"), Some(1_678_727_741));
        assert_eq!(timestamp("yesterday"), None);
        assert_eq!(timestamp(""), None);
    }

    #[derive(Debug, Deserialize)]
    struct Object {
        #[serde(default, deserialize_with = "id_hash")]
        id: Option<u64>,
    }

    #[test]
    fn ids_become_hashes() {
        let parse = |json| serde_json::from_str::<Object>(json).map(|o| o.id);
        let hash = crate::reports::shared::groups::id_hash("86462606-fde0-4fc4-9e0c-a20eb73e54c6");
        assert_eq!(
            parse(r#"{"id":"86462606-fde0-4fc4-9e0c-a20eb73e54c6"}"#).unwrap(),
            Some(hash)
        );
        // An escaped string is the same id.
        assert_eq!(
            parse(r#"{"id":"86462606-fde0-4fc4-9e0c-a20eb73e54c\u0036"}"#).unwrap(),
            Some(hash)
        );
        assert_eq!(parse(r#"{"id":null}"#).unwrap(), None);
        assert_eq!(parse(r#"{"id":""}"#).unwrap(), None);
        assert_eq!(parse(r#"{}"#).unwrap(), None);
        assert!(parse(r#"{"id":7}"#).is_err());
    }

    #[test]
    fn lists_tolerate_null() {
        assert!(row(r#"{"n":0,"v":null}"#).unwrap().v.is_empty());
        assert_eq!(
            row(r#"{"n":0,"v":["a",null,"","b"]}"#).unwrap().v,
            ["a", "b"]
        );
        assert!(row(r#"{"n":0,"v":{"a":1}}"#).is_err());
    }
}
