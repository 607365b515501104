//! One poll loop per tenant. A tenant first gets a token, retrying for as long as it takes
//! without holding up the other tenants; then each enabled report runs on its own interval, all
//! of them sharing the tenant's [`GraphClient`] and therefore its request budget. A completed
//! poll replaces the report's snapshot; a failed one keeps the last good result until it is too
//! old.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::auth::Credential;
use crate::config::{EventLabelLimits, TenantConfig};
use crate::graph::{self, GraphClient, GraphError, Unavailability};
use crate::reports::shared::strength::StrengthTable;
use crate::reports::{self, BuildContext, ReportSpec, SavedEvents, UNAVAILABLE_RETRY};
use crate::snapshot::{Status, Store};
use crate::state::StateFile;

/// Token requests at start that run at once: a thousand tenants start in seconds, without a
/// thousand connections to the token endpoint.
pub const STARTUP_TOKEN_REQUESTS: usize = 16;

/// A tenant and what its reports are polled with.
pub struct Tenant {
    pub config: TenantConfig,
    pub credential: Arc<Credential>,
    pub graph: Arc<GraphClient>,
}

/// How a tenant's first token request went.
#[derive(Debug)]
pub enum FirstToken {
    Ok,
    /// A failure worth retrying: 5xx, 429, DNS, timeouts, TLS.
    Failed,
    /// The token endpoint refused the request (a 4xx other than 429): a wrong secret, an unknown
    /// tenant or client.
    Refused {
        tenant: String,
        error: GraphError,
    },
}

/// What every tenant's start shares: the slots for first token requests, and where each tenant
/// tells how its first one went.
pub struct Startup {
    slots: Semaphore,
    outcomes: mpsc::UnboundedSender<FirstToken>,
}

/// Whether the process keeps running after the first token requests.
#[derive(Debug)]
pub enum Verdict {
    /// At least one tenant got a token or may get one later (or there are no tenants).
    Run,
    /// Every tenant was refused: the first refusal, and how many tenants there were.
    AllRefused {
        tenant: String,
        error: GraphError,
        tenants: usize,
    },
    /// Shutting down before every tenant had answered.
    Stopped,
}

impl Startup {
    pub fn new() -> (Arc<Startup>, mpsc::UnboundedReceiver<FirstToken>) {
        let (outcomes, receiver) = mpsc::unbounded_channel();
        let startup = Startup {
            slots: Semaphore::new(STARTUP_TOKEN_REQUESTS),
            outcomes,
        };
        (Arc::new(startup), receiver)
    }

    /// Waits for the first token requests of `tenants` tenants until the process is sure to
    /// keep running: a single tenant that got a token, or may get one later, is enough.
    pub async fn verdict(
        mut outcomes: mpsc::UnboundedReceiver<FirstToken>,
        tenants: usize,
        shutdown: &CancellationToken,
    ) -> Verdict {
        let mut first_refusal = None;
        for _ in 0..tenants {
            let outcome = tokio::select! {
                outcome = outcomes.recv() => outcome,
                () = shutdown.cancelled() => return Verdict::Stopped,
            };
            match outcome {
                Some(FirstToken::Refused { tenant, error }) => {
                    first_refusal.get_or_insert((tenant, error));
                }
                Some(FirstToken::Ok | FirstToken::Failed) => return Verdict::Run,
                None => return Verdict::Stopped,
            }
        }
        match first_refusal {
            Some((tenant, error)) => Verdict::AllRefused {
                tenant,
                error,
                tenants,
            },
            None => Verdict::Run,
        }
    }
}

