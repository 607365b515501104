//! The exporter binary against the fake Graph over TLS, as an operator runs it.

use crate::common;

use std::time::{Duration, SystemTime};

use common::{Exporter, TENANT, fake, quiet, sum, up, value};
use entra_fake_graph::{FakeGraphOptions, Fault, UsageEvent, serve_recorder};

const FAMILIES: &[&str] = &[
    "entra_credential_users",
    "entra_credential_registration_users",
    "entra_credential_usage_activities",
    "entra_credential_details_users",
    "entra_credential_method_registered_users",
    "entra_credential_usage_window_events",
    "entra_credential_usage_events_total",
    "entra_credential_usage_outcome_events_total",
    "entra_credential_usage_last_event_timestamp_seconds",
    "entra_credential_usage_recent_outcome_events",
    "entra_exporter_report_up",
    "entra_exporter_report_last_success_timestamp_seconds",
    "entra_exporter_report_duration_seconds",
    "entra_exporter_graph_requests_total",
    "entra_exporter_build_info",
    "process_resident_memory_bytes",
];

#[tokio::test(flavor = "multi_thread")]
async fn serves_every_family_without_user_identifiers_or_secrets() {
    let fake = fake(FakeGraphOptions::default()).await;
    let exporter = Exporter::start(&fake, &["--poll.interval=1h"]).await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    for family in FAMILIES {
        assert!(
            text.contains(&format!("\n{family}")),
            "{family} missing:\n{text}"
        );
    }
    for report in common::legacy_reports() {
        assert_eq!(value(&text, &up(report)), Some(1.0), "{report}\n{text}");
    }
    assert_eq!(
        value(
            &text,
            &format!(r#"entra_credential_users{{tenant="{TENANT}"}}"#)
        ),
        Some(250.0)
    );
    // The fake's users are user0042@demo.contoso.test / "Demo User 42".
    for needle in ["@demo.contoso.test", "Demo User", "user0"] {
        assert!(
            !text.contains(needle),
            "per-user value {needle:?} in /metrics"
        );
    }
    let (_, landing) = exporter.get("/").await;
    assert!(landing.contains("credentialUserRegistrationDetails"));
    for page in [&text, &landing, &exporter.logs()] {
        assert!(!page.contains(fake.client_secret()), "secret leaked");
    }
    assert!(!exporter.logs().contains("Bearer"), "token in logs");
    // The fake, like Graph, marks the legacy reports deprecated: one warning each.
    let deprecations = exporter
        .logs()
        .lines()
        .filter(|l| l.contains(r#""level":"WARN""#) && l.contains("deprecated"))
        .count();
    assert_eq!(
        deprecations,
        common::legacy_reports().len(),
        "{}",
        exporter.logs()
    );
    common::promtool_check_metrics(&text);
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_every_page_of_a_paged_report() {
    let fake = fake(FakeGraphOptions {
        users: 137,
        page_size: 10,
        ..quiet()
    })
    .await;
    let exporter = Exporter::start(&fake, &["--poll.interval=1h"]).await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    assert_eq!(sum(&text, "entra_credential_details_users"), 137.0);
    assert_eq!(
        fake.requests("/beta/reports/credentialUserRegistrationDetails"),
        14
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn honours_retry_after_on_429_and_retries_503() {
    let fake = fake(quiet()).await;
    let count = "getCredentialUserRegistrationCount";
    fake.inject(
        count,
        Fault::Status {
            code: 429,
            retry_after: Some("2".into()),
            body: r#"{"error":{"code":"TooManyRequests","message":"Too many requests"}}"#.into(),
        },
    );
    fake.inject(
        count,
        Fault::Status {
            code: 503,
            retry_after: None,
            body: String::new(),
        },
    );
    let started = std::time::Instant::now();
    let exporter = Exporter::start(&fake, &["--poll.interval=1h"]).await;
    let text = exporter
        .wait_for_metrics("the registration count to succeed", |t| {
            value(t, &up("credentialUserRegistrationCount")) == Some(1.0)
        })
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 2 was not honoured"
    );
    let requests = |code: &str| {
        value(
            &text,
            &format!(
                r#"entra_exporter_graph_requests_total{{code="{code}",report="credentialUserRegistrationCount",tenant="{TENANT}"}}"#
            ),
        )
    };
    assert_eq!(requests("429"), Some(1.0));
    assert_eq!(requests("503"), Some(1.0));
    assert_eq!(requests("200"), Some(1.0));
    assert_eq!(fake.requests(count), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshes_tokens_and_survives_a_rejected_one() {
    // azure_identity refreshes tokens five minutes before they expire, so a 2-second token is
    // fetched anew for each request.
    let fake = fake(FakeGraphOptions {
        token_lifetime: Duration::from_secs(2),
        ..quiet()
    })
    .await;
    let exporter = Exporter::start(&fake, &["--poll.interval=1s"]).await;
    exporter.wait_ready().await;
    let issued = fake.tokens_issued();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        fake.tokens_issued() > issued,
        "no new token after the old one expired"
    );
    // Graph rejecting a token (as for an expired one) fails that poll only.
    fake.inject(
        "getCredentialUserRegistrationCount",
        Fault::Status {
            code: 401,
            retry_after: None,
            body: r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired or is not yet valid."}}"#.into(),
        },
    );
    exporter.wait_for_log("InvalidAuthenticationToken").await;
    exporter
        .wait_for_metrics("recovery after a rejected token", |t| {
            value(t, &up("credentialUserRegistrationCount")) == Some(1.0)
                && value(
                    t,
                    &format!(
                        r#"entra_exporter_graph_requests_total{{code="401",report="credentialUserRegistrationCount",tenant="{TENANT}"}}"#
                    ),
                ) == Some(1.0)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_json_fails_the_poll_and_keeps_the_last_good_values() {
    let fake = fake(quiet()).await;
    // The last good value outlives the report held down below (the default max_age, three 1 s
    // intervals, would drop it).
    let config = common::temp_file("reports:\n  credentialUserRegistrationCount: {max_age: 1h}\n");
    let config_flag = format!("--config.file={}", config.path().display());
    let exporter = Exporter::start(&fake, &["--poll.interval=1s", &config_flag]).await;
    exporter.wait_ready().await;
    let users = format!(r#"entra_credential_users{{tenant="{TENANT}"}}"#);
    for _ in 0..common::STAY_DOWN_POLLS {
        fake.inject("getCredentialUserRegistrationCount", Fault::InvalidJson);
    }
    let text = exporter
        .wait_for_metrics("the report to go down", |t| {
            value(t, &up("credentialUserRegistrationCount")) == Some(0.0)
        })
        .await;
    assert_eq!(
        value(&text, &users),
        Some(250.0),
        "last good value kept:\n{text}"
    );
    let logs = exporter.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("invalid JSON"))
        .expect("the failure is logged");
    assert!(line.contains("request-id "), "{line}");
    assert!(
        !line.contains("(request-id )"),
        "Graph's request-id is missing: {line}"
    );
    fake.clear_faults();
    exporter
        .wait_for_metrics("recovery", |t| {
            value(t, &up("credentialUserRegistrationCount")) == Some(1.0)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_values_are_dropped_after_max_age() {
    let fake = fake(quiet()).await;
    let config = common::temp_file(
        "reports:\n  credentialUserRegistrationCount: {interval: 1s, max_age: 3s}\n",
    );
    let exporter = Exporter::start(
        &fake,
        &[&format!("--config.file={}", config.path().display())],
    )
    .await;
    exporter.wait_ready().await;
    let users = format!(r#"entra_credential_users{{tenant="{TENANT}"}}"#);
    fake.retire("getCredentialUserRegistrationCount", 500);
    exporter
        .wait_for_metrics("the stale value to be dropped", |t| {
            value(t, &users).is_none()
                && value(t, &up("credentialUserRegistrationCount")) == Some(0.0)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retired_or_forbidden_report_is_logged_once_backs_off_and_blocks_nothing() {
    let fake = fake(quiet()).await;
    fake.retire("credentialUserRegistrationDetails", 404);
    fake.retire("getCredentialUsageSummary", 403);
    fake.retire("userCredentialUsageDetails", 400);
    let exporter = Exporter::start(&fake, &["--poll.interval=1s"]).await;
    exporter.wait_ready().await;
    // Other reports keep polling every second while the unavailable ones are asked again after
    // 1 s, 2 s, 4 s, ... (up to hourly): three or four requests in the first six seconds, where
    // a fixed 1 s retry would make seven and an hourly one a single request.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let text = exporter.metrics().await;
    assert_eq!(
        value(&text, &up("credentialUserRegistrationCount")),
        Some(1.0)
    );
    let unavailable = |report: &str, cause: &str| {
        value(
            &text,
            &format!(
                r#"entra_exporter_report_unavailable{{tenant="{TENANT}",report="{report}",cause="{cause}"}}"#
            ),
        )
    };
    for (report, cause, other) in [
        ("credentialUserRegistrationDetails", "retired", "forbidden"),
        ("credentialUsageSummary", "forbidden", "retired"),
        ("userCredentialUsageDetails", "retired", "forbidden"),
    ] {
        assert_eq!(value(&text, &up(report)), Some(0.0), "{report}");
        assert_eq!(unavailable(report, cause), Some(1.0), "{report}");
        assert_eq!(unavailable(report, other), Some(0.0), "{report}");
    }
    for cause in ["retired", "forbidden"] {
        assert_eq!(
            unavailable("credentialUserRegistrationCount", cause),
            Some(0.0)
        );
    }
    assert!(!text.contains("entra_credential_details_users{"));
    assert!(fake.requests("getCredentialUserRegistrationCount") >= 4);
    let retried = fake.requests("credentialUserRegistrationDetails");
    assert!((2..=4).contains(&retried), "{retried} requests");

    let logs = exporter.logs();
    let warnings = |needle: &str| {
        logs.lines()
            .filter(|l| l.contains(r#""level":"WARN""#) && l.contains(needle))
            .count()
    };
    assert_eq!(
        warnings("report credentialUserRegistrationDetails is not offered"),
        1,
        "{logs}"
    );
    assert_eq!(
        warnings("report userCredentialUsageDetails is not offered"),
        1
    );
    assert_eq!(warnings("report credentialUsageSummary is forbidden"), 1);
    assert!(logs.contains("Reports.Read.All"));
    assert!(logs.contains("its successor is userRegistrationDetails"));
    let (_, landing) = exporter.get("/").await;
    assert!(landing.contains("unavailable (retired)"));
    assert!(landing.contains("unavailable (forbidden)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn never_follows_a_next_link_to_another_host() {
    let fake = fake(quiet()).await;
    let recorder = serve_recorder(fake.tls_config())
        .await
        .expect("recorder starts");
    let foreign = format!(
        "{}/beta/reports/credentialUserRegistrationDetails?$skiptoken=steal",
        recorder.url()
    );
    fake.inject(
        "credentialUserRegistrationDetails",
        Fault::ForeignNextLink(foreign),
    );
    let exporter = Exporter::start(&fake, &["--poll.interval=1h"]).await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    assert_eq!(
        value(&text, &up("credentialUserRegistrationDetails")),
        Some(0.0)
    );
    assert!(
        exporter
            .logs()
            .contains("refusing to follow @odata.nextLink")
    );
    assert_eq!(recorder.hits(), 0, "a request reached the foreign host");
    assert_eq!(recorder.authorized_hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_counters_start_at_zero_and_count_new_events_once() {
    let fake = fake(FakeGraphOptions {
        initial_events: 40,
        ..quiet()
    })
    .await;
    let config = common::temp_file("reports:\n  userCredentialUsageDetails: {interval: 1s}\n");
    let args = [format!("--config.file={}", config.path().display())];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&fake, &args).await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    let window = sum(&text, "entra_credential_usage_window_events");
    assert!(window >= 40.0, "{text}");
    assert_eq!(sum(&text, "entra_credential_usage_events_total"), 0.0);

    for _ in 0..3 {
        fake.add_usage_event(UsageEvent {
            feature: "reset".into(),
            auth_method: "mobileSMS".into(),
            is_success: false,
            failure_reason: "User \"gave up\"\nafter  SMS".into(),
            user: 7,
        });
    }
    let series = format!(
        r#"entra_credential_usage_events_total{{tenant="{TENANT}",feature="reset",auth_method="mobileSMS",status="failure",failure_reason="User \"gave up\" after SMS"}}"#
    );
    let text = exporter
        .wait_for_metrics("three new failures", |t| value(t, &series) == Some(3.0))
        .await;
    assert_eq!(sum(&text, "entra_credential_usage_events_total"), 3.0);
    // Repeated polls of the same window count nothing twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = exporter.metrics().await;
    assert_eq!(sum(&text, "entra_credential_usage_events_total"), 3.0);

    // Events leaving the window: the counter keeps its value.
    fake.expire_usage_events_before(SystemTime::now() + Duration::from_secs(1));
    let text = exporter
        .wait_for_metrics("an empty window", |t| {
            sum(t, "entra_credential_usage_window_events") == 0.0
        })
        .await;
    assert_eq!(value(&text, &series), Some(3.0));

    // A restarted exporter starts its counters at zero: no fake spike.
    drop(exporter);
    fake.add_usage_event(UsageEvent {
        feature: "reset".into(),
        auth_method: "email".into(),
        is_success: true,
        failure_reason: String::new(),
        user: 8,
    });
    let restarted = Exporter::start(&fake, &args).await;
    restarted.wait_ready().await;
    let text = restarted.metrics().await;
    assert_eq!(sum(&text, "entra_credential_usage_events_total"), 0.0);
    assert_eq!(sum(&text, "entra_credential_usage_window_events"), 1.0);
}

/// 200 responses Graph gave to a report of [`TENANT`]: its polls, when each is one page.
fn answered(text: &str, report: &str) -> f64 {
    value(
        text,
        &format!(
            r#"entra_exporter_graph_requests_total{{code="200",report="{report}",tenant="{TENANT}"}}"#
        ),
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_start_against_data_13_days_old_counts_nothing_until_a_new_event() {
    // Graph's newest event is 13 days old, so its 30-day window reaches 43 days back: beyond
    // the exporter's now less 32 days, where the first poll used to stop remembering.
    let fake = fake(FakeGraphOptions {
        initial_events: 200,
        event_time_lag: Duration::from_secs(13 * 24 * 3600),
        // One page per poll, in both reports.
        page_size: 1000,
        ..quiet()
    })
    .await;
    let config = common::temp_file(
        "reports:\n  userEventsSummary: {interval: 1s}\n  userCredentialUsageDetails: {interval: 1s}\n",
    );
    let args = [format!("--config.file={}", config.path().display())];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&fake, &args).await;
    exporter.wait_ready().await;
    const TOTALS: [&str; 4] = [
        "entra_authmethods_usage_events_total",
        "entra_credential_usage_events_total",
        "entra_authmethods_usage_outcome_events_total",
        "entra_credential_usage_outcome_events_total",
    ];
    let text = exporter
        .wait_for_metrics("three polls of each events report", |t| {
            answered(t, "userEventsSummary") >= 3.0
                && answered(t, "userCredentialUsageDetails") >= 3.0
        })
        .await;
    for family in TOTALS {
        assert_eq!(sum(&text, family), 0.0, "{family}:\n{text}");
    }
    assert_eq!(sum(&text, "entra_authmethods_usage_window_events"), 200.0);

    // A genuinely new event, dated as stale as the rest, counts exactly once in each.
    fake.add_usage_event(UsageEvent {
        feature: "reset".into(),
        auth_method: "email".into(),
        is_success: false,
        failure_reason: "Late".into(),
        user: 3,
    });
    let text = exporter
        .wait_for_metrics("the new event counted", |t| {
            TOTALS.iter().all(|family| sum(t, family) >= 1.0)
        })
        .await;
    let polls = answered(&text, "userEventsSummary");
    let text = exporter
        .wait_for_metrics("three more polls", |t| {
            answered(t, "userEventsSummary") >= polls + 3.0
        })
        .await;
    for family in TOTALS {
        assert_eq!(sum(&text, family), 1.0, "{family}:\n{text}");
    }
    let series = format!(
        r#"entra_authmethods_usage_events_total{{tenant="{TENANT}",feature="reset",auth_method="email",status="failure",failure_reason="Late"}}"#
    );
    assert_eq!(value(&text, &series), Some(1.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_waits_for_every_first_poll() {
    let fake = fake(quiet()).await;
    fake.inject(
        "credentialUserRegistrationDetails",
        Fault::Delay(Duration::from_secs(3)),
    );
    let exporter = Exporter::start(&fake, &["--poll.interval=1h"]).await;
    let (status, _) = exporter.get("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(exporter.get("/healthz").await.0, 200);
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    for report in common::legacy_reports() {
        assert!(value(&text, &up(report)).is_some(), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_gracefully() {
    let fake = fake(quiet()).await;
    let mut exporter = Exporter::start(&fake, &["--poll.interval=1h"]).await;
    exporter.wait_ready().await;
    let status = exporter.terminate();
    assert!(status.success(), "{status}");
    assert!(exporter.logs().contains("shutting down"));
}
