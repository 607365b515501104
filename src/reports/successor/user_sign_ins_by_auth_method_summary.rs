//! beta `GET /reports/authenticationMethods/userSignInsByAuthMethodSummary(period='d1'|'d7'|'d30')`:
//! successful sign-ins per authentication method.
//!
//! Metric: `entra_authmethods_signin_activities{period,method}`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;

use crate::graph::{GraphClient, GraphError};
use crate::reports::shared::de;
use crate::reports::spec::{
    BuildContext, DELEGATED_SUMMARY_PERMISSION, Report, ReportSpec, SUMMARY_INTERVAL,
};
use crate::snapshot::{Kind, MetricDef, Snapshot};

pub const SPEC: ReportSpec = ReportSpec {
    name: "userSignInsByAuthMethodSummary",
    default_interval: SUMMARY_INTERVAL,
    permission: DELEGATED_SUMMARY_PERMISSION,
    successor: None,
    probe: "/beta/reports/authenticationMethods/userSignInsByAuthMethodSummary(period='d1')",
    fallback: None,
    metrics: &[&SIGNINS],
    fields: &["authenticationMethod", "successActivityCount"],
    persisted: false,
    build,
};

pub const PERIODS: [&str; 3] = ["d1", "d7", "d30"];

pub static SIGNINS: MetricDef = MetricDef {
    name: "entra_authmethods_signin_activities",
    help: "Successful sign-ins per authentication method in the trailing period, from userSignInsByAuthMethodSummary as of the last poll.",
    kind: Kind::Gauge,
    labels: &["period", "method"],
};

/// userSignInUsageByAuthMethodActivity; the method is the key (there is no id).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(default = "de::unknown", deserialize_with = "de::label")]
    pub authentication_method: String,
    #[serde(deserialize_with = "de::count")]
    pub success_activity_count: u64,
}

fn build(_: &BuildContext) -> Box<dyn Report> {
    Box::new(SigninsByMethod)
}

struct SigninsByMethod;

#[async_trait]
impl Report for SigninsByMethod {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        let mut counts: BTreeMap<(&'static str, String), u64> = BTreeMap::new();
        let mut rows = 0;
        for period in PERIODS {
            let path = format!(
                "/beta/reports/authenticationMethods/userSignInsByAuthMethodSummary(period='{period}')"
            );
            rows += graph
                .for_each_page(SPEC.name, &path, |page: Vec<Row>| {
                    add(&mut counts, period, page)
                })
                .await?;
        }
        let mut snapshot = finish(counts);
        snapshot.rows = rows;
        Ok(snapshot)
    }
}

pub(crate) fn add(
    counts: &mut BTreeMap<(&'static str, String), u64>,
    period: &'static str,
    rows: Vec<Row>,
) {
    for row in rows {
        let count = counts
            .entry((period, row.authentication_method))
            .or_default();
        // Graph's counts are untrusted: a sum past u64::MAX saturates rather than panics.
        *count = count.saturating_add(row.success_activity_count);
    }
}

pub(crate) fn finish(counts: BTreeMap<(&'static str, String), u64>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for ((period, method), count) in counts {
        snapshot.push(&SIGNINS, vec![period.to_owned(), method], count as f64);
    }
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ParsedPage, parse_page};

    #[test]
    fn docs_example_null_methods_and_duplicates() {
        let ParsedPage { rows, .. } = parse_page::<Row>(
            br#"{"value":[{"authenticationMethod":"passKeyDeviceBound","successActivityCount":843},
                {"authenticationMethod":"passKeyDeviceBound","successActivityCount":"7"},
                {"authenticationMethod":null,"successActivityCount":1}]}"#,
        )
        .unwrap();
        let mut counts = BTreeMap::new();
        add(&mut counts, "d7", rows);
        let s = finish(counts);
        assert_eq!(
            s.value(&SIGNINS, &["d7", "passKeyDeviceBound"]),
            Some(850.0)
        );
        assert_eq!(s.value(&SIGNINS, &["d7", "unknown"]), Some(1.0));
        let page = parse_page::<Row>(br#"{"value":[{"authenticationMethod":"sms"}]}"#).unwrap();
        assert!(page.rows.is_empty());
        assert_eq!(page.skipped[0].field, "successActivityCount");
        assert_eq!(page.skipped[0].found, "missing");
    }
}
