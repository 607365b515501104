//! The successor reports, against the fake over TLS: served beside the legacy reports, served
//! alone when every legacy report is retired, and usersRegisteredByFeature/-Method falling back
//! on userRegistrationDetails when Graph refuses them.

use crate::common;

use std::time::Duration;

use common::{Exporter, TENANT, fake, legacy_reports, quiet, successor_reports, sum, up, value};
use entra_fake_graph::{FakeGraph, FakeGraphOptions, Fault, UsageEvent};

const SUCCESSOR_FAMILIES: &[&str] = &[
    "entra_authmethods_users",
    "entra_authmethods_feature_users",
    "entra_authmethods_method_registered_users",
    "entra_authmethods_preferred_method_users",
    "entra_authmethods_system_preferred_method_users",
    "entra_authmethods_details_last_updated_timestamp_seconds",
    "entra_authmethods_registered_by_feature_users",
    "entra_authmethods_registered_by_method_users",
    "entra_authmethods_registration_activities",
    "entra_authmethods_signin_activities",
    "entra_authmethods_mfa_signins",
    "entra_authmethods_mfa_signins_day_timestamp_seconds",
    "entra_authmethods_password_events",
    "entra_authmethods_password_events_day_timestamp_seconds",
    "entra_authmethods_usage_window_events",
    "entra_authmethods_usage_events_total",
    "entra_authmethods_usage_outcome_events_total",
    "entra_authmethods_usage_last_event_timestamp_seconds",
    "entra_authmethods_usage_recent_outcome_events",
    "entra_exporter_report_rows",
];

/// The features usersRegisteredByFeature reports (authenticationMethodFeature).
const FEATURE_SUMMARY: [&str; 5] = [
    "ssprRegistered",
    "ssprEnabled",
    "ssprCapable",
    "passwordlessCapable",
    "mfaCapable",
];

