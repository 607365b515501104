//! Authentication strength classes, SSPR by phone only and group breakdowns, against the fake
//! over TLS. Every count the exporter serves is compared with what the test reads from the fake
//! itself and classifies with its own copy of the issues' definitions: per class, user type,
//! admin flag and group, for the default table and for an overridden one.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Exporter, FakeReader, fake, quiet, samples, sum, temp_file};
use entra_fake_graph::{FakeGraph, FakeGraphOptions, FakeGroup, Fault};
use serde_json::Value;

const TENANT: &str = "contoso";
const CLASSES: [&str; 5] = [
    "phishingResistant",
    "passwordless",
    "appMfa",
    "phoneMfa",
    "none",
];
/// The issue's default table, strongest class first; `none` holds everything else.
const DEFAULT_TABLE: [(&str, &[&str]); 4] = [
    (
        "phishingResistant",
        &[
            "fido2SecurityKey",
            "passKeyDeviceBound",
            "passKeyDeviceBoundAuthenticator",
            "passKeyDeviceBoundWindowsHello",
            "passKeySynced",
            "windowsHelloForBusiness",
            "macOsSecureEnclaveKey",
        ],
    ),
    ("passwordless", &["microsoftAuthenticatorPasswordless"]),
    (
        "appMfa",
        &[
            "microsoftAuthenticatorPush",
            "softwareOneTimePasscode",
            "hardwareOneTimePasscode",
            "externalAuthMethod",
        ],
    ),
    (
        "phoneMfa",
        &["mobilePhone", "alternateMobilePhone", "officePhone"],
    ),
];
/// A tenant that counts one-time passcodes as no better than a phone, moves Authenticator
/// passwordless sign-in down to the app class, knows the QR code method and forgets external
/// methods.
const OVERRIDE_YAML: &str = "strength_classes:
  phishingResistant: [fido2SecurityKey, passKeyDeviceBound, windowsHelloForBusiness]
  passwordless: []
  appMfa: [microsoftAuthenticatorPush, microsoftAuthenticatorPasswordless]
  phoneMfa: [mobilePhone, alternateMobilePhone, officePhone, softwareOneTimePasscode, qrCode]
";
const OVERRIDE_TABLE: [(&str, &[&str]); 4] = [
    (
        "phishingResistant",
        &[
            "fido2SecurityKey",
            "passKeyDeviceBound",
            "windowsHelloForBusiness",
        ],
    ),
    ("passwordless", &[]),
    (
        "appMfa",
        &[
            "microsoftAuthenticatorPush",
            "microsoftAuthenticatorPasswordless",
        ],
    ),
    (
        "phoneMfa",
        &[
            "mobilePhone",
            "alternateMobilePhone",
            "officePhone",
            "softwareOneTimePasscode",
            "qrCode",
        ],
    ),
];
/// What the legacy report calls the successor methods.
const LEGACY_NAMES: [(&str, &str); 3] = [
    ("fido", "fido2SecurityKey"),
    ("appNotification", "microsoftAuthenticatorPush"),
    ("appCode", "softwareOneTimePasscode"),
];
const FEATURES: [(&str, &str); 7] = [
    ("ssprRegistered", "isSsprRegistered"),
    ("ssprEnabled", "isSsprEnabled"),
    ("ssprCapable", "isSsprCapable"),
    ("mfaRegistered", "isMfaRegistered"),
    ("mfaCapable", "isMfaCapable"),
    ("passwordlessCapable", "isPasswordlessCapable"),
    (
        "systemPreferredAuthenticationMethodEnabled",
        "isSystemPreferredAuthenticationMethodEnabled",
    ),
];
/// SSPR by phone only (issue 17): SSPR registered, at least one of these...
const SSPR_PHONES: [&str; 3] = ["mobilePhone", "alternateMobilePhone", "officePhone"];
/// ...and none of these.
const SSPR_OTHERS: [&str; 6] = [
    "email",
    "securityQuestion",
    "microsoftAuthenticatorPush",
    "softwareOneTimePasscode",
    "hardwareOneTimePasscode",
    "microsoftAuthenticatorPasswordless",
];
const USER_DETAILS: &str = "/v1.0/reports/authenticationMethods/userRegistrationDetails";
const LEGACY_DETAILS: &str = "/beta/reports/credentialUserRegistrationDetails";

