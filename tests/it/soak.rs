//! Fault-and-soak: the real exporter binary with `--state.file`, against the fake Graph over TLS,
//! for several minutes (`SOAK_SECONDS`, default 180; CI runs the default). Meanwhile the test
//! adds usage events continuously, injects every kind of fault the fake knows into the paged
//! reports (429 storms with Retry-After, 500/502/503/504, responses that time out, bodies cut
//! off on the wire, invalid JSON, nextLink loops, empty pages with a nextLink, transient empty
//! and shortened lists, expired skiptokens, pages over `--graph.max-response-bytes`, rows that
//! cannot be parsed), makes the token endpoint fail at refresh time (503, 429, resets and
//! timeouts, one to three in a row), refuses tokens for a minute, scrapes `/metrics` every
//! 250 ms and kills the exporter with SIGKILL twice, restarting it on the same state file.
//!
//! At the end it asserts that `/metrics` answered every scrape while the process was up; that
//! every usage counter equals exactly the events the fake listed after the first successful
//! poll, series by series; that no counter decreased between scrapes of one process and that
//! each restart resumed at least at the last value served; that the reports without faults
//! stayed up (through the token blips too, but not while tokens were refused); that every kind
//! of fault fired at least once (else the soak would pass as a plain one); and that RSS stayed
//! under [`RSS_BOUND_MIB`].
//! It prints the figures: faults injected and fired by kind, events added, restarts, totals,
//! peak RSS.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Exporter, TENANT, fake, quiet};
use entra_fake_graph::{FakeGraph, FakeGraphOptions, Fault, UsageEvent};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// Length of the busy phase unless `SOAK_SECONDS` says otherwise.
const DEFAULT_SECONDS: u64 = 180;
/// The shortest run that fits two kills and a minute of refused tokens apart from each other.
const MIN_SECONDS: u64 = 150;
/// The exporter's resident memory must stay below this, in MiB.
const RSS_BOUND_MIB: u64 = 64;
/// Tokens live this long: refreshed after 6 s, used for 10.8 s.
const TOKEN_LIFETIME: Duration = Duration::from_secs(12);
/// How long the token endpoint refuses: longer than a token is used.
const TOKEN_REFUSAL: Duration = Duration::from_secs(60);
/// After tokens come back, how long reports may still be down. The token is used up to 11 s
/// into the refusal, then the request for a new one is retried in place for 15 s, and the
/// credential sends the next one a minute after that, so up to 26 s after the refusal ends;
/// then each report's next poll (3 s), and room for a slow machine.
const TOKEN_GRACE: Duration = Duration::from_secs(40);
/// No token blip is queued this long before a kill or the refusal: a blip waits for the next
/// refresh (6 s) and its retries, and must not meet a restart's first token request instead.
const BLIP_QUIET: Duration = Duration::from_secs(15);
/// `--graph.max-response-bytes` of the soak, and the oversized pages it gets.
const MAX_RESPONSE_BYTES: usize = 4 << 20;
const OVERSIZED_PAGE: usize = 8 << 20;
/// How long the exporter stays dead after each SIGKILL, while events keep coming.
const DOWNTIME: Duration = Duration::from_secs(3);
const GRAPH_TIMEOUT: Duration = Duration::from_secs(2);

const EVENTS_TOTAL: &str = "entra_authmethods_usage_events_total";
const LEGACY_TOTAL: &str = "entra_credential_usage_events_total";
const OUTCOME_TOTAL: &str = "entra_authmethods_usage_outcome_events_total";
const LEGACY_OUTCOME_TOTAL: &str = "entra_credential_usage_outcome_events_total";
const COUNTERS: [&str; 4] = [
    EVENTS_TOTAL,
    LEGACY_TOTAL,
    OUTCOME_TOTAL,
    LEGACY_OUTCOME_TOTAL,
];

