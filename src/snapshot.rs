//! The last good result of every report of every tenant, and its poll status. A poll replaces
//! its report's snapshot in one swap; a scrape only reads, so scrapes never wait on Graph.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::config::ReportSettings;
use crate::graph::Unavailability;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// A metric family a report produces. `labels` excludes `tenant`, which every family has first.
#[derive(Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub metric: &'static MetricDef,
    /// Values for `metric.labels`, in order, each shared by every sample that has it: a
    /// thousand tenants repeat the same methods, features and outcomes.
    pub labels: Box<[Arc<str>]>,
    pub value: f64,
}

/// One shared copy of each label value in use.
fn intern(value: String) -> Arc<str> {
    /// Values no sample holds any more are let go once the set has doubled since the last
    /// sweep, so it stays near the number of values in use.
    struct Interner {
        values: HashSet<Arc<str>>,
        swept_at: usize,
    }
    static INTERNER: OnceLock<Mutex<Interner>> = OnceLock::new();
    let interner = INTERNER.get_or_init(|| {
        Mutex::new(Interner {
            values: HashSet::new(),
            swept_at: 0,
        })
    });
    // A panic elsewhere cannot leave the set inconsistent: each change is one insert or retain.
    let mut interner = interner.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(shared) = interner.values.get(value.as_str()) {
        return shared.clone();
    }
    if interner.values.len() >= 2 * interner.swept_at.max(512) {
        interner.values.retain(|v| Arc::strong_count(v) > 1);
        interner.swept_at = interner.values.len();
    }
    let shared: Arc<str> = Arc::from(value);
    interner.values.insert(shared.clone());
    shared
}

/// The metrics one poll of one report produced.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub samples: Vec<Sample>,
    /// Rows Graph returned for this poll, for `entra_exporter_report_rows`.
    pub rows: u64,
    /// When the values go stale whatever the report's own max_age says: figures taken from
    /// another report's result expire with that result. Monotonic, as every age.
    pub expires_at: Option<Instant>,
}

impl Snapshot {
    pub fn push(&mut self, metric: &'static MetricDef, labels: Vec<String>, value: f64) {
        debug_assert_eq!(metric.labels.len(), labels.len(), "{}", metric.name);
        self.samples.push(Sample {
            metric,
            labels: labels.into_iter().map(intern).collect(),
            value,
        });
    }

    /// The snapshot, served no longer than until `at` (`None`: no limit of its own).
    pub fn expiring(mut self, at: Option<Instant>) -> Self {
        self.expires_at = at;
        self
    }

    /// The value served for exactly these label values, for tests and tools: samples pushed
    /// twice with the same labels (Graph repeating a key) are summed, as on `/metrics`.
    pub fn value(&self, metric: &MetricDef, labels: &[&str]) -> Option<f64> {
        self.samples
            .iter()
            .filter(|s| {
                std::ptr::eq(s.metric, metric)
                    && s.labels.iter().map(|l| &**l).eq(labels.iter().copied())
            })
            .map(|s| s.value)
            .reduce(|a, b| a + b)
    }
}

/// How the last poll of a report went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No poll has finished yet.
    Pending,
    Ok,
    /// The last poll failed; it is retried at the normal interval.
    Failing,
    /// Graph does not offer the report to this tenant (retired, or 403); retried slowly.
    Unavailable(Unavailability),
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ok => "ok",
            Status::Failing => "failing",
            Status::Unavailable(Unavailability::Retired) => "unavailable (retired)",
            Status::Unavailable(Unavailability::Forbidden) => "unavailable (forbidden)",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReportRecord {
    pub settings: ReportSettings,
    pub status: Status,
    pub snapshot: Arc<Snapshot>,
    /// When the last poll succeeded, by the wall clock: what `/metrics` and the landing page
    /// show.
    pub last_success: Option<SystemTime>,
    /// The same moment on the monotonic clock, which ages are counted from: a wall-clock jump
    /// can neither hide nor prolong the values.
    pub last_success_at: Option<Instant>,
    pub last_duration: Option<Duration>,
    /// Error of the last failed poll, already free of secrets and per-user values.
    pub last_error: Option<String>,
}

impl ReportRecord {
    /// The snapshot, unless it is older than the report's max age or past its own expiry.
    pub fn fresh_snapshot(&self, now: Instant) -> Option<&Snapshot> {
        self.last_success_at?;
        let fresh = self.fresh_until().is_none_or(|until| now <= until);
        fresh.then_some(&*self.snapshot)
    }

