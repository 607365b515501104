//! Many tenants, one process: a tenant the token endpoint refuses, or cannot serve for a while,
//! holds up no other; the process ends only when every tenant is refused; and a throttled
//! tenant pauses on its own while the others carry on. The real binary against the fake's
//! tenants over TLS.

use crate::common;

use std::time::{Duration, Instant};

use common::{
    ConfiguredTenant, Exporter, TENANT, ca_file, command_for, credential_up, fake, log_lines,
    quiet, report_up, tenants_config,
};
use entra_fake_graph::{FakeGraph, FakeGraphOptions, Fault, LoggedRequest};

/// Cheap reports, enough to tell whether a tenant polls.
const REPORTS: &[&str] = &[
    "credentialUserRegistrationCount",
    "usersRegisteredByFeature",
];
/// Reports the throttling test polls every second, each one request a poll.
const REPORTS_POLLED_EVERY_SECOND: &[&str] = &[
    "credentialUserRegistrationCount",
    "usersRegisteredByFeature",
    "userMfaSignInSummary",
];
/// A tenant whose first token request failed asks again a minute later.
const RETRY_DEADLINE: Duration = Duration::from_secs(150);

fn token_requests(log: &[LoggedRequest], tenant_id: &str) -> usize {
    log.iter()
        .filter(|r| r.tenant.as_deref() == Some(tenant_id) && r.target.contains("/oauth2/"))
        .count()
}

