//! v1.0 `GET /reports/authenticationMethods/userRegistrationDetails`: one row per user with
//! their SSPR, MFA and passwordless state and registered methods; the successor of
//! credentialUserRegistrationDetails. A complete scan is aggregated page by page (`$top=999`);
//! user names are never deserialized, so memory holds counts, not users. Only a complete scan
//! is published, and its totals are shared with usersRegisteredByFeature/-Method, which fall
//! back on them when Graph refuses those summaries app-only.
//!
//! Metrics (`user_type` and `is_admin` are `unknown` when null):
//! - `entra_authmethods_users{user_type,is_admin}`
//! - `entra_authmethods_feature_users{feature,user_type,is_admin}`: users with the flag true
//! - `entra_authmethods_method_registered_users{method,user_type,is_admin}`
//! - `entra_authmethods_preferred_method_users{method}`: `none` when null or empty
//! - `entra_authmethods_system_preferred_method_users{method}`: `none` when the list is empty
//! - `entra_authmethods_details_last_updated_timestamp_seconds`: newest lastUpdatedDateTime

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde::Deserialize;

use super::{AUDIT_LOG_PERMISSION, BuildContext, DETAILS_INTERVAL, Report, ReportSpec, de};
use crate::graph::{GraphClient, GraphError};
use crate::labels::{BoundedLabel, UNKNOWN, bool_label};
use crate::snapshot::{Kind, MetricDef, Snapshot};

pub const SPEC: ReportSpec = ReportSpec {
    name: "userRegistrationDetails",
    default_interval: DETAILS_INTERVAL,
    permission: AUDIT_LOG_PERMISSION,
    successor: None,
    metrics: &[
        &USERS,
        &FEATURE_USERS,
        &METHOD_USERS,
        &PREFERRED_METHOD_USERS,
        &SYSTEM_PREFERRED_METHOD_USERS,
        &LAST_UPDATED,
    ],
    build,
};

const PATH: &str = "/v1.0/reports/authenticationMethods/userRegistrationDetails?$top=999";
/// methodsRegistered is an open set of strings; about twenty are known today.
const METHOD_LIMIT: usize = 50;
/// The value for a user with no preferred method.
const NONE: &str = "none";

/// The flags exported as `feature`, in the order of [`Flags`].
pub const FEATURES: [&str; 7] = [
    "ssprRegistered",
    "ssprEnabled",
    "ssprCapable",
    "mfaRegistered",
    "mfaCapable",
    "passwordlessCapable",
    "systemPreferredAuthenticationMethodEnabled",
];

/// The features usersRegisteredByFeature reports (authenticationMethodFeature).
pub const SUMMARY_FEATURES: [&str; 5] = [
    "ssprRegistered",
    "ssprEnabled",
    "ssprCapable",
    "passwordlessCapable",
    "mfaCapable",
];

pub static USERS: MetricDef = MetricDef {
    name: "entra_authmethods_users",
    help: "Users in the userRegistrationDetails report, by user type and admin role, as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["user_type", "is_admin"],
};

pub static FEATURE_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_feature_users",
    help: "Users for whom the feature flag (ssprRegistered, mfaCapable, passwordlessCapable, ...) is true, from userRegistrationDetails as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["feature", "user_type", "is_admin"],
};

pub static METHOD_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_method_registered_users",
    help: "Users who registered each authentication method (methodsRegistered), from userRegistrationDetails as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["method", "user_type", "is_admin"],
};

pub static PREFERRED_METHOD_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_preferred_method_users",
    help: "Users per preferred method for secondary authentication (none when unset), from userRegistrationDetails as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["method"],
};

pub static SYSTEM_PREFERRED_METHOD_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_system_preferred_method_users",
    help: "Users per system-preferred authentication method (none when unset), from userRegistrationDetails as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["method"],
};

pub static LAST_UPDATED: MetricDef = MetricDef {
    name: "entra_authmethods_details_last_updated_timestamp_seconds",
    help: "Newest lastUpdatedDateTime in userRegistrationDetails as of the last complete scan: how fresh Graph's data is.",
    kind: Kind::Gauge,
    labels: &[],
};