/// The paged reports that get faults, with the path of their first page and of later pages.
const FAULTED: [(&str, &str, &str); 3] = [
    (
        "userEventsSummary",
        "userEventsSummary",
        "userEventsSummary?$top=1000&$skiptoken",
    ),
    (
        "userCredentialUsageDetails",
        "userCredentialUsageDetails",
        "userCredentialUsageDetails?$skiptoken",
    ),
    (
        "userRegistrationDetails",
        "authenticationMethods/userRegistrationDetails",
        "userRegistrationDetails?$top=999&$skiptoken",
    ),
];

/// What the test adds: methods and reasons a tenant sees, within the failure_reason limit.
const METHODS: [&str; 5] = [
    "email",
    "mobileSMS",
    "microsoftAuthenticatorPush",
    "fido2SecurityKey",
    "appCode",
];
const REASONS: [&str; 3] = [
    "SMS not delivered",
    "Push notification denied",
    "Verification code expired",
];

/// One parsed scrape.
struct Scrape {
    generation: usize,
    at: Instant,
    /// Series (name and labels as printed) of the four counter families, and their values.
    counters: BTreeMap<String, f64>,
    /// `entra_exporter_report_up` by report.
    up: BTreeMap<String, f64>,
    rss_bytes: u64,
}

/// The process being scraped: (generation, URL, pid), or none while it is down.
type Current = Arc<Mutex<Option<(usize, String, u32)>>>;

#[derive(Default)]
struct Log {
    scrapes: Vec<Scrape>,
    /// Scrapes that failed although their process was up: (generation, error).
    failures: Vec<(usize, String)>,
    /// Generations marked down (before their SIGKILL), so that their failing scrapes are
    /// expected.
    killed: HashSet<usize>,
}

fn parse(text: &str, generation: usize, rss_bytes: u64) -> Scrape {
    let mut scrape = Scrape {
        generation,
        at: Instant::now(),
        counters: BTreeMap::new(),
        up: BTreeMap::new(),
        rss_bytes,
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if COUNTERS
            .iter()
            .any(|family| series.starts_with(&format!("{family}{{")))
        {
            scrape.counters.insert(series.to_owned(), value);
        } else if let Some(labels) = series.strip_prefix("entra_exporter_report_up{")
            && let Some(report) = labels.split(',').find_map(|l| l.strip_prefix("report=\""))
        {
            scrape
                .up
                .insert(report.trim_end_matches(['"', '}']).to_owned(), value);
        }
    }
    scrape
}

/// Resident memory of a process, from /proc (0 once it is gone).
fn rss_bytes(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix(field)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        })
        .map_or(0, |kib| kib * 1024)
}

fn family_sum(counters: &BTreeMap<String, f64>, family: &str) -> f64 {
    counters
        .iter()
        .filter(|(series, _)| series.starts_with(&format!("{family}{{")))
        .map(|(_, v)| v)
        .sum()
}

/// The events the test added: detailed and outcome series with their expected counts.
#[derive(Default)]
struct Added {
    ids: HashSet<String>,
    detailed: BTreeMap<(String, String, String, String), u64>,
    outcomes: BTreeMap<(String, String), u64>,
}

impl Added {
    fn add(&mut self, fake: &FakeGraph, rng: &mut StdRng) {
        let feature = if rng.random_bool(0.7) {
            "reset"
        } else {
            "registration"
        };
        let is_success = rng.random_bool(0.6);
        let reason = if is_success {
            ""
        } else {
            REASONS.choose(rng).copied().unwrap_or_default()
        };
        let method = METHODS.choose(rng).copied().unwrap_or_default();
        let id = fake.add_usage_event(UsageEvent {
            feature: feature.into(),
            auth_method: method.into(),
            is_success,
            failure_reason: reason.into(),
            user: rng.random_range(0..250),
        });
        self.ids.insert(id);
        let status = if is_success { "success" } else { "failure" };
        *self
            .detailed
            .entry((feature.into(), method.into(), status.into(), reason.into()))
            .or_default() += 1;
        *self
            .outcomes
            .entry((feature.into(), status.into()))
            .or_default() += 1;
    }
}

