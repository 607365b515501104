//! Token faults and oversized responses, the real binary against the fake over TLS: a token
//! endpoint that fails at refresh time, a blip in the middle of a long scan, a token Graph
//! refuses as expired, and a page far larger than `--graph.max-response-bytes`. In each case
//! nothing is lost and the tenant's other reports keep working.

use crate::common;

use std::time::{Duration, Instant};

use common::{
    Exporter, TENANT, WAIT, credential_up, fake, quiet, report_up, reports_yaml, temp_file, up,
    value,
};
use entra_fake_graph::{FakeGraph, FakeGraphOptions, Fault, LoggedRequest};

/// Cheap reports, each one request a poll, polled every second.
const REPORTS: &[&str] = &[
    "credentialUserRegistrationCount",
    "usersRegisteredByFeature",
    "userMfaSignInSummary",
];
const SCAN: &str = "userRegistrationDetails";

fn status(code: u16) -> Fault {
    Fault::Status {
        code,
        retry_after: (code == 429).then(|| "1".to_owned()),
        body: String::new(),
    }
}

fn token_requests(log: &[LoggedRequest]) -> Vec<&LoggedRequest> {
    log.iter()
        .filter(|r| r.target.contains("/oauth2/"))
        .collect()
}

fn graph_requests(log: &[LoggedRequest]) -> impl Iterator<Item = &LoggedRequest> {
    log.iter().filter(|r| !r.target.contains("/oauth2/"))
}

/// The exporter with only `reports` enabled, polled every second (`hourly` every hour), and
/// `args`. Keep the config file as long as the exporter.
async fn exporter(
    fake: &FakeGraph,
    reports: &[&str],
    hourly: &[&str],
    args: &[&str],
) -> (Exporter, tempfile::NamedTempFile) {
    let mut yaml = reports_yaml(reports);
    for report in hourly {
        yaml = yaml.replace(
            &format!("  {report}: {{enabled: true}}"),
            &format!("  {report}: {{enabled: true, interval: 1h}}"),
        );
    }
    let config = temp_file(&yaml);
    let config_flag = format!("--config.file={}", config.path().display());
    let mut all = vec![config_flag.as_str(), "--poll.interval=1s"];
    all.extend(args);
    (Exporter::start(fake, &all).await, config)
}

