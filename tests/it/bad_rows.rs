//! Rows Graph sends that cannot be parsed (a null `isSuccess`, a flag of the wrong type, a
//! missing count) are skipped, counted in `entra_exporter_report_rows_skipped_total` and logged
//! once per poll without user data, while the rest of the poll counts exactly and the report
//! stays up: the exporter binary against the fake Graph over TLS.

use crate::common;

use std::time::Duration;

use common::{Exporter, FakeReader, TENANT, fake, quiet, sum, up, value};
use entra_fake_graph::{FakeGraph, FakeGraphOptions, Fault, UsageEvent};
use serde_json::Value;

const SKIPPED_MESSAGE: &str = "skipped rows that cannot be parsed";

fn skipped(text: &str, report: &str) -> Option<f64> {
    value(
        text,
        &format!(
            r#"entra_exporter_report_rows_skipped_total{{report="{report}",tenant="{TENANT}"}}"#
        ),
    )
}

fn bad_row(field: &str, value: Option<Value>) -> Fault {
    Fault::BadRow {
        field: field.into(),
        value,
    }
}

/// The JSON log lines about skipped rows of `report`.
fn skip_lines(exporter: &Exporter, report: &str) -> Vec<Value> {
    exporter
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(SKIPPED_MESSAGE))
                && line.to_string().contains(&format!("\"{report}\""))
        })
        .collect()
}

/// Everything a log line could leak about the simulated users: names and display names.
fn assert_no_user_data(line: &Value, ids: &[String]) {
    let text = line.to_string();
    assert!(!text.contains("@demo.contoso.test"), "{text}");
    assert!(!text.contains("Demo User"), "{text}");
    for id in ids {
        assert!(!text.contains(id.as_str()), "{text}");
    }
}

