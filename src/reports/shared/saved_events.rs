//! What the state file keeps of an events report: its counters, the failure reasons admitted
//! as labels and the ids of the events already counted. The events reports read and write it.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// What the state file keeps of one events report of one tenant. Its size follows the events
/// in Graph's window (one id per event, expired with it), never the time the exporter runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedEvents {
    /// `*_usage_events_total` per label set; the outcome counters are their sums.
    pub(super) totals: Vec<SavedTotal>,
    /// The failure_reason values admitted as labels, so that series do not move.
    pub(super) failure_reasons: Vec<String>,
    /// XXH3-64 hashes of the remembered event ids (16 hex digits) and their eventDateTime
    /// (Unix seconds).
    pub(super) event_ids: HashMap<IdHash, i64>,
    /// The newest eventDateTime seen (Unix seconds).
    pub(super) newest_event: Option<i64>,
    /// Events dated before this (Unix seconds) are never counted. Missing in files written
    /// before it was kept.
    #[serde(default)]
    pub(super) horizon: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SavedTotal {
    pub(super) feature: String,
    pub(super) auth_method: String,
    pub(super) status: Outcome,
    pub(super) failure_reason: String,
    pub(super) events: u64,
}

/// The `status` label of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub(super) const ALL: [Outcome; 2] = [Outcome::Success, Outcome::Failure];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub(super) fn from_success(success: bool) -> Self {
        if success {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }

    pub(super) fn from_label(label: &str) -> Self {
        if label == Outcome::Success.as_str() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

/// An id hash, written as 16 hex digits: JSON numbers above 2^53 lose precision in most tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct IdHash(pub(super) u64);

impl Serialize for IdHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{:016x}", self.0))
    }
}

impl<'de> Deserialize<'de> for IdHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexVisitor;

        impl Visitor<'_> for HexVisitor {
            type Value = IdHash;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event id hash of 16 hex digits")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdHash, E> {
                if v.len() != 16 {
                    return Err(E::invalid_length(v.len(), &self));
                }
                u64::from_str_radix(v, 16)
                    .map(IdHash)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }

        deserializer.deserialize_str(HexVisitor)
    }
}