/// Scrapes every 200 ms until `done` holds, asserting on every scrape that the tenant has its
/// token and that every report in `reports` is up.
async fn always_up_until(exporter: &Exporter, reports: &[&str], done: impl Fn(&str) -> bool) {
    let started = Instant::now();
    loop {
        let text = exporter.metrics().await;
        assert_eq!(
            credential_up(&text, TENANT),
            Some(1.0),
            "{text}\n{}",
            exporter.logs()
        );
        for report in reports {
            assert_eq!(
                value(&text, &up(report)),
                Some(1.0),
                "{report}\n{}",
                exporter.logs()
            );
        }
        if done(&text) {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "timed out; last scrape:\n{text}\n{}",
            exporter.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A token endpoint that fails three times when the token is due for a refresh (a 503, a 429
/// and a reset connection) changes nothing: the valid token is used meanwhile, Graph never
/// sees an expired one, and every report stays up.
#[tokio::test(flavor = "multi_thread")]
async fn three_failed_refreshes_leave_the_tenant_up_and_send_no_401() {
    let fake = fake(FakeGraphOptions {
        // Refreshed after 15 s, used for 27 s.
        token_lifetime: Duration::from_secs(30),
        record_requests: true,
        ..quiet()
    })
    .await;
    let (exporter, _config) = exporter(&fake, REPORTS, &[], &[]).await;
    exporter.wait_ready().await;
    for code in [503, 429] {
        fake.inject("/oauth2/", status(code));
    }
    fake.inject("/oauth2/", Fault::Reset);

    // Until the refresh that follows the reset has succeeded.
    always_up_until(&exporter, REPORTS, |_| {
        let log = fake.request_log();
        let tokens = token_requests(&log);
        tokens
            .iter()
            .position(|r| r.status == 0)
            .is_some_and(|reset| tokens[reset..].iter().any(|r| r.status == 200))
    })
    .await;
    let log = fake.request_log();
    let statuses: Vec<u16> = token_requests(&log).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 503, 429, 0, 200]);
    let refused: Vec<&str> = graph_requests(&log)
        .filter(|r| r.status == 401)
        .map(|r| r.target.as_str())
        .collect();
    assert!(refused.is_empty(), "401 answered to {refused:?}");
    // The old token served between the failed refreshes.
    let failed_at = token_requests(&log)[1].at;
    let renewed_at = token_requests(&log)[4].at;
    assert!(
        graph_requests(&log).any(|r| r.status == 200 && r.at > failed_at && r.at < renewed_at),
        "no Graph request between the failed refreshes"
    );
    assert_eq!(
        common::log_lines(
            &exporter,
            "WARN",
            TENANT,
            "refreshing the tenant's token failed"
        ),
        1
    );
}

/// A scan of 40 pages goes on through a token-endpoint blip at refresh time, then through
/// tokens expired under it (Graph answers 401) while the token endpoint fails once more: every
/// page is read once, the first page only once, and the poll succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_scan_survives_token_failures_without_starting_over() {
    const USERS: usize = 400;
    let fake = fake(FakeGraphOptions {
        users: USERS,
        // Pages of 10 whatever the exporter's $top asks.
        max_page_size: 10,
        // Refreshed every 4 s: several times during the scan.
        token_lifetime: Duration::from_secs(8),
        record_requests: true,
        ..quiet()
    })
    .await;
    let cheap = "credentialUserRegistrationCount";
    // About 2 pages a second: the scan takes about 20 s.
    let (exporter, _config) = exporter(
        &fake,
        &[cheap, SCAN],
        &[SCAN],
        &["--graph.requests-per-10s=30"],
    )
    .await;
    let pages_read = || {
        graph_requests(&fake.request_log())
            .filter(|r| r.target.contains(SCAN) && r.status == 200)
            .count()
    };
    let rows = format!(r#"entra_exporter_report_rows{{tenant="{TENANT}",report="{SCAN}"}}"#);
    // Not ready before the scan's first poll ends: wait for the other report instead.
    exporter
        .wait_for_metrics("the first poll", |t| value(t, &up(cheap)) == Some(1.0))
        .await;

    always_up_until(&exporter, &[cheap], |_| pages_read() >= 3).await;
    // A blip when the token is next due for a refresh.
    fake.inject("/oauth2/", status(503));
    fake.inject("/oauth2/", Fault::Reset);
    always_up_until(&exporter, &[cheap], |_| {
        token_requests(&fake.request_log())
            .iter()
            .any(|r| r.status == 0)
    })
    .await;
    // Then no valid token at all, and the token endpoint fails once more.
    fake.inject("/oauth2/", status(503));
    fake.expire_tokens();
    let read_before = pages_read();
    assert!(read_before < USERS / 10, "the scan ended before the faults");
    always_up_until(&exporter, &[cheap], |text| {
        value(text, &rows) == Some(USERS as f64)
    })
    .await;

    let text = exporter.metrics().await;
    assert_eq!(value(&text, &up(SCAN)), Some(1.0));
    let log = fake.request_log();
    let scan: Vec<&LoggedRequest> = graph_requests(&log)
        .filter(|r| r.target.contains(SCAN))
        .collect();
    let first_pages = scan.iter().filter(|r| !r.target.contains("skiptoken"));
    assert_eq!(first_pages.count(), 1, "the scan started over");
    assert_eq!(scan.iter().filter(|r| r.status == 200).count(), USERS / 10);
    // The first request after the expiry met the expired token: it was sent again.
    let graph: Vec<&LoggedRequest> = graph_requests(&log).collect();
    let refused: Vec<&&LoggedRequest> = graph.iter().filter(|r| r.status == 401).collect();
    assert!(!refused.is_empty(), "no request met the expired token");
    for request in refused {
        assert!(
            graph
                .iter()
                .any(|r| r.target == request.target && r.status == 200 && r.at > request.at),
            "{} not answered after its 401",
            request.target
        );
    }
    let statuses: Vec<u16> = token_requests(&log)
        .iter()
        .map(|r| r.status)
        .filter(|s| *s != 200)
        .collect();
    assert_eq!(statuses, [503, 0, 503]);
}

/// A `Retry-After` longer than the token's life: the requests held by it take their token after
/// the wait, so none leaves with an expired one.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_held_past_its_tokens_life_takes_a_new_one() {
    let fake = fake(FakeGraphOptions {
        // Used for 5.4 s.
        token_lifetime: Duration::from_secs(6),
        record_requests: true,
        ..quiet()
    })
    .await;
    let (exporter, _config) = exporter(&fake, REPORTS, &[], &[]).await;
    exporter.wait_ready().await;
    fake.inject(
        "usersRegisteredByFeature",
        Fault::Status {
            code: 429,
            retry_after: Some("8".to_owned()),
            body: String::new(),
        },
    );
    let throttled_then_answered = || {
        let log = fake.request_log();
        let graph: Vec<&LoggedRequest> = graph_requests(&log).collect();
        graph
            .iter()
            .position(|r| r.status == 429)
            .is_some_and(|at| {
                graph[at..]
                    .iter()
                    .any(|r| r.status == 200 && r.target == graph[at].target)
            })
    };
    always_up_until(&exporter, REPORTS, |_| throttled_then_answered()).await;
    let log = fake.request_log();
    let refused = graph_requests(&log).filter(|r| r.status == 401).count();
    assert_eq!(refused, 0, "requests sent with an expired token");
}

/// Tokens that Graph refuses before their announced expiry (revoked, or this host's clock
/// behind): the request that gets 401 is sent once more with a new token, one token request
/// serves every report, and no poll fails.
#[tokio::test(flavor = "multi_thread")]
async fn a_401_for_an_expired_token_refreshes_it_and_retries_the_request_once() {
    let fake = fake(FakeGraphOptions {
        record_requests: true,
        ..quiet()
    })
    .await;
    let (exporter, _config) = exporter(&fake, REPORTS, &[], &[]).await;
    exporter.wait_ready().await;
    always_up_until(&exporter, REPORTS, |_| true).await;
    fake.expire_tokens();
    let expired_at = Instant::now();
    let answered_again = || {
        let log = fake.request_log();
        let refused: Vec<&LoggedRequest> =
            graph_requests(&log).filter(|r| r.status == 401).collect();
        !refused.is_empty()
            && refused.iter().all(|page| {
                graph_requests(&log)
                    .any(|r| r.target == page.target && r.status == 200 && r.at > page.at)
            })
    };
    always_up_until(&exporter, REPORTS, |_| answered_again()).await;
    // A few more polls of every report with the new token.
    tokio::time::sleep(Duration::from_secs(3)).await;
    always_up_until(&exporter, REPORTS, |_| true).await;

    let log = fake.request_log();
    let after: Vec<&LoggedRequest> = token_requests(&log)
        .into_iter()
        .filter(|r| r.at > expired_at)
        .collect();
    assert_eq!(after.len(), 1, "token requests after the expiry");
    // Each report met the expired token at most once.
    for report in REPORTS {
        let refused = graph_requests(&log)
            .filter(|r| r.target.contains(report) && r.status == 401)
            .count();
        assert!(refused <= 1, "{report}: {refused} answers 401");
    }
}

/// A 40 MB page, announced by its `Content-Length` or gzip-compressed (so that only the decoded
/// bytes tell), fails its poll with an error naming `--graph.max-response-bytes`; the exporter
/// never holds it (its peak RSS stays under 100 MB), the other reports keep working, and the
/// next poll reads the report again.
#[tokio::test(flavor = "multi_thread")]
async fn a_40_mb_page_fails_under_the_cap_without_taking_memory() {
    const PAGE: usize = 40_000_000;
    let fake = fake(FakeGraphOptions {
        users: 30,
        max_page_size: 10,
        ..quiet()
    })
    .await;
    let cheap = "credentialUserRegistrationCount";
    let (exporter, _config) = exporter(&fake, &[cheap, SCAN], &[], &[]).await;
    exporter.wait_ready().await;
    for gzip in [false, true] {
        always_up_until(&exporter, &[cheap, SCAN], |_| true).await;
        let failures = || {
            exporter
                .logs()
                .lines()
                .filter(|l| {
                    l.contains("report poll failed") && l.contains("--graph.max-response-bytes")
                })
                .count()
        };
        let before = failures();
        fake.inject(SCAN, Fault::OversizedPage { bytes: PAGE, gzip });
        // The failed poll is soon followed by a good one: the log tells that it failed.
        let started = Instant::now();
        while failures() == before {
            assert!(started.elapsed() < WAIT, "{}", exporter.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            exporter.logs().contains(&format!(
                "the response is larger than {} bytes (--graph.max-response-bytes)",
                16 * 1024 * 1024
            )),
            "{}",
            exporter.logs()
        );
        let text = exporter.metrics().await;
        assert_eq!(report_up(&text, TENANT, cheap), Some(1.0), "{text}");
        assert_eq!(credential_up(&text, TENANT), Some(1.0), "{text}");
        exporter
            .wait_for_metrics("the next poll to read the report", |t| {
                report_up(t, TENANT, SCAN) == Some(1.0)
            })
            .await;
    }
    let peak = common::proc_status_kib(exporter.pid(), "VmHWM:").expect("VmHWM");
    println!(
        "exporter peak RSS after two 40 MB pages: {:.1} MiB",
        peak as f64 / 1024.0
    );
    assert!(peak < 100 * 1000, "peak RSS {peak} kB");
}