/// What usersRegisteredByFeature and usersRegisteredByMethod report, computed from a complete
/// scan.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RegistrationTotals {
    pub users: u64,
    /// Users per [`SUMMARY_FEATURES`] feature.
    pub by_feature: BTreeMap<&'static str, u64>,
    /// Users per registered method (bounded like the method label).
    pub by_method: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(default = "de::unknown", deserialize_with = "de::label")]
    pub user_type: String,
    #[serde(default, deserialize_with = "de::optional_flag")]
    pub is_admin: Option<bool>,
    #[serde(deserialize_with = "de::flag")]
    pub is_sspr_registered: bool,
    #[serde(deserialize_with = "de::flag")]
    pub is_sspr_enabled: bool,
    #[serde(deserialize_with = "de::flag")]
    pub is_sspr_capable: bool,
    #[serde(deserialize_with = "de::flag")]
    pub is_mfa_registered: bool,
    #[serde(deserialize_with = "de::flag")]
    pub is_mfa_capable: bool,
    #[serde(deserialize_with = "de::flag")]
    pub is_passwordless_capable: bool,
    #[serde(default, deserialize_with = "de::optional_flag")]
    pub is_system_preferred_authentication_method_enabled: Option<bool>,
    #[serde(default, deserialize_with = "de::list")]
    pub methods_registered: Vec<String>,
    #[serde(default, deserialize_with = "de::list")]
    pub system_preferred_authentication_methods: Vec<String>,
    #[serde(default, deserialize_with = "de::optional_text")]
    pub user_preferred_method_for_secondary_authentication: String,
    #[serde(default, deserialize_with = "de::optional_text")]
    pub last_updated_date_time: String,
}

impl Row {
    /// The [`FEATURES`] flags, in order.
    fn flags(&self) -> [bool; 7] {
        [
            self.is_sspr_registered,
            self.is_sspr_enabled,
            self.is_sspr_capable,
            self.is_mfa_registered,
            self.is_mfa_capable,
            self.is_passwordless_capable,
            self.is_system_preferred_authentication_method_enabled == Some(true),
        ]
    }
}

fn build(context: &BuildContext) -> Box<dyn Report> {
    Box::new(UserRegistrationDetails {
        bounds: Bounds::default(),
        context: context.clone(),
    })
}

/// Open sets of method names, each kept to [`METHOD_LIMIT`] values per tenant.
#[derive(Debug)]
pub struct Bounds {
    methods: BoundedLabel,
    preferred: BoundedLabel,
    system_preferred: BoundedLabel,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            methods: BoundedLabel::new(METHOD_LIMIT),
            preferred: BoundedLabel::new(METHOD_LIMIT),
            system_preferred: BoundedLabel::new(METHOD_LIMIT),
        }
    }
}

struct UserRegistrationDetails {
    bounds: Bounds,
    context: BuildContext,
}

#[async_trait]
impl Report for UserRegistrationDetails {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        let mut aggregate = Aggregate::default();
        let rows = graph
            .for_each_page(SPEC.name, PATH, |page: Vec<Row>| aggregate.add(page))
            .await?;
        let (mut snapshot, totals) = aggregate.finish(&mut self.bounds);
        snapshot.rows = rows;
        self.context.shared.publish_registration_totals(totals);
        Ok(snapshot)
    }
}

