//! The reports. Each file is one Graph report, named after it, in [`legacy`] (the deprecated
//! beta reports) or [`successor`] (their v1.0 successors); [`authentication_methods_policy`] is
//! the policy behind them and [`shared`] holds what several reports share. A report's
//! [`ReportSpec`] says all the exporter needs to know of it: what it fetches, the fields its
//! rows read, whether its counters are persisted, which metrics it makes. The lists of reports
//! elsewhere (the persisted ones, the property tests' parsers and fields) are derived from
//! [`ALL`] or checked against it by a test. docs/adding-a-report.md lists what else to touch.

pub mod authentication_methods_policy;
pub mod legacy;
pub mod shared;
pub mod successor;

#[cfg(test)]
mod properties;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

pub use shared::events::SavedEvents;

use crate::config::{EventLabelLimits, GroupConfig, TenantConfig};
use crate::graph::{GraphClient, GraphError};
use crate::snapshot::{MetricDef, Snapshot};
use crate::state::StateFile;
use shared::strength::StrengthTable;

/// Every report, in the order they are polled at start.
pub const ALL: &[&ReportSpec] = &[
    // Legacy beta reports, deprecated by Microsoft (docs/reports.md, "Legacy and successor reports").
    &legacy::credential_user_registration_count::SPEC,
    &legacy::credential_usage_summary::SPEC,
    &legacy::credential_user_registration_details::SPEC,
    &legacy::user_credential_usage_details::SPEC,
    // Their successors.
    &successor::users_registered_by_feature::SPEC,
    &successor::users_registered_by_method::SPEC,
    &successor::user_registration_activity::SPEC,
    &successor::user_sign_ins_by_auth_method_summary::SPEC,
    &successor::user_mfa_sign_in_summary::SPEC,
    &successor::user_password_resets_and_changes_summary::SPEC,
    &successor::user_events_summary::SPEC,
    &successor::user_registration_details::SPEC,
    // The policy behind them.
    &authentication_methods_policy::SPEC,
];

/// Reports whose counters are persisted in `--state.file` across restarts.
pub fn persisted() -> impl Iterator<Item = &'static ReportSpec> {
    ALL.iter().copied().filter(|spec| spec.persisted)
}

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

impl BuildContext {
    pub fn new(
        tenant: &TenantConfig,
        event_label_limits: EventLabelLimits,
        strength: Arc<StrengthTable>,
        state: Option<Arc<StateFile<SavedEvents>>>,
    ) -> Self {
        let details = &successor::user_registration_details::SPEC;
        Self {
            tenant: tenant.name.clone(),
            event_label_limits,
            strength,
            groups: tenant.groups.clone().into(),
            shared: Arc::new(TenantShared::new(
                tenant
                    .report_settings(details.name, details.default_interval)
                    .max_age,
            )),
            state,
        }
    }
}

/// Distinct unknown authentication methods remembered per tenant for logging them once; Graph
/// adds a few a year, so more than this means garbage, which is not worth a line each.
const UNKNOWN_METHODS_LOGGED: usize = 100;

/// What the reports of one tenant share: the userRegistrationDetails totals that
/// usersRegisteredByFeature/-Method fall back on when Graph refuses them app-only, and the
/// unknown authentication methods already logged.
#[derive(Debug)]
pub struct TenantShared {
    registration_totals: Mutex<Option<PublishedTotals>>,
    /// userRegistrationDetails' max_age: its totals stand in for the summaries that long.
    registration_max_age: Duration,
    unknown_methods: Mutex<HashSet<String>>,
}

/// A complete userRegistrationDetails scan's totals, and until when they may be served.
#[derive(Debug, Clone)]
pub struct PublishedTotals {
    pub totals: Arc<successor::user_registration_details::RegistrationTotals>,
    /// `None` when the max_age reaches beyond what the clock can represent: no limit.
    /// Monotonic, as every age.
    pub fresh_until: Option<Instant>,
}

impl TenantShared {
    pub fn new(registration_max_age: Duration) -> Self {
        Self {
            registration_totals: Mutex::new(None),
            registration_max_age,
            unknown_methods: Mutex::new(HashSet::new()),
        }
    }

