//! v1.0 `GET /policies/authenticationMethodsPolicy`: the tenant's authentication methods
//! policy, one object and one request per poll. It says which methods are enabled and for whom
//! (what keeps SMS and voice alive before their retirement on 1 February 2027), the state of
//! the registration campaign and of system-preferred MFA, and how far the tenant has migrated
//! from the legacy MFA and SSPR policies.
//!
//! Method ids and enum values are open sets: an id the exporter has never seen is a label like
//! any other, a state it does not know is exported as Graph spells it, and `@odata.type` is not
//! read. A method configuration that does not parse is a bad row: left out of the poll, counted
//! in `entra_exporter_report_rows_skipped_total` and logged by the Graph client; the rest of
//! the policy is still exported.
//!
//! Metrics:
//! - `entra_authmethods_policy_method_enabled{method}`, `…_method_all_users{method}` and
//!   `…_method_targets{method,kind}` per method configuration
//! - `entra_authmethods_policy_sms_sign_in_targets`
//! - state sets `…_registration_campaign_state{state}`, `…_system_preferred_mfa_state{state}`
//!   and `…_migration_state{state}`
//! - the campaign's targets: `…_registration_campaign_include_targets{method}` and
//!   `…_registration_campaign_all_users{method}` per method it asks users to register, and
//!   `…_registration_campaign_exclude_targets`
//! - `entra_authmethods_policy_last_modified_timestamp_seconds`

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde::Deserialize;

use super::shared::de;
use super::spec::{BuildContext, POLICY_INTERVAL, Report, ReportSpec};
use crate::graph::{GraphClient, GraphError, Rows};
use crate::labels::BoundedLabel;
use crate::snapshot::{Kind, MetricDef, Snapshot};

pub const SPEC: ReportSpec = ReportSpec {
    name: "authenticationMethodsPolicy",
    default_interval: POLICY_INTERVAL,
    permission: PERMISSION,
    successor: None,
    probe: PATH,
    fallback: None,
    metrics: &[
        &METHOD_ENABLED,
        &METHOD_TARGETS,
        &METHOD_ALL_USERS,
        &SMS_SIGN_IN_TARGETS,
        &CAMPAIGN_STATE,
        &CAMPAIGN_INCLUDE_TARGETS,
        &CAMPAIGN_ALL_USERS,
        &CAMPAIGN_EXCLUDE_TARGETS,
        &SYSTEM_PREFERRED_STATE,
        &MIGRATION_STATE,
        &LAST_MODIFIED,
    ],
    fields: &[
        "authenticationMethodConfigurations",
        "authenticationMethodsRegistrationCampaign",
        "excludeTargets",
        "id",
        "includeTargets",
        "isUsableForSignIn",
        "lastModifiedDateTime",
        "policyMigrationState",
        "registrationEnforcement",
        "state",
        "systemCredentialPreferences",
    ],
    persisted: false,
    build,
};

const PATH: &str = "/v1.0/policies/authenticationMethodsPolicy";
/// Reading the policy needs no Entra ID licence.
const PERMISSION: &str =
    "application permission Policy.Read.AuthenticationMethod, or Policy.Read.All (admin consent)";
/// Graph lists about a dozen method configurations; the bound only guards against garbage.
const METHOD_LIMIT: usize = 50;
/// The include target that stands for every user.
const ALL_USERS: &str = "all_users";
/// The id of the SMS method configuration.
const SMS: &str = "Sms";

/// The known members of each state set, as Graph spells them.
const CAMPAIGN_STATES: [&str; 3] = ["default", "enabled", "disabled"];
const SYSTEM_PREFERRED_STATES: [&str; 3] = ["default", "enabled", "disabled"];
const MIGRATION_STATES: [&str; 3] = ["preMigration", "migrationInProgress", "migrationComplete"];

