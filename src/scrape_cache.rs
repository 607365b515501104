//! What the telemetry path serves, cached between scrapes, in three parts:
//!
//! - families derived from the [`Store`] (every report's metrics and the per-report poll
//!   status, [`POLL_STATUS`](crate::self_metrics::POLL_STATUS)) are rendered to text once per change of the store and kept as
//!   bytes, with their gzip form made once, on the first scrape that asks for it;
//! - the registry of [`Metrics`] is encoded again at most once a second, and at once after a
//!   poll completes or a [`PromptGauge`](crate::self_metrics::PromptGauge) changes: encoding it
//!   on every scrape cost half a scrape's CPU;
//! - the process metrics (`process_*`) are read at most once a second: reading them opens and
//!   parses several `/proc` files, which would otherwise be most of a scrape's cost under load.
//!
//! A new report family is a [`MetricDef`](crate::snapshot::MetricDef) in its report's `metrics`; it is rendered here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prometheus::{Encoder, Registry, TextEncoder};

use crate::exposition::{Families, GzipHead};
use crate::graph::Unavailability;
use crate::self_metrics::{
    Metrics, REPORT_DURATION, REPORT_INTERVAL, REPORT_LAST_SUCCESS, REPORT_ROWS,
    REPORT_UNAVAILABLE, REPORT_UP,
};
use crate::snapshot::{ReportRecord, Status, Store};

/// The telemetry path's content: the cached Store-derived text, the sampled process metrics and
/// the registry.
pub struct ScrapeCache {
    store: Arc<Store>,
    registry: Sampled,
    /// The registry's [`PromptGauge`](crate::self_metrics::PromptGauge) changes.
    changes: Arc<AtomicU64>,
    process: Sampled,
    cached: Mutex<Arc<Rendered>>,
    /// The compressed end of the last gzip answer, reused while neither part changed.
    gzip_tail: Mutex<Option<GzipTail>>,
}

struct GzipTail {
    head: Arc<Rendered>,
    text: Vec<u8>,
    compressed: Bytes,
}

/// A registry encoded again only once [`Sampled::PERIOD`] has passed or its `key` moved;
/// scrapes in between share the text.
struct Sampled {
    registry: Registry,
    last: Mutex<Option<Sample>>,
}

struct Sample {
    at: Instant,
    key: (u64, u64),
    text: Bytes,
}

impl Sampled {
    const PERIOD: Duration = Duration::from_secs(1);

    fn new(registry: Registry) -> Self {
        Self {
            registry,
            last: Mutex::new(None),
        }
    }

    fn process() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self::new(registry))
    }

    fn text(&self, key: (u64, u64)) -> Result<Bytes, prometheus::Error> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sample) = &*last
            && sample.key == key
            && sample.at.elapsed() < Self::PERIOD
        {
            return Ok(sample.text.clone());
        }
        let mut text = Vec::with_capacity(2048);
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        let text = Bytes::from(text);
        *last = Some(Sample {
            at: Instant::now(),
            key,
            text: text.clone(),
        });
        Ok(text)
    }
}

/// The Store-derived families as of one generation of the store.
struct Rendered {
    generation: u64,
    /// When a snapshot in the text passes its max age; the text must be rendered again then.
    valid_until: Option<Instant>,
    text: Bytes,
    gzip: OnceLock<GzipHead>,
}

impl Rendered {
    fn is_current(&self, generation: u64, now: Instant) -> bool {
        self.generation == generation && self.valid_until.is_none_or(|until| now < until)
    }
}

/// A `/metrics` body: chunks sent one after the other.
pub struct Scrape {
    pub chunks: Vec<Bytes>,
}

impl ScrapeCache {
    pub fn new(store: Arc<Store>, metrics: Metrics) -> Result<Self, prometheus::Error> {
        let (generation, now) = (store.generation(), Instant::now());
        let rendered = render(&store, generation, now, 0);
        let changes = metrics.prompt_changes();
        Ok(Self {
            store,
            registry: Sampled::new(metrics.registry),
            changes,
            process: Sampled::process()?,
            cached: Mutex::new(Arc::new(rendered)),
            gzip_tail: Mutex::new(None),
        })
    }

