//! beta `GET /reports/authenticationMethods/userRegistrationActivity(period='d1'|'d7'|'d30')`:
//! successful and failed registration and reset activities per method; the successor of
//! getCredentialUsageSummary, with the same rows (see [`crate::reports::shared::activity`]).
//!
//! Metric: `entra_authmethods_registration_activities{period,feature,auth_method,status}`;
//! `period` is spelled as Graph's aggregationPeriod: `d1`, `d7`, `d30`.

use async_trait::async_trait;

use crate::graph::{GraphClient, GraphError};
use crate::reports::shared::activity::{self, ACTIVITY_LABELS};
use crate::reports::spec::{
    BuildContext, DELEGATED_SUMMARY_PERMISSION, Report, ReportSpec, SUMMARY_INTERVAL,
};
use crate::snapshot::{Kind, MetricDef, Snapshot};

pub const SPEC: ReportSpec = ReportSpec {
    name: "userRegistrationActivity",
    default_interval: SUMMARY_INTERVAL,
    permission: DELEGATED_SUMMARY_PERMISSION,
    successor: None,
    probe: "/beta/reports/authenticationMethods/userRegistrationActivity(period='d1')",
    fallback: None,
    metrics: &[&ACTIVITIES],
    fields: crate::reports::shared::activity::FIELDS,
    persisted: false,
    build,
};

pub const PERIODS: [&str; 3] = ["d1", "d7", "d30"];

pub static ACTIVITIES: MetricDef = MetricDef {
    name: "entra_authmethods_registration_activities",
    help: "Registration and reset activities in the trailing period, per feature, method and outcome, from userRegistrationActivity as of the last poll.",
    kind: Kind::Gauge,
    labels: ACTIVITY_LABELS,
};

fn build(_: &BuildContext) -> Box<dyn Report> {
    Box::new(RegistrationActivity)
}

struct RegistrationActivity;

#[async_trait]
impl Report for RegistrationActivity {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        activity::poll(graph, SPEC.name, &ACTIVITIES, &PERIODS, |period| {
            format!(
                "/beta/reports/authenticationMethods/userRegistrationActivity(period='{period}')"
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ParsedPage, parse_page};
    use activity::{Aggregate, Row};

    #[test]
    fn docs_example() {
        let ParsedPage { rows, .. } = parse_page::<Row>(
            br#"{"value":[{"id":"8998b7bb-0000","feature":"registration","authMethod":"microsoftAuthenticatorPush","successfulActivityCount":83,"failureActivityCount":214}]}"#,
        )
        .unwrap();
        let mut aggregate = Aggregate::default();
        aggregate.add("d7", rows);
        let s = aggregate.finish(&ACTIVITIES);
        assert_eq!(
            s.value(
                &ACTIVITIES,
                &[
                    "d7",
                    "registration",
                    "microsoftAuthenticatorPush",
                    "failure"
                ]
            ),
            Some(214.0)
        );
        assert_eq!(
            s.value(
                &ACTIVITIES,
                &[
                    "d7",
                    "registration",
                    "microsoftAuthenticatorPush",
                    "success"
                ]
            ),
            Some(83.0)
        );
    }
}