pub static METHOD_ENABLED: MetricDef = MetricDef {
    name: "entra_authmethods_policy_method_enabled",
    help: "1 if the authentication method's configuration in the authentication methods policy is enabled, else 0, for every configuration Graph lists (method is its id, such as Sms, Voice, Fido2), as of the last poll.",
    kind: Kind::Gauge,
    labels: &["method"],
};

pub static METHOD_TARGETS: MetricDef = MetricDef {
    name: "entra_authmethods_policy_method_targets",
    help: "Include and exclude targets (groups, or all_users) of the authentication method's configuration in the authentication methods policy, as of the last poll.",
    kind: Kind::Gauge,
    labels: &["method", "kind"],
};

pub static METHOD_ALL_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_policy_method_all_users",
    help: "1 if the authentication method is enabled for all_users in the authentication methods policy, else 0, as of the last poll.",
    kind: Kind::Gauge,
    labels: &["method"],
};

pub static SMS_SIGN_IN_TARGETS: MetricDef = MetricDef {
    name: "entra_authmethods_policy_sms_sign_in_targets",
    help: "Include targets of the Sms method configuration whose users may sign in with SMS as a first factor (isUsableForSignIn), as of the last poll.",
    kind: Kind::Gauge,
    labels: &[],
};

pub static CAMPAIGN_STATE: MetricDef = MetricDef {
    name: "entra_authmethods_policy_registration_campaign_state",
    help: "State of the authentication methods registration campaign (registrationEnforcement): 1 for the current state, 0 for the other known ones (default, enabled, disabled), as of the last poll.",
    kind: Kind::Gauge,
    labels: &["state"],
};

pub static CAMPAIGN_INCLUDE_TARGETS: MetricDef = MetricDef {
    name: "entra_authmethods_policy_registration_campaign_include_targets",
    help: "Include targets (groups, or all_users) of the authentication methods registration campaign, per method it asks them to register (method is its targetedAuthenticationMethod), as of the last poll.",
    kind: Kind::Gauge,
    labels: &["method"],
};

pub static CAMPAIGN_ALL_USERS: MetricDef = MetricDef {
    name: "entra_authmethods_policy_registration_campaign_all_users",
    help: "1 if the authentication methods registration campaign targets all_users for the method it asks them to register (targetedAuthenticationMethod), else 0, as of the last poll.",
    kind: Kind::Gauge,
    labels: &["method"],
};

pub static CAMPAIGN_EXCLUDE_TARGETS: MetricDef = MetricDef {
    name: "entra_authmethods_policy_registration_campaign_exclude_targets",
    help: "Groups excluded from the authentication methods registration campaign, as of the last poll.",
    kind: Kind::Gauge,
    labels: &[],
};

pub static SYSTEM_PREFERRED_STATE: MetricDef = MetricDef {
    name: "entra_authmethods_policy_system_preferred_mfa_state",
    help: "State of system-preferred MFA (systemCredentialPreferences): 1 for the current state, 0 for the other known ones (default, enabled, disabled), as of the last poll.",
    kind: Kind::Gauge,
    labels: &["state"],
};

pub static MIGRATION_STATE: MetricDef = MetricDef {
    name: "entra_authmethods_policy_migration_state",
    help: "Migration from the legacy MFA and SSPR policies (policyMigrationState): 1 for the current state, 0 for the other known ones (preMigration, migrationInProgress, migrationComplete), as of the last poll.",
    kind: Kind::Gauge,
    labels: &["state"],
};

pub static LAST_MODIFIED: MetricDef = MetricDef {
    name: "entra_authmethods_policy_last_modified_timestamp_seconds",
    help: "When the authentication methods policy was last modified (lastModifiedDateTime), as of the last poll.",
    kind: Kind::Gauge,
    labels: &[],
};

