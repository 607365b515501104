//! A 1,000,000-user userRegistrationDetails scan streamed from the fake through the exporter
//! binary, with the request budget raised. Prints wall time, the exporter's CPU time and peak
//! RSS, and the CPU time of parsing the same rows alone, so the exporter's own bookkeeping can
//! be compared with parsing. Run with `cargo bench --bench large_scan`; `USERS=...` changes the
//! size, `GROUP_COUNT=10 GROUP_MEMBERS=100000` configures that many groups whose members are read
//! before the scan. The output is the figure: nothing here fails on timing.

// A bench uses a few of the integration tests' helpers.
#[allow(dead_code)]
#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use entra_authmethods_exporter::graph::{ParsedPage, parse_page};
use entra_authmethods_exporter::reports::{self, successor::user_registration_details};
use entra_fake_graph::{FakeGraphOptions, FakeGroup};

const REPORT: &str = "userRegistrationDetails";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `count` groups of `members` users each, spread evenly over the tenant.
fn groups(count: usize, members: usize, users: usize) -> Vec<FakeGroup> {
    let step = users / count.max(1);
    (0..count)
        .map(|i| FakeGroup {
            id: format!("00000000-0000-4000-8000-{i:012}"),
            name: format!("group-{i}"),
            members: i * step..i * step + members,
            nested: Vec::new(),
            deleted: false,
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let users = env_number("USERS", 1_000_000);
    let group_count = env_number("GROUP_COUNT", 0);
    let group_members = env_number("GROUP_MEMBERS", 100_000);
    let fake = common::fake(FakeGraphOptions {
        users,
        page_size: 999,
        groups: groups(group_count, group_members, users),
        ..common::quiet()
    })
    .await;

    // Only the scan under test runs, for the fake's tenant with its groups.
    let mut config = String::from("reports:\n");
    for name in reports::names() {
        let enabled = name == REPORT;
        config.push_str(&format!(
            "  {name}: {{enabled: {enabled}, interval: 24h}}\n"
        ));
    }
    config.push_str(&format!(
        "tenants:\n  - tenant_id: {}\n    client_id: {}\n    client_secret: {}\n    groups: [",
        fake.tenant_id(),
        fake.client_id(),
        fake.client_secret()
    ));
    for group in fake.groups() {
        config.push_str(&format!("{{id: {}, name: {}}}, ", group.id, group.name));
    }
    config.push_str("]\n");
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

    // Parsing alone, and parsing plus the report's own aggregation as the exporter does per
    // page: the same rows through the same row type, in this process. CPU time, not wall time,
    // and the least of three alternating runs, so that other load on the machine counts little.
    let page = common::FakeReader::new(&fake)
        .await
        .get("/v1.0/reports/authenticationMethods/userRegistrationDetails?$top=999")
        .await;
    let pages = users.div_ceil(999);
    let own_cpu = || common::cpu_time(std::process::id()).unwrap_or_default();
    let (mut parse, mut aggregated) = (Duration::MAX, Duration::MAX);
    let mut parsed = 0;
    for _ in 0..3 {
        let started = own_cpu();
        parsed = 0;
        for _ in 0..pages {
            let ParsedPage { rows, .. } =
                parse_page::<user_registration_details::Row>(&page).expect("page parses");
            parsed += rows.len();
        }
        parse = parse.min(own_cpu().saturating_sub(started));
        let started = own_cpu();
        let mut aggregate = user_registration_details::Aggregate::new(Arc::default());
        for _ in 0..pages {
            let ParsedPage { rows, .. } =
                parse_page::<user_registration_details::Row>(&page).expect("page parses");
            aggregate.add(rows);
        }
        let scan = aggregate.finish(&mut user_registration_details::Bounds::default());
        aggregated = aggregated.min(own_cpu().saturating_sub(started));
        assert!(!scan.snapshot.samples.is_empty());
    }

    println!("userRegistrationDetails scan of {users} users ({pages} pages of 999), budget raised");
    if group_count > 0 {
        let member_pages = fake.requests("transitiveMembers");
        let counted: f64 = (0..group_count)
            .filter_map(|i| {
                common::value(
                    &text,
                    &format!(
                        r#"entra_authmethods_group_users{{tenant="{}",group="group-{i}"}}"#,
                        common::TENANT
                    ),
                )
            })
            .sum();
        println!(
            "with {group_count} groups of {group_members} members read first ({member_pages} member pages); members found in the scan: {counted}"
        );
    }
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
        "CPU time of parsing {parsed} rows alone: {:.2} s; parsing and aggregating them: {:.2} s (bookkeeping {:.0}% of that)",
        parse.as_secs_f64(),
        aggregated.as_secs_f64(),
        100.0 * (aggregated.as_secs_f64() - parse.as_secs_f64())
            / aggregated.as_secs_f64().max(f64::EPSILON)
    );
    let groups_too = match group_count {
        0 => "",
        _ => ", the member pages and the membership tests",
    };
    println!(
        "the rest of the exporter's CPU time ({:.1} s) is TLS, HTTP and start-up{groups_too}",
        (cpu.as_secs_f64() - aggregated.as_secs_f64()).max(0.0)
    );
}
