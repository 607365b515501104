//! Activity summaries, shared by the legacy getCredentialUsageSummary and its successor
//! userRegistrationActivity: rows of successful and failed activities per feature and method,
//! read once per period.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::graph::{GraphClient, GraphError};
use crate::reports::shared::de;
use crate::snapshot::{MetricDef, Snapshot};

/// The label names of an activity family.
pub const ACTIVITY_LABELS: &[&str] = &["period", "feature", "auth_method", "status"];

/// The fields [`Row`] reads.
pub const FIELDS: &[&str] = &[
    "feature",
    "authMethod",
    "successfulActivityCount",
    "failureActivityCount",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(default = "de::unknown", deserialize_with = "de::label")]
    pub feature: String,
    #[serde(default = "de::unknown", deserialize_with = "de::label")]
    pub auth_method: String,
    #[serde(deserialize_with = "de::count")]
    pub successful_activity_count: u64,
    #[serde(deserialize_with = "de::count")]
    pub failure_activity_count: u64,
}

/// Reads `path(period)` for every period and sums rows into `metric`.
pub async fn poll(
    graph: &GraphClient,
    report: &'static str,
    metric: &'static MetricDef,
    periods: &[&'static str],
    path: impl Fn(&str) -> String,
) -> Result<Snapshot, GraphError> {
    let mut aggregate = Aggregate::default();
    let mut rows = 0;
    for period in periods {
        rows += graph
            .for_each_page(report, &path(period), |page: Vec<Row>| {
                aggregate.add(period, page)
            })
            .await?;
    }
    let mut snapshot = aggregate.finish(metric);
    snapshot.rows = rows;
    Ok(snapshot)
}

/// (period, feature, auth_method) → (successes, failures); rows with the same key are summed.
#[derive(Debug, Default)]
pub struct Aggregate {
    counts: BTreeMap<(&'static str, String, String), (u64, u64)>,
}

impl Aggregate {
    pub fn add(&mut self, period: &'static str, rows: Vec<Row>) {
        for row in rows {
            let entry = self
                .counts
                .entry((period, row.feature, row.auth_method))
                .or_default();
            // Graph's counts are untrusted: a sum past u64::MAX saturates rather than panics.
            entry.0 = entry.0.saturating_add(row.successful_activity_count);
            entry.1 = entry.1.saturating_add(row.failure_activity_count);
        }
    }

    pub fn finish(self, metric: &'static MetricDef) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for ((period, feature, method), (success, failure)) in self.counts {
            for (status, count) in [("success", success), ("failure", failure)] {
                snapshot.push(
                    metric,
                    vec![
                        period.to_owned(),
                        feature.clone(),
                        method.clone(),
                        status.to_owned(),
                    ],
                    count as f64,
                );
            }
        }
        snapshot
    }
}
