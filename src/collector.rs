//! The metrics registry. Report metrics and the per-report poll state are rendered from the
//! [`Store`] on each scrape by [`SnapshotCollector`]; a scrape costs the number of series, never
//! the size of the tenant, and never calls Graph.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::graph::Unavailability;
use crate::reports;
use crate::snapshot::{Kind, MetricDef, Status, Store};

pub static REPORT_UP: MetricDef = MetricDef {
    name: "entra_exporter_report_up",
    help: "1 if the last poll of the report succeeded, 0 if it failed.",
    kind: Kind::Gauge,
    labels: &["report"],
};

pub static REPORT_LAST_SUCCESS: MetricDef = MetricDef {
    name: "entra_exporter_report_last_success_timestamp_seconds",
    help: "Time the report was last polled successfully.",
    kind: Kind::Gauge,
    labels: &["report"],
};

pub static REPORT_DURATION: MetricDef = MetricDef {
    name: "entra_exporter_report_duration_seconds",
    help: "Duration of the last poll of the report, successful or not.",
    kind: Kind::Gauge,
    labels: &["report"],
};

pub static REPORT_ROWS: MetricDef = MetricDef {
    name: "entra_exporter_report_rows",
    help: "Rows Graph returned in the last complete poll of the report.",
    kind: Kind::Gauge,
    labels: &["report"],
};

pub static REPORT_INTERVAL: MetricDef = MetricDef {
    name: "entra_exporter_report_interval_seconds",
    help: "Configured poll interval of the report; alerts use it to tell stale data.",
    kind: Kind::Gauge,
    labels: &["report"],
};

pub static REPORT_UNAVAILABLE: MetricDef = MetricDef {
    name: "entra_exporter_report_unavailable",
    help: "1 while Graph refuses the report for this tenant for the cause: forbidden (403) or retired (400/404/410), as of the last poll; such reports are asked again at growing intervals up to hourly.",
    kind: Kind::Gauge,
    labels: &["report", "cause"],
};

const SELF_METRICS: [&MetricDef; 6] = [
    &REPORT_UP,
    &REPORT_LAST_SUCCESS,
    &REPORT_DURATION,
    &REPORT_ROWS,
    &REPORT_INTERVAL,
    &REPORT_UNAVAILABLE,
];

/// The registry served on the telemetry path, and the request counter the Graph clients share.
pub struct Metrics {
    pub registry: Registry,
    /// `entra_exporter_graph_requests_total{tenant,report,code}`.
    pub graph_requests: IntCounterVec,
    /// `entra_exporter_state_writes_total{result}`; without `--state.file` it has no series.
    pub state_writes: IntCounterVec,
}

impl Metrics {
    pub fn new(store: Arc<Store>) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let graph_requests = IntCounterVec::new(
            Opts::new(
                "entra_exporter_graph_requests_total",
                "HTTP responses from Microsoft Graph by status code; transport errors are code=\"error\".",
            ),
            &["tenant", "report", "code"],
        )?;
        registry.register(Box::new(graph_requests.clone()))?;
        let state_writes = IntCounterVec::new(
            Opts::new(
                "entra_exporter_state_writes_total",
                "Writes of the --state.file by result (success, error); a failed write is retried with the next events poll.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(state_writes.clone()))?;

        let build_info = IntGaugeVec::new(
            Opts::new(
                "entra_exporter_build_info",
                "A metric with a constant '1' value labelled by the exporter's version and revision.",
            ),
            &["version", "revision"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), revision()])
            .set(1);
        registry.register(Box::new(build_info))?;

        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        registry.register(Box::new(SnapshotCollector::new(store)?))?;
        Ok(Self {
            registry,
            graph_requests,
            state_writes,
        })
    }
}

/// The source revision, from `GIT_REVISION` at build time when the build sets it.
pub fn revision() -> &'static str {
    option_env!("GIT_REVISION").unwrap_or("unknown")
}

/// Renders the store's snapshots and poll state as metric families.
pub struct SnapshotCollector {
    store: Arc<Store>,
    descs: Vec<Desc>,
}

