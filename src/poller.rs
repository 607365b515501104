//! One poll loop per tenant. Each enabled report runs on its own interval, all of them sharing
//! the tenant's [`GraphClient`] and therefore its request budget. A completed poll replaces the
//! report's snapshot; a failed one keeps the last good result until it is too old.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::TenantConfig;
use crate::graph::{GraphClient, GraphError, Unavailability};
use crate::reports::strength::StrengthTable;
use crate::reports::{self, BuildContext, ReportSpec, UNAVAILABLE_RETRY};
use crate::snapshot::{Status, Store};

/// Registers the tenant's reports in the store and polls them until `shutdown`.
pub async fn run_tenant(
    tenant: TenantConfig,
    graph: Arc<GraphClient>,
    store: Arc<Store>,
    failure_reason_limit: usize,
    strength: Arc<StrengthTable>,
    shutdown: CancellationToken,
) {
    // One context per tenant: its reports share state with each other, never across tenants.
    let context = BuildContext::new(failure_reason_limit, strength, tenant.groups.clone().into());
    let mut loops = JoinSet::new();
    for spec in reports::ALL.iter().copied() {
        let settings = tenant.report_settings(spec.name, spec.default_interval);
        store.register(&tenant.name, spec.name, settings);
        if !settings.enabled {
            info!(tenant = %tenant.name, report = spec.name, "report disabled in the configuration");
            continue;
        }
        let report_loop = ReportLoop {
            spec,
            tenant: tenant.name.clone(),
            interval: settings.interval,
            graph: graph.clone(),
            store: store.clone(),
        };
        let span = info_span!("report", tenant = %tenant.name, report = spec.name);
        loops.spawn(
            report_loop
                .run(context.clone(), shutdown.clone())
                .instrument(span),
        );
    }
    while loops.join_next().await.is_some() {}
}

struct ReportLoop {
    spec: &'static ReportSpec,
    tenant: String,
    interval: Duration,
    graph: Arc<GraphClient>,
    store: Arc<Store>,
}

impl ReportLoop {
    async fn run(self, context: BuildContext, shutdown: CancellationToken) {
        let mut report = (self.spec.build)(&context);
        loop {
            let started = Instant::now();
            let result = tokio::select! {
                result = report.poll(&self.graph) => result,
                () = shutdown.cancelled() => return,
            };
            let next = self.record(result, started.elapsed());
            let wake = started + next;
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Stores the outcome, logs it, and returns the time from this poll's start to the next.
    fn record(
        &self,
        result: Result<crate::snapshot::Snapshot, GraphError>,
        took: Duration,
    ) -> Duration {
        let (tenant, report) = (self.tenant.as_str(), self.spec.name);
        match result {
            Ok(snapshot) => {
                let before = self.store.record_success(tenant, report, snapshot, took);
                if matches!(before, Status::Failing | Status::Unavailable) {
                    info!(took = ?took, "report polled successfully again");
                } else {
                    debug!(took = ?took, "report polled");
                }
                self.interval
            }
            Err(err) => match err.unavailability() {
                Some(cause) => {
                    let message = self.unavailable_message(cause, &err);
                    let before = self.store.record_failure(
                        tenant,
                        report,
                        Status::Unavailable,
                        message.clone(),
                        took,
                    );
                    // One clear line when it happens, not one an hour.
                    if before != Status::Unavailable {
                        warn!("{message}");
                    } else {
                        debug!("{message}");
                    }
                    self.interval.max(UNAVAILABLE_RETRY)
                }
                None => {
                    let message = crate::error_chain(&err);
                    warn!(error = %message, "report poll failed; keeping the last good values");
                    self.store
                        .record_failure(tenant, report, Status::Failing, message, took);
                    self.interval
                }
            },
        }
    }

    fn unavailable_message(&self, cause: Unavailability, err: &GraphError) -> String {
        let report = self.spec.name;
        let disable = format!(
            "or set reports.{report}.enabled: false for tenant {}",
            self.tenant
        );
        match cause {
            Unavailability::Retired => {
                let successor = self
                    .spec
                    .successor
                    .map(|s| format!("; its successor is {s}"))
                    .unwrap_or_default();
                format!(
                    "report {report} is not offered to this tenant: Microsoft has retired the endpoint ({err}). \
                     Retrying hourly{successor}; to silence this, {disable}"
                )
            }
            Unavailability::Forbidden => format!(
                "report {report} is forbidden for this app ({err}). Fix: grant the {} \
                 and wait for consent to propagate; retrying hourly, {disable}",
                self.spec.permission
            ),
        }
    }
}