/// The exporter with `config`, polling every hour, once ready.
async fn polling_hourly(fake: &FakeGraph, config: &tempfile::NamedTempFile) -> Exporter {
    let exporter = Exporter::start(
        fake,
        &[
            &format!("--config.file={}", config.path().display()),
            "--poll.interval=1h",
        ],
    )
    .await;
    exporter.wait_ready().await;
    exporter
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_tenant_stops_nothing_and_a_failing_one_recovers_at_its_retry() {
    let fake = fake(FakeGraphOptions {
        tenants: 3,
        record_requests: true,
        ..quiet()
    })
    .await;
    let ids = fake.tenant_ids().to_vec();
    // The token endpoint fails flaky's first request with a 503: worth another try.
    fake.inject_for(
        &ids[2],
        "/oauth2/",
        Fault::Status {
            code: 503,
            retry_after: None,
            body: String::new(),
        },
    );
    let revoked_secret = "revoked-secret-value";
    let config = tenants_config(
        &fake,
        &[
            ConfiguredTenant {
                name: "good",
                tenant_id: &ids[0],
                secret: fake.client_secret(),
            },
            ConfiguredTenant {
                name: "revoked",
                tenant_id: &ids[1],
                secret: revoked_secret,
            },
            ConfiguredTenant {
                name: "flaky",
                tenant_id: &ids[2],
                secret: fake.client_secret(),
            },
        ],
        REPORTS,
    );
    let started = Instant::now();
    // Ready once the tenant with a token has polled: the others' reports stay pending.
    let mut exporter = polling_hourly(&fake, &config).await;
    let text = exporter.metrics().await;
    assert_eq!(credential_up(&text, "good"), Some(1.0), "{text}");
    assert_eq!(credential_up(&text, "revoked"), Some(0.0), "{text}");
    assert_eq!(credential_up(&text, "flaky"), Some(0.0), "{text}");
    for report in REPORTS {
        assert_eq!(report_up(&text, "good", report), Some(1.0), "{text}");
        for pending in ["revoked", "flaky"] {
            assert_eq!(report_up(&text, pending, report), None, "{pending} polled");
            assert!(text.contains(&format!(
                r#"entra_exporter_report_interval_seconds{{tenant="{pending}",report="{report}"}}"#
            )));
        }
    }
    let (_, landing) = exporter.get("/").await;
    assert!(
        landing.contains("<td>revoked</td>") && landing.contains("<td>failing</td>"),
        "{landing}"
    );
    assert!(landing.contains("AADSTS7000215"), "{landing}");
    for page in [&landing, &text, &exporter.logs()] {
        assert!(!page.contains(revoked_secret), "secret leaked");
        assert!(!page.contains(fake.client_secret()), "secret leaked");
    }
    // One warning for each tenant that starts failing.
    assert_eq!(
        log_lines(&exporter, "WARN", "revoked", "token request failed"),
        1
    );
    assert_eq!(
        log_lines(&exporter, "WARN", "flaky", "token request failed"),
        1
    );
    assert!(exporter.running());

    // A minute later both ask again: flaky gets its token and polls; revoked stays refused,
    // without a second warning.
    let text = exporter
        .wait_longer_for_metrics("flaky to recover at its retry", RETRY_DEADLINE, |t| {
            credential_up(t, "flaky") == Some(1.0)
                && REPORTS
                    .iter()
                    .all(|report| report_up(t, "flaky", report) == Some(1.0))
        })
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(60),
        "retried before a minute had passed"
    );
    assert_eq!(credential_up(&text, "revoked"), Some(0.0));
    assert_eq!(log_lines(&exporter, "INFO", "flaky", "succeeds again"), 1);
    while token_requests(&fake.request_log(), &ids[1]) < 2 {
        assert!(
            started.elapsed() < RETRY_DEADLINE,
            "revoked was not asked again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        log_lines(&exporter, "WARN", "revoked", "token request failed"),
        1,
        "{}",
        exporter.logs()
    );
    assert_eq!(token_requests(&fake.request_log(), &ids[2]), 2);
    assert!(exporter.running());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_process_ends_only_when_every_tenant_is_refused() {
    let fake = fake(quiet()).await;
    let config = tenants_config(
        &fake,
        &[
            ConfiguredTenant {
                name: "wrong-secret",
                tenant_id: fake.tenant_id(),
                secret: "wrong-secret-value",
            },
            ConfiguredTenant {
                name: "unknown-tenant",
                tenant_id: "99999999-9999-4999-8999-999999999999",
                secret: fake.client_secret(),
            },
        ],
        REPORTS,
    );
    let ca = ca_file(&fake);
    let mut command = command_for(&fake, &ca);
    command.arg(format!("--config.file={}", config.path().display()));
    let output = command.output().expect("exporter runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors = common::json_error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("credential for tenant") && errors[0].contains("refused all 2 tenants"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-secret-value"), "secret leaked");
    assert_eq!(fake.tokens_issued(), 0);
}

/// A tenant whose secret file is missing (a Secret key not mounted) fails alone, like a refused
/// one, and writing the file brings it back at its next attempt without a restart. With no
/// other tenant, the process ends with one line that names the file.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_file_fails_its_tenant_alone_until_the_file_appears() {
    let fake = fake(FakeGraphOptions {
        tenants: 2,
        ..quiet()
    })
    .await;
    let ids = fake.tenant_ids().to_vec();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("fabrikam.secret");
    let fabrikam = format!(
        "  - {{name: fabrikam, tenant_id: {}, client_id: {}, client_secret_file: {}}}\n",
        ids[1],
        fake.client_id(),
        secret_file.display()
    );
    let reports = common::reports_yaml(REPORTS);

    // Alone, it ends the start like a wrong secret.
    let alone = common::temp_file(&format!("{reports}tenants:\n{fabrikam}"));
    let ca = ca_file(&fake);
    let mut command = command_for(&fake, &ca);
    command.arg(format!("--config.file={}", alone.path().display()));
    let output = command.output().expect("exporter runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors = common::json_error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("fabrikam.secret"), "{stderr}");

    // Beside a working tenant, it stops nothing.
    let config = common::temp_file(&format!(
        "{reports}tenants:\n  - {{name: contoso, tenant_id: {}, client_id: {}, client_secret: {}}}\n{fabrikam}",
        ids[0],
        fake.client_id(),
        fake.client_secret()
    ));
    let exporter = polling_hourly(&fake, &config).await;
    let text = exporter.metrics().await;
    assert_eq!(credential_up(&text, "contoso"), Some(1.0), "{text}");
    assert_eq!(credential_up(&text, "fabrikam"), Some(0.0), "{text}");
    let (_, landing) = exporter.get("/").await;
    assert!(landing.contains("fabrikam.secret"), "{landing}");
    assert_eq!(
        log_lines(&exporter, "WARN", "fabrikam", "token request failed"),
        1
    );

    std::fs::write(&secret_file, format!("{}\n", fake.client_secret())).unwrap();
    exporter
        .wait_longer_for_metrics(
            "fabrikam to read its file at its retry",
            RETRY_DEADLINE,
            |t| {
                credential_up(t, "fabrikam") == Some(1.0)
                    && REPORTS
                        .iter()
                        .all(|report| report_up(t, "fabrikam", report) == Some(1.0))
            },
        )
        .await;
    assert_eq!(
        log_lines(&exporter, "INFO", "fabrikam", "succeeds again"),
        1
    );
    assert!(
        !exporter.logs().contains(fake.client_secret()),
        "secret leaked"
    );
}

/// 429 and 5xx from the token endpoint, a name that does not resolve: none ends the process,
/// even with a single tenant.
#[tokio::test(flavor = "multi_thread")]
async fn a_passing_token_failure_never_ends_the_process() {
    let fake = fake(quiet()).await;
    fake.inject(
        "/oauth2/",
        Fault::Status {
            code: 429,
            retry_after: Some("1".into()),
            body: String::new(),
        },
    );
    let unresolvable = "--azure.authority-host=https://token-endpoint.invalid";
    for args in [vec![], vec![unresolvable]] {
        let mut exporter = Exporter::start(&fake, &args).await;
        exporter
            .wait_for_metrics("the failed token request", |t| {
                credential_up(t, TENANT) == Some(0.0)
                    && log_lines(&exporter, "WARN", TENANT, "token request failed") == 1
            })
            .await;
        assert_eq!(exporter.get("/healthz").await.0, 200);
        let (status, body) = exporter.get("/readyz").await;
        assert_eq!(status, 503, "no tenant has a token yet: {body}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(exporter.running(), "{args:?}: {}", exporter.logs());
        assert_eq!(exporter.terminate().code(), Some(0));
    }
    assert_eq!(fake.tokens_issued(), 0);
}

/// A refresh that is refused later, as when the secret expires: the token is used until it
/// expires, then one warning and `credential_up` 0, then one token request a minute for the
/// whole tenant however many of its reports poll, and no warning per report; the recovery is
/// one info line, and every report polls again.
#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_that_fails_later_asks_once_a_minute_for_the_whole_tenant() {
    let fake = fake(FakeGraphOptions {
        // Each token is refreshed after 10 s and used for 18 s.
        token_lifetime: Duration::from_secs(20),
        record_requests: true,
        ..quiet()
    })
    .await;
    let names = ["expiring".to_owned()];
    let config = tenants_config(
        &fake,
        &common::fake_tenants(&fake, &names),
        REPORTS_POLLED_EVERY_SECOND,
    );
    let exporter = Exporter::start(
        &fake,
        &[
            &format!("--config.file={}", config.path().display()),
            "--poll.interval=1s",
        ],
    )
    .await;
    exporter.wait_ready().await;
    let id = fake.tenant_id().to_owned();
    let refused = |log: &[LoggedRequest]| -> Vec<Instant> {
        log.iter()
            .filter(|r| r.tenant.as_deref() == Some(id.as_str()) && r.target.contains("/oauth2/"))
            .filter(|r| r.status == 401)
            .map(|r| r.at)
            .collect()
    };

    fake.retire("oauth2/v2.0/token", 401);
    exporter
        .wait_for_metrics("the refresh to fail", |t| {
            credential_up(t, "expiring") == Some(0.0)
                && REPORTS_POLLED_EVERY_SECOND
                    .iter()
                    .all(|report| report_up(t, "expiring", report) == Some(0.0))
        })
        .await;
    // Three reports poll every second meanwhile; the tenant asks for no second token.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let log = fake.request_log();
    let first = refused(&log);
    assert_eq!(first.len(), 1, "token requests refused: {}", first.len());
    // The token still valid after the refused refresh was used until it expired.
    assert!(
        graph_requests(&log, &id).any(|r| r.status == 200 && r.at > first[0]),
        "no Graph request after the refused refresh"
    );
    fake.restore("oauth2/v2.0/token");

    let text = exporter
        .wait_longer_for_metrics("the next token request", RETRY_DEADLINE, |t| {
            credential_up(t, "expiring") == Some(1.0)
                && REPORTS_POLLED_EVERY_SECOND
                    .iter()
                    .all(|report| report_up(t, "expiring", report) == Some(1.0))
        })
        .await;
    let log = fake.request_log();
    assert_eq!(refused(&log).len(), 1, "{text}");
    let next = log
        .iter()
        .find(|r| r.target.contains("/oauth2/") && r.at > first[0])
        .expect("a token request after the refused one");
    assert!(
        next.at.duration_since(first[0]) >= Duration::from_secs(59),
        "asked again after {:?}",
        next.at.duration_since(first[0])
    );
    assert_eq!(
        log_lines(&exporter, "WARN", "expiring", "token request failed"),
        1
    );
    assert_eq!(
        log_lines(&exporter, "INFO", "expiring", "succeeds again"),
        1
    );
    let report_warnings = exporter
        .logs()
        .lines()
        .filter(|l| l.contains(r#""level":"WARN""#) && l.contains("report poll failed"))
        .count();
    assert_eq!(report_warnings, 0, "{}", exporter.logs());
}

/// Requests of one tenant, Graph's only (not its token endpoint).
fn graph_requests<'a>(
    log: &'a [LoggedRequest],
    tenant_id: &'a str,
) -> impl Iterator<Item = &'a LoggedRequest> {
    log.iter()
        .filter(move |r| r.tenant.as_deref() == Some(tenant_id) && !r.target.contains("/oauth2/"))
}

/// Checks the log around the `status` answer that told `paused` to wait `wait`. The pause
/// begins when the exporter reads the answer, so requests of the tenant's other reports that
/// were already on their way may still arrive, at most one per report; after them, nothing of
/// that tenant until the time is up, although it sent several times as many in as long before.
/// The other tenant carries on meanwhile.
fn assert_paused(
    log: &[LoggedRequest],
    paused: &str,
    other: &str,
    status: u16,
    wait: Duration,
    reports: usize,
) {
    let told = graph_requests(log, paused)
        .find(|r| r.status == status)
        .unwrap_or_else(|| panic!("no {status} in the log"));
    let until = told.at + wait;
    let before = graph_requests(log, paused)
        .filter(|r| r.at < told.at && r.at + wait >= told.at)
        .count();
    let during: Vec<&str> = graph_requests(log, paused)
        .filter(|r| r.at > told.at && r.at < until)
        .map(|r| r.target.as_str())
        .collect();
    assert!(
        during.len() < reports,
        "{status}: {} requests of the tenant during the pause: {during:?}",
        during.len()
    );
    assert!(
        before > 2 * reports,
        "{status}: the tenant sent only {before} requests before the pause"
    );
    assert!(
        graph_requests(log, paused).any(|r| r.at >= until),
        "the tenant resumed"
    );
    let others = graph_requests(log, other)
        .filter(|r| r.at > told.at && r.at < until)
        .count();
    assert!(
        others > 0,
        "{status}: the other tenant stopped during the pause"
    );
}

/// Tenants `a` and `b` of one fake (one app registration), each report asking Graph every
/// second, ready; the fake logs every request. Keep the config file as long as the exporter.
async fn two_tenants_polled_every_second(
    args: &[&str],
) -> (FakeGraph, Exporter, tempfile::NamedTempFile) {
    let fake = fake(FakeGraphOptions {
        tenants: 2,
        record_requests: true,
        ..quiet()
    })
    .await;
    let names = ["a".to_owned(), "b".to_owned()];
    let config = tenants_config(
        &fake,
        &common::fake_tenants(&fake, &names),
        REPORTS_POLLED_EVERY_SECOND,
    );
    let config_flag = format!("--config.file={}", config.path().display());
    let mut all = vec![config_flag.as_str(), "--poll.interval=1s"];
    all.extend(args);
    let exporter = Exporter::start(&fake, &all).await;
    exporter.wait_ready().await;
    (fake, exporter, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_pauses_every_request_of_the_tenant_and_no_other() {
    let (fake, exporter, _config) = two_tenants_polled_every_second(&[]).await;
    let ids = fake.tenant_ids().to_vec();
    let wait = Duration::from_secs(4);
    // Steady polling first, so that the window before the pause is as busy as it would be.
    tokio::time::sleep(wait).await;

    for (paused, other, status) in [(&ids[0], &ids[1], 429), (&ids[1], &ids[0], 503)] {
        // One report of the tenant is told to wait.
        fake.inject_for(
            paused,
            "getCredentialUserRegistrationCount",
            Fault::Status {
                code: status,
                retry_after: Some(wait.as_secs().to_string()),
                body: String::new(),
            },
        );
        let started = Instant::now();
        loop {
            let log = fake.request_log();
            let told = graph_requests(&log, paused).find(|r| r.status == status);
            if told.is_some_and(|told| graph_requests(&log, paused).any(|r| r.at >= told.at + wait))
            {
                assert_paused(
                    &log,
                    paused,
                    other,
                    status,
                    wait,
                    REPORTS_POLLED_EVERY_SECOND.len(),
                );
                break;
            }
            assert!(
                started.elapsed() < common::WAIT,
                "{status}: no request after the pause:\n{}",
                exporter.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Each pause is one 429/503 of the report and no failed poll: the request was retried.
    let text = exporter.metrics().await;
    for tenant in ["a", "b"] {
        assert_eq!(
            report_up(&text, tenant, "credentialUserRegistrationCount"),
            Some(1.0),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_of_one_app_registration_share_its_budget() {
    // Both tenants use the fake's one app registration; they would send 6 requests a second,
    // the app allows one.
    let (fake, _exporter, _config) =
        two_tenants_polled_every_second(&["--graph.app-requests-per-10s=10"]).await;
    let ids = fake.tenant_ids().to_vec();
    let window = Duration::from_secs(10);
    let from = Instant::now();
    tokio::time::sleep(window + Duration::from_secs(1)).await;
    let log = fake.request_log();
    let in_window: Vec<&LoggedRequest> = log
        .iter()
        .filter(|r| !r.target.contains("/oauth2/") && r.at >= from && r.at < from + window)
        .collect();
    // 10 sent in the window, and a few more at most where requests sent just before it arrived
    // late; without the app budget, about 60.
    assert!(
        (2..=13).contains(&in_window.len()),
        "{} requests in 10 s",
        in_window.len()
    );
    for tenant in &ids {
        assert!(
            in_window
                .iter()
                .any(|r| r.tenant.as_deref() == Some(tenant.as_str())),
            "both tenants take turns"
        );
    }
}