/// The policy document. Every part may be missing or null; what is missing is not exported.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default, deserialize_with = "de::optional_text")]
    pub last_modified_date_time: String,
    #[serde(default, deserialize_with = "de::optional_text")]
    pub policy_migration_state: String,
    #[serde(default)]
    pub registration_enforcement: Option<RegistrationEnforcement>,
    #[serde(default)]
    pub system_credential_preferences: Option<StateOnly>,
    /// `null` or missing: no configurations.
    #[serde(default)]
    pub authentication_method_configurations: Option<Rows<MethodConfiguration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationEnforcement {
    #[serde(default)]
    pub authentication_methods_registration_campaign: Option<Campaign>,
}

/// The registration campaign: its state, and whom it nudges to register which method.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    #[serde(default, deserialize_with = "de::optional_text")]
    pub state: String,
    #[serde(default)]
    pub include_targets: Option<Vec<CampaignTarget>>,
    #[serde(default)]
    pub exclude_targets: Option<Vec<Target>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignTarget {
    #[serde(default, deserialize_with = "de::optional_text")]
    pub id: String,
    #[serde(default = "de::unknown", deserialize_with = "de::label")]
    pub targeted_authentication_method: String,
}

/// An object of which only `state` is exported.
#[derive(Debug, Default, Deserialize)]
pub struct StateOnly {
    #[serde(default, deserialize_with = "de::optional_text")]
    pub state: String,
}

/// One entry of `authenticationMethodConfigurations`; per-type properties are not read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodConfiguration {
    #[serde(default = "de::unknown", deserialize_with = "de::label")]
    pub id: String,
    #[serde(default, deserialize_with = "de::optional_text")]
    pub state: String,
    #[serde(default)]
    pub include_targets: Option<Vec<Target>>,
    #[serde(default)]
    pub exclude_targets: Option<Vec<Target>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(default, deserialize_with = "de::optional_text")]
    pub id: String,
    /// Only on the Sms configuration's include targets.
    #[serde(default, deserialize_with = "de::optional_flag")]
    pub is_usable_for_sign_in: Option<bool>,
}

impl Policy {
    fn configurations(&self) -> &[MethodConfiguration] {
        self.authentication_method_configurations
            .as_ref()
            .map_or(&[], |rows| rows.0.as_slice())
    }
}

impl MethodConfiguration {
    fn enabled(&self) -> bool {
        self.state.trim().eq_ignore_ascii_case("enabled")
    }

    fn includes(&self) -> &[Target] {
        self.include_targets.as_deref().unwrap_or_default()
    }

    fn excludes(&self) -> &[Target] {
        self.exclude_targets.as_deref().unwrap_or_default()
    }
}

fn build(_: &BuildContext) -> Box<dyn Report> {
    Box::new(AuthenticationMethodsPolicy {
        methods: BoundedLabel::new(METHOD_LIMIT),
    })
}

struct AuthenticationMethodsPolicy {
    methods: BoundedLabel,
}

#[async_trait]
impl Report for AuthenticationMethodsPolicy {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        let policy: Policy = graph.get(SPEC.name, PATH).await?;
        Ok(snapshot(&policy, &mut self.methods))
    }
}

/// What one method label (one id, or every id beyond the bound) adds up to.
#[derive(Debug, Default)]
struct MethodFigures {
    enabled: bool,
    all_users: bool,
    include: u64,
    exclude: u64,
}

