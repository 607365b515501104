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

mod spec;

use std::sync::Arc;

pub use shared::saved_events::SavedEvents;
pub use shared::tenant::{PublishedTotals, RegistrationTotals, TenantShared};
pub use spec::{
    BuildContext, DAILY_INTERVAL, DETAILS_INTERVAL, EVENTS_INTERVAL, POLICY_INTERVAL, Report,
    ReportSpec, SUMMARY_INTERVAL, UNAVAILABLE_RETRY,
};

use crate::config::{EventLabelLimits, TenantConfig};
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

pub fn spec(name: &str) -> Option<&'static ReportSpec> {
    ALL.iter().copied().find(|spec| spec.name == name)
}

pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|spec| spec.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Kind;

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
