//! v1.0 `GET /reports/authenticationMethods/usersRegisteredByFeature()`: users registered or
//! capable per feature (ssprRegistered, mfaCapable, passwordlessCapable, ...); the successor of
//! getCredentialUserRegistrationCount. Falls back on userRegistrationDetails when refused
//! app-only (see [`crate::reports::shared::registered_by`]).
//!
//! Metric: `entra_authmethods_registered_by_feature_users{feature,source}`.

use async_trait::async_trait;
use serde::Deserialize;

use crate::graph::{GraphClient, GraphError, Rows};
use crate::reports::shared::de;
use crate::reports::shared::registered_by::{
    self, Fallback, Figures, SOURCE_DETAILS, SOURCE_SUMMARY,
};
use crate::reports::spec::{
    BuildContext, DELEGATED_SUMMARY_PERMISSION, Report, ReportSpec, SUMMARY_INTERVAL,
};
use crate::snapshot::{Kind, MetricDef, Snapshot};

pub const SPEC: ReportSpec = ReportSpec {
    name: "usersRegisteredByFeature",
    default_interval: SUMMARY_INTERVAL,
    permission: DELEGATED_SUMMARY_PERMISSION,
    successor: None,
    probe: PATH,
    fallback: Some(crate::reports::successor::user_registration_details::SPEC.name),
    metrics: &[&FEATURE_USERS],
    fields: &["userRegistrationFeatureCounts", "feature", "userCount"],
    persisted: false,
    build,
};

const PATH: &str = "/v1.0/reports/authenticationMethods/usersRegisteredByFeature(includedUserTypes='all',includedUserRoles='all')";

pub static FEATURE_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_registered_by_feature_users",
    help: "Users per authentication-method feature (ssprRegistered, ssprEnabled, ssprCapable, passwordlessCapable, mfaCapable) as of the last poll; source is summary (usersRegisteredByFeature) or details (userRegistrationDetails, when the summary is refused).",
    kind: Kind::Gauge,
    labels: &["feature", "source"],
};

/// userRegistrationFeatureSummary: a single object, not a collection.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Rows that do not parse are skipped ([`Rows`]).
    #[serde(default)]
    pub user_registration_feature_counts: Rows<FeatureCount>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureCount {
    #[serde(default = "de::unknown", deserialize_with = "de::label")]
    pub feature: String,
    #[serde(deserialize_with = "de::count")]
    pub user_count: u64,
}

fn build(context: &BuildContext) -> Box<dyn Report> {
    Box::new(RegisteredByFeature(Fallback::new(context)))
}

struct RegisteredByFeature(Fallback);

#[async_trait]
impl Report for RegisteredByFeature {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        Ok(snapshot(self.0.poll(graph, SPEC.name, PATH).await?))
    }
}

fn snapshot(figures: Figures<Summary>) -> Snapshot {
    match figures {
        Figures::Summary(summary) => registered_by::snapshot(
            &FEATURE_USERS,
            SOURCE_SUMMARY,
            summary
                .user_registration_feature_counts
                .0
                .iter()
                .map(|c| (c.feature.as_str(), c.user_count)),
        ),
        Figures::Details(published) => registered_by::snapshot(
            &FEATURE_USERS,
            SOURCE_DETAILS,
            published
                .totals
                .by_feature
                .iter()
                .map(|(f, users)| (*f, *users)),
        )
        .expiring(published.fresh_until),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::shared::tenant::PublishedTotals;
    use crate::reports::shared::tenant::RegistrationTotals;
    use std::sync::Arc;

    #[test]
    fn docs_example_and_string_counts() {
        let summary: Summary = serde_json::from_str(
            r##"{"@odata.type":"#microsoft.graph.userRegistrationFeatureSummary","totalUserCount":23123,"userTypes":"all","userRoles":"all",
             "userRegistrationFeatureCounts":[{"feature":"ssprRegistered","userCount":23423},{"feature":"ssprEnabled","userCount":"4234"},
             {"feature":"ssprCapable","userCount":4234},{"feature":"passwordlessCapable","userCount":323},{"feature":"mfaCapable","userCount":3345},
             {"feature":"passkeyCapable","userCount":7}]}"##,
        )
        .unwrap();
        let s = snapshot(Figures::Summary(summary));
        assert_eq!(
            s.value(&FEATURE_USERS, &["ssprRegistered", "summary"]),
            Some(23423.0)
        );
        assert_eq!(
            s.value(&FEATURE_USERS, &["ssprEnabled", "summary"]),
            Some(4234.0)
        );
        assert_eq!(
            s.value(&FEATURE_USERS, &["passkeyCapable", "summary"]),
            Some(7.0)
        );
        assert_eq!(s.rows, 6);
    }

    #[test]
    fn details_fallback_has_the_same_shape() {
        let mut totals = RegistrationTotals::default();
        totals.by_feature.insert("mfaCapable", 12);
        let fresh_until = Some(std::time::Instant::now());
        let s = snapshot(Figures::Details(PublishedTotals {
            totals: Arc::new(totals),
            fresh_until,
        }));
        assert_eq!(
            s.value(&FEATURE_USERS, &["mfaCapable", "details"]),
            Some(12.0)
        );
        // The figures expire with the scan they come from.
        assert_eq!(s.expires_at, fresh_until);
    }

    #[test]
    fn an_object_instead_of_a_list_is_an_error_and_a_bad_count_skips_its_row() {
        assert!(
            serde_json::from_str::<Summary>(r#"{"userRegistrationFeatureCounts":{"feature":"x"}}"#)
                .is_err()
        );
        let summary: Summary = serde_json::from_str(
            r#"{"userRegistrationFeatureCounts":[{"feature":"x","userCount":-1},{"feature":"y","userCount":2}]}"#,
        )
        .unwrap();
        let s = snapshot(Figures::Summary(summary));
        assert_eq!(s.value(&FEATURE_USERS, &["x", "summary"]), None);
        assert_eq!(s.value(&FEATURE_USERS, &["y", "summary"]), Some(2.0));
    }
}
