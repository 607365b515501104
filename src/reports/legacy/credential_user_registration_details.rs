//! beta `GET /reports/credentialUserRegistrationDetails`: one row per user with their SSPR/MFA
//! registration flags and registered methods. Rows are counted page by page as they arrive;
//! user names are not even deserialized, so memory holds counts, never users.
//!
//! Metrics: `entra_credential_details_users{is_registered,is_enabled,is_capable,is_mfa_registered}`
//! (always all 16 combinations), `entra_credential_method_registered_users{auth_method}` and
//! `entra_credential_strength_users{strength}`: users per class of their strongest method, by
//! the successor's strength table ([`crate::reports::shared::strength`]) under the methods' successor names.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::graph::{GraphClient, GraphError};
use crate::labels::{BoundedLabel, bool_label};
use crate::reports::shared::de;
use crate::reports::shared::strength::{self, MethodCounts, Naming, StrengthCounts, StrengthTable};
use crate::reports::spec::{BuildContext, DETAILS_INTERVAL, LEGACY_PERMISSION, Report, ReportSpec};
use crate::snapshot::{Kind, MetricDef, Snapshot};

pub const SPEC: ReportSpec = ReportSpec {
    name: "credentialUserRegistrationDetails",
    default_interval: DETAILS_INTERVAL,
    permission: LEGACY_PERMISSION,
    successor: Some("userRegistrationDetails"),
    probe: "/beta/reports/credentialUserRegistrationDetails?$top=1",
    fallback: None,
    metrics: &[&DETAILS_USERS, &METHOD_USERS, &STRENGTH_USERS],
    fields: &[
        "authMethods",
        "isRegistered",
        "isEnabled",
        "isCapable",
        "isMfaRegistered",
    ],
    persisted: false,
    build,
};

const PATH: &str = "/beta/reports/credentialUserRegistrationDetails";
/// registrationAuthMethod has ten members today; the bound only guards against a flood of
/// unexpected values.
const METHOD_LIMIT: usize = 50;

pub static DETAILS_USERS: MetricDef = MetricDef {
    name: "entra_credential_details_users",
    help: "Users per combination of SSPR registered/enabled/capable and MFA registered flags, from the credential registration details as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &[
        "is_registered",
        "is_enabled",
        "is_capable",
        "is_mfa_registered",
    ],
};

pub static METHOD_USERS: MetricDef = MetricDef {
    name: "entra_credential_method_registered_users",
    help: "Users who registered each authentication method, from the credential registration details as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["auth_method"],
};

pub static STRENGTH_USERS: MetricDef = MetricDef {
    name: "entra_credential_strength_users",
    help: "Users per authentication strength class of their strongest registered method (phishingResistant, passwordless, appMfa, phoneMfa, none), from the credential registration details as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["strength"],
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(default, deserialize_with = "de::list")]
    pub auth_methods: Vec<String>,
    #[serde(deserialize_with = "de::flag")]
    pub is_registered: bool,
    #[serde(deserialize_with = "de::flag")]
    pub is_enabled: bool,
    #[serde(deserialize_with = "de::flag")]
    pub is_capable: bool,
    #[serde(deserialize_with = "de::flag")]
    pub is_mfa_registered: bool,
}

fn build(context: &BuildContext) -> Box<dyn Report> {
    Box::new(RegistrationDetails {
        methods: BoundedLabel::new(METHOD_LIMIT),
        context: context.clone(),
    })
}

struct RegistrationDetails {
    methods: BoundedLabel,
    context: BuildContext,
}

#[async_trait]
impl Report for RegistrationDetails {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        let mut aggregate = Aggregate::new(self.context.strength.clone());
        let rows = graph
            .for_each_page(SPEC.name, PATH, |rows: Vec<Row>| aggregate.add(rows))
            .await?;
        strength::log_unknown_methods(&self.context.shared, aggregate.unknown_methods());
        let mut snapshot = aggregate.finish(&mut self.methods);
        snapshot.rows = rows;
        Ok(snapshot)
    }
}

#[derive(Debug)]
pub struct Aggregate {
    strength: Arc<StrengthTable>,
    /// Indexed by the four flags as bits: registered, enabled, capable, MFA registered.
    combinations: [u64; 16],
    methods: MethodCounts,
    classes: StrengthCounts,
}

impl Aggregate {
    pub fn new(strength: Arc<StrengthTable>) -> Self {
        Self {
            strength,
            combinations: [0; 16],
            methods: MethodCounts::new(Naming::Legacy),
            classes: StrengthCounts::default(),
        }
    }