impl SnapshotCollector {
    pub fn new(store: Arc<Store>) -> Result<Self, prometheus::Error> {
        let descs = all_defs()
            .map(|def| {
                let mut labels = vec!["tenant".to_owned()];
                labels.extend(def.labels.iter().map(|l| (*l).to_owned()));
                Desc::new(
                    def.name.to_owned(),
                    def.help.to_owned(),
                    labels,
                    Default::default(),
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { store, descs })
    }
}

fn all_defs() -> impl Iterator<Item = &'static MetricDef> {
    reports::ALL
        .iter()
        .flat_map(|spec| spec.metrics.iter().copied())
        .chain(SELF_METRICS)
}

impl Collector for SnapshotCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let now = SystemTime::now();
        let mut families: BTreeMap<&'static str, MetricFamily> = BTreeMap::new();
        let mut add = |def: &'static MetricDef, tenant: &str, labels: &[&str], value: f64| {
            let family = families.entry(def.name).or_insert_with(|| new_family(def));
            family.mut_metric().push(metric(def, tenant, labels, value));
        };
        for (key, state) in self.store.states() {
            let tenant = key.tenant.as_str();
            let report = [key.report];
            if !state.settings.enabled {
                continue;
            }
            add(
                &REPORT_INTERVAL,
                tenant,
                &report,
                state.settings.interval.as_secs_f64(),
            );
            if state.status == Status::Pending {
                continue;
            }
            add(
                &REPORT_UP,
                tenant,
                &report,
                f64::from(u8::from(state.status == Status::Ok)),
            );
            for cause in Unavailability::ALL {
                add(
                    &REPORT_UNAVAILABLE,
                    tenant,
                    &[key.report, cause.as_str()],
                    f64::from(u8::from(state.status == Status::Unavailable(cause))),
                );
            }
            if let Some(success) = state.last_success {
                add(&REPORT_LAST_SUCCESS, tenant, &report, unix_seconds(success));
                add(&REPORT_ROWS, tenant, &report, state.snapshot.rows as f64);
            }
            if let Some(duration) = state.last_duration {
                add(&REPORT_DURATION, tenant, &report, duration.as_secs_f64());
            }
            if let Some(snapshot) = state.fresh_snapshot(now) {
                for sample in &snapshot.samples {
                    let labels: Vec<&str> = sample.labels.iter().map(String::as_str).collect();
                    add(sample.metric, tenant, &labels, sample.value);
                }
            }
        }
        families.into_values().collect()
    }
}

fn new_family(def: &MetricDef) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(def.name.to_owned());
    family.set_help(def.help.to_owned());
    family.set_field_type(match def.kind {
        Kind::Gauge => MetricType::GAUGE,
        Kind::Counter => MetricType::COUNTER,
    });
    family
}

fn metric(def: &MetricDef, tenant: &str, labels: &[&str], value: f64) -> proto::Metric {
    let mut pairs = Vec::with_capacity(labels.len() + 1);
    for (name, value) in std::iter::once(&"tenant")
        .chain(def.labels)
        .zip(std::iter::once(&tenant).chain(labels))
    {
        let mut pair = LabelPair::default();
        pair.set_name((*name).to_owned());
        pair.set_value((*value).to_owned());
        pairs.push(pair);
    }
    let mut metric = proto::Metric::default();
    metric.set_label(pairs);
    match def.kind {
        Kind::Gauge => {
            let mut gauge = proto::Gauge::default();
            gauge.set_value(value);
            metric.set_gauge(gauge);
        }
        Kind::Counter => {
            let mut counter = proto::Counter::default();
            counter.set_value(value);
            metric.set_counter(counter);
        }
    }
    metric
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
    use crate::reports::usage_details::{EVENTS_TOTAL, WINDOW_EVENTS};
    use crate::snapshot::Snapshot;
    use std::time::Duration;

    fn render(metrics: &Metrics) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&metrics.registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn renders_snapshots_self_metrics_and_escapes_label_values() {
        let store = Arc::new(Store::new());
        let metrics = Metrics::new(store.clone()).unwrap();
        let settings = ReportSettings {
            enabled: true,
            interval: Duration::from_secs(60),
            max_age: Duration::from_secs(180),
        };
        store.register("contoso", "userCredentialUsageDetails", settings);
        store.register("fabrikam", "userCredentialUsageDetails", settings);
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
        let text = render(&metrics);
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

        store.record_failure(
            "fabrikam",
            "userCredentialUsageDetails",
            Status::Failing,
            "boom".into(),
            Duration::ZERO,
        );
        let text = render(&metrics);
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
        let text = render(&metrics);
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
}
