//! Start-up mistakes end the process with one clear line and a non-zero exit.

use crate::common;

use std::process::{Command, Output};

use common::{BIN, ca_file, command_for, error_lines, fake, quiet, temp_file};

fn run(mut command: Command) -> (Output, String) {
    let output = command.output().expect("exporter runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_client_secret_is_a_one_line_error() {
    let fake = fake(quiet()).await;
    let ca = ca_file(&fake);
    let mut command = command_for(&fake, &ca);
    command.env("AZURE_CLIENT_SECRET", "wrong-secret-value");
    let (output, stderr) = run(command);
    assert!(!output.status.success());
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("AADSTS7000215"), "{stderr}");
    assert!(
        !stderr.contains("wrong-secret-value"),
        "secret in the error"
    );
}

/// A certificate the exporter does not trust is not the token endpoint refusing the tenant: it
/// may be a proxy being replaced. The process keeps running, says why once, and asks again.
#[tokio::test(flavor = "multi_thread")]
async fn untrusted_certificate_is_a_failing_credential_not_an_exit() {
    let fake = fake(quiet()).await;
    // --graph.ca-file names a CA that did not sign the fake's certificate.
    let other = common::fake(quiet()).await;
    let ca = ca_file(&other);
    let mut exporter = common::Exporter::spawn(command_for(&fake, &ca), Vec::new()).await;
    let credential_up = format!(
        r#"entra_exporter_credential_up{{tenant="{}"}}"#,
        common::TENANT
    );
    exporter
        .wait_for_metrics("the failed token request", |text| {
            common::value(text, &credential_up) == Some(0.0)
        })
        .await;
    exporter.wait_for_log("token request failed").await;
    let warnings: Vec<String> = exporter
        .logs()
        .lines()
        .filter(|l| l.contains(r#""level":"WARN""#) && l.contains("token request failed"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", exporter.logs());
    assert!(
        warnings[0].to_lowercase().contains("certificate"),
        "{warnings:?}"
    );
    assert!(exporter.running());
    assert_eq!(fake.tokens_issued(), 0);
}

#[test]
fn no_tenant_configured_points_at_the_fix() {
    let (output, stderr) = run({
        let mut c = Command::new(BIN);
        c.env_clear().arg("--web.listen-address=127.0.0.1:0");
        c
    });
    assert!(!output.status.success());
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("AZURE_TENANT_ID") && errors[0].contains("--demo"));
}

#[test]
fn bad_config_file_is_a_one_line_error() {
    let config = temp_file(
        "tenants:\n  - tenant_id: t\n    client_id: c\n    client_secret: s\n    colour: blue\n",
    );
    let (output, stderr) = run({
        let mut c = Command::new(BIN);
        c.env_clear()
            .arg(format!("--config.file={}", config.path().display()));
        c
    });
    assert!(!output.status.success());
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("colour"), "{stderr}");
}

#[test]
fn bad_flag_value_is_rejected() {
    let output = Command::new(BIN)
        .args(["--demo", "--azure.cloud=mars"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("mars"));
}

#[test]
fn bad_strength_classes_are_one_line_errors() {
    for (yaml, needle) in [
        (
            "strength_classes:\n  appMfa: [microsoftAuthenticatorPush, mobilePhone]\n",
            r#"method \"mobilePhone\" is in both appMfa and phoneMfa"#,
        ),
        (
            "strength_classes:\n  strong: [fido2SecurityKey]\n",
            r#"unknown class \"strong\""#,
        ),
    ] {
        let config = temp_file(yaml);
        let mut command = common::demo_command();
        command.arg(format!("--config.file={}", config.path().display()));
        let (output, stderr) = run(command);
        assert!(!output.status.success(), "{yaml}: {stderr}");
        let errors = error_lines(&stderr);
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(needle), "{yaml}: {stderr}");
    }
}

#[test]
fn zero_and_sub_second_intervals_are_start_up_errors_naming_the_flag_or_key() {
    let config = temp_file("reports:\n  userEventsSummary: {interval: 0s}\n");
    for (args, needle) in [
        (vec!["--poll.interval=0s".to_owned()], "--poll.interval"),
        (vec!["--poll.interval=250ms".to_owned()], "--poll.interval"),
        (
            vec![format!("--config.file={}", config.path().display())],
            "reports.userEventsSummary.interval",
        ),
    ] {
        let (output, stderr) = run({
            let mut c = Command::new(BIN);
            c.env_clear().arg("--demo").args(&args);
            c
        });
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        let errors = error_lines(&stderr);
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(needle), "{stderr}");
    }
}
