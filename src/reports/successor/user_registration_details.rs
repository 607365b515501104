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
//! - `entra_authmethods_strength_users{strength,user_type,is_admin}`: users per class of their
//!   strongest method ([`crate::reports::shared::strength`]), every class always present
//! - `entra_authmethods_sspr_phone_only_users{user_type,is_admin}`: SSPR-registered users who
//!   can reset a password only by phone ([`strength::sspr_phone_only`]), every cell always present
//! - `entra_authmethods_group_users{group}`, `entra_authmethods_group_feature_users{group,feature}`,
//!   `entra_authmethods_group_strength_users{group,strength}` and
//!   `entra_authmethods_group_sspr_phone_only_users{group}` for the tenant's configured groups,
//!   whose members are read before each scan ([`crate::reports::shared::groups`]); a row's id is only ever
//!   hashed, to test membership

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::graph::{GraphClient, GraphError};
use crate::labels::{BoundedLabel, UNKNOWN, bool_label};
use crate::reports::shared::de;
use crate::reports::shared::groups::{GroupReader, Members};
use crate::reports::shared::strength::{
    self, MethodCounts, Strength, StrengthCounts, StrengthTable,
};
use crate::reports::shared::tenant::RegistrationTotals;
use crate::reports::spec::{
    AUDIT_LOG_PERMISSION, BuildContext, DETAILS_INTERVAL, Report, ReportSpec,
};
use crate::snapshot::{Kind, MetricDef, Snapshot};

pub const SPEC: ReportSpec = ReportSpec {
    name: "userRegistrationDetails",
    default_interval: DETAILS_INTERVAL,
    permission: AUDIT_LOG_PERMISSION,
    successor: None,
    probe: "/v1.0/reports/authenticationMethods/userRegistrationDetails?$top=1",
    fallback: None,
    metrics: &[
        &USERS,
        &FEATURE_USERS,
        &METHOD_USERS,
        &PREFERRED_METHOD_USERS,
        &SYSTEM_PREFERRED_METHOD_USERS,
        &LAST_UPDATED,
        &STRENGTH_USERS,
        &SSPR_PHONE_ONLY_USERS,
        &GROUP_USERS,
        &GROUP_FEATURE_USERS,
        &GROUP_STRENGTH_USERS,
        &GROUP_SSPR_PHONE_ONLY_USERS,
    ],
    fields: &[
        "id",
        "isAdmin",
        "isMfaCapable",
        "isMfaRegistered",
        "isPasswordlessCapable",
        "isSsprCapable",
        "isSsprEnabled",
        "isSsprRegistered",
        "isSystemPreferredAuthenticationMethodEnabled",
        "lastUpdatedDateTime",
        "methodsRegistered",
        "systemPreferredAuthenticationMethods",
        "userPreferredMethodForSecondaryAuthentication",
        "userType",
    ],
    persisted: false,
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

pub static STRENGTH_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_strength_users",
    help: "Users per authentication strength class of their strongest registered method (phishingResistant, passwordless, appMfa, phoneMfa, none), by user type and admin role, from userRegistrationDetails as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["strength", "user_type", "is_admin"],
};

pub static SSPR_PHONE_ONLY_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_sspr_phone_only_users",
    help: "Users registered for SSPR whose only SSPR methods are phones (mobilePhone, alternateMobilePhone, officePhone; no email, security questions, Authenticator or OATH codes): they cannot reset a password once Microsoft-provided SMS and voice retire. By user type and admin role, from userRegistrationDetails as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["user_type", "is_admin"],
};

pub static GROUP_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_group_users",
    help: "Users of the configured group (transitive members) found in userRegistrationDetails, as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["group"],
};

pub static GROUP_FEATURE_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_group_feature_users",
    help: "Users of the configured group for whom the feature flag (ssprRegistered, mfaCapable, ...) is true, from userRegistrationDetails as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["group", "feature"],
};