type Table = [(&'static str, &'static [&'static str]); 4];

/// The class of the strongest method a table knows; `none` without one.
fn class_of<'a>(table: &Table, methods: impl Iterator<Item = &'a str> + Clone) -> &'static str {
    table
        .iter()
        .find(|(_, known)| methods.clone().any(|m| known.contains(&m)))
        .map_or("none", |(class, _)| class)
}

fn methods(row: &Value, field: &str) -> Vec<String> {
    row[field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect()
}

fn successor_class(table: &Table, row: &Value) -> &'static str {
    let methods = methods(row, "methodsRegistered");
    class_of(table, methods.iter().map(String::as_str))
}

fn is_sspr_phone_only(row: &Value) -> bool {
    let methods = methods(row, "methodsRegistered");
    let has = |names: &[&str]| methods.iter().any(|m| names.contains(&m.as_str()));
    row["isSsprRegistered"] == true && has(&SSPR_PHONES) && !has(&SSPR_OTHERS)
}

fn label(value: &Value) -> String {
    match value {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Bool(b) => b.to_string(),
        _ => "unknown".to_owned(),
    }
}

/// A tenant of 2,500 users (three pages of 999) with groups: a pilot of 1,200 users nesting a
/// second wave of 500 that overlaps it by 200, Finance, and a group deleted since it was
/// configured.
fn options() -> FakeGraphOptions {
    let group = |id: &str, name: &str, members, nested: &[&str], deleted| FakeGroup {
        id: id.to_owned(),
        name: name.to_owned(),
        members,
        nested: nested.iter().map(|n| (*n).to_owned()).collect(),
        deleted,
    };
    const WAVE_2: &str = "22222222-0000-4000-8000-000000000002";
    FakeGraphOptions {
        users: 2500,
        groups: vec![
            group(
                "22222222-0000-4000-8000-000000000001",
                "pilot",
                0..1200,
                &[WAVE_2],
                false,
            ),
            group(WAVE_2, "wave-2", 1000..1500, &[], false),
            group(
                "22222222-0000-4000-8000-000000000003",
                "finance",
                2000..2400,
                &[],
                false,
            ),
            group(
                "22222222-0000-4000-8000-000000000004",
                "gone",
                0..100,
                &[],
                true,
            ),
        ],
        ..quiet()
    }
}

/// The exporter for the fake's tenant as `contoso`, with the fake's groups and `extra` YAML.
async fn exporter(fake: &FakeGraph, extra: &str) -> Exporter {
    let mut config = format!(
        "{extra}tenants:\n  - name: {TENANT}\n    tenant_id: {}\n    client_id: {}\n    client_secret: {}\n    groups:\n",
        fake.tenant_id(),
        fake.client_id(),
        fake.client_secret()
    );
    for group in fake.groups() {
        config.push_str(&format!(
            "      - {{id: {}, name: {}}}\n",
            group.id, group.name
        ));
    }
    let config = temp_file(&config);
    let ca = common::ca_file(fake);
    let mut command = common::command_for(fake, &ca);
    command.arg(format!("--config.file={}", config.path().display()));
    Exporter::spawn(command, vec![config, ca]).await
}

/// Samples of a family of the tenant, keyed by the values of `labels`.
fn series(text: &str, metric: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
    samples(text, metric)
        .into_iter()
        .filter(|(l, _)| l.get("tenant").is_some_and(|t| t == TENANT))
        .map(|(l, v)| {
            let key = labels
                .iter()
                .map(|name| l.get(*name).cloned().unwrap_or_default())
                .collect();
            (key, v)
        })
        .collect()
}

/// What the exporter should serve, from the fake's own data.
struct Expected {
    /// (strength, user_type, is_admin) → users; every class for every cell.
    strength: BTreeMap<Vec<String>, f64>,
    /// strength → users of the legacy report.
    legacy: BTreeMap<Vec<String>, f64>,
    /// (user_type, is_admin) → SSPR-by-phone-only users; (group) → the same.
    sspr_phone_only: BTreeMap<Vec<String>, f64>,
    group_sspr_phone_only: BTreeMap<Vec<String>, f64>,
    /// (group) → users, (group, feature) → users, (group, strength) → users.
    group_users: BTreeMap<Vec<String>, f64>,
    group_features: BTreeMap<Vec<String>, f64>,
    group_strength: BTreeMap<Vec<String>, f64>,
    /// Transitive members per group, as the fake lists them.
    members: BTreeMap<String, usize>,
}

async fn expected(fake: &FakeGraph, table: &Table) -> Expected {
    let reader = FakeReader::new(fake).await;
    let rows = reader.rows(&format!("{USER_DETAILS}?$top=999")).await;
    let mut strength = BTreeMap::new();
    let mut sspr_phone_only = BTreeMap::new();
    for row in &rows {
        let cell = (label(&row["userType"]), label(&row["isAdmin"]));
        *sspr_phone_only
            .entry(vec![cell.0.clone(), cell.1.clone()])
            .or_insert(0.0) += f64::from(u8::from(is_sspr_phone_only(row)));
        for class in CLASSES {
            strength
                .entry(vec![class.to_owned(), cell.0.clone(), cell.1.clone()])
                .or_insert(0.0);
        }
        *strength
            .entry(vec![
                successor_class(table, row).to_owned(),
                cell.0.clone(),
                cell.1.clone(),
            ])
            .or_insert(0.0) += 1.0;
    }

    let mut legacy: BTreeMap<Vec<String>, f64> = CLASSES
        .iter()
        .map(|c| (vec![(*c).to_owned()], 0.0))
        .collect();
    for row in reader.rows(LEGACY_DETAILS).await {
        let named: Vec<String> = methods(&row, "authMethods")
            .into_iter()
            .map(|m| {
                LEGACY_NAMES
                    .iter()
                    .find(|(old, _)| *old == m)
                    .map_or(m.clone(), |(_, new)| (*new).to_owned())
            })
            .collect();
        let class = class_of(table, named.iter().map(String::as_str));
        *legacy.entry(vec![class.to_owned()]).or_default() += 1.0;
    }

    let mut expected = Expected {
        strength,
        legacy,
        sspr_phone_only,
        group_sspr_phone_only: BTreeMap::new(),
        group_users: BTreeMap::new(),
        group_features: BTreeMap::new(),
        group_strength: BTreeMap::new(),
        members: BTreeMap::new(),
    };
    for group in fake.groups().iter().filter(|g| !g.deleted) {
        let members: BTreeSet<String> = reader
            .rows(&format!(
                "/v1.0/groups/{}/transitiveMembers/microsoft.graph.user?$select=id&$top=999",
                group.id
            ))
            .await
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect();
        expected.members.insert(group.name.clone(), members.len());
        let name = || group.name.clone();
        expected.group_users.insert(vec![name()], 0.0);
        expected.group_sspr_phone_only.insert(vec![name()], 0.0);
        for (feature, _) in FEATURES {
            expected
                .group_features
                .insert(vec![name(), feature.to_owned()], 0.0);
        }
        for class in CLASSES {
            expected
                .group_strength
                .insert(vec![name(), class.to_owned()], 0.0);
        }
        for row in rows
            .iter()
            .filter(|r| r["id"].as_str().is_some_and(|id| members.contains(id)))
        {
            *expected.group_users.entry(vec![name()]).or_default() += 1.0;
            for (feature, field) in FEATURES {
                if row[field] == true {
                    *expected
                        .group_features
                        .entry(vec![name(), feature.to_owned()])
                        .or_default() += 1.0;
                }
            }
            *expected
                .group_strength
                .entry(vec![name(), successor_class(table, row).to_owned()])
                .or_default() += 1.0;
            *expected
                .group_sspr_phone_only
                .entry(vec![name()])
                .or_default() += f64::from(u8::from(is_sspr_phone_only(row)));
        }
    }
    expected
}

/// Compares every strength and group series with the fake; returns the exporter's strength
/// series for further checks.
async fn assert_matches_the_fake(
    fake: &FakeGraph,
    table: &Table,
    text: &str,
) -> BTreeMap<Vec<String>, f64> {
    let expected = expected(fake, table).await;
    let strength = series(
        text,
        "entra_authmethods_strength_users",
        &["strength", "user_type", "is_admin"],
    );
    assert_eq!(strength, expected.strength);
    // Summed over strength, the classes are the users of each cell.
    let users = series(text, "entra_authmethods_users", &["user_type", "is_admin"]);
    for (cell, count) in &users {
        let classes: f64 = strength
            .iter()
            .filter(|(key, _)| key[1..] == cell[..])
            .map(|(_, v)| v)
            .sum();
        assert_eq!(classes, *count, "{cell:?}");
    }
    assert_eq!(
        series(text, "entra_credential_strength_users", &["strength"]),
        expected.legacy
    );
    assert_eq!(
        series(text, "entra_authmethods_group_users", &["group"]),
        expected.group_users
    );
    assert_eq!(
        series(
            text,
            "entra_authmethods_group_feature_users",
            &["group", "feature"]
        ),
        expected.group_features
    );
    assert_eq!(
        series(
            text,
            "entra_authmethods_group_strength_users",
            &["group", "strength"]
        ),
        expected.group_strength
    );
    assert_eq!(
        series(
            text,
            "entra_authmethods_sspr_phone_only_users",
            &["user_type", "is_admin"]
        ),
        expected.sspr_phone_only
    );
    assert_eq!(
        series(
            text,
            "entra_authmethods_group_sspr_phone_only_users",
            &["group"]
        ),
        expected.group_sspr_phone_only
    );
    // SSPR by phone only is no formality in the simulated tenant: members, guests, admins and
    // every group have such users, and other SSPR-registered users too.
    for cell in [["member", "false"], ["member", "true"], ["guest", "false"]] {
        let key: Vec<String> = cell.iter().map(|c| (*c).to_owned()).collect();
        assert!(expected.sspr_phone_only[&key] > 0.0, "{cell:?}");
    }
    for (group, users) in &expected.group_sspr_phone_only {
        assert!(*users > 0.0, "{group:?}");
        assert!(*users < expected.group_users[group], "{group:?}");
    }
    // The pilot nests wave 2, which overlaps it: its 1,200 + 500 memberships are 1,500 users.
    assert_eq!(expected.members["pilot"], 1500);
    assert_eq!(expected.group_users[&vec!["pilot".to_owned()]], 1500.0);
    strength
}

fn class_total(strength: &BTreeMap<Vec<String>, f64>, class: &str, is_admin: Option<&str>) -> f64 {
    strength
        .iter()
        .filter(|(k, _)| k[0] == class && is_admin.is_none_or(|a| k[2] == a))
        .map(|(_, v)| v)
        .sum()
}

fn graph_requests(text: &str, code: &str) -> f64 {
    series(
        text,
        "entra_exporter_graph_requests_total",
        &["report", "code"],
    )
    .get(&vec!["userRegistrationDetails".to_owned(), code.to_owned()])
    .copied()
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_table_and_every_group_match_the_fake() {
    let fake = fake(options()).await;
    let exporter = exporter(&fake, "").await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    // Member reads (counted before the test reads the fake itself) share the scan's request budget and count under its report.
    let member_requests = fake.requests("transitiveMembers");
    // pilot: 2 pages, wave-2: 1, finance: 1, gone: one 404.
    assert_eq!(member_requests, 5);
    assert_eq!(graph_requests(&text, "404"), 1.0);
    assert_eq!(
        graph_requests(&text, "200"),
        (fake.requests(USER_DETAILS) + member_requests - 1) as f64
    );

    let strength = assert_matches_the_fake(&fake, &DEFAULT_TABLE, &text).await;

    // The simulated tenant has users in every class, and admins on both sides of the alert.
    for class in CLASSES {
        assert!(class_total(&strength, class, None) > 0.0, "{class}");
    }
    assert!(class_total(&strength, "phishingResistant", Some("true")) > 0.0);
    let weak_admins: f64 = CLASSES[1..]
        .iter()
        .map(|c| class_total(&strength, c, Some("true")))
        .sum();
    assert!(weak_admins > 0.0);

    // The deleted group has no series at all, and one warning that names it and the fix.
    assert!(!text.contains(r#"group="gone""#), "{text}");
    let logs = exporter.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(r#""level":"WARN""#) && l.contains("gone"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(
        warnings[0].contains("may have been deleted"),
        "{}",
        warnings[0]
    );

    // No user id reaches /metrics.
    let page: Value = serde_json::from_slice(
        &FakeReader::new(&fake)
            .await
            .get(&format!("{USER_DETAILS}?$top=1"))
            .await,
    )
    .expect("page");
    let first_id = page["value"][0]["id"].as_str().expect("id");
    assert!(!text.contains(first_id));
    common::promtool_check_metrics(&text);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overridden_table_moves_users_and_still_matches_the_fake() {
    let fake = fake(options()).await;
    let exporter = exporter(&fake, OVERRIDE_YAML).await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    let overridden = assert_matches_the_fake(&fake, &OVERRIDE_TABLE, &text).await;
    // The override is no formality: one-time passcodes, Authenticator passwordless sign-in and
    // external methods count differently than with the defaults.
    let defaults = expected(&fake, &DEFAULT_TABLE).await.strength;
    assert_ne!(overridden, defaults);
    assert_eq!(class_total(&overridden, "passwordless", None), 0.0);
    assert!(class_total(&defaults, "passwordless", None) > 0.0);
    assert!(class_total(&overridden, "phoneMfa", None) > class_total(&defaults, "phoneMfa", None));
    // Every class is still served, the empty one at 0.
    assert!(text.contains(&format!(
        r#"entra_credential_strength_users{{tenant="{TENANT}",strength="passwordless"}} 0"#
    )));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_methods_and_missing_groups_are_logged_once_per_tenant() {
    let fake = fake(options()).await;
    // Both detail scans every second; both meet externalAuthMethod, which the override forgets.
    let exporter = exporter(
        &fake,
        &format!(
            "{OVERRIDE_YAML}reports:\n  userRegistrationDetails: {{interval: 1s}}\n  credentialUserRegistrationDetails: {{interval: 1s}}\n"
        ),
    )
    .await;
    exporter.wait_ready().await;
    // Wait for three complete scans of each: three times the pages of one.
    exporter
        .wait_for_metrics("three scans", |_| {
            fake.requests(USER_DETAILS) >= 9 && fake.requests(LEGACY_DETAILS) >= 3 * 25
        })
        .await;
    let logs = exporter.logs();
    let lines = |level: &str, needle: &str| {
        logs.lines()
            .filter(|l| l.contains(&format!(r#""level":"{level}""#)) && l.contains(needle))
            .count()
    };
    assert_eq!(
        lines("INFO", r#""method":"externalAuthMethod""#),
        1,
        "{logs}"
    );
    // hardwareOneTimePasscode is unknown too but nobody registered it: nothing to say.
    assert_eq!(lines("INFO", "hardwareOneTimePasscode"), 0, "{logs}");
    assert_eq!(lines("WARN", "gone"), 1, "{logs}");
    // The unknown method still has its own series in both reports.
    let text = exporter.metrics().await;
    let registered = |metric: &str, label: &str| {
        samples(&text, metric)
            .iter()
            .filter(|(l, _)| l.get(label).is_some_and(|m| m == "externalAuthMethod"))
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    assert!(registered("entra_authmethods_method_registered_users", "method") > 0.0);
    assert!(registered("entra_credential_method_registered_users", "auth_method") > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_groups_are_left_out_and_nothing_else_is_affected() {
    let fake = fake(options()).await;
    fake.retire("transitiveMembers", 403);
    let exporter = exporter(
        &fake,
        "reports:\n  userRegistrationDetails: {interval: 1s}\n",
    )
    .await;
    exporter.wait_ready().await;
    exporter
        .wait_for_metrics("two scans", |_| fake.requests(USER_DETAILS) >= 6)
        .await;
    let text = exporter.metrics().await;
    assert!(!text.contains("entra_authmethods_group_users{"), "{text}");
    assert!(!text.contains("entra_authmethods_group_strength_users{"));
    assert!(!text.contains("entra_authmethods_group_feature_users{"));
    assert_eq!(
        sum(&text, "entra_authmethods_strength_users"),
        sum(&text, "entra_authmethods_users")
    );
    assert_eq!(sum(&text, "entra_authmethods_users"), 2500.0);
    assert!(text.contains(&format!(
        r#"entra_exporter_report_up{{tenant="{TENANT}",report="userRegistrationDetails"}} 1"#
    )));
    // One warning per group, naming the group and the permission, however many scans ran.
    let logs = exporter.logs();
    for group in ["pilot", "wave-2", "finance", "gone"] {
        let warnings: Vec<&str> = logs
            .lines()
            .filter(|l| {
                l.contains(r#""level":"WARN""#) && l.contains(&format!(r#""group":"{group}""#))
            })
            .collect();
        assert_eq!(warnings.len(), 1, "{group}: {logs}");
        assert!(
            warnings[0].contains("GroupMember.Read.All"),
            "{}",
            warnings[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_that_fails_to_read_is_left_out_of_that_scan_only() {
    let fake = fake(options()).await;
    // The pilot's first member page arrives broken; Graph's other answers are fine.
    fake.inject(
        "22222222-0000-4000-8000-000000000001/transitiveMembers",
        Fault::InvalidJson,
    );
    let exporter = exporter(&fake, "").await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    let groups = series(&text, "entra_authmethods_group_users", &["group"]);
    let names: Vec<&str> = groups.keys().map(|k| k[0].as_str()).collect();
    assert_eq!(names, ["finance", "wave-2"]);
    assert_eq!(sum(&text, "entra_authmethods_users"), 2500.0);
    let logs = exporter.logs();
    assert!(
        logs.lines().any(|l| l.contains(r#""level":"WARN""#)
            && l.contains(r#""group":"pilot""#)
            && l.contains("left out of this scan")
            && l.contains("invalid JSON")),
        "{logs}"
    );
}