    pub fn add(&mut self, rows: Vec<Row>) {
        for row in rows {
            let index = usize::from(row.is_registered)
                | usize::from(row.is_enabled) << 1
                | usize::from(row.is_capable) << 2
                | usize::from(row.is_mfa_registered) << 3;
            self.combinations[index] += 1;
            let class = self.methods.add_user(&self.strength, row.auth_methods);
            self.classes.add(class);
        }
    }

    /// Methods the strength table does not know, with their users, sorted.
    pub fn unknown_methods(&self) -> Vec<(&str, u64)> {
        self.methods.unknown()
    }

    pub fn finish(self, bound: &mut BoundedLabel) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for (class, users) in self.classes.iter() {
            snapshot.push(&STRENGTH_USERS, vec![class.to_owned()], users as f64);
        }
        for (index, users) in self.combinations.iter().enumerate() {
            let flag = |bit: usize| bool_label(index & (1 << bit) != 0).to_owned();
            snapshot.push(
                &DETAILS_USERS,
                vec![flag(0), flag(1), flag(2), flag(3)],
                *users as f64,
            );
        }
        let users: HashMap<String, u64> = self
            .methods
            .users()
            .map(|(method, users)| (method.to_owned(), users))
            .collect();
        bound.admit(&users);
        let mut by_label: HashMap<&str, u64> = HashMap::new();
        for (method, users) in &users {
            *by_label.entry(bound.label(method)).or_default() += users;
        }
        let mut methods: Vec<_> = by_label.into_iter().collect();
        methods.sort_unstable();
        for (method, users) in methods {
            snapshot.push(&METHOD_USERS, vec![method.to_owned()], users as f64);
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ParsedPage, parse_page};

    fn aggregate(pages: &[&str], bound: &mut BoundedLabel) -> Result<Snapshot, serde_json::Error> {
        let mut aggregate = Aggregate::new(Arc::default());
        for json in pages {
            let ParsedPage { rows, .. } = parse_page::<Row>(json.as_bytes())?;
            aggregate.add(rows);
        }
        Ok(aggregate.finish(bound))
    }