async fn start(fake: &FakeGraph, config: &str) -> (Exporter, tempfile::NamedTempFile) {
    let config = common::temp_file(config);
    let exporter = Exporter::start(
        fake,
        &[&format!("--config.file={}", config.path().display())],
    )
    .await;
    (exporter, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_null_is_success_is_skipped_and_counted_while_new_events_count_exactly() {
    const REPORTS: [(&str, &str); 2] = [
        ("userEventsSummary", "entra_authmethods_usage_events_total"),
        (
            "userCredentialUsageDetails",
            "entra_credential_usage_events_total",
        ),
    ];
    let fake = fake(FakeGraphOptions {
        initial_events: 40,
        ..quiet()
    })
    .await;
    let (exporter, _config) = start(
        &fake,
        "reports:\n  userEventsSummary: {interval: 1s}\n  userCredentialUsageDetails: {interval: 1s}\n",
    )
    .await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    for (report, total) in REPORTS {
        assert_eq!(sum(&text, total), 0.0, "{report}");
        assert_eq!(
            skipped(&text, report),
            Some(0.0),
            "{report}: the series exists at 0"
        );
    }

    // Three new failures; each report's next page spoils its newest row.
    let ids: Vec<String> = (0..3)
        .map(|user| {
            fake.add_usage_event(UsageEvent {
                feature: "reset".into(),
                auth_method: "mobileSMS".into(),
                is_success: false,
                failure_reason: "SMS not delivered".into(),
                user,
            })
        })
        .collect();
    for (report, _) in REPORTS {
        fake.inject(report, bad_row("isSuccess", Some(Value::Null)));
    }
    let text = exporter
        .wait_for_metrics("one row skipped in each report", |t| {
            REPORTS.iter().all(|(r, _)| skipped(t, r) == Some(1.0))
        })
        .await;
    for (report, _) in REPORTS {
        assert_eq!(value(&text, &up(report)), Some(1.0), "{report} stays up");
    }
    // The spoiled event is listed whole at the next poll: all three count, exactly once.
    let text = exporter
        .wait_for_metrics("the three events counted", |t| {
            REPORTS.iter().all(|(_, total)| sum(t, total) >= 3.0)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = exporter.metrics().await;
    for (report, total) in REPORTS {
        for t in [&text, &later] {
            assert_eq!(sum(t, total), 3.0, "{total}");
            assert_eq!(skipped(t, report), Some(1.0), "{report}");
            assert_eq!(value(t, &up(report)), Some(1.0), "{report}");
        }
        let series = format!(
            r#"{total}{{tenant="{TENANT}",feature="reset",auth_method="mobileSMS",status="failure",failure_reason="SMS not delivered"}}"#
        );
        assert_eq!(value(&later, &series), Some(3.0));

        let lines = skip_lines(&exporter, report);
        assert_eq!(lines.len(), 1, "{report}: one line for the poll");
        let line = &lines[0];
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["field"], "isSuccess", "{line}");
        assert_eq!(line["found"], "null", "{line}");
        assert_eq!(line["first_page"], 1, "{line}");
        assert_eq!(line["skipped_rows"], 1, "{line}");
        assert!(line["first_index"].is_u64(), "{line}");
        assert_no_user_data(line, &ids);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rows_in_a_per_user_scan_and_a_summary_are_skipped_and_the_rest_counts() {
    // Pages of 100 users, so that the scan has three pages; one poll each (hourly).
    let fake = fake(FakeGraphOptions {
        max_page_size: 100,
        ..quiet()
    })
    .await;
    let reader = FakeReader::new(&fake).await;
    let summary: Value = serde_json::from_slice(
        &reader
            .get("/v1.0/reports/authenticationMethods/usersRegisteredByMethod")
            .await,
    )
    .expect("summary JSON");
    let methods = summary["userRegistrationMethodCounts"]
        .as_array()
        .expect("a list of methods")
        .clone();
    // The faults are queued before the first polls: the second and third pages of the scan
    // each have one user whose flag is of the wrong type; the summary's last method lacks its
    // count.
    let later_pages = "userRegistrationDetails?$top=999&$skiptoken";
    fake.inject(later_pages, bad_row("isMfaRegistered", Some("yes".into())));
    fake.inject(later_pages, bad_row("isMfaCapable", Some(Value::from(1))));
    fake.inject("usersRegisteredByMethod", bad_row("userCount", None));
    let (exporter, _config) = start(
        &fake,
        "reports:\n  userRegistrationDetails: {interval: 1h}\n  usersRegisteredByMethod: {interval: 1h}\n",
    )
    .await;
    exporter.wait_ready().await;
    let text = exporter
        .wait_for_metrics("both reports polled", |t| {
            value(t, &up("userRegistrationDetails")).is_some()
                && value(t, &up("usersRegisteredByMethod")).is_some()
        })
        .await;

    // The scan: up, 248 of 250 users counted, two rows skipped, one log line for the poll.
    assert_eq!(value(&text, &up("userRegistrationDetails")), Some(1.0));
    assert_eq!(sum(&text, "entra_authmethods_users"), 248.0, "{text}");
    assert_eq!(skipped(&text, "userRegistrationDetails"), Some(2.0));
    let lines = skip_lines(&exporter, "userRegistrationDetails");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["skipped_rows"], 2, "{line}");
    assert_eq!(line["first_page"], 2, "{line}");
    assert_eq!(line["first_index"], 99, "{line}");
    assert_eq!(line["field"], "isMfaRegistered", "{line}");
    assert_eq!(line["found"], "string", "{line}");
    assert_no_user_data(line, &[]);
    assert!(!line.to_string().contains("\"yes\""), "{line}");

    // The summary: up, every method but the spoiled one as Graph gives it.
    assert_eq!(value(&text, &up("usersRegisteredByMethod")), Some(1.0));
    assert_eq!(skipped(&text, "usersRegisteredByMethod"), Some(1.0));
    let family = "entra_authmethods_registered_by_method_users";
    let served = common::samples(&text, family);
    assert_eq!(served.len(), methods.len() - 1, "{text}");
    for method in &methods[..methods.len() - 1] {
        let name = method["authenticationMethod"].as_str().expect("a method");
        let series = format!(r#"{family}{{tenant="{TENANT}",method="{name}",source="summary"}}"#);
        assert_eq!(
            value(&text, &series),
            method["userCount"].as_f64(),
            "{series}"
        );
    }
    let lines = skip_lines(&exporter, "usersRegisteredByMethod");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["field"], "userCount", "{}", lines[0]);
    assert_eq!(lines[0]["found"], "missing", "{}", lines[0]);
}