/// Registers the tenant's reports in the store, gets its first token (asking again at growing
/// intervals while it fails: its reports stay pending meanwhile), then polls them until
/// `shutdown`.
pub async fn run_tenant(
    tenant: Tenant,
    startup: Arc<Startup>,
    store: Arc<Store>,
    event_label_limits: EventLabelLimits,
    strength: Arc<StrengthTable>,
    state: Option<Arc<StateFile<SavedEvents>>>,
    shutdown: CancellationToken,
) {
    let Tenant {
        config: tenant,
        credential,
        graph,
    } = tenant;
    let settings: Vec<_> = reports::ALL
        .iter()
        .map(|spec| {
            let settings = tenant.report_settings(spec.name, spec.default_interval);
            store.register(&tenant.name, spec.name, settings);
            (*spec, settings)
        })
        .collect();
    let obtained = tokio::select! {
        obtained = first_token(&tenant.name, &credential, graph.scope(), &startup) => obtained,
        () = shutdown.cancelled() => return,
    };
    store.token_requested(&tenant.name, obtained);
    if !obtained {
        loop {
            // The credential's own schedule: 1 minute after a failure, doubling up to 30.
            let wait = credential.next_attempt_in();
            debug!(tenant = %tenant.name, retry_in = ?wait, "asking for the tenant's token again later");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return,
            }
            let token = tokio::select! {
                token = credential.first_token(graph.scope()) => token,
                () = shutdown.cancelled() => return,
            };
            if token.is_ok() {
                store.token_requested(&tenant.name, true);
                break;
            }
        }
    }

    // One context per tenant: its reports share state with each other, never across tenants.
    let context = BuildContext::new(&tenant, event_label_limits, strength, state);
    let mut loops = JoinSet::new();
    for (spec, settings) in settings {
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

/// The tenant's first token request, within the start-up slots; tells `startup` how it went.
/// True if it got a token.
async fn first_token(
    tenant: &str,
    credential: &Credential,
    scope: &str,
    startup: &Startup,
) -> bool {
    let result = {
        let _slot = startup.slots.acquire().await;
        credential.first_token(scope).await
    };
    let outcome = match result {
        Ok(_) => FirstToken::Ok,
        Err(err) => match graph::token_error(&err) {
            error @ GraphError::Token {
                retryable: false, ..
            } => FirstToken::Refused {
                tenant: tenant.to_owned(),
                error,
            },
            _ => FirstToken::Failed,
        },
    };
    let obtained = matches!(outcome, FirstToken::Ok);
    // Nobody listens once the verdict is in; that is fine.
    let _ = startup.outcomes.send(outcome);
    obtained
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
        let message = crate::errors::error_chain(&err);
        if let Some(awaited) = err.awaited_report()
            && self.store.status(tenant, awaited) == Some(Status::Pending)
        {
            // Not a failure: after a restart a large tenant's first userRegistrationDetails
            // scan takes a while, and the report stays pending until it is done.
            debug!(error = %message, "report waits for {awaited}");
            self.store.record_waiting(tenant, report, message, took);
            return self.interval.min(WAITING_RETRY);
        }
        if matches!(err, GraphError::Token { .. }) {
            // The credential logs the tenant's failure once, and its recovery; not every report.
            debug!(error = %message, "report poll failed without a token; keeping the last good values");
        } else {
            warn!(error = %message, "report poll failed; keeping the last good values");
        }
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
    use azure_core::credentials::TokenCredential;

    fn minutes(backoff: ExponentialBackoff, n: usize) -> Vec<u64> {
        backoff.take(n).map(|d| d.as_secs() / 60).collect()
    }

    fn refused() -> FirstToken {
        FirstToken::Refused {
            tenant: "t".into(),
            error: GraphError::Token {
                message: "AADSTS7000215".into(),
                retryable: false,
            },
        }
    }

    /// Counts token requests in flight; each takes a second.
    #[derive(Debug, Default)]
    struct SlowTokens {
        in_flight: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TokenCredential for SlowTokens {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.in_flight.fetch_sub(1, SeqCst);
            Ok(azure_core::credentials::AccessToken::new(
                "token",
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            ))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn first_token_requests_run_sixteen_at_a_time() {
        let tokens = Arc::new(SlowTokens::default());
        let (startup, mut outcomes) = Startup::new();
        let started = Instant::now();
        let mut tenants = JoinSet::new();
        for i in 0..40 {
            let gauge = prometheus::IntGauge::new("up", "up").unwrap();
            let credential = Credential::new(&format!("t{i}"), tokens.clone(), gauge);
            let startup = startup.clone();
            tenants.spawn(async move {
                first_token(&format!("t{i}"), &credential, "scope", &startup).await
            });
        }
        while let Some(obtained) = tenants.join_next().await {
            assert!(obtained.unwrap());
        }
        assert_eq!(
            tokens.most.load(std::sync::atomic::Ordering::SeqCst),
            STARTUP_TOKEN_REQUESTS
        );
        // 40 requests of a second each, 16 at a time: three rounds.
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        for _ in 0..40 {
            assert!(matches!(outcomes.try_recv(), Ok(FirstToken::Ok)));
        }
    }

    #[tokio::test]
    async fn the_process_ends_only_when_every_tenant_is_refused() {
        let shutdown = CancellationToken::new();
        let verdict = |outcomes: Vec<FirstToken>| {
            let tenants = outcomes.len();
            let (startup, receiver) = Startup::new();
            for outcome in outcomes {
                startup.outcomes.send(outcome).unwrap();
            }
            let shutdown = shutdown.clone();
            async move { Startup::verdict(receiver, tenants, &shutdown).await }
        };
        assert!(matches!(
            verdict(vec![refused(), refused()]).await,
            Verdict::AllRefused { tenants: 2, .. }
        ));
        assert!(matches!(
            verdict(vec![refused(), FirstToken::Ok]).await,
            Verdict::Run
        ));
        // A passing failure ends nothing, even for a single tenant.
        assert!(matches!(
            verdict(vec![FirstToken::Failed]).await,
            Verdict::Run
        ));
        assert!(matches!(
            verdict(vec![refused(), FirstToken::Failed, refused()]).await,
            Verdict::Run
        ));
        assert!(matches!(verdict(Vec::new()).await, Verdict::Run));
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
