//! usersRegisteredByFeature and usersRegisteredByMethod: Microsoft documents them as
//! delegated-only. The exporter tries them app-only; on 403 it logs once and serves the same
//! figures from the tenant's last complete userRegistrationDetails scan (`source="details"`),
//! asking Graph again hourly in case the permission appears. Those figures age out with the
//! scan's own max_age: once the scan's result is older, the fallback fails and its values
//! vanish, exactly when the scan's own values do.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::graph::{GraphClient, GraphError, Unavailability};
use crate::reports::shared::tenant::{PublishedTotals, TenantShared};
use crate::reports::spec::{BuildContext, UNAVAILABLE_RETRY};
use crate::reports::successor::user_registration_details;
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
#[derive(Debug)]
pub enum Figures<T> {
    Summary(T),
    /// The details scan's totals, to be served only until their `fresh_until`.
    Details(PublishedTotals),
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
                        error = %crate::errors::error_chain(&err),
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
        let source_report = user_registration_details::SPEC.name;
        let published = self
            .shared
            .registration_totals()
            .ok_or(GraphError::NoFallbackData {
                report,
                source_report,
            })?;
        if published
            .fresh_until
            .is_some_and(|until| std::time::Instant::now() > until)
        {
            return Err(GraphError::FallbackStale {
                report,
                source_report,
            });
        }
        Ok(Figures::Details(published))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::shared::tenant::RegistrationTotals;
    use std::time::Duration;

    #[test]
    fn fallback_figures_age_out_with_the_scans_max_age() {
        let fallback = |max_age| {
            let shared = Arc::new(TenantShared::new(max_age));
            let fallback = Fallback {
                shared: shared.clone(),
                next_probe: None,
            };
            (shared, fallback)
        };
        let (shared, fresh) = fallback(Duration::from_secs(3600));
        let err = fresh.details::<()>("usersRegisteredByFeature").unwrap_err();
        assert_eq!(err.awaited_report(), Some("userRegistrationDetails"));
        shared.publish_registration_totals(RegistrationTotals::default());
        match fresh.details::<()>("usersRegisteredByFeature") {
            Ok(Figures::Details(published)) => {
                assert!(
                    published.fresh_until
                        > Some(std::time::Instant::now() + Duration::from_secs(3000))
                );
            }
            _ => panic!("fresh totals are served"),
        }

        // A scan older than its max_age (zero here) no longer stands in: the poll fails, and
        // it is a failure, not a wait for a first scan.
        let (shared, stale) = fallback(Duration::ZERO);
        shared.publish_registration_totals(RegistrationTotals::default());
        std::thread::sleep(Duration::from_millis(5));
        let err = stale.details::<()>("usersRegisteredByFeature").unwrap_err();
        assert!(matches!(err, GraphError::FallbackStale { .. }), "{err}");
        assert_eq!(err.awaited_report(), None);
        assert!(err.to_string().contains("max_age"), "{err}");

        // A max_age beyond what the clock can hold means no limit, not a panic.
        let (shared, forever) = fallback(Duration::MAX);
        shared.publish_registration_totals(RegistrationTotals::default());
        assert!(forever.details::<()>("usersRegisteredByFeature").is_ok());
    }
}