pub fn snapshot(policy: &Policy, bound: &mut BoundedLabel) -> Snapshot {
    let configurations = policy.configurations();
    let mut snapshot = Snapshot {
        rows: configurations.len() as u64,
        ..Snapshot::default()
    };
    let campaign = policy
        .registration_enforcement
        .as_ref()
        .and_then(|enforcement| {
            enforcement
                .authentication_methods_registration_campaign
                .as_ref()
        });
    let campaign_includes = campaign
        .and_then(|c| c.include_targets.as_deref())
        .unwrap_or_default();
    // One bound for both kinds of method name: together they are a couple of dozen.
    let ids: HashMap<String, u64> = configurations
        .iter()
        .map(|configuration| &configuration.id)
        .chain(
            campaign_includes
                .iter()
                .map(|target| &target.targeted_authentication_method),
        )
        .map(|id| (id.clone(), 1))
        .collect();
    bound.admit(&ids);
    let mut methods: BTreeMap<&str, MethodFigures> = BTreeMap::new();
    let mut sms_sign_in_targets = 0;
    for configuration in configurations {
        let figures = methods.entry(bound.label(&configuration.id)).or_default();
        let enabled = configuration.enabled();
        figures.enabled |= enabled;
        figures.all_users |= enabled
            && configuration
                .includes()
                .iter()
                .any(|target| target.id.trim().eq_ignore_ascii_case(ALL_USERS));
        figures.include += configuration.includes().len() as u64;
        figures.exclude += configuration.excludes().len() as u64;
        if configuration.id.eq_ignore_ascii_case(SMS) {
            sms_sign_in_targets += configuration
                .includes()
                .iter()
                .filter(|target| target.is_usable_for_sign_in == Some(true))
                .count() as u64;
        }
    }
    for (method, figures) in methods {
        snapshot.push(
            &METHOD_ENABLED,
            vec![method.to_owned()],
            flag(figures.enabled),
        );
        snapshot.push(
            &METHOD_ALL_USERS,
            vec![method.to_owned()],
            flag(figures.all_users),
        );
        for (kind, targets) in [("include", figures.include), ("exclude", figures.exclude)] {
            snapshot.push(
                &METHOD_TARGETS,
                vec![method.to_owned(), kind.to_owned()],
                targets as f64,
            );
        }
    }
    snapshot.push(&SMS_SIGN_IN_TARGETS, vec![], sms_sign_in_targets as f64);

    state_set(
        &mut snapshot,
        &CAMPAIGN_STATE,
        &CAMPAIGN_STATES,
        campaign.map(|c| c.state.as_str()),
    );
    if let Some(campaign) = campaign {
        let mut targeted: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
        for target in campaign_includes {
            let figures = targeted
                .entry(bound.label(&target.targeted_authentication_method))
                .or_default();
            figures.0 += 1;
            figures.1 |= target.id.trim().eq_ignore_ascii_case(ALL_USERS);
        }
        for (method, (targets, all_users)) in targeted {
            snapshot.push(
                &CAMPAIGN_INCLUDE_TARGETS,
                vec![method.to_owned()],
                targets as f64,
            );
            snapshot.push(
                &CAMPAIGN_ALL_USERS,
                vec![method.to_owned()],
                flag(all_users),
            );
        }
        let excluded = campaign
            .exclude_targets
            .as_deref()
            .unwrap_or_default()
            .len();
        snapshot.push(&CAMPAIGN_EXCLUDE_TARGETS, vec![], excluded as f64);
    }
    state_set(
        &mut snapshot,
        &SYSTEM_PREFERRED_STATE,
        &SYSTEM_PREFERRED_STATES,
        policy
            .system_credential_preferences
            .as_ref()
            .map(|p| p.state.as_str()),
    );
    state_set(
        &mut snapshot,
        &MIGRATION_STATE,
        &MIGRATION_STATES,
        Some(policy.policy_migration_state.as_str()),
    );
    if let Some(at) = de::timestamp(policy.last_modified_date_time.trim()) {
        snapshot.push(&LAST_MODIFIED, vec![], at as f64);
    }
    snapshot
}

fn flag(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}