/// Counts for one (user_type, is_admin) group.
#[derive(Debug, Default)]
struct Group {
    users: u64,
    features: [u64; 7],
    methods: HashMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Aggregate {
    groups: BTreeMap<(String, &'static str), Group>,
    preferred: HashMap<String, u64>,
    system_preferred: HashMap<String, u64>,
    newest: Option<i64>,
}

impl Aggregate {
    pub fn add(&mut self, rows: Vec<Row>) {
        for mut row in rows {
            let flags = row.flags();
            let is_admin = row.is_admin.map_or(UNKNOWN, bool_label);
            let group = self
                .groups
                .entry((std::mem::take(&mut row.user_type), is_admin))
                .or_default();
            group.users += 1;
            for (count, flag) in group.features.iter_mut().zip(flags) {
                *count += u64::from(flag);
            }
            let mut methods = std::mem::take(&mut row.methods_registered);
            // A user counts once per method even if Graph lists it twice.
            methods.sort_unstable();
            methods.dedup();
            for method in methods {
                *group.methods.entry(method).or_default() += 1;
            }

            let preferred = match row
                .user_preferred_method_for_secondary_authentication
                .trim()
            {
                "" => NONE.to_owned(),
                _ => std::mem::take(&mut row.user_preferred_method_for_secondary_authentication),
            };
            *self.preferred.entry(preferred).or_default() += 1;
            let mut system = std::mem::take(&mut row.system_preferred_authentication_methods);
            if system.is_empty() {
                system.push(NONE.to_owned());
            }
            system.sort_unstable();
            system.dedup();
            for method in system {
                *self.system_preferred.entry(method).or_default() += 1;
            }

            if let Some(updated) = de::timestamp(&row.last_updated_date_time) {
                self.newest = Some(self.newest.map_or(updated, |n| n.max(updated)));
            }
        }
    }

    pub fn finish(self, bounds: &mut Bounds) -> (Snapshot, RegistrationTotals) {
        let mut snapshot = Snapshot::default();
        let mut totals = RegistrationTotals::default();
        let mut all_methods: HashMap<String, u64> = HashMap::new();
        for group in self.groups.values() {
            for (method, users) in &group.methods {
                *all_methods.entry(method.clone()).or_default() += users;
            }
        }
        bounds.methods.admit(&all_methods);

        for ((user_type, is_admin), group) in &self.groups {
            let labels =
                |first: &str| vec![first.to_owned(), user_type.clone(), (*is_admin).to_owned()];
            snapshot.push(
                &USERS,
                vec![user_type.clone(), (*is_admin).to_owned()],
                group.users as f64,
            );
            totals.users += group.users;
            for (feature, users) in FEATURES.iter().zip(group.features) {
                snapshot.push(&FEATURE_USERS, labels(feature), users as f64);
                if SUMMARY_FEATURES.contains(feature) {
                    *totals.by_feature.entry(feature).or_default() += users;
                }
            }
            for (method, users) in bounded(&bounds.methods, &group.methods) {
                snapshot.push(&METHOD_USERS, labels(method), users as f64);
                *totals.by_method.entry(method.to_owned()).or_default() += users;
            }
        }
        for (def, counts, bound) in [
            (
                &PREFERRED_METHOD_USERS,
                &self.preferred,
                &mut bounds.preferred,
            ),
            (
                &SYSTEM_PREFERRED_METHOD_USERS,
                &self.system_preferred,
                &mut bounds.system_preferred,
            ),
        ] {
            bound.admit(counts);
            for (method, users) in bounded(bound, counts) {
                snapshot.push(def, vec![method.to_owned()], users as f64);
            }
        }
        if let Some(newest) = self.newest {
            snapshot.push(&LAST_UPDATED, vec![], newest as f64);
        }
        (snapshot, totals)
    }
}

/// Counts summed per label after bounding, sorted by label.
fn bounded<'a>(bound: &BoundedLabel, counts: &'a HashMap<String, u64>) -> Vec<(&'a str, u64)> {
    let mut by_label: BTreeMap<&str, u64> = BTreeMap::new();
    for (value, count) in counts {
        *by_label.entry(bound.label(value)).or_default() += count;
    }
    by_label.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::parse_page;

    fn scan(pages: &[&str]) -> Result<(Snapshot, RegistrationTotals), serde_json::Error> {
        let mut aggregate = Aggregate::default();
        for page in pages {
            let (rows, _) = parse_page::<Row>(page.as_bytes())?;
            aggregate.add(rows);
        }
        Ok(aggregate.finish(&mut Bounds::default()))
    }

    /// The reference's example row (Graph docs), with its nextLink.
    const DOCS_EXAMPLE: &str = r#"{"value":[{"id":"86462606-fde0-4fc4-9e0c-a20eb73e54c6","userPrincipalName":"AlexW@contoso.com","userDisplayName":"Alex Wilber","userType":"member",
 "isAdmin":false,"isSsprRegistered":false,"isSsprEnabled":false,"isSsprCapable":false,"isMfaRegistered":true,"isMfaCapable":true,
 "isPasswordlessCapable":false,"methodsRegistered":["microsoftAuthenticatorPush","softwareOneTimePasscode"],
 "isSystemPreferredAuthenticationMethodEnabled":true,"systemPreferredAuthenticationMethods":["push"],
 "userPreferredMethodForSecondaryAuthentication":"push","lastUpdatedDateTime":"2023-03-13T19:15:41.6195833Z"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/reports/authenticationMethods/userRegistrationDetails?$skiptoken=x"}"#;

    #[test]
    fn docs_example() {
        let (s, totals) = scan(&[DOCS_EXAMPLE]).unwrap();
        assert_eq!(s.value(&USERS, &["member", "false"]), Some(1.0));
        assert_eq!(
            s.value(&FEATURE_USERS, &["mfaRegistered", "member", "false"]),
            Some(1.0)
        );
        assert_eq!(
            s.value(&FEATURE_USERS, &["ssprRegistered", "member", "false"]),
            Some(0.0)
        );
        assert_eq!(
            s.value(
                &FEATURE_USERS,
                &[
                    "systemPreferredAuthenticationMethodEnabled",
                    "member",
                    "false"
                ]
            ),
            Some(1.0)
        );
        assert_eq!(
            s.value(
                &METHOD_USERS,
                &["microsoftAuthenticatorPush", "member", "false"]
            ),
            Some(1.0)
        );
        assert_eq!(s.value(&PREFERRED_METHOD_USERS, &["push"]), Some(1.0));
        assert_eq!(
            s.value(&SYSTEM_PREFERRED_METHOD_USERS, &["push"]),
            Some(1.0)
        );
        assert_eq!(s.value(&LAST_UPDATED, &[]), Some(1_678_734_941.0));
        assert_eq!(totals.users, 1);
        assert_eq!(totals.by_feature["mfaCapable"], 1);
        assert_eq!(totals.by_feature["ssprRegistered"], 0);
        assert!(!totals.by_feature.contains_key("mfaRegistered"));
        assert_eq!(totals.by_method["softwareOneTimePasscode"], 1);
        let text = format!("{s:?}");
        assert!(!text.contains("AlexW") && !text.contains("Alex Wilber"));
    }

    #[test]
    fn nulls_and_empty_strings_in_every_nullable_field() {
        let (s, totals) = scan(&[r#"{"value":[
          {"userType":null,"isAdmin":null,"isSsprRegistered":true,"isSsprEnabled":true,"isSsprCapable":true,
           "isMfaRegistered":false,"isMfaCapable":false,"isPasswordlessCapable":false,
           "isSystemPreferredAuthenticationMethodEnabled":null,"methodsRegistered":null,
           "systemPreferredAuthenticationMethods":null,"userPreferredMethodForSecondaryAuthentication":null,
           "lastUpdatedDateTime":"2026-11-23T08:00:00Z"},
          {"userType":"","isAdmin":true,"isSsprRegistered":false,"isSsprEnabled":false,"isSsprCapable":false,
           "isMfaRegistered":false,"isMfaCapable":false,"isPasswordlessCapable":false,
           "methodsRegistered":[],"systemPreferredAuthenticationMethods":[],
           "userPreferredMethodForSecondaryAuthentication":""},
          {"userType":"guest","isSsprRegistered":false,"isSsprEnabled":false,"isSsprCapable":false,
           "isMfaRegistered":true,"isMfaCapable":true,"isPasswordlessCapable":true,
           "methodsRegistered":["qrCode",""],"userPreferredMethodForSecondaryAuthentication":"unknownFutureValue"}
        ]}"#])
        .unwrap();
        assert_eq!(s.value(&USERS, &["unknown", "unknown"]), Some(1.0));
        assert_eq!(s.value(&USERS, &["unknown", "true"]), Some(1.0));
        assert_eq!(s.value(&USERS, &["guest", "unknown"]), Some(1.0));
        assert_eq!(s.value(&PREFERRED_METHOD_USERS, &["none"]), Some(2.0));
        assert_eq!(
            s.value(&PREFERRED_METHOD_USERS, &["unknownFutureValue"]),
            Some(1.0)
        );
        assert_eq!(
            s.value(&SYSTEM_PREFERRED_METHOD_USERS, &["none"]),
            Some(3.0)
        );
        assert_eq!(
            s.value(&METHOD_USERS, &["qrCode", "guest", "unknown"]),
            Some(1.0)
        );
        assert_eq!(s.value(&LAST_UPDATED, &[]), Some(1_795_420_800.0));
        assert_eq!(totals.users, 3);
        assert_eq!(totals.by_feature["passwordlessCapable"], 1);
    }

    #[test]
    fn non_nullable_flags_are_required() {
        assert!(scan(&[r#"{"value":[{"userType":"member","isSsprRegistered":true}]}"#]).is_err());
        assert!(
            scan(&[r#"{"value":[{"isSsprRegistered":null,"isSsprEnabled":true,"isSsprCapable":true,"isMfaRegistered":true,"isMfaCapable":true,"isPasswordlessCapable":true}]}"#])
                .is_err()
        );
    }

    #[test]
    fn unknown_methods_pass_through_and_the_set_stays_bounded() {
        let rows: Vec<String> = (0..60)
            .map(|i| {
                format!(
                    r#"{{"userType":"member","isAdmin":false,"isSsprRegistered":true,"isSsprEnabled":true,"isSsprCapable":true,"isMfaRegistered":true,"isMfaCapable":true,"isPasswordlessCapable":false,"methodsRegistered":["method{i:02}"]}}"#
                )
            })
            .collect();
        let page = format!(r#"{{"value":[{}]}}"#, rows.join(","));
        let (s, _) = scan(&[&page]).unwrap();
        let methods = s
            .samples
            .iter()
            .filter(|x| std::ptr::eq(x.metric, &METHOD_USERS))
            .count();
        assert_eq!(methods, METHOD_LIMIT + 1);
        assert_eq!(
            s.value(&METHOD_USERS, &["method00", "member", "false"]),
            Some(1.0)
        );
        assert_eq!(
            s.value(&METHOD_USERS, &["other", "member", "false"]),
            Some(10.0)
        );
    }
}
