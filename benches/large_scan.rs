//! A 1,000,000-user userRegistrationDetails scan streamed from the fake through the exporter
//! binary, with the request budget raised. Prints wall time, the exporter's CPU time and peak
//! RSS, and the CPU time of parsing the same rows alone, so the exporter's own bookkeeping can
//! be compared with parsing. Run with `cargo bench --bench large_scan`; `USERS=...` changes the
//! size. The output is the figure: nothing here fails on timing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use entra_authmethods_exporter::fake::FakeGraphOptions;
use entra_authmethods_exporter::graph::parse_page;
use entra_authmethods_exporter::reports::{self, user_registration_details};

const REPORT: &str = "userRegistrationDetails";

/// One page of the report as the fake serves it, fetched with a real token.
async fn one_page(fake: &entra_authmethods_exporter::fake::FakeGraph) -> Vec<u8> {
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(fake.ca_pem().as_bytes()).expect("CA")])
        .build()
        .expect("client");
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}%2F.default",
        fake.client_id(),
        fake.client_secret(),
        fake.base_url().replace(':', "%3A").replace('/', "%2F")
    );
    let token: serde_json::Value = client
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            fake.base_url(),
            fake.tenant_id()
        ))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    let token = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    client
        .get(format!(
            "{}/v1.0/reports/authenticationMethods/userRegistrationDetails?$top=999",
            fake.base_url()
        ))
        .bearer_auth(token)
        .header("Prefer", "include-unknown-enum-members")
        .send()
        .await
        .expect("page")
        .bytes()
        .await
        .expect("page body")
        .to_vec()
}

#[tokio::main]
async fn main() {
    let users: usize = std::env::var("USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let fake = common::fake(FakeGraphOptions {
        users,
        page_size: 999,
        ..common::quiet()
    })
    .await;

    // Only the scan under test runs.
    let mut config = String::from("reports:\n");
    for name in reports::names() {
        let enabled = name == REPORT;
        config.push_str(&format!(
            "  {name}: {{enabled: {enabled}, interval: 24h}}\n"
        ));
    }
    let config = common::temp_file(&config);
    let ca = common::ca_file(&fake);
    let mut command = common::command_for(&fake, &ca);
    command.args([
        &format!("--config.file={}", config.path().display()),
        "--graph.requests-per-10s=1000000",
        "--graph.timeout=120s",
        "--log.level=info",
    ]);
    let started = Instant::now();
    let exporter = common::Exporter::spawn(command, vec![config, ca]).await;
    let rows = format!(
        r#"entra_exporter_report_rows{{tenant="{}",report="{REPORT}"}}"#,
        common::TENANT
    );
    let text = loop {
        let text = exporter.metrics().await;
        if common::value(&text, &rows).is_some() {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "scan did not finish:\n{}",
            exporter.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let wall = started.elapsed();
    let pid = exporter.pid();
    let peak = common::proc_status_kib(pid, "VmHWM:").unwrap_or(0);
    let cpu = common::cpu_time(pid).unwrap_or_default();
    let read = common::value(&text, &rows).unwrap_or(0.0);
    let duration = common::value(
        &text,
        &format!(
            r#"entra_exporter_report_duration_seconds{{tenant="{}",report="{REPORT}"}}"#,
            common::TENANT
        ),
    )
    .unwrap_or(0.0);

    // Parsing alone: the same number of rows through the same row type, in this process.
    let page = one_page(&fake).await;
    let pages = users.div_ceil(999);
    let parse_started = Instant::now();
    let mut parsed = 0;
    for _ in 0..pages {
        let (rows, _) = parse_page::<user_registration_details::Row>(&page).expect("page parses");
        parsed += rows.len();
    }
    let parse = parse_started.elapsed();
    // Parsing plus the report's own aggregation, as the exporter does per page.
    let aggregate_started = Instant::now();
    let mut aggregate = user_registration_details::Aggregate::default();
    for _ in 0..pages {
        let (rows, _) = parse_page::<user_registration_details::Row>(&page).expect("page parses");
        aggregate.add(rows);
    }
    let (snapshot, _) = aggregate.finish(&mut user_registration_details::Bounds::default());
    let aggregated = aggregate_started.elapsed();
    assert!(!snapshot.samples.is_empty());

    println!("userRegistrationDetails scan of {users} users ({pages} pages of 999), budget raised");
    println!(
        "rows read {read}, scan duration {duration:.1} s, wall time from start {:.1} s",
        wall.as_secs_f64()
    );
    println!(
        "exporter CPU time {:.1} s, peak RSS {:.1} MiB",
        cpu.as_secs_f64(),
        peak as f64 / 1024.0
    );
    println!(
        "parsing {parsed} rows alone: {:.2} s; parsing and aggregating them: {:.2} s (bookkeeping {:.0}% of that)",
        parse.as_secs_f64(),
        aggregated.as_secs_f64(),
        100.0 * (aggregated.as_secs_f64() - parse.as_secs_f64())
            / aggregated.as_secs_f64().max(f64::EPSILON)
    );
    println!(
        "the rest of the exporter's CPU time ({:.1} s) is TLS, HTTP and start-up",
        (cpu.as_secs_f64() - aggregated.as_secs_f64()).max(0.0)
    );
}
