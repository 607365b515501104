//! The exporter's own metrics (`entra_exporter_*`):
//!
//! - the per-report poll status families ([`POLL_STATUS`]: up, last success, duration, rows,
//!   interval, unavailable), rendered from the [`Store`](crate::snapshot::Store) with the
//!   reports' families by the [`scrape_cache`](crate::scrape_cache);
//! - the prometheus [`Registry`] in [`Metrics`] (Graph request counters, build, web-config,
//!   credential and shard info: small, continuously changing), and the handles the rest of the
//!   exporter updates. A new exporter-level metric is registered in [`Metrics::new`].
//!
//! The registry reserves every Store-derived name (the reports' and the poll status'), so
//! registering one of them in it fails at start instead of serving a family twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::reports;
use crate::snapshot::{Kind, MetricDef};

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

/// The poll status of every report of every tenant, rendered from the store.
pub const POLL_STATUS: [&MetricDef; 6] = [
    &REPORT_UP,
    &REPORT_LAST_SUCCESS,
    &REPORT_DURATION,
    &REPORT_ROWS,
    &REPORT_INTERVAL,
    &REPORT_UNAVAILABLE,
];

/// The registry of exporter-level metrics, and the handles the rest of the exporter updates.
pub struct Metrics {
    pub registry: Registry,
    /// Moves whenever a [`PromptGauge`] is set.
    prompt_changes: Arc<AtomicU64>,
    /// `entra_exporter_graph_requests_total{tenant,report,code}`.
    pub graph_requests: IntCounterVec,
    /// `entra_exporter_report_rows_skipped_total{tenant,report}`.
    pub report_rows_skipped: IntCounterVec,
    /// `entra_exporter_web_config_last_reload_successful`.
    pub web_config_reload_successful: PromptGauge,
    /// `entra_exporter_state_writes_total{result}`; without `--state.file` it has no series.
    pub state_writes: IntCounterVec,
    /// `entra_exporter_credential_up{tenant}`.
    pub credential_up: IntGaugeVec,
    /// `entra_exporter_shard_info{shard,total_shards}`.
    pub shard_info: IntGaugeVec,
    /// `entra_exporter_shard_tenants`.
    pub shard_tenants: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        registry.register(Box::new(ReservedNames::new()?))?;

        let graph_requests = IntCounterVec::new(
            Opts::new(
                "entra_exporter_graph_requests_total",
                "HTTP responses from Microsoft Graph by status code; transport errors are code=\"error\".",
            ),
            &["tenant", "report", "code"],
        )?;
        registry.register(Box::new(graph_requests.clone()))?;
        let report_rows_skipped = IntCounterVec::new(
            Opts::new(
                "entra_exporter_report_rows_skipped_total",
                "Rows of the report that could not be parsed (a null or wrong-typed field, a missing id) and were skipped while the rest of the poll counted; a row is counted each time a poll reads it.",
            ),
            &["tenant", "report"],
        )?;
        registry.register(Box::new(report_rows_skipped.clone()))?;
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

        let prompt_changes = Arc::new(AtomicU64::new(0));
        let web_config_reload_successful = IntGauge::new(
            "entra_exporter_web_config_last_reload_successful",
            "1 if the last read of --web.config.file succeeded (or none is given), 0 if it failed and the previous configuration is still in use.",
        )?;
        web_config_reload_successful.set(1);
        registry.register(Box::new(web_config_reload_successful.clone()))?;
        let web_config_reload_successful = PromptGauge {
            gauge: web_config_reload_successful,
            changes: prompt_changes.clone(),
        };

        let credential_up = IntGaugeVec::new(
            Opts::new(
                "entra_exporter_credential_up",
                "1 while the tenant has a valid token (a failed refresh leaves it 1 until the token expires); 0 once none is left and a request for one failed, and before the first.",
            ),
            &["tenant"],
        )?;
        registry.register(Box::new(credential_up.clone()))?;

        let shard_info = IntGaugeVec::new(
            Opts::new(
                "entra_exporter_shard_info",
                "A metric with a constant '1' value labelled by this replica's shard (0-based) and the number of shards; 0 of 1 when the tenants are not sharded.",
            ),
            &["shard", "total_shards"],
        )?;
        registry.register(Box::new(shard_info.clone()))?;

        let shard_tenants = IntGauge::new(
            "entra_exporter_shard_tenants",
            "Tenants this replica polls: those of the configuration that its shard owns.",
        )?;
        registry.register(Box::new(shard_tenants.clone()))?;

        Ok(Self {
            registry,
            prompt_changes,
            graph_requests,
            report_rows_skipped,
            web_config_reload_successful,
            state_writes,
            credential_up,
            shard_info,
            shard_tenants,
        })
    }

    /// Moves whenever a [`PromptGauge`] is set: the registry's text must be encoded again.
    pub fn prompt_changes(&self) -> Arc<AtomicU64> {
        self.prompt_changes.clone()
    }
}

/// An exporter-level gauge whose new value shows on the very next scrape: setting it makes the
/// registry's text be encoded again, where counters may lag up to a second.
#[derive(Clone)]
pub struct PromptGauge {
    gauge: IntGauge,
    changes: Arc<AtomicU64>,
}

impl PromptGauge {
    pub fn set(&self, value: i64) {
        self.gauge.set(value);
        // After the value, so that a scrape that sees the change encodes the new value.
        self.changes.fetch_add(1, Ordering::AcqRel);
    }
}

/// The source revision, from `GIT_REVISION` at build time when the build sets it.
pub fn revision() -> &'static str {
    option_env!("GIT_REVISION").unwrap_or("unknown")
}

fn all_defs() -> impl Iterator<Item = &'static MetricDef> {
    reports::ALL
        .iter()
        .flat_map(|spec| spec.metrics.iter().copied())
        .chain(POLL_STATUS)
}

/// Describes every Store-derived family to the registry and collects nothing: the registry
/// then refuses a collector that would serve one of these names a second time.
struct ReservedNames {
    descs: Vec<Desc>,
}

impl ReservedNames {
    fn new() -> Result<Self, prometheus::Error> {
        let mut defs: Vec<&MetricDef> = all_defs().collect();
        // Two reports may share a family (the same static); describe it once.
        defs.sort_by_key(|def| def.name);
        defs.dedup_by(|a, b| std::ptr::eq(*a, *b));
        let descs = defs
            .into_iter()
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
        Ok(Self { descs })
    }
}

impl Collector for ReservedNames {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_family_cannot_also_be_registered() {
        let metrics = Metrics::new().unwrap();
        let twice = IntGauge::new("entra_exporter_report_up", "again").unwrap();
        assert!(metrics.registry.register(Box::new(twice)).is_err());
        let users = IntGauge::new(
            crate::reports::legacy::credential_user_registration_count::USERS.name,
            "again",
        )
        .unwrap();
        assert!(metrics.registry.register(Box::new(users)).is_err());
    }
}