/// Which pages of a report a fault goes to.
enum Pages {
    /// The first page (the key matches any page; the first request takes the fault).
    First,
    /// A page after the first.
    Later,
}

fn status(code: u16, retry_after: Option<&str>) -> Fault {
    Fault::Status {
        code,
        retry_after: retry_after.map(str::to_owned),
        body: String::new(),
    }
}

/// The one-shot faults, with the pages they go to and their name in the figures.
fn single_faults() -> Vec<(Pages, Fault, &'static str)> {
    vec![
        (
            Pages::Later,
            Fault::Delay(GRAPH_TIMEOUT + Duration::from_secs(1)),
            "response that times out",
        ),
        (
            Pages::Later,
            Fault::TruncatedBody,
            "body cut off on the wire",
        ),
        (Pages::First, Fault::InvalidJson, "invalid JSON"),
        (Pages::Later, Fault::NextLinkLoop, "nextLink loop"),
        (
            Pages::Later,
            Fault::EmptyPageWithNextLink,
            "empty page with a nextLink",
        ),
        (Pages::First, Fault::EmptyCollection, "transient empty 200"),
        (
            Pages::First,
            Fault::NoNextLink,
            "shortened list (first page only)",
        ),
        (
            Pages::Later,
            status(404, None),
            "expired skiptoken (404 on a later page)",
        ),
        (Pages::First, status(503, Some("1")), "503 with Retry-After"),
        (
            Pages::Later,
            Fault::OversizedPage {
                bytes: OVERSIZED_PAGE,
                gzip: false,
            },
            "oversized page (8 MB, Content-Length)",
        ),
        (
            Pages::First,
            Fault::OversizedPage {
                bytes: OVERSIZED_PAGE,
                gzip: true,
            },
            "oversized page (8 MB once decoded, gzip)",
        ),
        // An id of the wrong type spoils a row of every faulted report: skipped, and counted
        // at a later poll that lists it whole.
        (
            Pages::First,
            bad_row(serde_json::json!(42)),
            "bad row (a number as id, first page)",
        ),
        (
            Pages::Later,
            bad_row(serde_json::json!({"id": "x"})),
            "bad row (an object as id, later page)",
        ),
    ]
}

const STORM: &str = "429 storm (6 x 429, Retry-After: 1)";
const FIVE_XX: &str = "5xx (500/502/503/504, first and later pages)";
const TOKEN_BLIP: &str = "token endpoint failing at refresh (1-3 of 503, 429, reset, timeout)";
const TOKEN_KEY: &str = "/oauth2/";

/// The token endpoint failing at the next refresh, `round` choosing how: one to three of a 503,
/// a 429, a reset connection and a response that times out. The token in use is still valid, so
/// nothing may show.
fn token_blip(fake: &FakeGraph, faults: &mut Faults, round: usize) {
    let failures = [
        status(503, None),
        status(429, Some("1")),
        Fault::Reset,
        Fault::Delay(GRAPH_TIMEOUT + Duration::from_secs(1)),
    ];
    let blips =
        (0..1 + round % 3).map(|n| (TOKEN_KEY, failures[(round + n) % failures.len()].clone()));
    faults.inject(fake, TOKEN_BLIP, blips.collect());
}

