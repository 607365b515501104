//! What every report is and implements: its [`ReportSpec`], the [`Report`] trait, what a
//! tenant's reports are built with ([`BuildContext`]), the default intervals and the
//! permissions the specs quote. The registry of reports ([`super::ALL`]) is in the parent.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::shared::saved_events::SavedEvents;
use super::shared::strength::StrengthTable;
use super::shared::tenant::TenantShared;
use crate::config::{EventLabelLimits, GroupConfig};
use crate::graph::{GraphClient, GraphError};
use crate::snapshot::{MetricDef, Snapshot};
use crate::state::StateFile;

/// Summaries are cheap (one request each) and Graph refreshes them every few hours.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Per-user scans cost a request per page; the data behind them is hours old anyway.
pub const DETAILS_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// Usage events feed the failure-spike alert, which should fire within 15 minutes of the first
/// poll that lists a spike. A quiet poll costs one request (1,000 events a page).
pub const EVENTS_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Daily summaries change once a day; hourly polls catch a new day soon enough.
pub const DAILY_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// The authentication methods policy changes rarely, but a change (SMS enabled again, the
/// campaign switched off) is worth seeing within the quarter hour; one request a poll.
pub const POLICY_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// The longest wait before a report the tenant does not offer (or forbids) is tried again; the
/// waits grow from the report's own interval up to this.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_secs(60 * 60);

/// What a report is, independent of any tenant.
pub struct ReportSpec {
    /// Graph's name for the report; the `report` label and the config key.
    pub name: &'static str,
    pub default_interval: Duration,
    /// Permissions and licence the report needs, quoted when Graph answers 403.
    pub permission: &'static str,
    /// What replaces the report once Microsoft retires it, quoted when Graph says it is gone;
    /// `Some` for exactly the legacy reports ([`ReportSpec::is_legacy`]).
    pub successor: Option<&'static str>,
    /// One cheap request that tells whether Graph serves the report to the tenant (`check`):
    /// `$top=1` where the API accepts it.
    pub probe: &'static str,
    /// The report whose results stand in while Graph refuses this one.
    pub fallback: Option<&'static str>,
    pub metrics: &'static [&'static MetricDef],
    /// Graph's names of the fields its rows (or document) read; the property tests put any
    /// value in them.
    pub fields: &'static [&'static str],
    /// Whether its counters are persisted in `--state.file` across restarts.
    pub persisted: bool,
    /// Builds the report's per-tenant state.
    pub build: fn(&BuildContext) -> Box<dyn Report>,
}

/// What a tenant's reports are built with: settings from the configuration and what the
/// tenant's reports share.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The `tenant` label.
    pub tenant: String,
    pub event_label_limits: EventLabelLimits,
    /// The authentication strength classes, the same for every tenant.
    pub strength: Arc<StrengthTable>,
    /// The tenant's groups, broken down by the userRegistrationDetails scan.
    pub groups: Arc<[GroupConfig]>,
    pub shared: Arc<TenantShared>,
    /// `--state.file`, where the events reports keep their counters across restarts.
    pub state: Option<Arc<StateFile<SavedEvents>>>,
}

/// One report of one tenant. `poll` reads the report completely and returns its metrics; state
/// it keeps between polls (such as counters) only changes when a poll completes.
#[async_trait]
pub trait Report: Send {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError>;
}

impl ReportSpec {
    /// A legacy beta report, deprecated by Microsoft, which names its successor.
    pub fn is_legacy(&self) -> bool {
        self.successor.is_some()
    }
}

/// userRegistrationDetails and userEventsSummary, app-only.
pub(super) const AUDIT_LOG_PERMISSION: &str =
    "application permission AuditLog.Read.All (admin consent), and an Entra ID P1 or P2 licence";

/// Microsoft documents these summaries as delegated-only; the exporter tries them app-only and
/// falls back or reports 403 clearly.
pub(super) const DELEGATED_SUMMARY_PERMISSION: &str = "application permission AuditLog.Read.All (admin consent) and an Entra ID P1 or P2 licence; Microsoft documents this API as delegated-only, so app-only calls may stay forbidden";

/// The legacy beta reports need Reports.Read.All; app-only calls also need Directory.Read.All
/// for Graph's licence check (microsoft-graph-docs #12911).
pub(super) const LEGACY_PERMISSION: &str = "application permission Reports.Read.All plus Directory.Read.All (admin consent), and an Entra ID P1 or P2 licence";
