//! beta `GET /reports/getCredentialUserRegistrationCount`: how many users are registered,
//! enabled and capable for SSPR, and registered for MFA.
//!
//! Metrics: `entra_credential_users`, `entra_credential_registration_users{status}`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;

use crate::graph::{GraphClient, GraphError};
use crate::reports::shared::de;
use crate::reports::spec::{BuildContext, LEGACY_PERMISSION, Report, ReportSpec, SUMMARY_INTERVAL};
use crate::snapshot::{Kind, MetricDef, Snapshot};

pub const SPEC: ReportSpec = ReportSpec {
    name: "credentialUserRegistrationCount",
    default_interval: SUMMARY_INTERVAL,
    permission: LEGACY_PERMISSION,
    successor: Some("usersRegisteredByFeature / userRegistrationDetails"),
    probe: PATH,
    fallback: None,
    metrics: &[&USERS, &REGISTRATION_USERS],
    fields: &[
        "totalUserCount",
        "userRegistrationCounts",
        "registrationStatus",
        "userRegistrationStatus",
        "registrationCount",
        "userRegistationCount",
    ],
    persisted: false,
    build,
};

const PATH: &str = "/beta/reports/getCredentialUserRegistrationCount";

pub static USERS: MetricDef = MetricDef {
    name: "entra_credential_users",
    help: "Users counted by the credential registration report (totalUserCount), as of the last poll.",
    kind: Kind::Gauge,
    labels: &[],
};

pub static REGISTRATION_USERS: MetricDef = MetricDef {
    name: "entra_credential_registration_users",
    help: "Users per registration status (registered, enabled, capable, mfaRegistered, ...) from the credential registration report, as of the last poll.",
    kind: Kind::Gauge,
    labels: &["status"],
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(deserialize_with = "de::count")]
    pub total_user_count: u64,
    #[serde(default)]
    pub user_registration_counts: Vec<StatusCount>,
}

/// The docs' example spells these `userRegistrationStatus` and `userRegistationCount` (sic);
/// the metadata says `registrationStatus` and `registrationCount`. Both are accepted.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCount {
    #[serde(alias = "userRegistrationStatus", deserialize_with = "de::label")]
    pub registration_status: String,
    #[serde(alias = "userRegistationCount", deserialize_with = "de::count")]
    pub registration_count: u64,
}

fn build(_: &BuildContext) -> Box<dyn Report> {
    Box::new(RegistrationCount)
}

struct RegistrationCount;

#[async_trait]
impl Report for RegistrationCount {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        let mut aggregate = Aggregate::default();
        let rows = graph
            .for_each_page(SPEC.name, PATH, |rows: Vec<Row>| aggregate.add(rows))
            .await?;
        let mut snapshot = aggregate.finish();
        snapshot.rows = rows;
        Ok(snapshot)
    }
}

/// Sums rows; the service returns one, but a collection may in principle hold more.
#[derive(Debug, Default)]
pub struct Aggregate {
    rows: u64,
    total: u64,
    by_status: BTreeMap<String, u64>,
}

impl Aggregate {
    pub fn add(&mut self, rows: Vec<Row>) {
        for row in rows {
            self.rows += 1;
            // Graph's counts are untrusted: a sum past u64::MAX saturates rather than panics.
            self.total = self.total.saturating_add(row.total_user_count);
            for status in row.user_registration_counts {
                let count = self
                    .by_status
                    .entry(status.registration_status)
                    .or_default();
                *count = count.saturating_add(status.registration_count);
            }
        }
    }

    pub fn finish(self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        // A retired endpoint may answer with no rows: that is no data, not zero users.
        if self.rows == 0 {
            return snapshot;
        }
        snapshot.push(&USERS, vec![], self.total as f64);
        for (status, count) in self.by_status {
            snapshot.push(&REGISTRATION_USERS, vec![status], count as f64);
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ParsedPage, parse_page};

    fn aggregate(json: &str) -> Result<Snapshot, serde_json::Error> {
        let ParsedPage { rows, .. } = parse_page::<Row>(json.as_bytes())?;
        let mut aggregate = Aggregate::default();
        aggregate.add(rows);
        Ok(aggregate.finish())
    }

    /// The seed document's example, which is valid JSON but uses the wrong property names.
    const SEED: &str = r#"{
      "@odata.context":"https://graph.microsoft.com/beta/reports/$metadata#Collection(microsoft.graph.credentialUserRegistrationCount)",
      "value": [
        {
          "id" : "d3590ed6-52b3-4102-aeff-aad2292ab01234",
          "totalUserCount" : 23123,
          "userRegistrationCounts" :
          [
            { "userRegistrationStatus":"registered", "userRegistationCount": 23423 },
            { "userRegistrationStatus":"enabled", "userRegistationCount": 4234 },
            { "userRegistrationStatus":"capable", "userRegistationCount": 323 },
            { "userRegistrationStatus":"mfaRegistered", "userRegistationCount": 33 }
          ]
        }
      ]
    }"#;

    #[test]
    fn seed_example_with_misspelled_names() {
        let s = aggregate(SEED).unwrap();
        assert_eq!(s.value(&USERS, &[]), Some(23123.0));
        assert_eq!(s.value(&REGISTRATION_USERS, &["registered"]), Some(23423.0));
        assert_eq!(s.value(&REGISTRATION_USERS, &["enabled"]), Some(4234.0));
        assert_eq!(s.value(&REGISTRATION_USERS, &["capable"]), Some(323.0));
        assert_eq!(s.value(&REGISTRATION_USERS, &["mfaRegistered"]), Some(33.0));
    }

    #[test]
    fn metadata_names_string_counts_and_new_statuses() {
        let s = aggregate(
            r#"{"value":[{"id":"x","totalUserCount":"10","userRegistrationCounts":[
                {"registrationStatus":"registered","registrationCount":"4"},
                {"registrationStatus":"passkeyReady","registrationCount":2},
                {"registrationStatus":null,"registrationCount":1}]}]}"#,
        )
        .unwrap();
        assert_eq!(s.value(&USERS, &[]), Some(10.0));
        assert_eq!(s.value(&REGISTRATION_USERS, &["registered"]), Some(4.0));
        assert_eq!(s.value(&REGISTRATION_USERS, &["passkeyReady"]), Some(2.0));
        assert_eq!(s.value(&REGISTRATION_USERS, &["unknown"]), Some(1.0));
    }

    #[test]
    fn invalid_json_is_an_error_and_a_row_of_odd_types_is_skipped() {
        assert!(aggregate(r#"{"value":[{"totalUserCount":1,}]}"#).is_err());
        assert!(aggregate(r#"{"value":{"totalUserCount":1}}"#).is_err());
        assert!(aggregate(r#"{"values":[]}"#).is_err());
        let bad = r#"{"value":[{"totalUserCount":"many"}]}"#;
        assert!(aggregate(bad).unwrap().samples.is_empty());
        let skipped = parse_page::<Row>(bad.as_bytes()).unwrap().skipped;
        assert_eq!(skipped[0].field, "totalUserCount");
    }

    #[test]
    fn empty_report_is_no_data_rather_than_zero_users() {
        let s = aggregate(r#"{"value":[]}"#).unwrap();
        assert!(s.samples.is_empty());
    }
}