/// Stops token blips and waits until the queued ones have fired.
async fn quiet_token_endpoint(fake: &FakeGraph, blips_allowed: &Mutex<bool>) {
    *blips_allowed.lock().unwrap() = false;
    let started = Instant::now();
    while fake.queued_faults(TOKEN_KEY) > 0 {
        assert!(started.elapsed() < common::WAIT, "a token blip never fired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn bad_row(id: serde_json::Value) -> Fault {
    Fault::BadRow {
        field: "id".to_owned(),
        value: Some(id),
    }
}

/// The faults injected, in order. The fake fires the faults queued under one key in order, once
/// each, so of the faults a key got, all but the last [`FakeGraph::queued_faults`] have fired.
#[derive(Default)]
struct Faults {
    /// Each injection: its kind and the keys of the faults it queued.
    injections: Vec<(&'static str, Vec<&'static str>)>,
}

impl Faults {
    /// Queues `faults` (key and fault) as one injection of `kind`.
    fn inject(&mut self, fake: &FakeGraph, kind: &'static str, faults: Vec<(&'static str, Fault)>) {
        let keys = faults.iter().map(|(key, _)| *key).collect();
        for (key, fault) in faults {
            fake.inject(key, fault);
        }
        self.injections.push((kind, keys));
    }

    /// Injects the `round`-th fault: kinds and reports take turns.
    fn inject_round(&mut self, fake: &FakeGraph, round: usize) {
        let (_, first, later) = FAULTED[round % FAULTED.len()];
        let mut singles = single_faults();
        match (round / FAULTED.len()) % (singles.len() + 2) {
            // A storm: more 429s in a row than a poll retries, so one poll fails and the next
            // one recovers.
            0 => self.inject(fake, STORM, vec![(first, status(429, Some("1"))); 6]),
            1 => {
                let code = [500, 502, 503, 504][(round / 33) % 4];
                let faults = vec![(first, status(code, None)), (later, status(code, None))];
                self.inject(fake, FIVE_XX, faults);
            }
            n => {
                let (pages, fault, kind) = singles.swap_remove(n - 2);
                let key = match pages {
                    Pages::First => first,
                    Pages::Later => later,
                };
                self.inject(fake, kind, vec![(key, fault)]);
            }
        }
    }

    /// By kind: injections made and injections whose faults have all fired, given how many
    /// faults are still queued under each key.
    fn tally(&self, still_queued: impl Fn(&str) -> usize) -> BTreeMap<&'static str, (u64, u64)> {
        let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
        for key in self.injections.iter().flat_map(|(_, keys)| keys) {
            *per_key.entry(key).or_default() += 1;
        }
        let mut fired_left: BTreeMap<&str, usize> = per_key
            .iter()
            .map(|(key, total)| (*key, total - still_queued(key).min(*total)))
            .collect();
        let mut tally: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
        for (kind, keys) in &self.injections {
            // `fired_left` counts down the fired faults of each key, oldest first.
            let mut whole = true;
            for key in keys {
                let fired = fired_left.get_mut(key).expect("every key counted");
                whole &= *fired > 0;
                *fired = fired.saturating_sub(1);
            }
            let entry = tally.entry(kind).or_default();
            entry.0 += 1;
            entry.1 += u64::from(whole);
        }
        tally
    }
}

/// Every kind of fault the soak injects into the queues of the fake.
fn every_kind() -> BTreeSet<&'static str> {
    let singles = single_faults().into_iter().map(|(_, _, kind)| kind);
    [STORM, FIVE_XX, TOKEN_BLIP]
        .into_iter()
        .chain(singles)
        .collect()
}

