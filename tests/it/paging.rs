//! Paging guards, against the fake over TLS: a poll that would never end fails with an error
//! naming the report and the page count, keeps the last good values, and the report recovers
//! at its normal interval; an expired `$skiptoken` is a passing failure, not a retired report.

use crate::common;

use common::{Exporter, TENANT, fake, quiet, sum, up, value};
use entra_fake_graph::{FakeGraph, FakeGraphOptions, Fault};

const REPORT: &str = "credentialUserRegistrationDetails";
/// The last good values outlive a report held down by queued faults for as long as the test
/// needs to see it (the default max_age, three 1 s intervals, would drop them).
const HELD_DOWN: &str = "reports:\n  credentialUserRegistrationDetails: {max_age: 1h}\n";

/// 137 users in pages of 10: 14 pages per poll of the legacy details report, polled every
/// `interval`.
async fn setup(interval: &str, config: &str) -> (FakeGraph, Exporter, tempfile::NamedTempFile) {
    let fake = fake(FakeGraphOptions {
        users: 137,
        page_size: 10,
        ..quiet()
    })
    .await;
    let config = common::temp_file(config);
    let exporter = Exporter::start(
        &fake,
        &[
            &format!("--poll.interval={interval}"),
            &format!("--config.file={}", config.path().display()),
        ],
    )
    .await;
    (fake, exporter, config)
}

fn unavailable(text: &str, cause: &str) -> Option<f64> {
    value(
        text,
        &format!(
            r#"entra_exporter_report_unavailable{{tenant="{TENANT}",report="{REPORT}",cause="{cause}"}}"#
        ),
    )
}

/// Injects `fault` on `path` for many polls, waits for a poll to fail with `needle` in its logged
/// error, checks that the last good values stay and that the report is failing, not unavailable,
/// then lifts the fault and waits for the next poll to succeed. One fault would race the 1 s
/// polls on a busy machine: injected in the middle of a poll it fires on a later page than
/// `needle` names, and the test may not scrape before the next poll recovers.
async fn fails_then_recovers(
    fake: &FakeGraph,
    exporter: &Exporter,
    path: &str,
    fault: Fault,
    needle: &str,
) {
    exporter.wait_ready().await;
    exporter
        .wait_for_metrics("a good poll", |t| value(t, &up(REPORT)) == Some(1.0))
        .await;
    for _ in 0..common::STAY_DOWN_POLLS {
        fake.inject(path, fault.clone());
    }
    exporter.wait_for_log(needle).await;
    let text = exporter
        .wait_for_metrics("the report down", |t| value(t, &up(REPORT)) == Some(0.0))
        .await;
    assert_eq!(
        sum(&text, "entra_credential_details_users"),
        137.0,
        "last good values kept:\n{text}"
    );
    assert_eq!(unavailable(&text, "retired"), Some(0.0));
    assert_eq!(unavailable(&text, "forbidden"), Some(0.0));
    let logs = exporter.logs();
    let line = logs.lines().find(|l| l.contains(needle)).expect("logged");
    assert!(line.contains(REPORT), "the error names the report: {line}");
    assert!(line.contains("report poll failed"), "{line}");
    fake.clear_faults();
    exporter
        .wait_for_metrics("recovery at the normal interval", |t| {
            value(t, &up(REPORT)) == Some(1.0)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_next_link_that_repeats_ends_the_poll() {
    let (fake, exporter, _config) = setup("1s", HELD_DOWN).await;
    fails_then_recovers(
        &fake,
        &exporter,
        "credentialUserRegistrationDetails?$skiptoken",
        Fault::NextLinkLoop,
        "repeats a link already followed in this poll (pages read: 2)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_page_with_a_next_link_ends_the_poll() {
    let (fake, exporter, _config) = setup("1s", HELD_DOWN).await;
    fails_then_recovers(
        &fake,
        &exporter,
        REPORT,
        Fault::EmptyPageWithNextLink,
        "page 1 is empty but has an @odata.nextLink (pages read: 1)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_skiptoken_fails_the_poll_without_retiring_the_report() {
    let (fake, exporter, _config) = setup("1s", HELD_DOWN).await;
    for (status, message) in [
        (
            404,
            "Resource not found for the segment 'credentialUserRegistrationDetails'.",
        ),
        (410, "The skip token has expired."),
        (
            400,
            "Resource not found for the segment 'credentialUserRegistrationDetails'.",
        ),
    ] {
        fails_then_recovers(
            &fake,
            &exporter,
            "credentialUserRegistrationDetails?$skiptoken",
            Fault::Status {
                code: status,
                retry_after: None,
                body: format!(r#"{{"error":{{"code":"BadRequest","message":"{message}"}}}}"#),
            },
            &format!("HTTP {status}"),
        )
        .await;
    }
    let logs = exporter.logs();
    assert!(logs.contains("page 2 is gone"), "{logs}");
    assert!(!logs.contains("is not offered"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn more_pages_than_max_pages_end_the_poll() {
    let (fake, exporter, _config) =
        setup("1h", &format!("reports:\n  {REPORT}: {{max_pages: 5}}\n")).await;
    exporter
        .wait_for_log(
            "more than 5 pages (reports.credentialUserRegistrationDetails.max_pages; pages read: 5)",
        )
        .await;
    let text = exporter
        .wait_for_metrics("the report down", |t| value(t, &up(REPORT)) == Some(0.0))
        .await;
    assert_eq!(unavailable(&text, "retired"), Some(0.0));
    // The one poll stopped at its limit: five requests, not the fourteen of the collection.
    assert_eq!(fake.requests(REPORT), 5);
    // Other reports are not affected.
    assert_eq!(
        value(&text, &up("credentialUserRegistrationCount")),
        Some(1.0)
    );
}