pub static GROUP_STRENGTH_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_group_strength_users",
    help: "Users of the configured group per authentication strength class of their strongest registered method, from userRegistrationDetails as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["group", "strength"],
};

pub static GROUP_SSPR_PHONE_ONLY_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_group_sspr_phone_only_users",
    help: "Users of the configured group registered for SSPR who can reset a password only by phone, from userRegistrationDetails as of the last complete scan.",
    kind: Kind::Gauge,
    labels: &["group"],
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Hashed at once: only group membership needs it.
    #[serde(default, deserialize_with = "de::id_hash")]
    pub id: Option<u64>,
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
        groups: GroupReader::new(context.groups.clone()),
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
    groups: GroupReader,
    context: BuildContext,
}

#[async_trait]
impl Report for UserRegistrationDetails {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        // Members first, so that the scan can count them as its rows go by.
        let members = self.groups.read(graph, SPEC.name).await;
        let mut aggregate = Aggregate::new(self.context.strength.clone()).with_groups(members);
        let rows = graph
            .for_each_page(SPEC.name, PATH, |page: Vec<Row>| aggregate.add(page))
            .await?;
        let mut scan = aggregate.finish(&mut self.bounds);
        scan.snapshot.rows = rows;
        strength::log_unknown_methods(
            &self.context.shared,
            scan.unknown_methods
                .iter()
                .map(|(m, users)| (m.as_str(), *users)),
        );
        self.context.shared.publish_registration_totals(scan.totals);
        Ok(scan.snapshot)
    }
}

/// Counts for one (user_type, is_admin) cell.
#[derive(Debug, Default)]
struct Cell {
    users: u64,
    features: [u64; 7],
    strength: StrengthCounts,
    methods: MethodCounts,
    sspr_phone_only: u64,
}

/// Counts for one configured group.
#[derive(Debug, Default)]
struct GroupCounts {
    users: u64,
    features: [u64; 7],
    strength: StrengthCounts,
    sspr_phone_only: u64,
}

/// What a complete scan yields.
#[derive(Debug)]
pub struct Scan {
    pub snapshot: Snapshot,
    pub totals: RegistrationTotals,
    /// Methods users registered that the strength table does not know, with their users.
    pub unknown_methods: Vec<(String, u64)>,
}

#[derive(Debug)]
pub struct Aggregate {
    strength: Arc<StrengthTable>,
    cells: BTreeMap<(String, &'static str), Cell>,
    groups: Vec<(Members, GroupCounts)>,
    preferred: HashMap<String, u64>,
    system_preferred: HashMap<String, u64>,
    newest: Option<i64>,
}

impl Aggregate {
    pub fn new(strength: Arc<StrengthTable>) -> Self {
        Self {
            strength,
            cells: BTreeMap::new(),
            groups: Vec::new(),
            preferred: HashMap::new(),
            system_preferred: HashMap::new(),
            newest: None,
        }
    }

    /// Also counts the members of these groups.
    pub(crate) fn with_groups(mut self, groups: Vec<Members>) -> Self {
        self.groups = groups
            .into_iter()
            .map(|members| (members, GroupCounts::default()))
            .collect();
        self
    }