    /// The whole text format, gzip-compressed when asked.
    pub fn scrape(&self, gzip: bool) -> Result<Scrape, prometheus::Error> {
        let cached = self.current();
        let process = self.process.text((0, 0))?;
        // A completed poll shows in the registry's counters too.
        let dynamic = self
            .registry
            .text((cached.generation, self.changes.load(Ordering::Acquire)))?;
        if !gzip {
            return Ok(Scrape {
                chunks: vec![cached.text.clone(), process, dynamic],
            });
        }
        let head = cached.gzip.get_or_init(|| GzipHead::new(&cached.text));
        let mut tail = process.to_vec();
        tail.extend_from_slice(&dynamic);
        let mut last = self.gzip_tail.lock().unwrap_or_else(|p| p.into_inner());
        let compressed = match &*last {
            Some(last) if Arc::ptr_eq(&last.head, &cached) && last.text == tail => {
                last.compressed.clone()
            }
            _ => {
                let compressed = head.finish(&tail);
                *last = Some(GzipTail {
                    head: cached.clone(),
                    text: tail,
                    compressed: compressed.clone(),
                });
                compressed
            }
        };
        Ok(Scrape {
            chunks: vec![head.bytes.clone(), compressed],
        })
    }

    /// The cached text, rendered again first if the store moved or a snapshot aged out.
    fn current(&self) -> Arc<Rendered> {
        let generation = self.store.generation();
        let now = Instant::now();
        // A poisoned lock only means a render panicked; the value inside is still whole.
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if !cached.is_current(generation, now) {
            let capacity = cached.text.len() + cached.text.len() / 16;
            *cached = Arc::new(render(&self.store, generation, now, capacity));
        }
        cached.clone()
    }
}

