//! Many tenants: the exporter binary with 1,000 tenants of the fake, each with the 250-user demo
//! data and the demo's groups, every report enabled, the request budgets raised on the fake.
//! Then the same tenants as 4 shards of about 250, started together as a StatefulSet would.
//! Prints, per process: time to the first `/metrics` and to `/readyz` 200, RSS after the first
//! polls, the size of `/metrics`, and the time of a scrape served from the cached text (and of
//! the first one after the polls, which renders it). Run with
//! `cargo bench --bench many_tenants`; `TENANTS=...` and `SHARDS=...` change the sizes. The
//! output is the figure: nothing here fails on timing.

// A bench uses a few of the integration tests' helpers.
#[allow(dead_code)]
#[path = "../tests/it/common/mod.rs"]
mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::Exporter;
use entra_fake_graph::{FakeGraph, FakeGraphOptions};
use futures_util::future::join_all;

const SCRAPES: usize = 20;
/// A generous limit: the point is the figure, not a pass or fail.
const DEADLINE: Duration = Duration::from_secs(900);

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every tenant of the fake, with the demo's groups.
fn config(fake: &FakeGraph) -> tempfile::NamedTempFile {
    let names: Vec<String> = (0..fake.tenant_ids().len())
        .map(|i| format!("tenant-{i:04}"))
        .collect();
    let base = common::tenants_config(fake, &common::fake_tenants(fake, &names), &[]);
    let mut yaml = std::fs::read_to_string(base.path()).expect("config");
    let groups: Vec<String> = fake
        .groups()
        .iter()
        .map(|g| format!("{{id: {}, name: {}}}", g.id, g.name))
        .collect();
    // Each tenant line ends with `}`: add its groups inside.
    yaml = yaml
        .lines()
        .map(|line| match line.strip_suffix('}') {
            Some(tenant) if line.trim_start().starts_with("- {name:") => {
                format!("{tenant}, groups: [{}]}}", groups.join(", "))
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    common::temp_file(&yaml)
}

struct Figures {
    tenants: f64,
    first_metrics: Duration,
    ready: Duration,
    rss_kib: u64,
    peak_kib: u64,
    cpu: Duration,
    identity_bytes: usize,
    gzip_bytes: usize,
    render: Duration,
    cached_p50: Duration,
    cached_max: Duration,
    gzip_p50: Duration,
}

/// One scrape: how long it took and the body as sent.
async fn scrape(client: &reqwest::Client, url: &str, gzip: bool) -> (Duration, bytes::Bytes) {
    let started = Instant::now();
    let mut request = client.get(url);
    if gzip {
        request = request.header("Accept-Encoding", "gzip");
    }
    let response = request.send().await.expect("scrape");
    assert!(response.status().is_success(), "{}", response.status());
    let body = response.bytes().await.expect("body");
    (started.elapsed(), body)
}

/// Starts an exporter with `args` and measures it.
async fn measure(fake: &FakeGraph, config: &tempfile::NamedTempFile, args: Vec<String>) -> Figures {
    let ca = common::ca_file(fake);
    let mut command = common::command_for(fake, &ca);
    command.args([
        format!("--config.file={}", config.path().display()),
        "--graph.requests-per-10s=1000".to_owned(),
        "--graph.app-requests-per-10s=1000000".to_owned(),
        "--graph.timeout=120s".to_owned(),
        "--log.level=info".to_owned(),
    ]);
    command.args(args);
    let started = Instant::now();
    let exporter = Exporter::spawn(command, vec![ca]).await;
    // No gzip from this client unless asked: the body is the text itself.
    let client = reqwest::Client::builder()
        .no_gzip()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");
    let metrics = format!("{}/metrics", exporter.url);
    let first_metrics = loop {
        if let Ok(response) = client.get(&metrics).send().await
            && response.status().is_success()
        {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ready = loop {
        if let Ok(response) = client.get(format!("{}/readyz", exporter.url)).send().await
            && response.status().is_success()
        {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "not ready:\n{}",
            exporter.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The first scrape after the polls renders the text; the next ones are served from it.
    let (render, _) = scrape(&client, &metrics, false).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = exporter.pid();
    let rss_kib = common::proc_status_kib(pid, "VmRSS:").unwrap_or(0);
    let peak_kib = common::proc_status_kib(pid, "VmHWM:").unwrap_or(0);
    let cpu = common::cpu_time(pid).unwrap_or_default();
    let (_, text) = scrape(&client, &metrics, false).await;
    let text = String::from_utf8_lossy(&text);
    let tenants = common::value(&text, "entra_exporter_shard_tenants").unwrap_or(0.0);
    let mut cached = Vec::with_capacity(SCRAPES);
    let mut gzipped = Vec::with_capacity(SCRAPES);
    let (mut identity_bytes, mut gzip_bytes) = (0, 0);
    for _ in 0..SCRAPES {
        let (took, body) = scrape(&client, &metrics, false).await;
        cached.push(took);
        identity_bytes = body.len();
        let (took, body) = scrape(&client, &metrics, true).await;
        gzipped.push(took);
        gzip_bytes = body.len();
    }
    // The compressed body is the same text.
    let (_, body) = scrape(&client, &metrics, true).await;
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut unzipped)
        .expect("gzip");
    assert!(unzipped.len() > identity_bytes / 2);
    cached.sort_unstable();
    gzipped.sort_unstable();
    Figures {
        tenants,
        first_metrics,
        ready,
        rss_kib,
        peak_kib,
        cpu,
        identity_bytes,
        gzip_bytes,
        render,
        cached_p50: cached[SCRAPES / 2],
        cached_max: cached[SCRAPES - 1],
        gzip_p50: gzipped[SCRAPES / 2],
    }
}

fn print(label: &str, f: &Figures) {
    let per_tenant = |kib: u64| kib as f64 / f.tenants.max(1.0);
    let text_kib = f.identity_bytes as f64 / 1024.0;
    println!(
        "{label}: {} tenants | first /metrics {:.1} s | ready {:.1} s | RSS {:.1} MiB ({:.0} KiB a tenant; /metrics text {:.0} KiB a tenant) | peak RSS {:.1} MiB | CPU {:.1} s",
        f.tenants,
        f.first_metrics.as_secs_f64(),
        f.ready.as_secs_f64(),
        f.rss_kib as f64 / 1024.0,
        per_tenant(f.rss_kib),
        text_kib / f.tenants.max(1.0),
        f.peak_kib as f64 / 1024.0,
        f.cpu.as_secs_f64(),
    );
    println!(
        "{label}: /metrics {:.1} MB (gzip {:.1} MB) | first scrape after the polls (renders) {:.0} ms | from cache: p50 {:.1} ms, max {:.1} ms; gzip p50 {:.1} ms",
        f.identity_bytes as f64 / 1e6,
        f.gzip_bytes as f64 / 1e6,
        f.render.as_secs_f64() * 1e3,
        f.cached_p50.as_secs_f64() * 1e3,
        f.cached_max.as_secs_f64() * 1e3,
        f.gzip_p50.as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let tenants = env_number("TENANTS", 1000);
    let shards = env_number("SHARDS", 4);
    let fake = common::fake(FakeGraphOptions {
        tenants,
        ..FakeGraphOptions::default()
    })
    .await;
    let config = config(&fake);
    println!(
        "{tenants} tenants of the 250-user demo data with its groups, every report enabled; \
         budgets raised on the fake; fake and exporters share the machine"
    );

    let one = measure(&fake, &config, Vec::new()).await;
    print("one process", &one);
    let requests = fake.requests("/");
    println!(
        "Graph requests for the first polls: {requests} ({:.0} a tenant)",
        requests as f64 / tenants as f64
    );

    // The shards start together, as the pods of a StatefulSet do.
    let runs = (0..shards).map(|index| {
        measure(
            &fake,
            &config,
            vec![
                format!("--total-shards={shards}"),
                format!("--shard={index}"),
            ],
        )
    });
    let figures = join_all(runs).await;
    for (index, f) in figures.iter().enumerate() {
        print(&format!("shard {index} of {shards}"), f);
    }
    let total_rss: u64 = figures.iter().map(|f| f.rss_kib).sum();
    let slowest = figures.iter().map(|f| f.ready).max().unwrap_or_default();
    println!(
        "{shards} shards: every shard ready after {:.1} s; RSS together {:.1} MiB",
        slowest.as_secs_f64(),
        total_rss as f64 / 1024.0
    );
}
