//! The web server against real and hostile clients: cached and gzipped `/metrics`, HEAD,
//! HTTP/1.0, pipelining, slow, idle and oversize clients, 1,000 connections, several listen
//! addresses and running out of file descriptors. RSS figures are printed, not timed.

use crate::common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{Exporter, WAIT, demo_command};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The exporter on its demo tenant with `args` added, ready.
async fn demo(args: &[&str]) -> Exporter {
    let mut command = demo_command();
    command.args(args);
    let exporter = Exporter::spawn(command, Vec::new()).await;
    exporter.wait_ready().await;
    exporter
}

fn address(exporter: &Exporter) -> String {
    exporter.url.trim_start_matches("http://").to_owned()
}

/// Sends `request` on a new connection and reads until the server closes it.
async fn exchange(address: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.expect("connects");
    stream.write_all(request).await.expect("sends");
    read_to_close(&mut stream).await
}

async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .expect("the server closes the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// `(VmRSS, VmHWM)` of a process in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let field = |key| common::proc_status_kib(pid, key).expect("proc status");
    (field("VmRSS:"), field("VmHWM:"))
}

fn cpu_time(pid: u32) -> Duration {
    common::cpu_time(pid).expect("proc stat")
}

/// A scrape on a new connection; the full body must arrive.
async fn scrape(address: &str) -> (u16, usize, Duration) {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{address}/metrics"))
        .timeout(WAIT)
        .send()
        .await
        .expect("scrape answered");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("whole body");
    (status, body.len(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_cached_gzipped_on_request_and_answer_head() {
    let exporter = demo(&[]).await;
    let url = format!("{}/metrics", exporter.url);
    // reqwest without its gzip feature in use: the raw bytes as sent.
    let client = reqwest::Client::builder().no_gzip().build().unwrap();

    let identity = client.get(&url).send().await.unwrap();
    assert_eq!(identity.status(), 200);
    assert_eq!(
        identity.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(identity.headers()["vary"], "Accept-Encoding");
    assert!(identity.headers().get("content-encoding").is_none());
    let length: usize = identity.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let text = identity.text().await.unwrap();
    assert_eq!(text.len(), length);

    let gzip = client
        .get(&url)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    assert_eq!(gzip.headers()["vary"], "Accept-Encoding");
    let compressed_length: usize = gzip.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let compressed = gzip.bytes().await.unwrap();
    assert_eq!(compressed.len(), compressed_length);
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut unzipped)
        .expect("one valid gzip member");
    assert!(compressed.len() * 5 < unzipped.len(), "gzip compresses");
    // Only the per-scrape process metrics and counters may differ between two scrapes.
    let stable = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                !l.starts_with("process_") && !l.starts_with("entra_exporter_graph_requests_total{")
            })
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(stable(&unzipped), stable(&text));
    common::promtool_check_metrics(&unzipped);

    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let head_length: usize = head.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        head_length.abs_diff(length) < 200,
        "{head_length} vs {length}"
    );
    assert!(head.bytes().await.unwrap().is_empty());

    let post = client.post(&url).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    for (path, status) in [
        ("/", 200),
        ("/healthz", 200),
        ("/readyz", 200),
        ("/nope", 404),
    ] {
        assert_eq!(exporter.get(path).await.0, status, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_1_0_pipelining_and_oversize_headers() {
    let exporter = demo(&[]).await;
    let address = address(&exporter);

    // HTTP/1.0: one answer with its length, then the connection closes.
    let answer = exchange(&address, b"GET /metrics HTTP/1.0\r\n\r\n").await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("content-length")
        .parse()
        .unwrap();
    assert_eq!(body.len(), length);
    assert!(body.contains("entra_exporter_build_info{"));

    // Three pipelined requests in one write: three answers, in order.
    let answer = exchange(
        &address,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let statuses: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 404 Not Found"
        ]
    );
    let healthz = answer.find("ok\n").unwrap();
    let metrics = answer.find("# HELP").unwrap();
    assert!(healthz < metrics && metrics < answer.find("not found").unwrap());

    // Headers beyond 64 KiB: 431, and the connection is closed.
    let mut big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let mut stream = TcpStream::connect(&address).await.unwrap();
    // The server may close before taking all of it.
    let _ = stream.write_all(&big).await;
    let answer = read_to_close(&mut stream).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{answer}"
    );
    // Just under the cap is fine.
    let mut fits = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ".to_vec();
    fits.extend(std::iter::repeat_n(b'a', 60 * 1024));
    fits.extend_from_slice(b"\r\n\r\n");
    assert!(
        exchange(&address, &fits)
            .await
            .starts_with("HTTP/1.1 200 OK")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_idle_clients_are_cut_off_while_others_are_served() {
    let exporter = demo(&["--web.header-read-timeout=2s", "--web.idle-timeout=3s"]).await;
    let address = address(&exporter);

    // Headers at one byte a second never complete: closed after the header-read timeout.
    let slow = {
        let address = address.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut stream = TcpStream::connect(&address).await.unwrap();
            let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
            for byte in request {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                let mut probe = [0u8; 64];
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut probe)).await {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(n)) => panic!("answered a slow request: {:?}", &probe[..n]),
                    Err(_) => {}
                }
            }
            started.elapsed()
        })
    };
    // An idle connection that never sends anything: closed after the header-read timeout too.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    // A kept-alive connection after one request: closed after the idle timeout.
    let mut kept = TcpStream::connect(&address).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 1024];
    let n = kept.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let kept_since = Instant::now();

    // Meanwhile scrapes are answered.
    for _ in 0..3 {
        let (status, bytes, _) = scrape(&address).await;
        assert_eq!((status, bytes > 10_000), (200, true));
    }
    let idle_answer = read_to_close(&mut idle).await;
    assert!(idle_answer.is_empty(), "{idle_answer}");
    assert_eq!(read_to_close(&mut kept).await, "");
    let kept_for = kept_since.elapsed();
    let slow_for = slow.await.unwrap();
    println!("slow client cut after {slow_for:?}; kept-alive idle connection after {kept_for:?}");
    assert!(
        slow_for < Duration::from_secs(30),
        "the slow client was never cut off"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_hostile_connections_do_not_lock_out_scrapes() {
    // The test process and the exporter (which inherits the limit) each hold 1,000 sockets.
    let limit = rlimit::increase_nofile_limit(4096).expect("raise RLIMIT_NOFILE");
    assert!(
        limit >= 1200,
        "RLIMIT_NOFILE hard limit {limit} is too low for 1,000 connections; raise it (ulimit -Hn)"
    );
    let exporter = demo(&[]).await;
    let address = address(&exporter);
    let pid = exporter.pid();
    let (rss_before, _) = rss_kib(pid);

    let mut tasks = tokio::task::JoinSet::new();
    let stop = tokio_util::sync::CancellationToken::new();
    for index in 0..1000 {
        let address = address.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let Ok(mut stream) = TcpStream::connect(&address).await else {
                return;
            };
            match index % 10 {
                // Idle: connect and say nothing.
                0..=3 => {}
                // Slow: one header byte a second.
                4..=6 => {
                    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").await;
                    loop {
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = stop.cancelled() => return,
                        }
                        if stream.write_all(b"a").await.is_err() {
                            return;
                        }
                    }
                }
                // Oversize: 100 KiB of a header that never ends.
                _ => {
                    let mut big = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
                    big.extend(std::iter::repeat_n(b'a', 100 * 1024));
                    let _ = stream.write_all(&big).await;
                }
            }
            stop.cancelled().await;
            drop(stream);
        });
    }
    // Let the flood arrive, then scrape through it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let (status, bytes, took) = scrape(&address).await;
        assert_eq!(status, 200);
        assert!(bytes > 10_000);
        latencies.push(took);
    }
    let (rss, peak) = rss_kib(pid);
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    println!(
        "1,000 hostile connections: scrapes took {latencies:?}; exporter RSS {rss_before} KiB before, {rss} KiB during, peak {peak} KiB"
    );
    assert!(
        peak < 64 * 1024,
        "RSS peaked at {peak} KiB under 1,000 hostile connections"
    );
    // Still serving once they are gone.
    assert_eq!(scrape(&address).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn running_out_of_descriptors_backs_off_and_recovers() {
    use std::os::unix::process::CommandExt;
    const LIMIT: u64 = 96;
    let mut command = demo_command();
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| rlimit::setrlimit(rlimit::Resource::NOFILE, LIMIT, LIMIT));
    }
    let exporter = Exporter::spawn(command, Vec::new()).await;
    exporter.wait_ready().await;
    let address = address(&exporter);
    let pid = exporter.pid();

    // More idle connections than the exporter has descriptors for.
    let mut idle = Vec::new();
    for _ in 0..LIMIT + 50 {
        idle.push(
            TcpStream::connect(&address)
                .await
                .expect("the kernel queues it"),
        );
    }
    exporter
        .wait_for_log("web server: accepting a connection failed")
        .await;
    let cpu_before = cpu_time(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = cpu_time(pid) - cpu_before;
    let failures = exporter
        .logs()
        .lines()
        .filter(|l| l.contains("web server: accepting a connection failed"))
        .count();
    println!("out of descriptors: {cpu:?} CPU in 3 s, {failures} log line(s)");
    assert_eq!(failures, 1, "one line, not a flood:\n{}", exporter.logs());
    assert!(
        cpu < Duration::from_secs(1),
        "spinning: {cpu:?} of CPU in 3 s"
    );

    drop(idle);
    let started = Instant::now();
    loop {
        if let Ok(Ok(response)) = tokio::time::timeout(
            Duration::from_secs(5),
            reqwest::get(format!("http://{address}/metrics")),
        )
        .await
            && response.status() == 200
        {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "no recovery:\n{}",
            exporter.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn several_listen_addresses_are_served() {
    let exporter = demo(&[
        "--web.listen-address=127.0.0.1:0",
        "--web.listen-address=[::1]:0",
    ])
    .await;
    let logs = exporter.logs();
    let addresses: Vec<String> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|json| json["message"] == "listening")
        .filter_map(|json| json["address"].as_str().map(str::to_owned))
        .collect();
    // demo_command listens on 127.0.0.1:0 already: three listeners.
    assert_eq!(addresses.len(), 3, "{logs}");
    assert!(
        addresses.iter().any(|a| a.starts_with("[::1]:")),
        "{addresses:?}"
    );
    for address in &addresses {
        assert_eq!(scrape(address).await.0, 200, "{address}");
    }
}

#[test]
fn a_port_in_use_is_one_error_line_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let output = demo_command()
        .arg(format!("--web.listen-address={address}"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors = common::error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!("--web.listen-address {address}"))
            && errors[0].contains("in use"),
        "{stderr}"
    );
}