/// A state set: 1 for `current`, 0 for every other known state. A state Graph adds is exported
/// as Graph spells it; a missing or empty one exports nothing, as nothing is known.
fn state_set(
    snapshot: &mut Snapshot,
    metric: &'static MetricDef,
    known: &[&str],
    current: Option<&str>,
) {
    let Some(current) = current.map(str::trim).filter(|c| !c.is_empty()) else {
        return;
    };
    let mut matched = false;
    for state in known {
        let is_current = state.eq_ignore_ascii_case(current);
        matched |= is_current;
        snapshot.push(metric, vec![(*state).to_owned()], flag(is_current));
    }
    if !matched {
        snapshot.push(metric, vec![current.to_owned()], 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> (Policy, usize, Snapshot) {
        let (policy, skipped) = crate::graph::parse_document::<Policy>(json.as_bytes()).unwrap();
        let s = snapshot(&policy, &mut BoundedLabel::new(METHOD_LIMIT));
        (policy, skipped.len(), s)
    }

    /// The shape Graph's v1.0 docs show, trimmed.
    const DOCS_SHAPE: &str = r##"{
      "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#authenticationMethodsPolicy",
      "id": "authenticationMethodsPolicy",
      "displayName": "Authentication Methods Policy",
      "lastModifiedDateTime": "2026-09-01T08:15:27.1234567Z",
      "policyVersion": "1.5",
      "policyMigrationState": "migrationInProgress",
      "reconfirmationInDays": 0,
      "registrationEnforcement": {"authenticationMethodsRegistrationCampaign": {
        "snoozeDurationInDays": 1, "state": "enabled", "excludeTargets": [],
        "includeTargets": [{"id": "all_users", "targetType": "group", "targetedAuthenticationMethod": "Fido2"}]}},
      "systemCredentialPreferences": {"state": "default", "excludeTargets": [], "includeTargets": [{"id": "all_users", "targetType": "group"}]},
      "reportSuspiciousActivitySettings": {"state": "default", "voiceReportingCode": 0, "includeTarget": {"targetType": "group", "id": "all_users"}},
      "authenticationMethodConfigurations": [
        {"@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration", "id": "Fido2", "state": "enabled",
         "isAttestationEnforced": false, "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": false}], "excludeTargets": []},
        {"@odata.type": "#microsoft.graph.smsAuthenticationMethodConfiguration", "id": "Sms", "state": "enabled",
         "includeTargets": [
           {"targetType": "group", "id": "all_users", "isRegistrationRequired": false, "isUsableForSignIn": false},
           {"targetType": "group", "id": "0b1f0c5e-6a4d-4f3e-9b8a-1c2d3e4f5a6b", "isRegistrationRequired": false, "isUsableForSignIn": true}],
         "excludeTargets": [{"targetType": "group", "id": "3c2d3e4f-6a4d-4f3e-9b8a-1c2d3e4f5a6b"}]},
        {"@odata.type": "#microsoft.graph.voiceAuthenticationMethodConfiguration", "id": "Voice", "state": "disabled",
         "isOfficePhoneAllowed": false, "includeTargets": [{"targetType": "group", "id": "all_users"}], "excludeTargets": []},
        {"@odata.type": "#microsoft.graph.softwareOathAuthenticationMethodConfiguration", "id": "SoftwareOath", "state": "enabled",
         "includeTargets": [{"targetType": "group", "id": "0b1f0c5e-6a4d-4f3e-9b8a-1c2d3e4f5a6b"}], "excludeTargets": null},
        {"@odata.type": "#microsoft.graph.futureAuthenticationMethodConfiguration", "id": "FutureMethod", "state": "enabled"}
      ]}"##;

    #[test]
    fn docs_shape_with_an_unknown_method() {
        let (_, _, s) = parse(DOCS_SHAPE);
        assert_eq!(s.rows, 5);
        assert_eq!(s.value(&METHOD_ENABLED, &["Sms"]), Some(1.0));
        assert_eq!(s.value(&METHOD_ENABLED, &["Voice"]), Some(0.0));
        assert_eq!(s.value(&METHOD_ALL_USERS, &["Sms"]), Some(1.0));
        // all_users in a disabled method enables nobody.
        assert_eq!(s.value(&METHOD_ALL_USERS, &["Voice"]), Some(0.0));
        assert_eq!(s.value(&METHOD_ALL_USERS, &["SoftwareOath"]), Some(0.0));
        assert_eq!(s.value(&METHOD_TARGETS, &["Sms", "include"]), Some(2.0));
        assert_eq!(s.value(&METHOD_TARGETS, &["Sms", "exclude"]), Some(1.0));
        assert_eq!(
            s.value(&METHOD_TARGETS, &["SoftwareOath", "exclude"]),
            Some(0.0)
        );
        // An id and a type the exporter has never seen are kept as they are.
        assert_eq!(s.value(&METHOD_ENABLED, &["FutureMethod"]), Some(1.0));
        assert_eq!(
            s.value(&METHOD_TARGETS, &["FutureMethod", "include"]),
            Some(0.0)
        );
        assert_eq!(s.value(&SMS_SIGN_IN_TARGETS, &[]), Some(1.0));
        assert_eq!(s.value(&CAMPAIGN_STATE, &["enabled"]), Some(1.0));
        assert_eq!(s.value(&CAMPAIGN_STATE, &["default"]), Some(0.0));
        assert_eq!(s.value(&CAMPAIGN_STATE, &["disabled"]), Some(0.0));
        assert_eq!(s.value(&CAMPAIGN_INCLUDE_TARGETS, &["Fido2"]), Some(1.0));
        assert_eq!(s.value(&CAMPAIGN_ALL_USERS, &["Fido2"]), Some(1.0));
        assert_eq!(s.value(&CAMPAIGN_EXCLUDE_TARGETS, &[]), Some(0.0));
        assert_eq!(s.value(&SYSTEM_PREFERRED_STATE, &["default"]), Some(1.0));
        assert_eq!(
            s.value(&MIGRATION_STATE, &["migrationInProgress"]),
            Some(1.0)
        );
        assert_eq!(s.value(&MIGRATION_STATE, &["preMigration"]), Some(0.0));
        assert_eq!(s.value(&LAST_MODIFIED, &[]), Some(1_788_250_527.0));
    }

    #[test]
    fn unknown_states_pass_through_and_missing_parts_export_nothing() {
        let (_, _, s) = parse(
            r#"{"policyMigrationState": "unknownFutureValue",
                "registrationEnforcement": {"authenticationMethodsRegistrationCampaign": {"state": "microsoftManaged"}},
                "systemCredentialPreferences": null,
                "lastModifiedDateTime": "yesterday"}"#,
        );
        assert_eq!(s.value(&CAMPAIGN_STATE, &["microsoftManaged"]), Some(1.0));
        assert_eq!(s.value(&CAMPAIGN_STATE, &["enabled"]), Some(0.0));
        // A campaign without targets targets nobody.
        assert_eq!(s.value(&CAMPAIGN_EXCLUDE_TARGETS, &[]), Some(0.0));
        assert!(
            !s.samples
                .iter()
                .any(|x| std::ptr::eq(x.metric, &CAMPAIGN_INCLUDE_TARGETS))
        );
        assert_eq!(
            s.value(&MIGRATION_STATE, &["unknownFutureValue"]),
            Some(1.0)
        );
        assert!(
            !s.samples
                .iter()
                .any(|x| std::ptr::eq(x.metric, &SYSTEM_PREFERRED_STATE))
        );
        assert_eq!(s.value(&LAST_MODIFIED, &[]), None);
        // No configurations: SMS has no sign-in targets.
        assert_eq!(s.value(&SMS_SIGN_IN_TARGETS, &[]), Some(0.0));
        assert_eq!(s.rows, 0);

        let (_, _, empty) = parse("{}");
        for absent in [&MIGRATION_STATE, &CAMPAIGN_EXCLUDE_TARGETS] {
            assert!(!empty.samples.iter().any(|x| std::ptr::eq(x.metric, absent)));
        }
    }

    #[test]
    fn campaign_targets_per_targeted_method() {
        let (_, _, s) = parse(
            r#"{"registrationEnforcement": {"authenticationMethodsRegistrationCampaign": {
                "state": "enabled",
                "includeTargets": [
                  {"id": "0b1f0c5e-6a4d-4f3e-9b8a-1c2d3e4f5a6b", "targetType": "group", "targetedAuthenticationMethod": "microsoftAuthenticator"},
                  {"id": "3c2d3e4f-6a4d-4f3e-9b8a-1c2d3e4f5a6b", "targetType": "group", "targetedAuthenticationMethod": "microsoftAuthenticator"},
                  {"id": "ALL_USERS", "targetType": "group", "targetedAuthenticationMethod": "passkey"},
                  {"id": "5e4f3e2d-6a4d-4f3e-9b8a-1c2d3e4f5a6b", "targetType": "group"}],
                "excludeTargets": [{"id": "7a6b5c4d-6a4d-4f3e-9b8a-1c2d3e4f5a6b", "targetType": "group"}]}}}"#,
        );
        assert_eq!(
            s.value(&CAMPAIGN_INCLUDE_TARGETS, &["microsoftAuthenticator"]),
            Some(2.0)
        );
        assert_eq!(
            s.value(&CAMPAIGN_ALL_USERS, &["microsoftAuthenticator"]),
            Some(0.0)
        );
        assert_eq!(s.value(&CAMPAIGN_INCLUDE_TARGETS, &["passkey"]), Some(1.0));
        assert_eq!(s.value(&CAMPAIGN_ALL_USERS, &["passkey"]), Some(1.0));
        // A target that names no method is counted, not dropped.
        assert_eq!(s.value(&CAMPAIGN_INCLUDE_TARGETS, &["unknown"]), Some(1.0));
        assert_eq!(s.value(&CAMPAIGN_EXCLUDE_TARGETS, &[]), Some(1.0));
    }

    #[test]
    fn a_malformed_configuration_costs_its_own_series_only() {
        let (policy, skipped, s) = parse(
            r#"{"authenticationMethodConfigurations": [
                {"id": "Sms", "state": "enabled", "includeTargets": [{"id": "all_users", "isUsableForSignIn": "true"}]},
                {"id": "Voice", "state": 7},
                {"id": "Email", "state": "ENABLED", "includeTargets": "all_users"},
                {"id": null, "state": "disabled"},
                "not an object"
              ]}"#,
        );
        assert_eq!(skipped, 3);
        assert_eq!(policy.configurations().len(), 2);
        assert_eq!(s.rows, 2);
        assert_eq!(s.value(&METHOD_ALL_USERS, &["Sms"]), Some(1.0));
        assert_eq!(s.value(&SMS_SIGN_IN_TARGETS, &[]), Some(1.0));
        assert_eq!(s.value(&METHOD_ENABLED, &["Voice"]), None);
        assert_eq!(s.value(&METHOD_ENABLED, &["unknown"]), Some(0.0));
        // A list that is not a list is no policy.
        assert!(
            serde_json::from_str::<Policy>(r#"{"authenticationMethodConfigurations": {}}"#)
                .is_err()
        );
    }

    #[test]
    fn repeated_ids_count_once_and_the_method_label_stays_bounded() {
        let entries: Vec<String> = (0..METHOD_LIMIT + 5)
            .map(|i| format!(r#"{{"id":"Method{i:02}","state":"enabled"}}"#))
            .chain([
                r#"{"id":"Method00","state":"disabled","includeTargets":[{"id":"g"}]}"#.to_owned(),
            ])
            .collect();
        let (_, _, s) = parse(&format!(
            r#"{{"authenticationMethodConfigurations":[{}]}}"#,
            entries.join(",")
        ));
        let enabled: Vec<_> = s
            .samples
            .iter()
            .filter(|x| std::ptr::eq(x.metric, &METHOD_ENABLED))
            .collect();
        assert_eq!(enabled.len(), METHOD_LIMIT + 1);
        assert_eq!(s.value(&METHOD_ENABLED, &["other"]), Some(1.0));
        // Graph repeating an id: one series, enabled if either entry is.
        assert_eq!(s.value(&METHOD_ENABLED, &["Method00"]), Some(1.0));
        assert_eq!(
            s.value(&METHOD_TARGETS, &["Method00", "include"]),
            Some(1.0)
        );
    }
}
