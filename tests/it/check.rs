//! `entra-authmethods-exporter check`: the real binary against the fake's tenants over TLS,
//! with the exporter's own flags and config file, in both output formats.

use crate::common;

use std::process::{Command, Output};

use common::{BIN, ConfiguredTenant, ca_file, command_for, fake, quiet, tenants_config};
use entra_authmethods_exporter::reports;
use entra_fake_graph::{FakeGraph, FakeGraphOptions};
use serde_json::Value;

/// Runs `check` with the config file and `args` against the fake.
fn check(fake: &FakeGraph, config: &tempfile::NamedTempFile, args: &[&str]) -> (Output, String) {
    let ca = ca_file(fake);
    let mut command = command_for(fake, &ca);
    command
        .arg("check")
        .arg(format!("--config.file={}", config.path().display()))
        .args(args)
        .stdout(std::process::Stdio::piped());
    let output = command.output().expect("check runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not one JSON document: {e}\n{stdout}"))
}

/// The result and message of one report of one tenant.
fn report<'a>(findings: &'a Value, tenant: &str, report: &str) -> (&'a str, &'a str) {
    let tenant = findings["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .find(|t| t["tenant"] == tenant)
        .unwrap_or_else(|| panic!("no tenant {tenant}"));
    let report = tenant["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .find(|r| r["report"] == report)
        .unwrap_or_else(|| panic!("no report {report}"));
    (
        report["result"].as_str().expect("result"),
        report["message"].as_str().expect("message"),
    )
}

/// The keys of every object of the document are exactly the documented ones.
fn assert_documented_shape(findings: &Value) {
    let keys =
        |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
    assert_eq!(keys(findings), ["tenants"]);
    for tenant in findings["tenants"].as_array().expect("tenants") {
        let mut tenant_keys = keys(tenant);
        tenant_keys.sort();
        assert_eq!(tenant_keys, ["credential", "message", "reports", "tenant"]);
        assert!(["ok", "error"].contains(&tenant["credential"].as_str().expect("credential")));
        for report in tenant["reports"].as_array().expect("reports") {
            let mut report_keys = keys(report);
            report_keys.sort();
            assert_eq!(report_keys, ["message", "report", "result"]);
            let result = report["result"].as_str().expect("result");
            assert!(
                ["ok", "fallback", "forbidden", "retired", "error"].contains(&result),
                "{result}"
            );
        }
    }
}

fn assert_nothing_secret_or_personal(fake: &FakeGraph, output: &Output, secrets: &[&str]) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in secrets.iter().chain([&fake.client_secret()]) {
        assert!(!all.contains(secret), "secret {secret:?} in the output");
    }
    // The fake's users are user0042@demo.contoso.test / "Demo User 42".
    for personal in ["@demo.contoso.test", "Demo User"] {
        assert!(!all.contains(personal), "{personal:?} in the output");
    }
    // The fake's access tokens are `fake.` and 32 hex digits.
    let token = all.match_indices("fake.").any(|(i, _)| {
        all[i + 5..]
            .chars()
            .take(32)
            .filter(char::is_ascii_hexdigit)
            .count()
            == 32
    });
    assert!(!token, "a bearer token in the output");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_usable_tenant_passes_with_refused_summaries_served_from_the_fallback() {
    let fake = fake(quiet()).await;
    // Refused app-only, as Microsoft documents: userRegistrationDetails stands in.
    fake.retire("usersRegisteredByFeature", 403);
    fake.retire("usersRegisteredByMethod", 403);
    // Retired by Microsoft: nothing to fix.
    fake.retire("credentialUserRegistrationDetails", 410);
    let config = tenants_config(
        &fake,
        &[ConfiguredTenant {
            name: "contoso",
            tenant_id: fake.tenant_id(),
            secret: fake.client_secret(),
        }],
        &[],
    );

    let (output, stdout) = check(&fake, &config, &["--output=json"]);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let findings = json(&stdout);
    assert_documented_shape(&findings);
    let tenant = &findings["tenants"][0];
    assert_eq!(tenant["tenant"], "contoso");
    assert_eq!(tenant["credential"], "ok");
    assert_eq!(
        tenant["reports"].as_array().unwrap().len(),
        reports::names().len(),
        "every enabled report"
    );
    for name in ["usersRegisteredByFeature", "usersRegisteredByMethod"] {
        let (result, message) = report(&findings, "contoso", name);
        assert_eq!(result, "fallback", "{name}: {message}");
        assert!(message.contains("userRegistrationDetails"), "{message}");
    }
    let (result, message) = report(&findings, "contoso", "credentialUserRegistrationDetails");
    assert_eq!(result, "retired");
    assert!(message.contains("use userRegistrationDetails"), "{message}");
    assert!(message.contains("enabled: false"), "{message}");
    for name in [
        "userRegistrationDetails",
        "userEventsSummary",
        "credentialUsageSummary",
        "authenticationMethodsPolicy",
    ] {
        assert_eq!(report(&findings, "contoso", name).0, "ok", "{name}");
    }
    assert_nothing_secret_or_personal(&fake, &output, &[]);

    // One cheap request per report: `$top=1` where the API takes it, the first page only.
    for probe in [
        "/v1.0/reports/authenticationMethods/userRegistrationDetails?$top=1",
        "/beta/reports/authenticationMethods/userEventsSummary?$top=1",
        "/beta/reports/userCredentialUsageDetails?$top=1",
        "/beta/reports/getCredentialUsageSummary(period='D1')?$top=1",
        "/v1.0/policies/authenticationMethodsPolicy",
    ] {
        assert_eq!(fake.requests(probe), 1, "{probe}");
    }
    assert_eq!(fake.requests("skiptoken"), 0, "a probe read a second page");
    assert_eq!(
        fake.requests("/reports/") + fake.requests("/policies/"),
        reports::names().len()
    );

    // The table says the same to a person.
    let (output, table) = check(&fake, &config, &[]);
    assert_eq!(output.status.code(), Some(0), "{table}");
    let header = table.lines().next().expect("a header");
    for column in ["TENANT", "REPORT", "RESULT", "WHAT TO DO"] {
        assert!(header.contains(column), "{header}");
    }
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("usersRegisteredByFeature")[2], "fallback");
    assert_eq!(row("credentialUserRegistrationDetails")[2], "retired");
    assert_eq!(row("userRegistrationDetails")[2..], ["ok", "-"]);
    assert_eq!(row("authenticationMethodsPolicy")[2..], ["ok", "-"]);
    assert_eq!(row("(token)")[2], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_tenant_or_report_fails_the_check_and_says_what_to_do() {
    let fake = fake(FakeGraphOptions {
        tenants: 2,
        ..quiet()
    })
    .await;
    let ids = fake.tenant_ids().to_vec();
    // In fabrikam only: no AuditLog.Read.All, and a report that keeps failing.
    fake.retire_for(&ids[1], "userEventsSummary", 403);
    fake.retire_for(&ids[1], "userRegistrationDetails", 403);
    fake.retire_for(&ids[1], "usersRegisteredByFeature", 403);
    fake.retire_for(&ids[1], "userMfaSignInSummary", 500);
    fake.retire_for(&ids[1], "authenticationMethodsPolicy", 403);
    let wrong = "revoked-secret-value";
    let config = tenants_config(
        &fake,
        &[
            ConfiguredTenant {
                name: "contoso",
                tenant_id: &ids[0],
                secret: fake.client_secret(),
            },
            ConfiguredTenant {
                name: "fabrikam",
                tenant_id: &ids[1],
                secret: fake.client_secret(),
            },
            ConfiguredTenant {
                name: "revoked",
                tenant_id: &ids[0],
                secret: wrong,
            },
        ],
        &[
            "userEventsSummary",
            "userRegistrationDetails",
            "usersRegisteredByFeature",
            "userMfaSignInSummary",
            "authenticationMethodsPolicy",
        ],
    );

    let (output, stdout) = check(&fake, &config, &["--output=json"]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let findings = json(&stdout);
    assert_documented_shape(&findings);
    let tenants: Vec<&str> = findings["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(
        tenants,
        ["contoso", "fabrikam", "revoked"],
        "configuration order"
    );

    // contoso is fine: five enabled reports, all ok.
    for name in [
        "userEventsSummary",
        "userRegistrationDetails",
        "usersRegisteredByFeature",
        "userMfaSignInSummary",
        "authenticationMethodsPolicy",
    ] {
        assert_eq!(report(&findings, "contoso", name).0, "ok", "{name}");
    }
    assert_eq!(
        findings["tenants"][0]["reports"].as_array().unwrap().len(),
        5
    );

    // fabrikam: refusals name the permission and licence; the summary has no fallback when
    // userRegistrationDetails is refused too.
    let (result, message) = report(&findings, "fabrikam", "userEventsSummary");
    assert_eq!(result, "forbidden");
    assert!(
        message.contains("AuditLog.Read.All") && message.contains("P1 or P2"),
        "{message}"
    );
    let (result, message) = report(&findings, "fabrikam", "usersRegisteredByFeature");
    assert_eq!(result, "forbidden", "{message}");
    assert!(message.contains("userRegistrationDetails"), "{message}");
    // The policy needs its own permission, and no licence.
    let (result, message) = report(&findings, "fabrikam", "authenticationMethodsPolicy");
    assert_eq!(result, "forbidden");
    assert!(
        message.contains("Policy.Read.AuthenticationMethod") && message.contains("Policy.Read.All"),
        "{message}"
    );
    let (result, message) = report(&findings, "fabrikam", "userMfaSignInSummary");
    assert_eq!(result, "error");
    assert!(message.contains("500"), "{message}");

    // revoked: the credential fails, no report is tried.
    let revoked = &findings["tenants"][2];
    assert_eq!(revoked["credential"], "error");
    assert_eq!(revoked["reports"], serde_json::json!([]));
    let message = revoked["message"].as_str().unwrap();
    assert!(
        message.contains("AADSTS7000215") && message.contains("secret"),
        "{message}"
    );
    assert_nothing_secret_or_personal(&fake, &output, &[wrong]);

    let (output, table) = check(&fake, &config, &["--output=table"]);
    assert_eq!(output.status.code(), Some(1), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("revoked") && l.contains("(token)") && l.contains("error")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("fabrikam") && l.contains("forbidden")),
        "{table}"
    );
    assert_nothing_secret_or_personal(&fake, &output, &[wrong]);
}

#[test]
fn check_runs_on_the_demo_tenant() {
    let output = Command::new(BIN)
        .env_clear()
        .args(["check", "--demo", "--output=json"])
        .output()
        .expect("check runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let findings = json(&stdout);
    assert_documented_shape(&findings);
    assert_eq!(findings["tenants"][0]["tenant"], "demo");
    for report in findings["tenants"][0]["reports"].as_array().unwrap() {
        assert_eq!(report["result"], "ok", "{report}");
    }
}

#[test]
fn a_bad_configuration_is_a_one_line_error() {
    let config = common::temp_file("tenants:\n  - {tenant_id: t, client_id: c}\n");
    let output = Command::new(BIN)
        .env_clear()
        .arg("check")
        .arg(format!("--config.file={}", config.path().display()))
        .output()
        .expect("check runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no credential"), "{stderr}");
}
