//! v1.0 `GET /reports/authenticationMethods/usersRegisteredByMethod()`: users per registered
//! authentication method. Falls back on userRegistrationDetails when refused app-only (see
//! [`crate::reports::shared::registered_by`]).
//!
//! Metric: `entra_authmethods_registered_by_method_users{method,source}`.

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
    name: "usersRegisteredByMethod",
    default_interval: SUMMARY_INTERVAL,
    permission: DELEGATED_SUMMARY_PERMISSION,
    successor: None,
    probe: PATH,
    fallback: Some(crate::reports::successor::user_registration_details::SPEC.name),
    metrics: &[&METHOD_USERS],
    fields: &[
        "userRegistrationMethodCounts",
        "authenticationMethod",
        "userCount",
    ],
    persisted: false,
    build,
};

const PATH: &str = "/v1.0/reports/authenticationMethods/usersRegisteredByMethod(includedUserTypes='all',includedUserRoles='all')";

pub static METHOD_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_registered_by_method_users",
    help: "Users who registered each authentication method as of the last poll; source is summary (usersRegisteredByMethod) or details (userRegistrationDetails, when the summary is refused).",
    kind: Kind::Gauge,
    labels: &["method", "source"],
};

/// userRegistrationMethodSummary: a single object, not a collection.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Rows that do not parse are skipped ([`Rows`]).
    #[serde(default)]
    pub user_registration_method_counts: Rows<MethodCount>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodCount {
    #[serde(default = "de::unknown", deserialize_with = "de::label")]
    pub authentication_method: String,
    #[serde(deserialize_with = "de::count")]
    pub user_count: u64,
}

fn build(context: &BuildContext) -> Box<dyn Report> {
    Box::new(RegisteredByMethod(Fallback::new(context)))
}

struct RegisteredByMethod(Fallback);

#[async_trait]
impl Report for RegisteredByMethod {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        Ok(snapshot(self.0.poll(graph, SPEC.name, PATH).await?))
    }
}

fn snapshot(figures: Figures<Summary>) -> Snapshot {
    match figures {
        Figures::Summary(summary) => registered_by::snapshot(
            &METHOD_USERS,
            SOURCE_SUMMARY,
            summary
                .user_registration_method_counts
                .0
                .iter()
                .map(|c| (c.authentication_method.as_str(), c.user_count)),
        ),
        Figures::Details(published) => registered_by::snapshot(
            &METHOD_USERS,
            SOURCE_DETAILS,
            published
                .totals
                .by_method
                .iter()
                .map(|(m, users)| (m.as_str(), *users)),
        )
        .expiring(published.fresh_until),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_example_without_total_user_count() {
        // The docs' example omits totalUserCount; it is not needed.
        let summary: Summary = serde_json::from_str(
            r##"{"@odata.type":"#microsoft.graph.userRegistrationMethodSummary","userTypes":"all","userRoles":"all",
             "userRegistrationMethodCounts":[{"authenticationMethod":"password","userCount":12209},{"authenticationMethod":"mobilePhone","userCount":"4234"},
             {"authenticationMethod":null,"userCount":1}]}"##,
        )
        .unwrap();
        let s = snapshot(Figures::Summary(summary));
        assert_eq!(
            s.value(&METHOD_USERS, &["password", "summary"]),
            Some(12209.0)
        );
        assert_eq!(
            s.value(&METHOD_USERS, &["mobilePhone", "summary"]),
            Some(4234.0)
        );
        assert_eq!(s.value(&METHOD_USERS, &["unknown", "summary"]), Some(1.0));
    }

    #[test]
    fn null_and_empty_methods_are_one_summed_series() {
        let summary: Summary = serde_json::from_str(
            r#"{"userRegistrationMethodCounts":[{"authenticationMethod":null,"userCount":1},
                {"authenticationMethod":"","userCount":"2"},{"authenticationMethod":"sms","userCount":4}]}"#,
        )
        .unwrap();
        let s = snapshot(Figures::Summary(summary));
        assert_eq!(s.value(&METHOD_USERS, &["unknown", "summary"]), Some(3.0));
        let mut families = crate::exposition::Families::default();
        for sample in &s.samples {
            families.add(sample.metric, "t", &sample.labels, sample.value);
        }
        let text = families.render(0);
        let unknown: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(r#"method="unknown""#))
            .collect();
        assert_eq!(
            unknown,
            [
                r#"entra_authmethods_registered_by_method_users{tenant="t",method="unknown",source="summary"} 3"#
            ]
        );
    }
}