    /// Until when the snapshot may be served: the report's max age after its last success, or
    /// the snapshot's own expiry if that comes first; `None` without a success, or when neither
    /// limit is within what the clock can represent.
    pub fn fresh_until(&self) -> Option<Instant> {
        let by_age = self.last_success_at?.checked_add(self.settings.max_age);
        match (by_age, self.snapshot.expires_at) {
            (Some(age), Some(own)) => Some(age.min(own)),
            (age, own) => age.or(own),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub tenant: String,
    pub report: &'static str,
}

#[derive(Debug, Default)]
pub struct Store {
    reports: RwLock<BTreeMap<Key, ReportRecord>>,
    /// Tenants whose first token request has finished: true once they have a token. Only the
    /// reports of tenants with a token count for readiness.
    /// `None` for a tenant expected ([`Store::expect_tenant`]) whose first request has not
    /// finished yet.
    credentials: RwLock<BTreeMap<String, Option<bool>>>,
    /// Set the first time [`Store::ready`] is true: a tenant that gets its token later, and
    /// whose first polls then run, does not take the process out of its Service.
    was_ready: AtomicBool,
    /// Bumped by every change, so that readers can keep what they derived from the records
    /// until it moves.
    generation: AtomicU64,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&self, tenant: &str, report: &'static str, settings: ReportSettings) {
        let record = ReportRecord {
            settings,
            status: Status::Pending,
            snapshot: Arc::default(),
            last_success: None,
            last_success_at: None,
            last_duration: None,
            last_error: None,
        };
        self.write(|reports| {
            reports.insert(key(tenant, report), record);
        });
    }

    /// Replaces the report's snapshot; returns the status it had before.
    pub fn record_success(
        &self,
        tenant: &str,
        report: &'static str,
        snapshot: Snapshot,
        duration: Duration,
    ) -> Status {
        self.update(tenant, report, |record| {
            record.status = Status::Ok;
            record.snapshot = Arc::new(snapshot);
            record.last_success = Some(SystemTime::now());
            record.last_success_at = Some(Instant::now());
            record.last_duration = Some(duration);
            record.last_error = None;
        })
    }

    /// Marks the poll failed and keeps the previous snapshot (until its max age); returns the
    /// status it had before.
    pub fn record_failure(
        &self,
        tenant: &str,
        report: &'static str,
        status: Status,
        error: String,
        duration: Duration,
    ) -> Status {
        self.update(tenant, report, |record| {
            record.status = status;
            record.last_duration = Some(duration);
            record.last_error = Some(error);
        })
    }

    /// Notes why a report that has not finished a poll yet is still waiting, without failing
    /// it: it stays [`Status::Pending`] if it was. Returns the status it had before.
    pub fn record_waiting(
        &self,
        tenant: &str,
        report: &'static str,
        reason: String,
        duration: Duration,
    ) -> Status {
        self.update(tenant, report, |record| {
            record.last_duration = Some(duration);
            record.last_error = Some(reason);
        })
    }

    /// The status of one report; `None` if it is not registered.
    pub fn status(&self, tenant: &str, report: &'static str) -> Option<Status> {
        self.read(|reports| {
            reports
                .get(&key(tenant, report))
                .map(|record| record.status)
        })
    }

    /// Notes how the tenant's latest token request at start went: with a token its reports
    /// count for readiness; without, they wait and do not.
    pub fn token_requested(&self, tenant: &str, obtained: bool) {
        let mut credentials = match self.credentials.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        credentials.insert(tenant.to_owned(), Some(obtained));
    }

    /// Announces a tenant before its loop starts: the process is not ready before its first
    /// token request has finished, even if its reports are not registered yet.
    pub fn expect_tenant(&self, tenant: &str) {
        let mut credentials = match self.credentials.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        credentials.entry(tenant.to_owned()).or_insert(None);
    }

    /// True once every tenant's first token request has finished, and every enabled report of
    /// every tenant with a token has finished its first poll, successful or not. The reports of
    /// a tenant without a token do not count, unless no tenant has one: a process that can poll
    /// nothing is not ready. Once ready, always ready.
    pub fn ready(&self) -> bool {
        if self.was_ready.load(Ordering::Acquire) {
            return true;
        }
        let credentials = match self.credentials.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if credentials.values().any(Option::is_none) {
            return false;
        }
        let (ready, empty) = self.read(|reports| {
            let mut any_token = false;
            for (key, record) in reports {
                match credentials.get(&key.tenant).copied().flatten() {
                    None => return (false, false),
                    Some(false) => {}
                    Some(true) => {
                        any_token = true;
                        if record.settings.enabled && record.status == Status::Pending {
                            return (false, false);
                        }
                    }
                }
            }
            (any_token || reports.is_empty(), reports.is_empty())
        });
        // Not before the tenants have registered their reports: an empty store at start is
        // not a poll completed.
        if ready && !empty {
            self.was_ready.store(true, Ordering::Release);
        }
        ready
    }

    /// Changes with every update of any report's record. Read it before [`Store::records`]: a
    /// result derived from the records is current while the generation stays the same.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A consistent copy of every report's record. Snapshots are shared, not copied.
    pub fn records(&self) -> Vec<(Key, ReportRecord)> {
        self.read(|reports| {
            reports
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    fn update(
        &self,
        tenant: &str,
        report: &'static str,
        f: impl FnOnce(&mut ReportRecord),
    ) -> Status {
        self.write(|reports| match reports.get_mut(&key(tenant, report)) {
            Some(record) => {
                let before = record.status;
                f(record);
                before
            }
            None => Status::Pending,
        })
    }

    // A poisoned lock only means another thread panicked mid-update; the map itself is still
    // whole (every update is a single assignment), so keep serving it.
    fn read<T>(&self, f: impl FnOnce(&BTreeMap<Key, ReportRecord>) -> T) -> T {
        match self.reports.read() {
            Ok(guard) => f(&guard),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut BTreeMap<Key, ReportRecord>) -> T) -> T {
        let result = match self.reports.write() {
            Ok(mut guard) => f(&mut guard),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        };
        // After the change, so that a reader that sees the new generation sees the change.
        self.generation.fetch_add(1, Ordering::AcqRel);
        result
    }
}

fn key(tenant: &str, report: &'static str) -> Key {
    Key {
        tenant: tenant.to_owned(),
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static M: MetricDef = MetricDef {
        name: "m",
        help: "h",
        kind: Kind::Gauge,
        labels: &["a"],
    };

    fn settings(enabled: bool, max_age: Duration) -> ReportSettings {
        ReportSettings {
            enabled,
            interval: Duration::from_secs(1),
            max_age,
        }
    }

    #[test]
    fn ready_after_every_enabled_report_polled_once_even_if_failed() {
        let store = Store::new();
        assert!(store.ready(), "nothing to poll: a shard without tenants");
        store.register("t", "a", settings(true, Duration::from_secs(60)));
        assert!(
            !store.ready(),
            "asked before the reports registered, not ready for ever"
        );
        store.token_requested("t", true);
        store.register("t", "b", settings(true, Duration::from_secs(60)));
        store.register("t", "off", settings(false, Duration::from_secs(60)));
        assert!(!store.ready());
        store.record_success("t", "a", Snapshot::default(), Duration::ZERO);
        assert!(!store.ready());
        store.record_failure("t", "b", Status::Failing, "boom".into(), Duration::ZERO);
        assert!(store.ready());
    }

    #[test]
    fn only_tenants_with_a_token_count_for_readiness() {
        let store = Store::new();
        for tenant in ["good", "revoked"] {
            store.register(tenant, "a", settings(true, Duration::from_secs(60)));
        }
        assert!(!store.ready(), "no token requested yet");
        store.token_requested("good", true);
        store.record_success("good", "a", Snapshot::default(), Duration::ZERO);
        assert!(
            !store.ready(),
            "the revoked tenant's first request is still running"
        );
        store.token_requested("revoked", false);
        assert!(
            store.ready(),
            "the revoked tenant's pending report does not count"
        );
        store.token_requested("revoked", true);
        assert!(
            store.ready(),
            "a tenant that recovers later does not take readiness back"
        );

        // Before the process is ready, a tenant that gets its token late is waited for.
        let store = Store::new();
        for tenant in ["good", "late"] {
            store.register(tenant, "a", settings(true, Duration::from_secs(60)));
        }
        store.token_requested("good", true);
        store.token_requested("late", false);
        store.token_requested("late", true);
        store.record_success("good", "a", Snapshot::default(), Duration::ZERO);
        assert!(!store.ready(), "once it has a token, its first poll counts");
        store.record_success("late", "a", Snapshot::default(), Duration::ZERO);
        assert!(store.ready());

        let store = Store::new();
        store.register("revoked", "a", settings(true, Duration::from_secs(60)));
        store.token_requested("revoked", false);
        assert!(!store.ready(), "no tenant has a token: nothing is polled");

        // A tenant announced but not yet registered holds readiness back.
        let store = Store::new();
        store.expect_tenant("fast");
        store.expect_tenant("slow");
        store.register("fast", "a", settings(true, Duration::from_secs(60)));
        store.token_requested("fast", true);
        store.record_success("fast", "a", Snapshot::default(), Duration::ZERO);
        assert!(!store.ready(), "slow has not started yet");
        store.register("slow", "a", settings(true, Duration::from_secs(60)));
        store.token_requested("slow", true);
        store.record_success("slow", "a", Snapshot::default(), Duration::ZERO);
        assert!(store.ready());
    }

    #[test]
    fn every_change_moves_the_generation_and_repeated_keys_sum() {
        let store = Store::new();
        let start = store.generation();
        store.register("t", "a", settings(true, Duration::from_secs(60)));
        store.token_requested("t", true);
        let registered = store.generation();
        assert!(registered > start);
        let mut snapshot = Snapshot::default();
        snapshot.push(&M, vec!["unknown".into()], 1.0);
        snapshot.push(&M, vec!["unknown".into()], 2.0);
        assert_eq!(snapshot.value(&M, &["unknown"]), Some(3.0));
        store.record_success("t", "a", snapshot, Duration::ZERO);
        assert!(store.generation() > registered);
        let succeeded = store.generation();
        store.record_failure("t", "a", Status::Failing, "x".into(), Duration::ZERO);
        assert!(store.generation() > succeeded);
        let failed = store.generation();
        assert!(store.ready());
        let _ = store.records();
        assert_eq!(store.generation(), failed, "reads change nothing");
    }

    #[test]
    fn label_values_are_shared_and_let_go_when_unused() {
        let mut a = Snapshot::default();
        let mut b = Snapshot::default();
        a.push(&M, vec!["shared-value".into()], 1.0);
        b.push(&M, vec!["shared-value".into()], 2.0);
        assert!(Arc::ptr_eq(
            &a.samples[0].labels[0],
            &b.samples[0].labels[0]
        ));
        let probe = Arc::downgrade(&a.samples[0].labels[0]);
        drop((a, b));
        // Enough new values to make the set sweep: the unused one goes.
        let mut many = Snapshot::default();
        for i in 0..4096 {
            many.push(&M, vec![format!("value-{i}")], 1.0);
        }
        assert!(probe.upgrade().is_none(), "an unused value is kept");
        assert_eq!(many.value(&M, &["value-7"]), Some(1.0));
    }

    #[test]
    fn failure_keeps_the_previous_snapshot_until_max_age() {
        let store = Store::new();
        store.register("t", "a", settings(true, Duration::from_secs(60)));
        let mut snapshot = Snapshot::default();
        snapshot.push(&M, vec!["x".into()], 3.0);
        store.record_success("t", "a", snapshot, Duration::ZERO);
        let before = store.record_failure("t", "a", Status::Failing, "boom".into(), Duration::ZERO);
        assert_eq!(before, Status::Ok);
        let (_, record) = store.records().remove(0);
        assert_eq!(record.status, Status::Failing);
        let now = Instant::now();
        assert_eq!(
            record.fresh_snapshot(now).and_then(|s| s.value(&M, &["x"])),
            Some(3.0)
        );
        assert!(
            record
                .fresh_snapshot(now + Duration::from_secs(61))
                .is_none()
        );
    }

    #[test]
    fn ages_follow_the_monotonic_clock_whatever_the_wall_clock_does() {
        let mut snapshot = Snapshot::default();
        snapshot.push(&M, vec!["x".into()], 3.0);
        let snapshot = Arc::new(snapshot);
        let polled = |wall: SystemTime, at: Instant| ReportRecord {
            settings: settings(true, Duration::from_secs(60)),
            status: Status::Ok,
            snapshot: snapshot.clone(),
            last_success: Some(wall),
            last_success_at: Some(at),
            last_duration: None,
            last_error: None,
        };
        let now = Instant::now();
        let day = Duration::from_secs(86_400);
        // Polled just now, then the wall clock jumped a day ahead: the values stay.
        let jumped_ahead = polled(SystemTime::now() - day, now);
        assert_eq!(
            jumped_ahead
                .fresh_snapshot(now)
                .and_then(|s| s.value(&M, &["x"])),
            Some(3.0)
        );
        assert_eq!(
            jumped_ahead.fresh_until(),
            Some(now + Duration::from_secs(60))
        );
        // Polled two minutes ago (max_age 60 s), then the wall clock jumped a day back: stale
        // all the same.
        let two_minutes_ago = now.checked_sub(Duration::from_secs(120)).unwrap();
        let jumped_back = polled(SystemTime::now() + day, two_minutes_ago);
        assert!(jumped_back.fresh_snapshot(now).is_none());
    }

    #[test]
    fn a_snapshot_with_its_own_expiry_goes_stale_then_even_if_polled_just_now() {
        let store = Store::new();
        store.register("t", "a", settings(true, Duration::from_secs(600)));
        let now = Instant::now();
        let mut snapshot = Snapshot::default();
        snapshot.push(&M, vec!["x".into()], 3.0);
        store.record_success(
            "t",
            "a",
            snapshot.expiring(Some(now + Duration::from_secs(10))),
            Duration::ZERO,
        );
        let (_, record) = store.records().remove(0);
        assert!(record.fresh_snapshot(now).is_some());
        assert!(
            record
                .fresh_snapshot(now + Duration::from_secs(11))
                .is_none()
        );
    }
}