    pub fn add(&mut self, rows: Vec<Row>) {
        for mut row in rows {
            let flags = row.flags();
            let is_admin = row.is_admin.map_or(UNKNOWN, bool_label);
            let cell = self
                .cells
                .entry((std::mem::take(&mut row.user_type), is_admin))
                .or_default();
            cell.users += 1;
            for (count, flag) in cell.features.iter_mut().zip(flags) {
                *count += u64::from(flag);
            }
            let methods = std::mem::take(&mut row.methods_registered);
            let sspr_phone_only = row.is_sspr_registered && strength::sspr_phone_only(&methods);
            cell.sspr_phone_only += u64::from(sspr_phone_only);
            let class = cell.methods.add_user(&self.strength, methods);
            cell.strength.add(class);
            if let Some(id) = row.id {
                self.count_groups(id, flags, class, sspr_phone_only);
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

    fn count_groups(&mut self, id: u64, flags: [bool; 7], class: Strength, sspr_phone_only: bool) {
        for (members, counts) in &mut self.groups {
            if members.contains(id) {
                counts.users += 1;
                for (count, flag) in counts.features.iter_mut().zip(flags) {
                    *count += u64::from(flag);
                }
                counts.strength.add(class);
                counts.sspr_phone_only += u64::from(sspr_phone_only);
            }
        }
    }

    pub fn finish(self, bounds: &mut Bounds) -> Scan {
        let mut snapshot = Snapshot::default();
        let mut totals = RegistrationTotals::default();
        let mut all_methods: HashMap<String, u64> = HashMap::new();
        let mut unknown: BTreeMap<String, u64> = BTreeMap::new();
        for cell in self.cells.values() {
            for (method, users) in cell.methods.users() {
                *all_methods.entry(method.to_owned()).or_default() += users;
            }
            for (method, users) in cell.methods.unknown() {
                *unknown.entry(method.to_owned()).or_default() += users;
            }
        }
        bounds.methods.admit(&all_methods);

        for ((user_type, is_admin), cell) in &self.cells {
            let labels =
                |first: &str| vec![first.to_owned(), user_type.clone(), (*is_admin).to_owned()];
            snapshot.push(
                &USERS,
                vec![user_type.clone(), (*is_admin).to_owned()],
                cell.users as f64,
            );
            totals.users += cell.users;
            for (feature, users) in FEATURES.iter().zip(cell.features) {
                snapshot.push(&FEATURE_USERS, labels(feature), users as f64);
                if SUMMARY_FEATURES.contains(feature) {
                    *totals.by_feature.entry(feature).or_default() += users;
                }
            }
            for (method, users) in bounded(&bounds.methods, cell.methods.users()) {
                snapshot.push(&METHOD_USERS, labels(method), users as f64);
                *totals.by_method.entry(method.to_owned()).or_default() += users;
            }
            for (class, users) in cell.strength.iter() {
                snapshot.push(&STRENGTH_USERS, labels(class), users as f64);
            }
            snapshot.push(
                &SSPR_PHONE_ONLY_USERS,
                vec![user_type.clone(), (*is_admin).to_owned()],
                cell.sspr_phone_only as f64,
            );
        }
        for (members, counts) in &self.groups {
            let labels = |second: &str| vec![members.name.clone(), second.to_owned()];
            snapshot.push(
                &GROUP_USERS,
                vec![members.name.clone()],
                counts.users as f64,
            );
            for (feature, users) in FEATURES.iter().zip(counts.features) {
                snapshot.push(&GROUP_FEATURE_USERS, labels(feature), users as f64);
            }
            for (class, users) in counts.strength.iter() {
                snapshot.push(&GROUP_STRENGTH_USERS, labels(class), users as f64);
            }
            snapshot.push(
                &GROUP_SSPR_PHONE_ONLY_USERS,
                vec![members.name.clone()],
                counts.sspr_phone_only as f64,
            );
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
            for (method, users) in bounded(bound, counts.iter().map(|(m, n)| (m.as_str(), *n))) {
                snapshot.push(def, vec![method.to_owned()], users as f64);
            }
        }
        if let Some(newest) = self.newest {
            snapshot.push(&LAST_UPDATED, vec![], newest as f64);
        }
        Scan {
            snapshot,
            totals,
            unknown_methods: unknown.into_iter().collect(),
        }
    }
}

/// Counts summed per label after bounding, sorted by label.
fn bounded<'a>(
    bound: &BoundedLabel,
    counts: impl IntoIterator<Item = (&'a str, u64)>,
) -> Vec<(&'a str, u64)> {
    let mut by_label: BTreeMap<&str, u64> = BTreeMap::new();
    for (value, count) in counts {
        *by_label.entry(bound.label(value)).or_default() += count;
    }
    by_label.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ParsedPage, parse_page};

    fn scan(pages: &[&str]) -> Result<(Snapshot, RegistrationTotals), serde_json::Error> {
        let scan = scan_with(pages, StrengthTable::default(), Vec::new())?;
        Ok((scan.snapshot, scan.totals))
    }

    fn scan_with(
        pages: &[&str],
        table: StrengthTable,
        groups: Vec<Members>,
    ) -> Result<Scan, serde_json::Error> {
        let mut aggregate = Aggregate::new(Arc::new(table)).with_groups(groups);
        for page in pages {
            let ParsedPage { rows, .. } = parse_page::<Row>(page.as_bytes())?;
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
    fn rows_without_their_non_nullable_flags_are_skipped_and_the_rest_counts() {
        let good = r#"{"isSsprRegistered":true,"isSsprEnabled":true,"isSsprCapable":true,"isMfaRegistered":true,"isMfaCapable":true,"isPasswordlessCapable":true}"#;
        for (bad, field, found) in [
            (
                r#"{"userType":"member","isSsprRegistered":true}"#,
                "isSsprEnabled",
                "missing",
            ),
            (
                r#"{"isSsprRegistered":null,"isSsprEnabled":true,"isSsprCapable":true,"isMfaRegistered":true,"isMfaCapable":true,"isPasswordlessCapable":true}"#,
                "isSsprRegistered",
                "null",
            ),
        ] {
            let page = format!(r#"{{"value":[{good},{bad},{good}]}}"#);
            let skipped = parse_page::<Row>(page.as_bytes()).unwrap().skipped;
            assert_eq!(skipped.len(), 1);
            assert_eq!((skipped[0].index, skipped[0].field.as_str()), (1, field));
            assert_eq!(skipped[0].found, found);
            let (_, totals) = scan(&[&page]).unwrap();
            assert_eq!(totals.users, 2, "{bad}");
        }
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

    /// A row with just what strength and groups need; every flag false but MFA registered.
    fn row(id: &str, user_type: &str, is_admin: bool, methods: &[&str]) -> String {
        format!(
            r#"{{"id":"{id}","userType":"{user_type}","isAdmin":{is_admin},"isSsprRegistered":false,"isSsprEnabled":false,"isSsprCapable":false,"isMfaRegistered":{mfa},"isMfaCapable":false,"isPasswordlessCapable":false,"methodsRegistered":{methods}}}"#,
            mfa = methods.len() > 1,
            methods = serde_json::to_string(methods).unwrap(),
        )
    }

    fn page(rows: &[String]) -> String {
        format!(r#"{{"value":[{}]}}"#, rows.join(","))
    }

    fn classes(s: &Snapshot, def: &'static MetricDef, rest: &[&str]) -> Vec<(String, f64)> {
        Strength::ALL
            .iter()
            .map(|class| {
                let mut labels = vec![class.label()];
                labels.extend_from_slice(rest);
                (
                    class.label().to_owned(),
                    s.value(def, &labels).unwrap_or(-1.0),
                )
            })
            .collect()
    }

    fn expect(values: [f64; 5]) -> Vec<(String, f64)> {
        Strength::ALL
            .iter()
            .zip(values)
            .map(|(class, v)| (class.label().to_owned(), v))
            .collect()
    }

    #[test]
    fn each_user_counts_once_in_the_class_of_the_strongest_method() {
        let rows = [
            row(
                "a",
                "member",
                true,
                &["password", "fido2SecurityKey", "mobilePhone"],
            ),
            row("b", "member", true, &["password", "mobilePhone"]),
            row(
                "c",
                "member",
                false,
                &["password", "microsoftAuthenticatorPush", "officePhone"],
            ),
            row(
                "d",
                "member",
                false,
                &[
                    "password",
                    "microsoftAuthenticatorPasswordless",
                    "softwareOneTimePasscode",
                ],
            ),
            row("e", "member", false, &["password"]),
            row("f", "guest", false, &["email", "qrCode"]),
            row(
                "g",
                "guest",
                false,
                &["passKeySynced", "passKeySynced", "email"],
            ),
        ];
        let nulls = r#"{"value":[{"userType":null,"isAdmin":null,"isSsprRegistered":false,"isSsprEnabled":false,"isSsprCapable":false,"isMfaRegistered":false,"isMfaCapable":false,"isPasswordlessCapable":false,"methodsRegistered":null}]}"#;
        let scan = scan_with(&[&page(&rows), nulls], StrengthTable::default(), Vec::new()).unwrap();
        let s = &scan.snapshot;
        assert_eq!(
            classes(s, &STRENGTH_USERS, &["member", "true"]),
            expect([1.0, 0.0, 0.0, 1.0, 0.0])
        );
        assert_eq!(
            classes(s, &STRENGTH_USERS, &["member", "false"]),
            expect([0.0, 1.0, 1.0, 0.0, 1.0])
        );
        assert_eq!(
            classes(s, &STRENGTH_USERS, &["guest", "false"]),
            expect([1.0, 0.0, 0.0, 0.0, 1.0])
        );
        assert_eq!(
            classes(s, &STRENGTH_USERS, &["unknown", "unknown"]),
            expect([0.0, 0.0, 0.0, 0.0, 1.0])
        );
        // Summed over strength, the classes are the users.
        let strength_total: f64 = s
            .samples
            .iter()
            .filter(|x| std::ptr::eq(x.metric, &STRENGTH_USERS))
            .map(|x| x.value)
            .sum();
        assert_eq!(strength_total, 8.0);
        assert_eq!(scan.totals.users, 8);
        // The unknown method raised nobody, is reported for logging and still counted as a method.
        assert_eq!(scan.unknown_methods, [("qrCode".to_owned(), 1)]);
        assert_eq!(
            s.value(&METHOD_USERS, &["qrCode", "guest", "false"]),
            Some(1.0)
        );
    }

    #[test]
    fn an_overridden_table_moves_users_between_classes() {
        let rows = [
            row(
                "a",
                "member",
                false,
                &["password", "passKeySynced", "mobilePhone"],
            ),
            row(
                "b",
                "member",
                false,
                &["password", "externalAuthMethod", "mobilePhone"],
            ),
            row(
                "c",
                "member",
                false,
                &["password", "windowsHelloForBusiness"],
            ),
        ];
        let table = StrengthTable::with_overrides(&BTreeMap::from([
            (
                "phishingResistant".to_owned(),
                vec![
                    "fido2SecurityKey".to_owned(),
                    "windowsHelloForBusiness".to_owned(),
                ],
            ),
            (
                "appMfa".to_owned(),
                vec!["microsoftAuthenticatorPush".to_owned()],
            ),
        ]))
        .unwrap();
        let scan = scan_with(&[&page(&rows)], table, Vec::new()).unwrap();
        assert_eq!(
            classes(&scan.snapshot, &STRENGTH_USERS, &["member", "false"]),
            expect([1.0, 0.0, 0.0, 2.0, 0.0])
        );
        assert_eq!(
            scan.unknown_methods,
            [
                ("externalAuthMethod".to_owned(), 1),
                ("passKeySynced".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn sspr_phone_only_users_per_cell_and_group() {
        let row = |id: &str, user_type: &str, is_admin: bool, sspr: bool, methods: &[&str]| {
            format!(
                r#"{{"id":"{id}","userType":"{user_type}","isAdmin":{is_admin},"isSsprRegistered":{sspr},"isSsprEnabled":true,"isSsprCapable":{sspr},"isMfaRegistered":true,"isMfaCapable":true,"isPasswordlessCapable":false,"methodsRegistered":{methods}}}"#,
                methods = serde_json::to_string(methods).unwrap(),
            )
        };
        let rows = [
            row("a", "member", false, true, &["password", "mobilePhone"]),
            row(
                "b",
                "member",
                false,
                true,
                &["officePhone", "fido2SecurityKey"],
            ),
            // A phone and email: email still resets the password.
            row("c", "member", false, true, &["mobilePhone", "email"]),
            // Not registered for SSPR: not counted, whatever the methods.
            row("d", "member", false, false, &["mobilePhone"]),
            row("e", "member", true, true, &["alternateMobilePhone"]),
            row(
                "f",
                "guest",
                false,
                true,
                &["mobilePhone", "softwareOneTimePasscode"],
            ),
        ];
        let members = Members::new(
            "pilot".to_owned(),
            ["a", "c", "e"]
                .iter()
                .map(|id| crate::reports::shared::groups::id_hash(id))
                .collect(),
        );
        let scan = scan_with(&[&page(&rows)], StrengthTable::default(), vec![members]).unwrap();
        let s = &scan.snapshot;
        assert_eq!(
            s.value(&SSPR_PHONE_ONLY_USERS, &["member", "false"]),
            Some(2.0)
        );
        assert_eq!(
            s.value(&SSPR_PHONE_ONLY_USERS, &["member", "true"]),
            Some(1.0)
        );
        // Every cell has the series, 0 included.
        assert_eq!(
            s.value(&SSPR_PHONE_ONLY_USERS, &["guest", "false"]),
            Some(0.0)
        );
        assert_eq!(s.value(&GROUP_SSPR_PHONE_ONLY_USERS, &["pilot"]), Some(2.0));
    }

    #[test]
    fn groups_count_their_members_found_in_the_scan() {
        let rows = [
            row(
                "a",
                "member",
                true,
                &["password", "fido2SecurityKey", "mobilePhone"],
            ),
            row("b", "member", false, &["password", "mobilePhone"]),
            row("c", "guest", false, &["password"]),
        ];
        let no_id = r#"{"value":[{"userType":"member","isSsprRegistered":true,"isSsprEnabled":false,"isSsprCapable":false,"isMfaRegistered":false,"isMfaCapable":false,"isPasswordlessCapable":false}]}"#;
        let members = |name: &str, ids: &[&str]| {
            Members::new(
                name.to_owned(),
                ids.iter()
                    .map(|id| crate::reports::shared::groups::id_hash(id))
                    .collect(),
            )
        };
        let scan = scan_with(
            &[&page(&rows), no_id],
            StrengthTable::default(),
            vec![
                // "x" is a member Graph listed who is not in the report.
                members("pilot", &["a", "b", "x"]),
                members("guests", &["c"]),
                members("empty", &[]),
            ],
        )
        .unwrap();
        let s = &scan.snapshot;
        assert_eq!(s.value(&GROUP_USERS, &["pilot"]), Some(2.0));
        assert_eq!(s.value(&GROUP_USERS, &["guests"]), Some(1.0));
        assert_eq!(s.value(&GROUP_USERS, &["empty"]), Some(0.0));
        assert_eq!(
            s.value(&GROUP_FEATURE_USERS, &["pilot", "mfaRegistered"]),
            Some(2.0)
        );
        assert_eq!(
            s.value(&GROUP_FEATURE_USERS, &["pilot", "ssprRegistered"]),
            Some(0.0)
        );
        let group_classes = |group: &str| {
            Strength::ALL
                .iter()
                .map(|c| {
                    s.value(&GROUP_STRENGTH_USERS, &[group, c.label()])
                        .unwrap_or(-1.0)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(group_classes("pilot"), [1.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(group_classes("guests"), [0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(group_classes("empty"), [0.0; 5]);
        for group in ["pilot", "guests", "empty"] {
            for feature in FEATURES {
                assert!(s.value(&GROUP_FEATURE_USERS, &[group, feature]).is_some());
            }
        }
        // No id ever becomes a label.
        assert!(!format!("{s:?}").contains("\"a\""));
    }
}