/// Users with `feature` true in userRegistrationDetails, summed over user type and role.
fn details_feature_users(text: &str, feature: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with("entra_authmethods_feature_users{")
                && l.contains(&format!(r#"feature="{feature}""#))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn by_feature(text: &str, feature: &str, source: &str) -> Option<f64> {
    value(
        text,
        &format!(
            r#"entra_authmethods_registered_by_feature_users{{tenant="{TENANT}",feature="{feature}",source="{source}"}}"#
        ),
    )
}

fn rows(text: &str, report: &str) -> Option<f64> {
    value(
        text,
        &format!(r#"entra_exporter_report_rows{{tenant="{TENANT}",report="{report}"}}"#),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_successor_family_is_served_beside_the_legacy_ones() {
    let fake = fake(FakeGraphOptions {
        users: 2500,
        ..quiet()
    })
    .await;
    let exporter = Exporter::start(&fake, &["--poll.interval=1h"]).await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    for family in SUCCESSOR_FAMILIES {
        assert!(
            text.contains(&format!("\n{family}{{")),
            "{family} missing:\n{text}"
        );
    }
    for report in legacy_reports().into_iter().chain(successor_reports()) {
        assert_eq!(value(&text, &up(report)), Some(1.0), "{report}\n{text}");
    }
    // $top=999: 2,500 users are three pages, each read once.
    assert_eq!(rows(&text, "userRegistrationDetails"), Some(2500.0));
    assert_eq!(
        fake.requests("/v1.0/reports/authenticationMethods/userRegistrationDetails"),
        3
    );
    assert_eq!(sum(&text, "entra_authmethods_users"), 2500.0);
    // Graph's own summary and the exporter's aggregation of the details agree.
    for feature in FEATURE_SUMMARY {
        assert_eq!(
            by_feature(&text, feature, "summary"),
            Some(details_feature_users(&text, feature)),
            "{feature}"
        );
    }
    for needle in ["@demo.contoso.test", "Demo User"] {
        assert!(
            !text.contains(needle),
            "per-user value {needle:?} in /metrics"
        );
    }
    common::promtool_check_metrics(&text);
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_summaries_fall_back_to_the_details_scan() {
    let fake = fake(quiet()).await;
    fake.retire("usersRegisteredByFeature", 403);
    fake.retire("usersRegisteredByMethod", 403);
    fake.retire("userRegistrationActivity", 403);
    let exporter = Exporter::start(&fake, &["--poll.interval=1s"]).await;
    let text = exporter
        .wait_for_metrics("figures from the details scan", |t| {
            by_feature(t, "mfaCapable", "details").is_some()
                && value(t, &up("usersRegisteredByMethod")) == Some(1.0)
                // Reports that have not finished a first poll are not served yet.
                && value(t, &up("userRegistrationActivity")).is_some()
        })
        .await;
    for feature in FEATURE_SUMMARY {
        assert_eq!(
            by_feature(&text, feature, "details"),
            Some(details_feature_users(&text, feature)),
            "{feature}"
        );
        assert_eq!(by_feature(&text, feature, "summary"), None);
    }
    assert!(text.contains(r#"entra_authmethods_registered_by_method_users{tenant="11111111-2222-3333-4444-555555555555",method="#));
    assert!(!text.contains(r#"source="summary""#));
    // userRegistrationActivity has nothing to fall back on: it is down, with one warning.
    assert_eq!(value(&text, &up("userRegistrationActivity")), Some(0.0));

    // Polls every second keep serving the fallback; each refusal is logged once.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let logs = exporter.logs();
    let warnings = |needle: &str| {
        logs.lines()
            .filter(|l| l.contains(r#""level":"WARN""#) && l.contains(needle))
            .count()
    };
    assert_eq!(warnings("usersRegisteredByFeature is refused"), 1, "{logs}");
    assert_eq!(warnings("usersRegisteredByMethod is refused"), 1, "{logs}");
    assert_eq!(
        warnings("report userRegistrationActivity is forbidden"),
        1,
        "{logs}"
    );
    // Graph is asked again only hourly, not on every poll.
    assert_eq!(fake.requests("usersRegisteredByFeature"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_with_every_legacy_report_retired_still_gets_every_successor() {
    let fake = fake(quiet()).await;
    fake.retire("getCredentialUserRegistrationCount", 404);
    fake.retire("getCredentialUsageSummary", 410);
    fake.retire("credentialUserRegistrationDetails", 400);
    fake.retire("userCredentialUsageDetails", 404);
    let exporter = Exporter::start(&fake, &["--poll.interval=1h"]).await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    for report in legacy_reports() {
        assert_eq!(value(&text, &up(report)), Some(0.0), "{report}");
    }
    for report in successor_reports() {
        assert_eq!(value(&text, &up(report)), Some(1.0), "{report}\n{text}");
    }
    for family in SUCCESSOR_FAMILIES {
        assert!(text.contains(&format!("\n{family}{{")), "{family} missing");
    }
    assert!(!text.contains("\nentra_credential_"), "{text}");
    let logs = exporter.logs();
    for report in legacy_reports() {
        let line = format!("report {report} is not offered");
        assert_eq!(logs.matches(&line).count(), 1, "{logs}");
    }
    common::promtool_check_metrics(&text);
}

/// The exporter against `fake`, polling both events reports every second.
async fn polling_events_every_second(fake: &FakeGraph) -> Exporter {
    let config = common::temp_file(
        "reports:\n  userEventsSummary: {interval: 1s}\n  userCredentialUsageDetails: {interval: 1s}\n",
    );
    let ca = common::ca_file(fake);
    let mut command = common::command_for(fake, &ca);
    command.arg(format!("--config.file={}", config.path().display()));
    Exporter::spawn(command, vec![config, ca]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn successor_event_counters_count_like_the_legacy_ones() {
    let fake = fake(FakeGraphOptions {
        initial_events: 30,
        ..quiet()
    })
    .await;
    let exporter = polling_events_every_second(&fake).await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    assert_eq!(sum(&text, "entra_authmethods_usage_events_total"), 0.0);
    assert_eq!(
        sum(&text, "entra_authmethods_usage_window_events"),
        sum(&text, "entra_credential_usage_window_events")
    );
    for _ in 0..2 {
        fake.add_usage_event(UsageEvent {
            feature: "reset".into(),
            auth_method: "fido2SecurityKey".into(),
            is_success: false,
            failure_reason: "Key not recognised".into(),
            user: 3,
        });
    }
    let text = exporter
        .wait_for_metrics("both counters at 2", |t| {
            sum(t, "entra_authmethods_usage_events_total") == 2.0
                && sum(t, "entra_credential_usage_events_total") == 2.0
        })
        .await;
    assert!(text.contains(r#"entra_authmethods_usage_events_total{tenant="11111111-2222-3333-4444-555555555555",feature="reset",auth_method="fido2SecurityKey",status="failure",failure_reason="Key not recognised"} 2"#), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn summaries_keep_their_interval_while_a_long_scan_runs() {
    // 20,000 users are 21 pages: at the default 5 requests per 10 s the scan alone would take
    // about 40 s, and the summary must still be polled every 4 s while it runs.
    let fake = fake(FakeGraphOptions {
        users: 20_000,
        ..quiet()
    })
    .await;
    let mut config = String::from("reports:\n");
    for name in entra_authmethods_exporter::reports::names() {
        let (enabled, interval) = match name {
            "userRegistrationDetails" => (true, "1h"),
            "credentialUserRegistrationCount" => (true, "4s"),
            _ => (false, "1h"),
        };
        config.push_str(&format!(
            "  {name}: {{enabled: {enabled}, interval: {interval}}}\n"
        ));
    }
    let config = common::temp_file(&config);
    let exporter = Exporter::start(
        &fake,
        &[
            &format!("--config.file={}", config.path().display()),
            "--graph.requests-per-10s=5",
        ],
    )
    .await;
    let summary_polls = |t: &str| {
        value(
            t,
            &format!(
                r#"entra_exporter_graph_requests_total{{code="200",report="credentialUserRegistrationCount",tenant="{TENANT}"}}"#
            ),
        )
        .unwrap_or(0.0)
    };
    let first = exporter
        .wait_for_metrics("the first summary poll", |t| summary_polls(t) >= 1.0)
        .await;
    let start = summary_polls(&first);
    tokio::time::sleep(std::time::Duration::from_secs(16)).await;
    let text = exporter.metrics().await;
    assert_eq!(
        rows(&text, "userRegistrationDetails"),
        None,
        "the scan should still be running"
    );
    let scan_pages = fake.requests("/v1.0/reports/authenticationMethods/userRegistrationDetails");
    assert!(
        scan_pages >= 3,
        "the scan made progress: {scan_pages} pages"
    );
    // One summary request every 4 s is 4 in 16 s; the shared budget must leave room for them
    // (one may straddle the window's edges).
    assert!(
        summary_polls(&text) - start >= 3.0,
        "summary starved: {} polls in 16 s while the scan read {scan_pages} pages",
        summary_polls(&text) - start
    );
}

/// The outcome counter of a report family: `prefix` is `entra_authmethods` or `entra_credential`.
fn outcome(text: &str, prefix: &str, feature: &str, status: &str) -> Option<f64> {
    value(
        text,
        &format!(
            r#"{prefix}_usage_outcome_events_total{{tenant="{TENANT}",feature="{feature}",status="{status}"}}"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn outcome_counters_start_at_zero_and_count_every_new_event_exactly() {
    let fake = fake(FakeGraphOptions {
        initial_events: 30,
        ..quiet()
    })
    .await;
    let exporter = polling_events_every_second(&fake).await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    for prefix in ["entra_authmethods", "entra_credential"] {
        for feature in ["registration", "reset"] {
            for status in ["success", "failure"] {
                assert_eq!(
                    outcome(&text, prefix, feature, status),
                    Some(0.0),
                    "{prefix} {feature} {status}\n{text}"
                );
            }
        }
    }
    // A burst under a method and a reason never seen before, and some ordinary events.
    let add = |feature: &str, method: &str, is_success: bool, reason: &str, n: usize| {
        for user in 0..n {
            fake.add_usage_event(UsageEvent {
                feature: feature.into(),
                auth_method: method.into(),
                is_success,
                failure_reason: reason.into(),
                user,
            });
        }
    };
    add("reset", "qrCode", false, "QR code expired", 7);
    add("reset", "email", true, "", 2);
    add(
        "registration",
        "mobilePhone",
        false,
        "Phone number invalid",
        1,
    );
    let expected = [
        ("reset", "failure", 7.0),
        ("reset", "success", 2.0),
        ("registration", "failure", 1.0),
        ("registration", "success", 0.0),
    ];
    let text = exporter
        .wait_for_metrics("both outcome counters at 10 events", |t| {
            ["entra_authmethods", "entra_credential"]
                .iter()
                .all(|prefix| {
                    expected
                        .iter()
                        .all(|(f, s, n)| outcome(t, prefix, f, s) == Some(*n))
                })
        })
        .await;
    // The outcome counter sums the detailed one, whose burst series was born at 7.
    for prefix in ["entra_authmethods", "entra_credential"] {
        assert_eq!(sum(&text, &format!("{prefix}_usage_events_total")), 10.0);
        assert_eq!(
            sum(&text, &format!("{prefix}_usage_outcome_events_total")),
            10.0
        );
    }
    assert!(
        text.contains(
            r#"auth_method="qrCode",status="failure",failure_reason="QR code expired"} 7"#
        ),
        "{text}"
    );
    common::promtool_check_metrics(&text);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_events_poll_costs_one_request_per_thousand_events_in_the_window() {
    for (events, requests) in [(30, 1), (2500, 3)] {
        let fake = fake(FakeGraphOptions {
            initial_events: events,
            ..quiet()
        })
        .await;
        let exporter = Exporter::start(&fake, &["--poll.interval=1h"]).await;
        exporter.wait_ready().await;
        let text = exporter.metrics().await;
        assert_eq!(
            rows(&text, "userEventsSummary"),
            Some(events as f64),
            "{text}"
        );
        assert_eq!(
            fake.requests("userEventsSummary"),
            requests,
            "{events} events"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registered_by_reports_wait_for_the_first_details_scan_without_failing() {
    let fake = fake(FakeGraphOptions {
        users: 3000,
        ..quiet()
    })
    .await;
    fake.retire("usersRegisteredByFeature", 403);
    fake.retire("usersRegisteredByMethod", 403);
    // The first page of the scan takes a while, as a large tenant's whole scan does.
    fake.inject(
        "authenticationMethods/userRegistrationDetails",
        Fault::Delay(Duration::from_secs(6)),
    );
    let exporter = Exporter::start(&fake, &["--poll.interval=1h"]).await;
    // While the scan runs, the summaries are pending: no up=0 for an alert to page on, and the
    // exporter is not ready yet.
    exporter
        .wait_for_metrics("the legacy registration count", |t| {
            value(t, &up("credentialUserRegistrationCount")) == Some(1.0)
        })
        .await;
    for _ in 0..3 {
        let text = exporter.metrics().await;
        for report in ["usersRegisteredByFeature", "usersRegisteredByMethod"] {
            assert_eq!(value(&text, &up(report)), None, "{report}\n{text}");
        }
        assert_eq!(exporter.get("/readyz").await.0, 503);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, landing) = exporter.get("/").await;
    assert!(landing.contains("has not completed a scan"), "{landing}");
    exporter.wait_ready().await;
    let text = exporter
        .wait_for_metrics("figures from the details scan", |t| {
            by_feature(t, "mfaCapable", "details").is_some()
        })
        .await;
    assert_eq!(value(&text, &up("usersRegisteredByFeature")), Some(1.0));
    let logs = exporter.logs();
    assert!(!logs.contains("report poll failed"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn figures_from_the_details_scan_age_out_with_the_scans_max_age() {
    let fake = fake(quiet()).await;
    fake.retire("usersRegisteredByFeature", 403);
    let config = common::temp_file(
        "reports:\n  userRegistrationDetails: {interval: 1s, max_age: 4s}\n  usersRegisteredByFeature: {interval: 1s, max_age: 1h}\n",
    );
    let exporter = Exporter::start(
        &fake,
        &[
            "--poll.interval=1h",
            &format!("--config.file={}", config.path().display()),
        ],
    )
    .await;
    exporter
        .wait_for_metrics("figures from the details scan", |t| {
            by_feature(t, "mfaCapable", "details").is_some()
        })
        .await;
    // The scan stops succeeding. Its own values go after its max_age, and so do the summary's
    // figures taken from it, although the summary's own max_age is an hour and it polls every
    // second: it fails, rather than serve old figures as fresh.
    fake.retire("authenticationMethods/userRegistrationDetails", 500);
    let text = exporter
        .wait_for_metrics("the fallback figures gone with the scan's", |t| {
            by_feature(t, "mfaCapable", "details").is_none()
                && value(t, &up("usersRegisteredByFeature")) == Some(0.0)
        })
        .await;
    assert!(!text.contains("entra_authmethods_users{"), "{text}");
    assert!(
        exporter
            .logs()
            .contains("the last complete userRegistrationDetails scan is older than its max_age"),
        "{}",
        exporter.logs()
    );
    // Once the scan succeeds again, so does the summary.
    fake.restore("authenticationMethods/userRegistrationDetails");
    exporter
        .wait_for_metrics("the fallback back", |t| {
            by_feature(t, "mfaCapable", "details").is_some()
                && value(t, &up("usersRegisteredByFeature")) == Some(1.0)
        })
        .await;
}