    /// True the first time a report of this tenant meets `method` outside the strength table.
    pub fn first_unknown_method(&self, method: &str) -> bool {
        let Ok(mut seen) = self.unknown_methods.lock() else {
            return false;
        };
        if seen.contains(method) || seen.len() >= UNKNOWN_METHODS_LOGGED {
            return false;
        }
        seen.insert(method.to_owned())
    }

    /// Publishes the totals of a scan that completed now.
    pub fn publish_registration_totals(
        &self,
        totals: successor::user_registration_details::RegistrationTotals,
    ) {
        let published = PublishedTotals {
            totals: Arc::new(totals),
            fresh_until: Instant::now().checked_add(self.registration_max_age),
        };
        if let Ok(mut slot) = self.registration_totals.lock() {
            *slot = Some(published);
        }
    }

    /// The last scan's totals, fresh or not.
    pub fn registration_totals(&self) -> Option<PublishedTotals> {
        self.registration_totals
            .lock()
            .ok()
            .and_then(|slot| slot.clone())
    }
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

pub fn spec(name: &str) -> Option<&'static ReportSpec> {
    ALL.iter().copied().find(|spec| spec.name == name)
}

pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|spec| spec.name).collect()
}

/// userRegistrationDetails and userEventsSummary, app-only.
const AUDIT_LOG_PERMISSION: &str =
    "application permission AuditLog.Read.All (admin consent), and an Entra ID P1 or P2 licence";

/// Microsoft documents these summaries as delegated-only; the exporter tries them app-only and
/// falls back or reports 403 clearly.
const DELEGATED_SUMMARY_PERMISSION: &str = "application permission AuditLog.Read.All (admin consent) and an Entra ID P1 or P2 licence; Microsoft documents this API as delegated-only, so app-only calls may stay forbidden";

/// The legacy beta reports need Reports.Read.All; app-only calls also need Directory.Read.All
/// for Graph's licence check (microsoft-graph-docs #12911).
const LEGACY_PERMISSION: &str = "application permission Reports.Read.All plus Directory.Read.All (admin consent), and an Entra ID P1 or P2 licence";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Kind;

    #[test]
    fn unknown_methods_are_logged_once_per_tenant_and_remembered_within_bounds() {
        let shared = TenantShared::new(Duration::from_secs(3600));
        assert!(shared.first_unknown_method("qrCode"));
        assert!(!shared.first_unknown_method("qrCode"));
        assert!(TenantShared::new(Duration::from_secs(3600)).first_unknown_method("qrCode"));
        for i in 1..UNKNOWN_METHODS_LOGGED {
            assert!(shared.first_unknown_method(&format!("method{i}")));
        }
        assert!(!shared.first_unknown_method("one-too-many"));
    }

    #[test]
    fn specs_describe_their_report_consistently() {
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "a report name is listed twice");
        for spec in ALL {
            // Legacy reports sit directly under /reports; their successors under
            // /reports/authenticationMethods; the policy is no report.
            let successor_path = spec.probe.contains("/reports/authenticationMethods/");
            let legacy_path = spec.probe.contains("/reports/") && !successor_path;
            assert_eq!(spec.is_legacy(), legacy_path, "{}", spec.name);
            for successor in spec.successor.into_iter().flat_map(|s| s.split(" / ")) {
                let successor = super::spec(successor)
                    .unwrap_or_else(|| panic!("{}: no report {successor}", spec.name));
                assert!(!successor.is_legacy(), "{}", spec.name);
            }
            if let Some(fallback) = spec.fallback {
                assert!(super::spec(fallback).is_some(), "{}", spec.name);
            }
            assert!(!spec.fields.is_empty(), "{} reads no field", spec.name);
            assert!(!spec.metrics.is_empty(), "{} makes no metric", spec.name);
        }
        // Counters must not restart from zero: a report that makes one persists it.
        let counts = |spec: &ReportSpec| spec.metrics.iter().any(|m| m.kind == Kind::Counter);
        for spec in ALL {
            assert_eq!(spec.persisted, counts(spec), "{}", spec.name);
        }
        assert!(persisted().count() > 0);
    }
}
