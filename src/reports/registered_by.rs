//! usersRegisteredByFeature and usersRegisteredByMethod: Microsoft documents them as
//! delegated-only. The exporter tries them app-only; on 403 it logs once and serves the same
//! figures from the tenant's last complete userRegistrationDetails scan (`source="details"`),
//! asking Graph again hourly in case the permission appears.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::{info, warn};

use super::user_registration_details::{self, RegistrationTotals};
use super::{BuildContext, TenantShared, UNAVAILABLE_RETRY};
use crate::graph::{GraphClient, GraphError, Unavailability};
use crate::snapshot::{MetricDef, Snapshot};

/// The `source` label: Graph's own summary, or the userRegistrationDetails fallback.
pub const SOURCE_SUMMARY: &str = "summary";
pub const SOURCE_DETAILS: &str = "details";

/// A `{key, source}` family from (key, users) pairs.
pub fn snapshot<'a>(
    metric: &'static MetricDef,
    source: &str,
    pairs: impl IntoIterator<Item = (&'a str, u64)>,
) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for (key, users) in pairs {
        snapshot.push(
            metric,
            vec![key.to_owned(), source.to_owned()],
            users as f64,
        );
        if source == SOURCE_SUMMARY {
            snapshot.rows += 1;
        }
    }
    snapshot
}

/// Where a poll's figures came from.
pub enum Figures<T> {
    Summary(T),
    Details(Arc<RegistrationTotals>),
}

/// Per-report fallback state.
pub struct Fallback {
    shared: Arc<TenantShared>,
    /// Set while Graph refuses the summary: when to ask it again.
    next_probe: Option<Instant>,
}

impl Fallback {
    pub fn new(context: &BuildContext) -> Self {
        Self {
            shared: context.shared.clone(),
            next_probe: None,
        }
    }

    pub async fn poll<T: DeserializeOwned>(
        &mut self,
        graph: &GraphClient,
        report: &'static str,
        path: &str,
    ) -> Result<Figures<T>, GraphError> {
        if self.next_probe.is_some_and(|at| Instant::now() < at) {
            return self.details(report);
        }
        match graph.get::<T>(report, path).await {
            Ok(summary) => {
                if self.next_probe.take().is_some() {
                    info!("Graph now answers {report}; serving its own figures again");
                }
                Ok(Figures::Summary(summary))
            }
            Err(err) if err.unavailability() == Some(Unavailability::Forbidden) => {
                if self.next_probe.is_none() {
                    warn!(
                        error = %crate::error_chain(&err),
                        "{report} is refused for this app (Microsoft documents it as delegated-only); \
                         serving the same figures from userRegistrationDetails with source=\"details\" \
                         and asking Graph again hourly"
                    );
                }
                self.next_probe = Some(Instant::now() + UNAVAILABLE_RETRY);
                self.details(report)
            }
            Err(err) => Err(err),
        }
    }

    fn details<T>(&self, report: &'static str) -> Result<Figures<T>, GraphError> {
        self.shared
            .registration_totals()
            .map(Figures::Details)
            .ok_or(GraphError::NoFallbackData {
                report,
                source_report: user_registration_details::SPEC.name,
            })
    }
}
