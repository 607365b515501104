//! What the reports of one tenant share while the exporter runs: the last userRegistrationDetails
//! scan's totals, on which usersRegisteredByFeature/-Method fall back, and the unknown
//! authentication methods already logged.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What usersRegisteredByFeature and usersRegisteredByMethod report, computed from a complete
/// userRegistrationDetails scan.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RegistrationTotals {
    pub users: u64,
    /// Users per feature of userRegistrationDetails' `SUMMARY_FEATURES`.
    pub by_feature: BTreeMap<&'static str, u64>,
    /// Users per registered method (bounded like the method label).
    pub by_method: BTreeMap<String, u64>,
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
    pub totals: Arc<RegistrationTotals>,
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
    pub fn publish_registration_totals(&self, totals: RegistrationTotals) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