/// Renders the store's families; `capacity` is the expected length of the text.
/// `now` is monotonic: ages never follow the wall clock.
fn render(store: &Store, generation: u64, now: Instant, capacity: usize) -> Rendered {
    let records = store.records();
    let mut families = Families::default();
    let mut valid_until: Option<Instant> = None;
    for (key, record) in &records {
        if !record.settings.enabled {
            continue;
        }
        add_poll_status(&mut families, &key.tenant, key.report, record);
        if let Some(snapshot) = record.fresh_snapshot(now) {
            for sample in &snapshot.samples {
                families.add(sample.metric, &key.tenant, &sample.labels, sample.value);
            }
            let expiry = record.fresh_until();
            valid_until = match (valid_until, expiry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    Rendered {
        generation,
        valid_until,
        text: Bytes::from(families.render(capacity)),
        gzip: OnceLock::new(),
    }
}

/// `entra_exporter_report_*` for one report of one tenant.
fn add_poll_status<'a>(
    families: &mut Families<'a>,
    tenant: &'a str,
    report: &'static str,
    record: &ReportRecord,
) {
    let labels = [report];
    families.add_fixed(
        &REPORT_INTERVAL,
        tenant,
        &labels,
        record.settings.interval.as_secs_f64(),
    );
    if record.status == Status::Pending {
        return;
    }
    families.add_fixed(
        &REPORT_UP,
        tenant,
        &labels,
        f64::from(u8::from(record.status == Status::Ok)),
    );
    for cause in Unavailability::ALL {
        families.add_fixed(
            &REPORT_UNAVAILABLE,
            tenant,
            &[report, cause.as_str()],
            f64::from(u8::from(record.status == Status::Unavailable(cause))),
        );
    }
    if let Some(success) = record.last_success {
        families.add_fixed(&REPORT_LAST_SUCCESS, tenant, &labels, unix_seconds(success));
        families.add_fixed(&REPORT_ROWS, tenant, &labels, record.snapshot.rows as f64);
    }
    if let Some(duration) = record.last_duration {
        families.add_fixed(&REPORT_DURATION, tenant, &labels, duration.as_secs_f64());
    }
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ReportSettings;
    use crate::reports::legacy::user_credential_usage_details::{EVENTS_TOTAL, WINDOW_EVENTS};
    use crate::snapshot::Snapshot;
    use std::io::Read;

    fn text(cache: &ScrapeCache) -> String {
        let scrape = cache.scrape(false).unwrap();
        scrape
            .chunks
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect()
    }

    fn settings() -> ReportSettings {
        ReportSettings {
            enabled: true,
            interval: Duration::from_secs(60),
            max_age: Duration::from_secs(180),
        }
    }

    #[test]
    fn the_registry_is_encoded_again_after_a_poll_or_a_prompt_gauge_not_on_every_scrape() {
        let store = Arc::new(Store::new());
        let metrics = Metrics::new().unwrap();
        let requests = metrics
            .graph_requests
            .with_label_values(&["t", "userEventsSummary", "200"]);
        let reloaded = metrics.web_config_reload_successful.clone();
        let cache = ScrapeCache::new(store.clone(), metrics).unwrap();
        let series = r#"entra_exporter_graph_requests_total{code="200",report="userEventsSummary",tenant="t"}"#;
        let value = |text: &str, series: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        };
        requests.inc();
        assert_eq!(value(&text(&cache), series), Some(1.0));
        // Between polls, scrapes share the encoded text (for up to a second).
        requests.inc();
        assert_eq!(value(&text(&cache), series), Some(1.0));
        // A completed poll shows the counters as they are.
        store.register("t", "userEventsSummary", settings());
        assert_eq!(value(&text(&cache), series), Some(2.0));
        // So does a prompt gauge, at once.
        reloaded.set(0);
        let now = text(&cache);
        assert_eq!(
            value(&now, "entra_exporter_web_config_last_reload_successful"),
            Some(0.0)
        );
    }

    fn cache() -> (Arc<Store>, ScrapeCache) {
        let store = Arc::new(Store::new());
        let metrics = Metrics::new().unwrap();
        (store.clone(), ScrapeCache::new(store, metrics).unwrap())
    }

    #[test]
    fn renders_snapshots_self_metrics_and_escapes_label_values() {
        let (store, cache) = cache();
        store.register("contoso", "userCredentialUsageDetails", settings());
        store.register("fabrikam", "userCredentialUsageDetails", settings());
        let mut snapshot = Snapshot::default();
        let labels = |reason: &str| {
            vec![
                "reset".to_owned(),
                "email".to_owned(),
                "failure".to_owned(),
                reason.to_owned(),
            ]
        };
        snapshot.push(&WINDOW_EVENTS, labels("say \"hi\"\\\nnow ü"), 2.0);
        snapshot.push(&EVENTS_TOTAL, labels("x"), 5.0);
        store.record_success(
            "contoso",
            "userCredentialUsageDetails",
            snapshot,
            Duration::from_millis(1500),
        );
        let text = text(&cache);
        assert!(text.contains(
            r#"entra_credential_usage_window_events{tenant="contoso",feature="reset",auth_method="email",status="failure",failure_reason="say \"hi\"\\\nnow ü"} 2"#
        ), "{text}");
        assert!(text.contains("# TYPE entra_credential_usage_events_total counter"));
        assert!(text.contains(
            r#"entra_exporter_report_up{tenant="contoso",report="userCredentialUsageDetails"} 1"#
        ));
        assert!(text.contains(r#"entra_exporter_report_duration_seconds{tenant="contoso",report="userCredentialUsageDetails"} 1.5"#));
        // fabrikam has not finished a poll: only its configured interval is known.
        let fabrikam: Vec<&str> = text.lines().filter(|l| l.contains("fabrikam")).collect();
        assert_eq!(
            fabrikam,
            [
                r#"entra_exporter_report_interval_seconds{tenant="fabrikam",report="userCredentialUsageDetails"} 60"#
            ]
        );
        assert!(text.contains("entra_exporter_build_info{"));
        assert!(text.contains("entra_exporter_web_config_last_reload_successful 1"));

        store.record_failure(
            "fabrikam",
            "userCredentialUsageDetails",
            Status::Failing,
            "boom".into(),
            Duration::ZERO,
        );
        let text = self::text(&cache);
        assert!(text.contains(
            r#"entra_exporter_report_up{tenant="fabrikam",report="userCredentialUsageDetails"} 0"#
        ));
        for cause in ["retired", "forbidden"] {
            assert!(text.contains(&format!(
                r#"entra_exporter_report_unavailable{{tenant="fabrikam",report="userCredentialUsageDetails",cause="{cause}"}} 0"#
            )));
        }
        store.record_failure(
            "fabrikam",
            "userCredentialUsageDetails",
            Status::Unavailable(Unavailability::Retired),
            "retired".into(),
            Duration::ZERO,
        );
        let text = self::text(&cache);
        assert!(text.contains(
            r#"entra_exporter_report_unavailable{tenant="fabrikam",report="userCredentialUsageDetails",cause="retired"} 1"#
        ));
        assert!(text.contains(
            r#"entra_exporter_report_unavailable{tenant="fabrikam",report="userCredentialUsageDetails",cause="forbidden"} 0"#
        ));
        assert!(
            !text.contains(
                r#"entra_exporter_report_last_success_timestamp_seconds{tenant="fabrikam""#
            )
        );
    }

    #[test]
    fn every_family_appears_once_with_help_and_type() {
        let (store, cache) = cache();
        store.register("t", "userCredentialUsageDetails", settings());
        let mut snapshot = Snapshot::default();
        let labels = vec!["reset".into(), "sms".into(), "failure".into(), "x".into()];
        snapshot.push(&WINDOW_EVENTS, labels.clone(), 1.0);
        snapshot.push(&WINDOW_EVENTS, labels, 2.0);
        store.record_success("t", "userCredentialUsageDetails", snapshot, Duration::ZERO);
        let text = text(&cache);
        let mut typed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let helped = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        let count = typed.len();
        typed.sort_unstable();
        typed.dedup();
        assert_eq!(typed.len(), count, "a family twice:\n{text}");
        assert_eq!(helped, count);
        let window: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("entra_credential_usage_window_events{"))
            .collect();
        assert_eq!(window.len(), 1, "{text}");
        assert!(
            window[0].ends_with(" 3"),
            "the repeated key is summed: {text}"
        );
    }

    #[test]
    fn the_cached_text_is_kept_until_the_store_changes_or_a_snapshot_ages_out() {
        let (store, cache) = cache();
        store.register("t", "credentialUserRegistrationCount", settings());
        let first = cache.scrape(false).unwrap().chunks[0].clone();
        let again = cache.scrape(false).unwrap().chunks[0].clone();
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "rendered again without a change"
        );
        let mut snapshot = Snapshot::default();
        snapshot.push(
            &crate::reports::legacy::credential_user_registration_count::USERS,
            Vec::new(),
            250.0,
        );
        store.record_success(
            "t",
            "credentialUserRegistrationCount",
            snapshot,
            Duration::ZERO,
        );
        let changed = cache.scrape(false).unwrap().chunks[0].clone();
        assert_ne!(changed.as_ptr(), first.as_ptr());
        assert!(std::str::from_utf8(&changed).unwrap().contains("} 250"));

        let now = Instant::now();
        let rendered = render(&store, store.generation(), now, 0);
        assert!(rendered.is_current(store.generation(), now));
        let later = now + Duration::from_secs(181);
        assert!(!rendered.is_current(store.generation(), later));
        let aged = render(&store, store.generation(), later, 0);
        let aged = std::str::from_utf8(&aged.text).unwrap();
        assert!(!aged.contains("} 250"), "{aged}");
        assert!(aged.contains("entra_exporter_report_up{"));
    }

    #[test]
    fn gzip_holds_the_same_text_and_compresses_the_cached_part_once() {
        let (store, cache) = cache();
        store.register("t", "credentialUserRegistrationCount", settings());
        let gzip = cache.scrape(true).unwrap();
        let again = cache.scrape(true).unwrap();
        assert_eq!(gzip.chunks[0].as_ptr(), again.chunks[0].as_ptr());
        let member: Vec<u8> = gzip.chunks.concat();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&member[..])
            .read_to_string(&mut text)
            .unwrap();
        let identity = cache.scrape(false).unwrap();
        assert!(text.starts_with(std::str::from_utf8(&identity.chunks[0]).unwrap()));
        assert!(text.contains("entra_exporter_build_info{"));
        #[cfg(target_os = "linux")]
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    }
}
