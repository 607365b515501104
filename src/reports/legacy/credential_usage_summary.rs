//! beta `GET /reports/getCredentialUsageSummary(period='D1'|'D7'|'D30')`: successful and failed
//! SSPR registration and reset activities per method, one request per period.
//!
//! Metric: `entra_credential_usage_activities{period,feature,auth_method,status}`.

use async_trait::async_trait;

use crate::graph::{GraphClient, GraphError};
use crate::reports::shared::activity::{self, ACTIVITY_LABELS};
use crate::reports::spec::{BuildContext, LEGACY_PERMISSION, Report, ReportSpec, SUMMARY_INTERVAL};
use crate::snapshot::{Kind, MetricDef, Snapshot};

pub const SPEC: ReportSpec = ReportSpec {
    name: "credentialUsageSummary",
    default_interval: SUMMARY_INTERVAL,
    permission: LEGACY_PERMISSION,
    successor: Some("userRegistrationActivity"),
    probe: "/beta/reports/getCredentialUsageSummary(period='D1')?$top=1",
    fallback: None,
    metrics: &[&ACTIVITIES],
    fields: crate::reports::shared::activity::FIELDS,
    persisted: false,
    build,
};

pub const PERIODS: [&str; 3] = ["D1", "D7", "D30"];

pub static ACTIVITIES: MetricDef = MetricDef {
    name: "entra_credential_usage_activities",
    help: "SSPR registration and reset activities in the trailing period, per feature, method and outcome, from the credential usage summary as of the last poll.",
    kind: Kind::Gauge,
    labels: ACTIVITY_LABELS,
};

fn build(_: &BuildContext) -> Box<dyn Report> {
    Box::new(UsageSummary)
}

struct UsageSummary;

#[async_trait]
impl Report for UsageSummary {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        activity::poll(graph, SPEC.name, &ACTIVITIES, &PERIODS, |period| {
            format!("/beta/reports/getCredentialUsageSummary(period='{period}')")
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ParsedPage, parse_page};
    use activity::{Aggregate, Row};

    fn aggregate(pages: &[(&'static str, &str)]) -> Result<Snapshot, serde_json::Error> {
        let mut aggregate = Aggregate::default();
        for (period, json) in pages {
            let ParsedPage { rows, .. } = parse_page::<Row>(json.as_bytes())?;
            aggregate.add(period, rows);
        }
        Ok(aggregate.finish(&ACTIVITIES))
    }

    /// The seed example has a missing comma after "id" (invalid JSON) and string counts.
    const SEED_AS_PUBLISHED: &str = r#"{
      "@odata.context":"https://graph.microsoft.com/beta/reports/$metadata#Collection(microsoft.graph.getCredentialUsageSummary)",
      "value":[
        {
          "id" : "d3590ed6-52b3-4102-aeff-aad2292ab01234"
          "feature":"registration",
          "successfulActivityCount":"12345",
          "failureActivityCount": "123",
          "authMethod": "email"
        }
      ]
    }"#;

    #[test]
    fn seed_example_is_rejected_as_published_and_parsed_once_repaired() {
        let err = aggregate(&[("D30", SEED_AS_PUBLISHED)]).unwrap_err();
        assert!(err.is_syntax(), "{err}");
        let repaired = SEED_AS_PUBLISHED.replace(
            r#""d3590ed6-52b3-4102-aeff-aad2292ab01234""#,
            r#""d3590ed6-52b3-4102-aeff-aad2292ab01234","#,
        );
        let s = aggregate(&[("D30", &repaired)]).unwrap();
        assert_eq!(
            s.value(&ACTIVITIES, &["D30", "registration", "email", "success"]),
            Some(12345.0)
        );
        assert_eq!(
            s.value(&ACTIVITIES, &["D30", "registration", "email", "failure"]),
            Some(123.0)
        );
    }

    #[test]
    fn periods_are_kept_apart_and_duplicate_rows_summed() {
        let s = aggregate(&[
            (
                "D1",
                r#"{"value":[{"feature":"reset","authMethod":"mobileSMS","successfulActivityCount":1,"failureActivityCount":2}]}"#,
            ),
            (
                "D7",
                r#"{"value":[
                {"feature":"reset","authMethod":"mobileSMS","successfulActivityCount":5,"failureActivityCount":"6"},
                {"feature":"reset","authMethod":"mobileSMS","successfulActivityCount":1,"failureActivityCount":1},
                {"feature":"reset","authMethod":"qrCode","successfulActivityCount":9,"failureActivityCount":0},
                {"feature":null,"authMethod":"","successfulActivityCount":3,"failureActivityCount":0}]}"#,
            ),
        ])
        .unwrap();
        assert_eq!(
            s.value(&ACTIVITIES, &["D1", "reset", "mobileSMS", "failure"]),
            Some(2.0)
        );
        assert_eq!(
            s.value(&ACTIVITIES, &["D7", "reset", "mobileSMS", "success"]),
            Some(6.0)
        );
        assert_eq!(
            s.value(&ACTIVITIES, &["D7", "reset", "mobileSMS", "failure"]),
            Some(7.0)
        );
        assert_eq!(
            s.value(&ACTIVITIES, &["D7", "reset", "qrCode", "success"]),
            Some(9.0)
        );
        assert_eq!(
            s.value(&ACTIVITIES, &["D7", "unknown", "unknown", "success"]),
            Some(3.0)
        );
    }

    #[test]
    fn rows_with_missing_counts_or_bad_types_are_skipped() {
        for (bad, field) in [
            (
                r#"{"value":[{"feature":"reset","authMethod":"email","successfulActivityCount":1}]}"#,
                "failureActivityCount",
            ),
            (
                r#"{"value":[{"feature":"reset","authMethod":"email","successfulActivityCount":[1],"failureActivityCount":0}]}"#,
                "successfulActivityCount",
            ),
            (
                r#"{"value":[{"feature":7,"authMethod":"email","successfulActivityCount":1,"failureActivityCount":0}]}"#,
                "feature",
            ),
        ] {
            let page = parse_page::<Row>(bad.as_bytes()).unwrap();
            assert!(page.rows.is_empty(), "{bad}");
            assert_eq!(page.skipped[0].field, field, "{bad}");
            assert!(aggregate(&[("D1", bad)]).is_ok(), "{bad}");
        }
    }
}