    /// The seed example writes `"authMethods": {"email", "mobileSMS"}`, which is not JSON.
    const SEED_AS_PUBLISHED: &str = r#"{
      "@odata.context":"https://graph.microsoft.com/beta/reports/$metadata#Collection(microsoft.graph.credentialUserRegistrationDetails)",
      "value":[
        {
          "id" : "d3590ed6-52b3-4102-aeff-aad2292ab01234",
          "userPrincipalName":"abc@cd.com",
          "userDisplayName": "abc",
          "authMethods": {"email", "mobileSMS"},
          "isRegistered" : false,
          "isEnabled" : true,
          "isCapable" : false,
          "isMfaRegistered" : true
        }
      ]
    }"#;

    #[test]
    fn seed_example_is_rejected_as_published_and_parsed_once_repaired() {
        let mut bound = BoundedLabel::new(METHOD_LIMIT);
        assert!(aggregate(&[SEED_AS_PUBLISHED], &mut bound).is_err());
        let repaired =
            SEED_AS_PUBLISHED.replace(r#"{"email", "mobileSMS"}"#, r#"["email", "mobileSMS"]"#);
        let s = aggregate(&[&repaired], &mut bound).unwrap();
        assert_eq!(
            s.value(&DETAILS_USERS, &["false", "true", "false", "true"]),
            Some(1.0)
        );
        assert_eq!(
            s.value(&DETAILS_USERS, &["true", "true", "true", "true"]),
            Some(0.0)
        );
        assert_eq!(
            s.samples
                .iter()
                .filter(|x| std::ptr::eq(x.metric, &DETAILS_USERS))
                .count(),
            16
        );
        // mobileSMS is not a registrationAuthMethod member, but unknown values pass through.
        assert_eq!(s.value(&METHOD_USERS, &["email"]), Some(1.0));
        assert_eq!(s.value(&METHOD_USERS, &["mobileSMS"]), Some(1.0));
        let text = format!("{s:?}");
        assert!(!text.contains("abc@cd.com") && !text.contains("\"abc\""));
    }

    #[test]
    fn pages_accumulate_and_methods_are_counted_per_user() {
        let mut bound = BoundedLabel::new(METHOD_LIMIT);
        let s = aggregate(
            &[
                r#"{"value":[
                  {"authMethods":["email","email","fido"],"isRegistered":true,"isEnabled":true,"isCapable":true,"isMfaRegistered":true},
                  {"authMethods":null,"isRegistered":"false","isEnabled":false,"isCapable":false,"isMfaRegistered":false}],
                  "@odata.nextLink":"https://graph.microsoft.com/beta/reports/credentialUserRegistrationDetails?$skiptoken=x"}"#,
                r#"{"value":[{"authMethods":["externalAuthMethod"],"isRegistered":true,"isEnabled":true,"isCapable":true,"isMfaRegistered":true}]}"#,
            ],
            &mut bound,
        )
        .unwrap();
        assert_eq!(
            s.value(&DETAILS_USERS, &["true", "true", "true", "true"]),
            Some(2.0)
        );
        assert_eq!(
            s.value(&DETAILS_USERS, &["false", "false", "false", "false"]),
            Some(1.0)
        );
        assert_eq!(s.value(&METHOD_USERS, &["email"]), Some(1.0));
        assert_eq!(s.value(&METHOD_USERS, &["fido"]), Some(1.0));
        assert_eq!(s.value(&METHOD_USERS, &["externalAuthMethod"]), Some(1.0));
    }

    #[test]
    fn methods_beyond_the_bound_become_other() {
        let mut bound = BoundedLabel::new(1);
        let s = aggregate(
            &[r#"{"value":[
              {"authMethods":["email","fido"],"isRegistered":true,"isEnabled":true,"isCapable":true,"isMfaRegistered":true},
              {"authMethods":["email","appCode"],"isRegistered":true,"isEnabled":true,"isCapable":true,"isMfaRegistered":true}]}"#],
            &mut bound,
        )
        .unwrap();
        assert_eq!(s.value(&METHOD_USERS, &["email"]), Some(2.0));
        assert_eq!(s.value(&METHOD_USERS, &["other"]), Some(2.0));
    }

    #[test]
    fn rows_with_missing_or_odd_flags_are_skipped() {
        for (bad, field) in [
            (
                r#"{"value":[{"authMethods":[],"isRegistered":true}]}"#,
                "isEnabled",
            ),
            (
                r#"{"value":[{"isRegistered":1,"isEnabled":true,"isCapable":true,"isMfaRegistered":true}]}"#,
                "isRegistered",
            ),
        ] {
            let page = parse_page::<Row>(bad.as_bytes()).unwrap();
            assert!(page.rows.is_empty(), "{bad}");
            assert_eq!(page.skipped[0].field, field, "{bad}");
        }
    }

    #[test]
    fn users_count_once_in_the_class_of_their_strongest_legacy_method() {
        let rows = r#"{"value":[
          {"authMethods":["email","fido","mobilePhone"],"isRegistered":true,"isEnabled":true,"isCapable":true,"isMfaRegistered":true},
          {"authMethods":["appNotification","officePhone"],"isRegistered":true,"isEnabled":true,"isCapable":true,"isMfaRegistered":true},
          {"authMethods":["appCode"],"isRegistered":true,"isEnabled":true,"isCapable":true,"isMfaRegistered":true},
          {"authMethods":["alternateMobilePhone","email"],"isRegistered":true,"isEnabled":true,"isCapable":true,"isMfaRegistered":true},
          {"authMethods":["appPassword","securityQuestion"],"isRegistered":true,"isEnabled":true,"isCapable":true,"isMfaRegistered":false},
          {"authMethods":["mobileSMS"],"isRegistered":true,"isEnabled":true,"isCapable":true,"isMfaRegistered":false},
          {"authMethods":null,"isRegistered":false,"isEnabled":false,"isCapable":false,"isMfaRegistered":false}]}"#;
        let ParsedPage { rows: parsed, .. } = parse_page::<Row>(rows.as_bytes()).unwrap();
        let mut aggregate = Aggregate::new(Arc::default());
        aggregate.add(parsed);
        // The seed document's mobileSMS is no registrationAuthMethod: unknown, raising nobody.
        assert_eq!(aggregate.unknown_methods(), [("mobileSMS", 1)]);
        let s = aggregate.finish(&mut BoundedLabel::new(METHOD_LIMIT));
        let classes: Vec<(&str, Option<f64>)> = [
            "phishingResistant",
            "passwordless",
            "appMfa",
            "phoneMfa",
            "none",
        ]
        .into_iter()
        .map(|class| (class, s.value(&STRENGTH_USERS, &[class])))
        .collect();
        assert_eq!(
            classes,
            [
                ("phishingResistant", Some(1.0)),
                ("passwordless", Some(0.0)),
                ("appMfa", Some(2.0)),
                ("phoneMfa", Some(1.0)),
                ("none", Some(3.0)),
            ]
        );
        assert_eq!(s.value(&METHOD_USERS, &["mobileSMS"]), Some(1.0));
    }
}
