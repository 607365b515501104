//! One poll loop per tenant. Each enabled report runs on its own interval, all of them sharing
//! the tenant's [`GraphClient`] and therefore its request budget. A completed poll replaces the
//! report's snapshot; a failed one keeps the last good result until it is too old.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::TenantConfig;
use crate::graph::{GraphClient, GraphError, Unavailability};
use crate::reports::strength::StrengthTable;
use crate::reports::{self, BuildContext, ReportSpec, SavedEvents, UNAVAILABLE_RETRY};
use crate::snapshot::{Status, Store};
use crate::state::StateFile;

/// Registers the tenant's reports in the store and polls them until `shutdown`.
pub async fn run_tenant(
    tenant: TenantConfig,
    graph: Arc<GraphClient>,
    store: Arc<Store>,
    failure_reason_limit: usize,
    strength: Arc<StrengthTable>,
    state: Option<Arc<StateFile<SavedEvents>>>,
    shutdown: CancellationToken,
) {
    // One context per tenant: its reports share state with each other, never across tenants.
    let context = BuildContext::new(&tenant, failure_reason_limit, strength, state);
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
            unavailable_backoff: None,
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

/// How soon a report that waits for another report's first results asks again: its own poll
/// costs no Graph request then, and readiness waits for it.
const WAITING_RETRY: Duration = Duration::from_secs(15);

struct ReportLoop {
    spec: &'static ReportSpec,
    tenant: String,
    interval: Duration,
    graph: Arc<GraphClient>,
    store: Arc<Store>,
    /// While Graph refuses the report: the waits before asking again.
    unavailable_backoff: Option<ExponentialBackoff>,
}

/// Waits for a report Graph refuses: from its own interval, doubling, up to
/// [`UNAVAILABLE_RETRY`] (or the interval, if that is longer). A one-off 403 or 404 thus costs
/// one interval, and a report that stays refused is asked about hourly.
fn unavailable_backoff(interval: Duration) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(interval)
        .with_max_delay(interval.max(UNAVAILABLE_RETRY))
        .with_factor(2.0)
        .without_max_times()
        .build()
}

impl ReportLoop {
    async fn run(mut self, context: BuildContext, shutdown: CancellationToken) {
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
        &mut self,
        result: Result<crate::snapshot::Snapshot, GraphError>,
        took: Duration,
    ) -> Duration {
        let (tenant, report) = (self.tenant.as_str(), self.spec.name);
        let err = match result {
            Ok(snapshot) => {
                self.unavailable_backoff = None;
                let before = self.store.record_success(tenant, report, snapshot, took);
                if matches!(before, Status::Failing | Status::Unavailable(_)) {
                    info!(took = ?took, "report polled successfully again");
                } else {
                    debug!(took = ?took, "report polled");
                }
                return self.interval;
            }
            Err(err) => err,
        };
        if let Some(cause) = err.unavailability() {
            let message = self.unavailable_message(cause, &err);
            let status = Status::Unavailable(cause);
            let before = self
                .store
                .record_failure(tenant, report, status, message.clone(), took);
            // One clear line when it happens, not one per retry.
            if before != status {
                warn!("{message}");
            } else {
                debug!("{message}");
            }
            let interval = self.interval;
            return self
                .unavailable_backoff
                .get_or_insert_with(|| unavailable_backoff(interval))
                .next()
                .unwrap_or(UNAVAILABLE_RETRY);
        }
        self.unavailable_backoff = None;
        let message = crate::error_chain(&err);
        if let Some(awaited) = err.awaited_report()
            && self.store.status(tenant, awaited) == Some(Status::Pending)
        {
            // Not a failure: after a restart a large tenant's first userRegistrationDetails
            // scan takes a while, and the report stays pending until it is done.
            debug!(error = %message, "report waits for {awaited}");
            self.store.record_waiting(tenant, report, message, took);
            return self.interval.min(WAITING_RETRY);
        }
        warn!(error = %message, "report poll failed; keeping the last good values");
        self.store
            .record_failure(tenant, report, Status::Failing, message, took);
        self.interval
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
                     Retrying at growing intervals up to hourly{successor}; to silence this, {disable}"
                )
            }
            Unavailability::Forbidden => format!(
                "report {report} is forbidden for this app ({err}). Fix: grant the {} \
                 and wait for consent to propagate; retrying at growing intervals up to hourly, {disable}",
                self.spec.permission
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(backoff: ExponentialBackoff, n: usize) -> Vec<u64> {
        backoff.take(n).map(|d| d.as_secs() / 60).collect()
    }

    #[test]
    fn a_refused_report_is_asked_again_from_its_interval_doubling_up_to_hourly() {
        assert_eq!(
            minutes(unavailable_backoff(Duration::from_secs(300)), 7),
            [5, 10, 20, 40, 60, 60, 60]
        );
        // A report polled less often than hourly keeps its own interval.
        assert_eq!(
            minutes(unavailable_backoff(Duration::from_secs(7200)), 3),
            [120, 120, 120]
        );
    }
}
