//! Idle memory and `/metrics` latency of the exporter on the demo tenant. Run with
//! `cargo bench --bench demo_scrape`; the output is the figure (no pass/fail threshold, so
//! a busy shared machine cannot make it flake).

// A bench uses a few of the integration tests' helpers.
#[allow(dead_code)]
#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

const SCRAPES: usize = 500;

#[tokio::main]
async fn main() {
    let exporter = common::Exporter::spawn(common::demo_command(), Vec::new()).await;
    exporter.wait_ready().await;
    // Let the first polls' buffers settle before measuring "idle".
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = common::proc_status_kib(exporter.pid(), "VmRSS:");

    let client = reqwest::Client::new();
    let url = format!("{}/metrics", exporter.url);
    let mut latencies = Vec::with_capacity(SCRAPES);
    let mut bytes = 0;
    for _ in 0..SCRAPES {
        let started = Instant::now();
        let body = client
            .get(&url)
            .send()
            .await
            .expect("scrape")
            .bytes()
            .await
            .expect("body");
        latencies.push(started.elapsed());
        bytes = body.len();
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let after = common::proc_status_kib(exporter.pid(), "VmRSS:");
    println!("demo tenant, {SCRAPES} sequential scrapes of /metrics ({bytes} bytes each)");
    println!(
        "latency p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    println!(
        "RSS idle {} KiB, after scrapes {} KiB",
        idle.map_or("?".into(), |v| v.to_string()),
        after.map_or("?".into(), |v| v.to_string())
    );
}