fn soak_seconds() -> u64 {
    std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECONDS)
        .max(MIN_SECONDS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_with_faults_kills_and_restarts_counts_every_event_exactly_once() {
    let length = Duration::from_secs(soak_seconds());
    let fake = Arc::new(
        fake(FakeGraphOptions {
            initial_events: 300,
            page_size: 100,
            max_page_size: 100,
            token_lifetime: TOKEN_LIFETIME,
            ..quiet()
        })
        .await,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state.json");
    let config = common::temp_file(
        "reports:\n  userEventsSummary: {interval: 2s}\n  userCredentialUsageDetails: {interval: 2s}\n",
    );
    let args = [
        format!("--config.file={}", config.path().display()),
        format!("--state.file={}", state.display()),
        "--poll.interval=3s".to_owned(),
        format!("--graph.timeout={}s", GRAPH_TIMEOUT.as_secs()),
        format!("--graph.max-response-bytes={MAX_RESPONSE_BYTES}"),
        "--log.level=info".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let unfaulted: Vec<&str> = entra_authmethods_exporter::reports::names()
        .into_iter()
        .filter(|name| FAULTED.iter().all(|(report, _, _)| report != name))
        .collect();

    let mut exporter = Exporter::start(&fake, &args).await;
    exporter.wait_ready().await;
    exporter
        .wait_for_metrics("both events reports polled", |t| {
            ["userEventsSummary", "userCredentialUsageDetails"]
                .iter()
                .all(|r| common::value(t, &common::up(r)) == Some(1.0))
        })
        .await;
    // What the first successful polls learned: never counted.
    let learned = fake.listed_usage_events();
    let started = Instant::now();

    let current: Current = Arc::new(Mutex::new(Some((1, exporter.url.clone(), exporter.pid()))));
    let log = Arc::new(Mutex::new(Log::default()));
    let busy = Arc::new(AtomicBool::new(true));
    let token_window: Arc<Mutex<Option<(Instant, Instant)>>> = Arc::default();
    // Cleared around kills and the refusal; held while a blip is queued.
    let blips_allowed = Arc::new(Mutex::new(true));

    let scraper = tokio::spawn({
        let (current, log, busy) = (current.clone(), log.clone(), busy.clone());
        async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            while busy.load(Ordering::SeqCst) {
                let up = current.lock().unwrap().clone();
                if let Some((generation, url, pid)) = up {
                    let result = async {
                        let response = client.get(format!("{url}/metrics")).send().await?;
                        let status = response.status();
                        let text = response.text().await?;
                        Ok::<_, reqwest::Error>((status, text))
                    }
                    .await;
                    let mut log = log.lock().unwrap();
                    match result {
                        Ok((status, text)) if status.is_success() => {
                            let scrape = parse(&text, generation, rss_bytes(pid, "VmRSS:"));
                            log.scrapes.push(scrape);
                        }
                        _ if log.killed.contains(&generation) => {}
                        Ok((status, _)) => log.failures.push((generation, status.to_string())),
                        Err(err) => log.failures.push((generation, err.to_string())),
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });

    let adder = tokio::spawn({
        let (fake, busy) = (fake.clone(), busy.clone());
        async move {
            let mut rng = StdRng::seed_from_u64(8);
            let mut added = Added::default();
            while busy.load(Ordering::SeqCst) {
                added.add(&fake, &mut rng);
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            added
        }
    });

    let injector = tokio::spawn({
        let (fake, token_window, blips_allowed) =
            (fake.clone(), token_window.clone(), blips_allowed.clone());
        async move {
            let mut faults = Faults::default();
            let refusal_at = length.mul_f64(0.4);
            let stop_at = length.saturating_sub(Duration::from_secs(15));
            let mut round = 0;
            let mut refused = false;
            let mut blips_resume_at = None;
            while started.elapsed() < stop_at {
                if !refused && started.elapsed() + BLIP_QUIET >= refusal_at {
                    quiet_token_endpoint(&fake, &blips_allowed).await;
                }
                if !refused && started.elapsed() >= refusal_at {
                    refused = true;
                    fake.retire("oauth2/v2.0/token", 503);
                    let from = Instant::now();
                    tokio::time::sleep(TOKEN_REFUSAL).await;
                    fake.restore("oauth2/v2.0/token");
                    *token_window.lock().unwrap() = Some((from, Instant::now()));
                    // The tenant is back within the grace; blips then meet refreshes again.
                    blips_resume_at = Some(Instant::now() + TOKEN_GRACE);
                }
                if blips_resume_at.is_some_and(|at| Instant::now() >= at) {
                    blips_resume_at = None;
                    *blips_allowed.lock().unwrap() = true;
                }
                // A blip every 4 rounds (6 s), at most one queued at a time.
                if round % 4 == 2 {
                    let allowed = blips_allowed.lock().unwrap();
                    if *allowed && fake.queued_faults(TOKEN_KEY) == 0 {
                        token_blip(&fake, &mut faults, round / 4);
                    }
                }
                faults.inject_round(&fake, round);
                round += 1;
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            faults
        }
    });

    // Two kills, well apart from the minute of refused tokens (a start needs a token).
    let mut generation = 1;
    for kill_at in [length.mul_f64(0.2), length.mul_f64(0.85)] {
        // A restart's first token request must not meet a blip meant for a refresh.
        tokio::time::sleep(kill_at.saturating_sub(started.elapsed() + BLIP_QUIET)).await;
        quiet_token_endpoint(&fake, &blips_allowed).await;
        tokio::time::sleep(kill_at.saturating_sub(started.elapsed())).await;
        assert!(
            token_window.lock().unwrap().is_some() || kill_at < length.mul_f64(0.4),
            "a kill must not fall into the token refusal"
        );
        log.lock().unwrap().killed.insert(generation);
        *current.lock().unwrap() = None;
        let peak = rss_bytes(exporter.pid(), "VmHWM:");
        log.lock().unwrap().scrapes.push(Scrape {
            generation,
            at: Instant::now(),
            counters: BTreeMap::new(),
            up: BTreeMap::new(),
            rss_bytes: peak,
        });
        let logs = exporter.logs();
        drop(exporter); // SIGKILL
        assert!(
            !logs.contains("cannot be used"),
            "generation {generation} found an unusable state file:\n{logs}"
        );
        tokio::time::sleep(DOWNTIME).await;
        generation += 1;
        exporter = Exporter::start(&fake, &args).await;
        *current.lock().unwrap() = Some((generation, exporter.url.clone(), exporter.pid()));
        exporter
            .wait_for_metrics("the restart's first token", |t| {
                common::credential_up(t, TENANT) == Some(1.0)
            })
            .await;
        // Not before the refusal, nor during it or its grace: the injector allows them after.
        if started.elapsed() + BLIP_QUIET < length.mul_f64(0.4) {
            *blips_allowed.lock().unwrap() = true;
        }
    }

    tokio::time::sleep(length.saturating_sub(started.elapsed())).await;
    busy.store(false, Ordering::SeqCst);
    let added = adder.await.expect("adder");
    let faults = injector.await.expect("injector");
    scraper.await.expect("scraper");
    let tally = faults.tally(|key| fake.queued_faults(key));
    let pending = fake.clear_faults();

    // Let the last polls read everything: the counters reach exactly the events added and stay.
    let expected = added.ids.len() as f64;
    let text = exporter
        .wait_for_metrics("the counters at the events added", |t| {
            common::sum(t, EVENTS_TOTAL) >= expected && common::sum(t, LEGACY_TOTAL) >= expected
        })
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let text_later = exporter.metrics().await;
    let last_generation = generation;
    let final_scrape = parse(
        &text_later,
        last_generation,
        rss_bytes(exporter.pid(), "VmRSS:"),
    );
    let peak_last = rss_bytes(exporter.pid(), "VmHWM:");
    let listed: HashSet<String> = fake
        .listed_usage_events()
        .difference(&learned)
        .cloned()
        .collect();
    let logs = exporter.logs();
    let state_bytes = std::fs::metadata(&state).map_or(0, |m| m.len());
    let log = log.lock().unwrap();
    let peak_rss = log
        .scrapes
        .iter()
        .map(|s| s.rss_bytes)
        .chain([peak_last])
        .max()
        .unwrap_or(0);

    // The figures.
    let final_sum = |family| family_sum(&final_scrape.counters, family);
    println!(
        "\n==== soak figures ({} s busy phase) ====",
        length.as_secs()
    );
    println!("faults injected (fired whole) by kind:");
    for (kind, (made, fired)) in &tally {
        println!("  {made:5} ({fired:3})  {kind}");
    }
    println!("      1        token endpoint refusing (503) for 60 s (felt: asserted below)");
    println!(
        "  total {} injections, {pending} faults still queued at the end and dropped",
        faults.injections.len()
    );
    println!(
        "events added: {} (after {} learned by the first polls); distinct events listed since: {}",
        added.ids.len(),
        learned.len(),
        listed.len()
    );
    println!("restarts after SIGKILL: {}", last_generation - 1);
    println!(
        "scrapes: {} answered, {} failed while up",
        log.scrapes
            .iter()
            .filter(|s| !s.counters.is_empty() || !s.up.is_empty())
            .count(),
        log.failures.len()
    );
    for family in COUNTERS {
        println!(
            "final {family}: {} (expected {expected})",
            final_sum(family)
        );
    }
    println!(
        "peak RSS: {:.1} MiB (bound {RSS_BOUND_MIB} MiB); state file: {state_bytes} bytes",
        peak_rss as f64 / (1024.0 * 1024.0)
    );
    println!("====\n");

    // Every kind of fault fired at least once: the soak did meet what it claims to inject.
    let unfired: Vec<&str> = every_kind()
        .into_iter()
        .filter(|kind| tally.get(kind).is_none_or(|(_, fired)| *fired == 0))
        .collect();
    assert!(unfired.is_empty(), "faults that never fired: {unfired:?}");

    // /metrics answered throughout, except while killed.
    assert!(
        log.failures.is_empty(),
        "scrapes failed: {:?}",
        log.failures
    );
    for g in 1..=last_generation {
        assert!(
            log.scrapes
                .iter()
                .filter(|s| s.generation == g && !s.up.is_empty())
                .count()
                > 10,
            "generation {g} was hardly scraped"
        );
    }

    // Every event counted exactly once, series by series, in both reports.
    assert_eq!(
        listed, added.ids,
        "the fake listed exactly the events added"
    );
    for family in [EVENTS_TOTAL, LEGACY_TOTAL] {
        assert_eq!(final_sum(family), expected, "{family}\n{text}");
        for ((feature, method, status, reason), n) in &added.detailed {
            let series = format!(
                r#"{family}{{tenant="{TENANT}",feature="{feature}",auth_method="{method}",status="{status}",failure_reason="{reason}"}}"#
            );
            assert_eq!(
                final_scrape.counters.get(&series).copied(),
                Some(*n as f64),
                "{series}"
            );
        }
    }
    for family in [OUTCOME_TOTAL, LEGACY_OUTCOME_TOTAL] {
        assert_eq!(final_sum(family), expected, "{family}");
        for ((feature, status), n) in &added.outcomes {
            let series =
                format!(r#"{family}{{tenant="{TENANT}",feature="{feature}",status="{status}"}}"#);
            assert_eq!(
                final_scrape.counters.get(&series).copied(),
                Some(*n as f64),
                "{series}"
            );
        }
    }

    // No counter went down within a process, and each restart resumed at least where the
    // last process stopped.
    let mut last: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for scrape in log.scrapes.iter().chain([&final_scrape]) {
        for (series, value) in &scrape.counters {
            if let Some((generation, before)) = last.get(series.as_str()) {
                assert!(
                    value >= before,
                    "{series} went from {before} (generation {generation}) to {value} (generation {})",
                    scrape.generation
                );
            }
            last.insert(series, (scrape.generation, *value));
        }
    }

    // Reports without faults stayed up, except while tokens were refused.
    let window = token_window.lock().unwrap().expect("tokens were refused");
    let excused = |at: Instant| at >= window.0 && at <= window.1 + TOKEN_GRACE;
    for scrape in &log.scrapes {
        for report in &unfaulted {
            if let Some(up) = scrape.up.get(*report)
                && *up != 1.0
            {
                assert!(
                    excused(scrape.at),
                    "{report} was down at {:?} into the soak, outside the token refusal",
                    scrape.at.duration_since(started)
                );
            }
        }
    }
    assert!(
        log.scrapes
            .iter()
            .any(|s| excused(s.at) && s.up.values().any(|up| *up == 0.0)),
        "the token refusal was felt"
    );

    assert!(
        peak_rss < RSS_BOUND_MIB * 1024 * 1024,
        "peak RSS {peak_rss} bytes"
    );
    assert!(
        !logs.contains("cannot be used"),
        "the last start found an unusable state file"
    );
    assert!(!logs.contains("panicked"), "{logs}");
}
