//! Usage events, shared by the legacy userCredentialUsageDetails and its successor
//! userEventsSummary, which list the same rows. Events are counted page by page; only counts
//! and 64-bit hashes of event ids are kept, never user names.
//!
//! Each report gets four families:
//! - `*_window_events{feature,auth_method,status,failure_reason}`: events in the report now;
//! - `*_events_total{...}`: each event counted once, ever. The first poll after a fresh start
//!   only learns the window, whatever the dates in it (the counter starts at zero, so a restart
//!   never fakes a spike); later polls count each new event id once. An id is remembered for as
//!   long as Graph could still list its event ([`RETENTION`] after its eventDateTime), not only
//!   while the last poll listed it, so a transient empty or short list never makes old events
//!   count again; and the horizon before which events are forgotten only ever moves forward, so
//!   an event not counted when first listed is never counted later. With `--state.file` the
//!   totals, the admitted label values, the horizon and the remembered ids survive a restart
//!   ([`SavedEvents`]), and the first poll after it counts what happened meanwhile;
//! - `*_outcome_events_total{feature,status}`: the same events without method and reason. Every
//!   (registration|reset, success|failure) series exists from the first completed poll, so a
//!   burst under a method or reason never seen before is growth of an existing series, which
//!   `increase()` sees in full; alerts use this one;
//! - `*_last_event_timestamp_seconds{feature}`: the newest eventDateTime;
//! - `*_recent_outcome_events{feature,status}`: listed events whose eventDateTime is within
//!   [`RECENT`] before the poll, by when they happened rather than when a poll listed them, so
//!   a backlog Graph delivers late does not dilute what happened last (the spike alert reads it).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Deserialize;
use tracing::info;

use super::de as fields;
use super::saved_events::{IdHash, Outcome, SavedEvents, SavedTotal};
use crate::config::EventLabelLimits;
use crate::graph::{GraphClient, GraphError};
use crate::labels::{self, BoundedLabel, OTHER, UNKNOWN};
use crate::reports::spec::{BuildContext, Report};
use crate::snapshot::{MetricDef, Snapshot};
use crate::state::StateFile;

/// The label names shared by the window gauge and the counter.
pub const EVENT_LABELS: &[&str] = &["feature", "auth_method", "status", "failure_reason"];
/// The label names of the outcome counter.
pub const OUTCOME_LABELS: &[&str] = &["feature", "status"];
/// The features and statuses Graph documents (featureType): their outcome series are exported
/// at zero from the first completed poll.
const KNOWN_FEATURES: [&str; 2] = ["registration", "reset"];
/// How far before a poll an event's eventDateTime counts as recent: the spike alert's window.
pub const RECENT: Duration = Duration::from_secs(30 * 60);

/// How far back Graph lists events: the reports cover the last 30 days (their D30 period).
pub const GRAPH_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long beyond [`GRAPH_WINDOW`] an id is remembered: room for a window Graph rounds to whole
/// days and for clock skew between Graph and the exporter.
pub const RETENTION_MARGIN: Duration = Duration::from_secs(2 * 24 * 3600);
/// An event id is remembered until its eventDateTime is this much older than the newest event
/// seen (or than now, if that is earlier, or if no event was seen yet). An event older than
/// that is never counted: it was either counted already, or listed before it could be, or left
/// Graph's window long ago.
pub const RETENTION: Duration = GRAPH_WINDOW.saturating_add(RETENTION_MARGIN);

/// The metric families an [`EventCounter`] fills.
#[derive(Debug)]
pub struct EventMetrics {
    pub window: &'static MetricDef,
    pub total: &'static MetricDef,
    pub outcome: &'static MetricDef,
    pub last_event: &'static MetricDef,
    pub recent: &'static MetricDef,
}

/// One usage event. User names and display names are not deserialized at all. A row without an
/// id cannot be counted exactly once, so it is a bad row like one without `isSuccess`.
/// The fields [`Row`] reads.
pub const FIELDS: &[&str] = &[
    "id",
    "feature",
    "isSuccess",
    "authMethod",
    "failureReason",
    "eventDateTime",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(deserialize_with = "fields::id")]
    pub id: String,
    #[serde(default = "fields::unknown", deserialize_with = "fields::label")]
    pub feature: String,
    #[serde(deserialize_with = "fields::flag")]
    pub is_success: bool,
    #[serde(default = "fields::unknown", deserialize_with = "fields::label")]
    pub auth_method: String,
    #[serde(default, deserialize_with = "fields::optional_text")]
    pub failure_reason: String,
    #[serde(default, deserialize_with = "fields::optional_text")]
    pub event_date_time: String,
}

/// A report that lists usage events at `path`: read whole on each poll, then committed and,
/// with `--state.file`, saved before the poll's metrics are published, so that what Prometheus
/// saw is never ahead of what a restart resumes from.
pub struct EventsReport {
    counter: EventCounter,
    report: &'static str,
    path: &'static str,
    state: Option<(Arc<StateFile<SavedEvents>>, String)>,
}

impl EventsReport {
    pub fn new(
        metrics: &'static EventMetrics,
        report: &'static str,
        path: &'static str,
        context: &BuildContext,
    ) -> Self {
        let saved = context
            .state
            .as_ref()
            .and_then(|state| state.take(&context.tenant, report));
        let counter = match saved {
            Some(saved) => {
                let counter =
                    EventCounter::restore(metrics, context.event_label_limits, saved, unix_now());
                info!(
                    remembered_events = counter.remembered(),
                    "counters continue from the state file; the first poll counts the events listed since"
                );
                counter
            }
            None => EventCounter::new(metrics, context.event_label_limits),
        };
        Self {
            counter,
            report,
            path,
            state: context
                .state
                .clone()
                .map(|state| (state, context.tenant.clone())),
        }
    }
}

#[async_trait]
impl Report for EventsReport {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        let now = unix_now();
        let mut pass = self.counter.start_pass(now);
        let rows = graph
            .for_each_page(self.report, self.path, |rows: Vec<Row>| pass.add(rows))
            .await?;
        let pass = pass.finish();
        let mut snapshot = self.counter.commit(pass, now);
        snapshot.rows = rows;
        if let Some((state, tenant)) = &self.state {
            state.save(tenant, self.report, &self.counter.save()).await;
        }
        Ok(snapshot)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The stable 64-bit hash of an event id (XXH3), the same in every run, so that ids remembered
/// in the state file are recognised after a restart.
fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// (feature, auth_method, success, normalized failure reason) before the reason is bounded.
type RawKey = (String, String, bool, String);
/// The label values of [`EVENT_LABELS`].
type LabelKey = (String, String, &'static str, String);
/// The label values of [`OUTCOME_LABELS`].
type OutcomeKey = (String, &'static str);

#[derive(Debug, Default, Clone, Copy)]
struct KeyCounts {
    events: u64,
    new: u64,
}

/// Counts usage events across polls of one tenant's report.
#[derive(Debug)]
pub struct EventCounter {
    metrics: &'static EventMetrics,
    reasons: BoundedLabel,
    features: BoundedLabel,
    methods: BoundedLabel,
    /// Hashes of remembered event ids and their eventDateTime (Unix seconds; for an event
    /// without one, when it was last listed). Kept until older than the horizon, whether or
    /// not the last poll listed them.
    seen: HashMap<u64, i64>,
    /// The newest eventDateTime ever listed.
    newest: Option<i64>,
    /// Events dated before this (Unix seconds) are forgotten and never counted. It only moves
    /// forward: were it to move back (a first poll that only learned events younger than now
    /// less [`RETENTION`], then a newest event days old), events listed before but never
    /// remembered would count as new. `None` before the first complete poll of a fresh start,
    /// which remembers every listed id whatever its date.
    horizon: Option<i64>,
    totals: BTreeMap<LabelKey, u64>,
    outcomes: BTreeMap<OutcomeKey, u64>,
    /// False until the first complete poll of a fresh start, which only learns the window.
    primed: bool,
}

impl EventCounter {
    pub fn new(metrics: &'static EventMetrics, limits: EventLabelLimits) -> Self {
        Self {
            metrics,
            reasons: BoundedLabel::new(limits.failure_reason),
            // The documented features keep their own series whatever else Graph sends: the
            // alerts read them.
            features: BoundedLabel::with_admitted(
                limits.feature,
                KNOWN_FEATURES.map(str::to_owned),
            ),
            methods: BoundedLabel::new(limits.auth_method),
            seen: HashMap::new(),
            newest: None,
            horizon: None,
            totals: BTreeMap::new(),
            outcomes: known_outcomes(),
            primed: false,
        }
    }

    /// A counter that continues from a saved state: its totals, admitted label values, horizon
    /// and remembered ids. Its first poll counts every listed event it does not remember and
    /// that is not older than the horizon. A file of an earlier release has no horizon: it is
    /// derived from `now` (Unix seconds) as that release did, but never before the oldest id
    /// the file remembers, since every event older than that was either forgotten or never
    /// remembered.
    pub fn restore(
        metrics: &'static EventMetrics,
        limits: EventLabelLimits,
        saved: SavedEvents,
        now: i64,
    ) -> Self {
        let mut counter = Self::new(metrics, limits);
        counter.reasons = BoundedLabel::with_admitted(limits.failure_reason, saved.failure_reasons);
        // Every admitted feature and method has a total (at 0 at least) from the poll that
        // admitted it, so the totals say which ones were admitted.
        let features = saved
            .totals
            .iter()
            .map(|t| t.feature.clone())
            .filter(|feature| feature != OTHER);
        counter.features = BoundedLabel::with_admitted(
            limits.feature,
            KNOWN_FEATURES
                .map(str::to_owned)
                .into_iter()
                .chain(features),
        );
        counter.methods = BoundedLabel::with_admitted(
            limits.auth_method,
            saved
                .totals
                .iter()
                .map(|t| t.auth_method.clone())
                .filter(|method| method != OTHER),
        );
        for total in saved.totals {
            let status = total.status.as_str();
            *counter
                .outcomes
                .entry((total.feature.clone(), status))
                .or_default() += total.events;
            *counter
                .totals
                .entry((
                    total.feature,
                    total.auth_method,
                    status,
                    total.failure_reason,
                ))
                .or_default() += total.events;
        }
        counter.seen = saved
            .event_ids
            .into_iter()
            .map(|(IdHash(id), at)| (id, at))
            .collect();
        counter.newest = saved.newest_event;
        counter.horizon = Some(saved.horizon.unwrap_or_else(|| {
            let oldest_remembered = counter.seen.values().copied().min();
            retention_horizon(saved.newest_event, now).max(oldest_remembered.unwrap_or(i64::MIN))
        }));
        counter.primed = true;
        counter
    }

    /// What the state file keeps of this counter.
    pub fn save(&self) -> SavedEvents {
        SavedEvents {
            totals: self
                .totals
                .iter()
                .map(
                    |((feature, auth_method, status, reason), events)| SavedTotal {
                        feature: feature.clone(),
                        auth_method: auth_method.clone(),
                        status: Outcome::from_label(status),
                        failure_reason: reason.clone(),
                        events: *events,
                    },
                )
                .collect(),
            failure_reasons: self.reasons.admitted(),
            event_ids: self
                .seen
                .iter()
                .map(|(id, at)| (IdHash(*id), *at))
                .collect(),
            newest_event: self.newest,
            horizon: self.horizon,
        }
    }

    /// Event ids remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Starts reading the report once, at `now` (Unix seconds). Nothing changes here until
    /// [`EventCounter::commit`], so a poll that fails half-way leaves the counters as they were.
    pub fn start_pass(&self, now: i64) -> Pass<'_> {
        Pass {
            seen: &self.seen,
            horizon: self.horizon.unwrap_or(i64::MIN),
            now,
            window: HashMap::new(),
            ids: HashMap::new(),
            newest: BTreeMap::new(),
            recent: known_outcomes(),
        }
    }

    pub fn commit(&mut self, pass: FinishedPass, now: i64) -> Snapshot {
        let mut reason_counts: HashMap<String, u64> = HashMap::new();
        let mut feature_counts: HashMap<String, u64> = HashMap::new();
        let mut method_counts: HashMap<String, u64> = HashMap::new();
        for ((feature, method, success, reason), counts) in &pass.window {
            if !success {
                *reason_counts.entry(reason.clone()).or_default() += counts.events;
            }
            *feature_counts.entry(feature.clone()).or_default() += counts.events;
            *method_counts.entry(method.clone()).or_default() += counts.events;
        }
        self.reasons.admit(&reason_counts);
        self.features.admit(&feature_counts);
        self.methods.admit(&method_counts);

        let mut window: BTreeMap<LabelKey, u64> = BTreeMap::new();
        for ((feature, method, success, reason), counts) in pass.window {
            let (status, reason) = if success {
                (Outcome::Success.as_str(), String::new())
            } else {
                (
                    Outcome::Failure.as_str(),
                    self.reasons.label(&reason).to_owned(),
                )
            };
            let feature = self.features.label(&feature).to_owned();
            let method = self.methods.label(&method).to_owned();
            let outcome = self.outcomes.entry((feature.clone(), status)).or_default();
            let key = (feature, method, status, reason);
            let total = self.totals.entry(key.clone()).or_default();
            if self.primed {
                *total += counts.new;
                *outcome += counts.new;
            }
            *window.entry(key).or_default() += counts.events;
        }
        // Ids listed now are remembered (again); ids not listed are kept until they expire.
        self.seen.extend(pass.ids);
        self.newest = self.newest.max(pass.newest.values().copied().max());
        let horizon = retention_horizon(self.newest, now).max(self.horizon.unwrap_or(i64::MIN));
        self.horizon = Some(horizon);
        self.seen.retain(|_, at| *at >= horizon);
        if self.seen.capacity() > 4 * self.seen.len().max(1024) {
            self.seen.shrink_to_fit();
        }
        self.primed = true;

        let mut snapshot = Snapshot::default();
        let labels = |(feature, method, status, reason): &LabelKey| {
            vec![
                feature.clone(),
                method.clone(),
                (*status).to_owned(),
                reason.clone(),
            ]
        };
        for (key, events) in &window {
            snapshot.push(self.metrics.window, labels(key), *events as f64);
        }
        // Counters stay exported after their events leave the window.
        for (key, total) in &self.totals {
            snapshot.push(self.metrics.total, labels(key), *total as f64);
        }
        for ((feature, status), total) in &self.outcomes {
            snapshot.push(
                self.metrics.outcome,
                vec![feature.clone(), (*status).to_owned()],
                *total as f64,
            );
        }
        let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
        for (feature, at) in &pass.newest {
            let newest = newest.entry(self.features.label(feature)).or_insert(*at);
            *newest = (*newest).max(*at);
        }
        for (feature, newest) in newest {
            snapshot.push(
                self.metrics.last_event,
                vec![feature.to_owned()],
                newest as f64,
            );
        }
        for ((feature, status), events) in pass.recent {
            snapshot.push(
                self.metrics.recent,
                vec![feature, status.to_owned()],
                events as f64,
            );
        }
        snapshot
    }
}

/// Every (registration|reset, success|failure) outcome at zero.
fn known_outcomes() -> BTreeMap<OutcomeKey, u64> {
    KNOWN_FEATURES
        .iter()
        .flat_map(|feature| {
            Outcome::ALL.map(|status| (((*feature).to_owned(), status.as_str()), 0))
        })
        .collect()
}

/// The horizon that [`RETENTION`] sets (Unix seconds): the newest event seen, or now if that is
/// earlier (a bogus future date must not expire every id) or no event was seen, less
/// [`RETENTION`].
fn retention_horizon(newest: Option<i64>, now: i64) -> i64 {
    let reference = newest.map_or(now, |newest| newest.min(now));
    reference.saturating_sub(RETENTION.as_secs() as i64)
}

/// One read of the report in progress.
pub struct Pass<'a> {
    seen: &'a HashMap<u64, i64>,
    horizon: i64,
    now: i64,
    window: HashMap<RawKey, KeyCounts>,
    ids: HashMap<u64, i64>,
    newest: BTreeMap<String, i64>,
    recent: BTreeMap<OutcomeKey, u64>,
}

/// A complete read, ready to commit.
pub struct FinishedPass {
    window: HashMap<RawKey, KeyCounts>,
    ids: HashMap<u64, i64>,
    newest: BTreeMap<String, i64>,
    recent: BTreeMap<OutcomeKey, u64>,
}

impl Pass<'_> {
    pub fn add(&mut self, rows: Vec<Row>) {
        for row in rows {
            let reason = if row.is_success {
                String::new()
            } else {
                match labels::failure_reason(&row.failure_reason) {
                    r if r.is_empty() => UNKNOWN.to_owned(),
                    r => r,
                }
            };
            let id = id_hash(&row.id);
            let at = fields::timestamp(&row.event_date_time);
            // An event beyond the horizon was counted long ago or is older than Graph's window:
            // it is neither counted nor remembered.
            let expired = at.is_some_and(|at| at < self.horizon);
            // A row seen twice within one read (pages shifting under us) counts once as new.
            let first_in_pass = !expired && self.ids.insert(id, at.unwrap_or(self.now)).is_none();
            let new = first_in_pass && !self.seen.contains_key(&id);
            if let Some(at) = at {
                let newest = self.newest.entry(row.feature.clone()).or_insert(at);
                *newest = (*newest).max(at);
                let since = self.now.saturating_sub(RECENT.as_secs() as i64);
                if first_in_pass && at > since {
                    let status = Outcome::from_success(row.is_success).as_str();
                    *self
                        .recent
                        .entry((row.feature.clone(), status))
                        .or_default() += 1;
                }
            }
            let counts = self
                .window
                .entry((row.feature, row.auth_method, row.is_success, reason))
                .or_default();
            counts.events += 1;
            counts.new += u64::from(new);
        }
    }

    pub fn finish(self) -> FinishedPass {
        FinishedPass {
            window: self.window,
            ids: self.ids,
            newest: self.newest,
            recent: self.recent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ParsedPage, parse_page};
    use crate::snapshot::Kind;

    static WINDOW_EVENTS: MetricDef = MetricDef {
        name: "window",
        help: "h",
        kind: Kind::Gauge,
        labels: EVENT_LABELS,
    };
    static EVENTS_TOTAL: MetricDef = MetricDef {
        name: "total",
        help: "h",
        kind: Kind::Counter,
        labels: EVENT_LABELS,
    };
    static OUTCOME: MetricDef = MetricDef {
        name: "outcome",
        help: "h",
        kind: Kind::Counter,
        labels: OUTCOME_LABELS,
    };
    static LAST_EVENT: MetricDef = MetricDef {
        name: "last",
        help: "h",
        kind: Kind::Gauge,
        labels: &["feature"],
    };
    static RECENT_EVENTS: MetricDef = MetricDef {
        name: "recent",
        help: "h",
        kind: Kind::Gauge,
        labels: OUTCOME_LABELS,
    };
    static METRICS: EventMetrics = EventMetrics {
        window: &WINDOW_EVENTS,
        total: &EVENTS_TOTAL,
        outcome: &OUTCOME,
        last_event: &LAST_EVENT,
        recent: &RECENT_EVENTS,
    };

    /// 2026-11-20T12:00:00Z, two hours after the test events.
    const NOW: i64 = 1_795_176_000;
    const DAY: i64 = 24 * 3600;

    fn poll(counter: &mut EventCounter, json: &str) -> Result<Snapshot, serde_json::Error> {
        poll_at(counter, json, NOW)
    }

    fn poll_at(
        counter: &mut EventCounter,
        json: &str,
        now: i64,
    ) -> Result<Snapshot, serde_json::Error> {
        let ParsedPage { rows, .. } = parse_page::<Row>(json.as_bytes())?;
        let mut pass = counter.start_pass(now);
        pass.add(rows);
        let pass = pass.finish();
        Ok(counter.commit(pass, now))
    }

    fn total(s: &Snapshot) -> f64 {
        s.samples
            .iter()
            .filter(|x| std::ptr::eq(x.metric, &EVENTS_TOTAL))
            .map(|x| x.value)
            .sum()
    }

    fn outcome_total(s: &Snapshot) -> f64 {
        s.samples
            .iter()
            .filter(|x| std::ptr::eq(x.metric, &OUTCOME))
            .map(|x| x.value)
            .sum()
    }

    /// `n` events `prefix0`..: failures by reason `bad code`, at 10:00 on 2026-11-20.
    fn events(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
        range
            .map(|i| event(&format!("{prefix}{i}"), false, "bad code"))
            .collect()
    }

    fn rfc3339(at: i64) -> String {
        time::OffsetDateTime::from_unix_timestamp(at)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    }

    /// An event `days` days before NOW.
    fn dated(id: &str, days: i64) -> String {
        let at = rfc3339(NOW - days * DAY);
        format!(
            r#"{{"id":"{id}","feature":"reset","isSuccess":true,"authMethod":"email","eventDateTime":"{at}"}}"#
        )
    }

    fn event(id: &str, success: bool, reason: &str) -> String {
        format!(
            r#"{{"id":"{id}","feature":"reset","userPrincipalName":"u@contoso.com","userDisplayName":"U","isSuccess":{success},"authMethod":"email","failureReason":{},"eventDateTime":"2026-11-20T10:00:0{}Z"}}"#,
            serde_json::to_string(reason).unwrap(),
            id.len() % 10
        )
    }

    fn page(events: &[String]) -> String {
        format!(r#"{{"value":[{}]}}"#, events.join(","))
    }

    fn limits(failure_reason: usize) -> EventLabelLimits {
        EventLabelLimits {
            failure_reason,
            ..crate::config::DEFAULT_EVENT_LABEL_LIMITS
        }
    }

    const FAIL: [&str; 4] = ["reset", "email", "failure", "bad code"];
    const OK: [&str; 4] = ["reset", "email", "success", ""];

    /// The seed example has a trailing comma inside `value` (invalid JSON).
    const SEED_AS_PUBLISHED: &str = r#"{
      "@odata.context":"https://graph.microsoft.com/beta/reports/$metadata#Collection(microsoft.graph.getUserCredentialUsageDetails)",
      "value":[
        {
          "id" : "d3590ed6-52b3-4102-aeff-aad2292ab01234",
          "feature":"registration",
          "userPrincipalName":"abc@cd.com",
          "userDisplayName": "abc",
          "isSuccess" : true,
          "authMethod": "email",
          "failureReason": "User contacted an admin after trying the email verification option",
          "eventDateTime" : "2019-04-01T00:00:00Z"
        },
      ]
    }"#;

    #[test]
    fn seed_example_is_rejected_as_published_and_parsed_once_repaired() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        assert!(poll(&mut counter, SEED_AS_PUBLISHED).is_err());
        let repaired = SEED_AS_PUBLISHED.replace("},\n      ]", "}\n      ]");
        let s = poll(&mut counter, &repaired).unwrap();
        // A success carries no failure reason, whatever Graph put in the field.
        assert_eq!(
            s.value(&WINDOW_EVENTS, &["registration", "email", "success", ""]),
            Some(1.0)
        );
        assert_eq!(
            s.value(&EVENTS_TOTAL, &["registration", "email", "success", ""]),
            Some(0.0)
        );
        assert_eq!(
            s.value(&LAST_EVENT, &["registration"]),
            Some(1_554_076_800.0)
        );
        let text = format!("{s:?}");
        assert!(!text.contains("abc@cd.com"));
    }

    #[test]
    fn counter_starts_at_zero_then_counts_each_new_id_once() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        let first = poll(
            &mut counter,
            &page(&[event("a", false, "bad code"), event("b", true, "")]),
        )
        .unwrap();
        assert_eq!(first.value(&EVENTS_TOTAL, &FAIL), Some(0.0));
        assert_eq!(first.value(&EVENTS_TOTAL, &OK), Some(0.0));
        assert_eq!(first.value(&WINDOW_EVENTS, &FAIL), Some(1.0));

        let second = poll(
            &mut counter,
            &page(&[
                event("a", false, "bad code"),
                event("b", true, ""),
                event("c", false, "bad code"),
                event("c", false, "bad code"),
            ]),
        )
        .unwrap();
        assert_eq!(second.value(&EVENTS_TOTAL, &FAIL), Some(1.0));
        assert_eq!(second.value(&EVENTS_TOTAL, &OK), Some(0.0));

        // Reading the same window again counts nothing, however often.
        for _ in 0..2 {
            let again = poll(
                &mut counter,
                &page(&[
                    event("a", false, "bad code"),
                    event("b", true, ""),
                    event("c", false, "bad code"),
                ]),
            )
            .unwrap();
            assert_eq!(again.value(&EVENTS_TOTAL, &FAIL), Some(1.0));
            assert_eq!(again.value(&EVENTS_TOTAL, &OK), Some(0.0));
        }

        // a and b leave the window; the counter keeps its value and its series.
        let third = poll(&mut counter, &page(&[event("c", false, "bad code")])).unwrap();
        assert_eq!(third.value(&EVENTS_TOTAL, &FAIL), Some(1.0));
        assert_eq!(third.value(&EVENTS_TOTAL, &OK), Some(0.0));
        assert_eq!(third.value(&WINDOW_EVENTS, &OK), None);

        // An id that left the list and comes back is not new: it is remembered by its date.
        let fourth = poll(&mut counter, &page(&[event("a", false, "bad code")])).unwrap();
        assert_eq!(fourth.value(&EVENTS_TOTAL, &FAIL), Some(1.0));
    }

    #[test]
    fn flapping_events_count_once_listed_missing_or_listed_again() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        poll(&mut counter, &page(&[event("x", true, "")])).unwrap();
        let full = page(&[
            event("x", true, ""),
            event("a", false, "bad code"),
            event("b", false, "bad code"),
            event("c", false, "bad code"),
        ]);
        assert_eq!(total(&poll(&mut counter, &full).unwrap()), 3.0);
        // The mock of the issue: [a,b,c], then nothing, then [a,b,c] again, several times over.
        for _ in 0..3 {
            assert_eq!(total(&poll(&mut counter, &page(&[])).unwrap()), 3.0);
            assert_eq!(total(&poll(&mut counter, &full).unwrap()), 3.0);
        }
        // One event flaps on its own (a page that skips a row) while a new one arrives.
        let without_b = page(&[event("a", false, "bad code"), event("c", false, "bad code")]);
        assert_eq!(total(&poll(&mut counter, &without_b).unwrap()), 3.0);
        let with_d = page(&[
            event("a", false, "bad code"),
            event("b", false, "bad code"),
            event("c", false, "bad code"),
            event("d", false, "bad code"),
        ]);
        let s = poll(&mut counter, &with_d).unwrap();
        assert_eq!(total(&s), 4.0);
        assert_eq!(outcome_total(&s), 4.0);
    }

    #[test]
    fn a_shrinking_window_or_an_empty_200_between_full_ones_counts_nothing_new() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        let full = page(&events("e", 0..200));
        poll(&mut counter, &full).unwrap();
        // Graph's window shrinks to its last 20 events, then to nothing, then lists it all again.
        for list in [page(&events("e", 180..200)), page(&[]), full.clone()] {
            let s = poll(&mut counter, &list).unwrap();
            assert_eq!(total(&s), 0.0);
            assert_eq!(outcome_total(&s), 0.0);
        }
        // Ten new events after the full list are counted, once.
        let mut more = events("e", 0..200);
        more.extend(events("n", 0..10));
        assert_eq!(total(&poll(&mut counter, &page(&more)).unwrap()), 10.0);
        assert_eq!(total(&poll(&mut counter, &page(&[])).unwrap()), 10.0);
        assert_eq!(total(&poll(&mut counter, &page(&more)).unwrap()), 10.0);
        assert_eq!(counter.remembered(), 210);
    }

    /// An event at `minutes` before NOW.
    fn at_minutes(id: &str, success: bool, minutes: i64) -> String {
        let at = rfc3339(NOW - minutes * 60);
        format!(
            r#"{{"id":"{id}","feature":"reset","isSuccess":{success},"authMethod":"email","failureReason":"bad code","eventDateTime":"{at}"}}"#
        )
    }

    /// A backlog Graph lists late: the gauge counts by when the events happened, from the very
    /// first poll (which counts nothing), each event once, and every outcome from zero.
    #[test]
    fn recent_events_are_counted_by_event_time_within_thirty_minutes_of_the_poll() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        let backlog = page(&[
            at_minutes("old", false, 180),
            at_minutes("edge", false, 30),
            at_minutes("f1", false, 29),
            at_minutes("f2", false, 5),
            at_minutes("f2", false, 5),
            at_minutes("s1", true, 1),
        ]);
        let s = poll(&mut counter, &backlog).unwrap();
        assert_eq!(s.value(&RECENT_EVENTS, &["reset", "failure"]), Some(2.0));
        assert_eq!(s.value(&RECENT_EVENTS, &["reset", "success"]), Some(1.0));
        assert_eq!(
            s.value(&RECENT_EVENTS, &["registration", "failure"]),
            Some(0.0)
        );
        assert_eq!(
            s.value(&RECENT_EVENTS, &["registration", "success"]),
            Some(0.0)
        );
        assert_eq!(outcome_total(&s), 0.0);
        // An hour later nothing new was listed: nothing is recent any more.
        let later = poll_at(&mut counter, &backlog, NOW + 3600).unwrap();
        assert_eq!(
            later.value(&RECENT_EVENTS, &["reset", "failure"]),
            Some(0.0)
        );
        assert_eq!(
            later.value(&RECENT_EVENTS, &["reset", "success"]),
            Some(0.0)
        );
    }

    #[test]
    fn ids_expire_by_their_date_beyond_the_window_and_old_events_never_count() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        poll_at(
            &mut counter,
            &page(&[dated("old", 20), dated("new", 0)]),
            NOW,
        )
        .unwrap();
        assert_eq!(counter.remembered(), 2);
        // 31 days on, with an event of that day: "old" (51 days before it) is past the window
        // and its margin and is forgotten, though still listed; "new" (31 days) is kept.
        let later = NOW + 31 * DAY;
        let s = poll_at(
            &mut counter,
            &page(&[dated("old", 20), dated("new", 0), dated("fresh", -31)]),
            later,
        )
        .unwrap();
        assert_eq!(total(&s), 1.0, "only the fresh event is new");
        assert_eq!(counter.remembered(), 2);
        // Listed again, the forgotten event is not counted: it is older than any new event.
        let s = poll_at(&mut counter, &page(&[dated("old", 20)]), later).unwrap();
        assert_eq!(total(&s), 1.0);
        assert_eq!(counter.remembered(), 2);
        // An event 33 days after "new" pushes it out too, whether it is listed or not.
        let s = poll_at(&mut counter, &page(&[dated("newer", -33)]), NOW + 33 * DAY).unwrap();
        assert_eq!(total(&s), 2.0);
        assert_eq!(counter.remembered(), 2, "fresh and newer");
    }

    #[test]
    fn a_bogus_future_date_does_not_expire_every_id() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        let future = r#"{"id":"f","feature":"reset","isSuccess":true,"authMethod":"email","eventDateTime":"2099-01-01T00:00:00Z"}"#;
        poll(&mut counter, &page(&[dated("a", 1), future.to_owned()])).unwrap();
        let s = poll(&mut counter, &page(&[dated("a", 1)])).unwrap();
        assert_eq!(total(&s), 0.0);
        assert_eq!(counter.remembered(), 2);
    }

    #[test]
    fn events_without_a_date_are_kept_while_listed_and_expire_after_they_leave() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        let undated = r#"{"id":"u","feature":"reset","isSuccess":true,"authMethod":"email"}"#;
        poll_at(&mut counter, &page(&[undated.to_owned()]), NOW).unwrap();
        let retention = RETENTION.as_secs() as i64;
        // Still listed after a long time: its "date" is when it was last listed.
        let s = poll_at(&mut counter, &page(&[undated.to_owned()]), NOW + retention).unwrap();
        assert_eq!(total(&s), 0.0);
        poll_at(&mut counter, &page(&[]), NOW + 2 * retention - 1).unwrap();
        assert_eq!(counter.remembered(), 1);
        poll_at(&mut counter, &page(&[]), NOW + 2 * retention + 1).unwrap();
        assert_eq!(counter.remembered(), 0);
    }

    #[test]
    fn a_restored_counter_continues_and_counts_what_happened_while_it_was_down() {
        let mut counter = EventCounter::new(&METRICS, limits(2));
        poll(&mut counter, &page(&events("e", 0..5))).unwrap();
        let mut listed = events("e", 0..5);
        listed.push(event("r1", false, "rare reason"));
        listed.push(event("s1", true, ""));
        let before = poll(&mut counter, &page(&listed)).unwrap();
        assert_eq!(total(&before), 2.0);

        // Through JSON, as the state file keeps it.
        let saved: SavedEvents =
            serde_json::from_str(&serde_json::to_string(&counter.save()).unwrap()).unwrap();
        assert_eq!(saved, counter.save());
        let mut restored = EventCounter::restore(&METRICS, limits(2), saved, NOW);
        assert_eq!(restored.remembered(), 7);

        // While it was down: e0..e4 left the list, two events arrived, one of them under a
        // reason that is not admitted (the limit of 2 is full: "bad code", "rare reason").
        let mut after = vec![event("r1", false, "rare reason"), event("s1", true, "")];
        after.push(event("d1", false, "bad code"));
        after.push(event("d2", false, "brand new reason"));
        let s = poll(&mut restored, &page(&after)).unwrap();
        assert_eq!(total(&s), 4.0);
        assert_eq!(outcome_total(&s), 4.0);
        assert_eq!(s.value(&EVENTS_TOTAL, &FAIL), Some(1.0));
        assert_eq!(
            s.value(&EVENTS_TOTAL, &["reset", "email", "failure", "rare reason"]),
            Some(1.0)
        );
        assert_eq!(
            s.value(&EVENTS_TOTAL, &["reset", "email", "failure", "other"]),
            Some(1.0)
        );
        assert_eq!(s.value(&OUTCOME, &["reset", "failure"]), Some(3.0));
        assert_eq!(s.value(&OUTCOME, &["reset", "success"]), Some(1.0));
        assert_eq!(s.value(&OUTCOME, &["registration", "failure"]), Some(0.0));
        // Every counter series of before is still there, none lower.
        for sample in before
            .samples
            .iter()
            .filter(|x| x.metric.kind == Kind::Counter)
        {
            let labels: Vec<&str> = sample.labels.iter().map(|label| &**label).collect();
            let now = s.value(sample.metric, &labels).unwrap();
            assert!(now >= sample.value, "{} {labels:?}", sample.metric.name);
        }
    }

    #[test]
    fn saved_state_is_bounded_by_the_window_and_ids_are_hex_hashes() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        poll(&mut counter, &page(&events("e", 0..50))).unwrap();
        let text = serde_json::to_string(&counter.save()).unwrap();
        assert!(!text.contains("\"e1\""), "ids are hashed: {text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ids = json["event_ids"].as_object().unwrap();
        assert_eq!(ids.len(), 50);
        assert!(
            ids.keys()
                .all(|k| k.len() == 16 && u64::from_str_radix(k, 16).is_ok())
        );
        // The same ids in every run: the hash is stable, not seeded per process.
        assert!(ids.contains_key(&format!("{:016x}", id_hash("e1"))));
        assert_eq!(id_hash("e1"), xxhash_rust::xxh3::xxh3_64(b"e1"));
        // Forty days later Graph's window has moved on: the state shrinks with it.
        poll_at(&mut counter, &page(&[dated("later", -40)]), NOW + 40 * DAY).unwrap();
        assert_eq!(counter.save().event_ids.len(), 1);
        for bad in [r#""xyz""#, r#""0123""#, "12"] {
            assert!(serde_json::from_str::<IdHash>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn outcome_counters_exist_at_zero_from_the_first_poll_and_see_a_burst_under_a_new_reason() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        let first = poll(&mut counter, &page(&[event("a", true, "")])).unwrap();
        for feature in ["registration", "reset"] {
            for status in ["success", "failure"] {
                assert_eq!(
                    first.value(&OUTCOME, &[feature, status]),
                    Some(0.0),
                    "{feature} {status}"
                );
            }
        }
        // 200 failures under a reason never seen before: the detailed series is born at 200,
        // the outcome series grows from 0 to 200.
        let mut events = vec![event("a", true, "")];
        events.extend((0..200).map(|i| event(&format!("burst{i}"), false, "SMS gateway down")));
        let burst = poll(&mut counter, &page(&events)).unwrap();
        assert_eq!(burst.value(&OUTCOME, &["reset", "failure"]), Some(200.0));
        assert_eq!(burst.value(&OUTCOME, &["reset", "success"]), Some(0.0));
        assert_eq!(
            burst.value(
                &EVENTS_TOTAL,
                &["reset", "email", "failure", "SMS gateway down"]
            ),
            Some(200.0)
        );
        // A feature Graph adds later appears when first seen, and is counted from then on.
        let later = poll(
            &mut counter,
            r#"{"value":[{"id":"n1","feature":"passkeyRegistration","isSuccess":true,"authMethod":"passKeySynced"}]}"#,
        )
        .unwrap();
        assert_eq!(
            later.value(&OUTCOME, &["passkeyRegistration", "success"]),
            Some(1.0)
        );
        assert_eq!(later.value(&OUTCOME, &["reset", "failure"]), Some(200.0));
    }

    #[test]
    fn outcome_counters_sum_the_detailed_counters() {
        let mut counter = EventCounter::new(&METRICS, limits(1));
        poll(&mut counter, &page(&[])).unwrap();
        let s = poll(
            &mut counter,
            &page(&[
                event("1", false, "a"),
                event("2", false, "b"),
                event("3", false, "b"),
                event("4", true, ""),
            ]),
        )
        .unwrap();
        let detailed_failures: f64 = s
            .samples
            .iter()
            .filter(|x| std::ptr::eq(x.metric, &EVENTS_TOTAL) && &*x.labels[2] == "failure")
            .map(|x| x.value)
            .sum();
        assert_eq!(detailed_failures, 3.0);
        assert_eq!(s.value(&OUTCOME, &["reset", "failure"]), Some(3.0));
        assert_eq!(s.value(&OUTCOME, &["reset", "success"]), Some(1.0));
    }

    #[test]
    fn a_failed_pass_changes_nothing() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        poll(&mut counter, &page(&[event("a", false, "bad code")])).unwrap();
        {
            let mut pass = counter.start_pass(NOW);
            let ParsedPage { rows, .. } =
                parse_page::<Row>(page(&[event("b", false, "bad code")]).as_bytes()).unwrap();
            pass.add(rows);
            // Dropped without commit, as when a later page fails.
        }
        let s = poll(
            &mut counter,
            &page(&[event("a", false, "bad code"), event("b", false, "bad code")]),
        )
        .unwrap();
        assert_eq!(s.value(&EVENTS_TOTAL, &FAIL), Some(1.0));
    }

    #[test]
    fn failure_reasons_are_tidied_bounded_and_kept_verbatim_for_escaping() {
        let mut counter = EventCounter::new(&METRICS, limits(2));
        let s = poll(
            &mut counter,
            &page(&[
                event("1", false, "  too   many\nattempts "),
                event("2", false, "too many attempts"),
                event(
                    "3",
                    false,
                    "Benutzer hat \"Zurücksetzen\" abgebrochen \\ ok",
                ),
                event(
                    "4",
                    false,
                    "Benutzer hat \"Zurücksetzen\" abgebrochen \\ ok",
                ),
                event("5", false, "rare"),
                event("6", false, ""),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.value(
                &WINDOW_EVENTS,
                &["reset", "email", "failure", "too many attempts"]
            ),
            Some(2.0)
        );
        assert_eq!(
            s.value(
                &WINDOW_EVENTS,
                &[
                    "reset",
                    "email",
                    "failure",
                    "Benutzer hat \"Zurücksetzen\" abgebrochen \\ ok"
                ]
            ),
            Some(2.0)
        );
        // "rare" and the empty reason ("unknown") did not make the top 2.
        assert_eq!(
            s.value(&WINDOW_EVENTS, &["reset", "email", "failure", "other"]),
            Some(2.0)
        );
    }

    #[test]
    fn nulls_and_odd_types() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        let s = poll(
            &mut counter,
            r#"{"value":[{"id":"n","feature":null,"isSuccess":"false","authMethod":"qrCode","failureReason":null,"eventDateTime":"not a date"}]}"#,
        )
        .unwrap();
        assert_eq!(
            s.value(&WINDOW_EVENTS, &["unknown", "qrCode", "failure", "unknown"]),
            Some(1.0)
        );
        assert_eq!(s.value(&LAST_EVENT, &["unknown"]), None);
    }

    #[test]
    fn rows_without_an_id_or_an_outcome_are_bad_rows_and_the_rest_counts() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        poll(&mut counter, &page(&[event("a", false, "bad code")])).unwrap();
        let page = parse_page::<Row>(
            format!(
                r#"{{"value":[{},{{"id":"x","feature":"reset"}},{{"id":"y","isSuccess":"maybe"}},{{"id":null,"isSuccess":true}},{{"id":"","isSuccess":true}},{{"isSuccess":true}},{},{}]}}"#,
                event("a", false, "bad code"),
                event("b", false, "bad code"),
                event("c", true, "")
            )
            .as_bytes(),
        )
        .unwrap();
        let faults: Vec<(usize, &str, &str)> = page
            .skipped
            .iter()
            .map(|f| (f.index, f.field.as_str(), f.found))
            .collect();
        assert_eq!(
            faults,
            [
                (1, "isSuccess", "missing"),
                (2, "isSuccess", "string"),
                (3, "id", "null"),
                (4, "id", "string"),
                (5, "id", "missing"),
            ]
        );
        let mut pass = counter.start_pass(NOW);
        pass.add(page.rows);
        let s = counter.commit(pass.finish(), NOW);
        assert_eq!(s.value(&EVENTS_TOTAL, &FAIL), Some(1.0));
        assert_eq!(s.value(&EVENTS_TOTAL, &OK), Some(1.0));
        assert_eq!(outcome_total(&s), 2.0);
    }

    /// Events `first..=last` days before NOW, as a report whose newest event is `first` days
    /// old lists them.
    fn stale(first: i64, last: i64) -> Vec<String> {
        (first..=last).map(|d| dated(&format!("e{d}"), d)).collect()
    }

    #[test]
    fn a_fresh_start_against_stale_data_remembers_it_all_and_counts_nothing_later() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        // Graph's newest event is 13 days old: its 30-day window reaches 43 days back, beyond
        // now less the retention.
        let listed = stale(13, 43);
        assert_eq!(
            total(&poll_at(&mut counter, &page(&listed), NOW).unwrap()),
            0.0
        );
        assert_eq!(counter.remembered(), listed.len());
        for minutes in [5, 10, 60 * 24] {
            let s = poll_at(&mut counter, &page(&listed), NOW + minutes * 60).unwrap();
            assert_eq!(total(&s), 0.0, "{minutes} minutes on");
            assert_eq!(outcome_total(&s), 0.0);
        }
        // A genuinely new event, as stale as the rest, counts exactly once.
        let mut more = listed.clone();
        more.push(dated("new", 13));
        for minutes in [60 * 25, 60 * 26] {
            let s = poll_at(&mut counter, &page(&more), NOW + minutes * 60).unwrap();
            assert_eq!(total(&s), 1.0, "{minutes} minutes on");
        }
    }

    #[test]
    fn the_horizon_never_moves_back_after_a_restore_that_saw_no_event() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        poll_at(&mut counter, &page(&[]), NOW).unwrap();
        let saved: SavedEvents =
            serde_json::from_str(&serde_json::to_string(&counter.save()).unwrap()).unwrap();
        assert_eq!(saved.newest_event, None);
        let mut restored = EventCounter::restore(&METRICS, limits(20), saved, NOW + 60);
        // The first poll after the restore counts what it does not remember within the horizon
        // (now less the retention): the events 13 to 32 days old.
        let listed = stale(13, 43);
        let s = poll_at(&mut restored, &page(&listed), NOW + 60).unwrap();
        assert_eq!(total(&s), 20.0);
        // The newest event (13 days old) would put the horizon 45 days back; it stays.
        for minutes in [6, 11] {
            let s = poll_at(&mut restored, &page(&listed), NOW + minutes * 60).unwrap();
            assert_eq!(total(&s), 20.0, "{minutes} minutes on");
        }
        // A file written before the horizon was kept: the restore derives it from the oldest id
        // the file remembers, not from the newest event less the retention.
        let mut json = serde_json::to_value(restored.save()).unwrap();
        assert!(json["horizon"].is_i64());
        json.as_object_mut().unwrap().remove("horizon");
        let old: SavedEvents = serde_json::from_value(json).unwrap();
        let mut again = EventCounter::restore(&METRICS, limits(20), old, NOW + 60);
        let s = poll_at(&mut again, &page(&listed), NOW + 12 * 60).unwrap();
        assert_eq!(total(&s), 20.0);
    }

    #[test]
    fn features_and_methods_are_bounded_per_tenant_and_totals_stay_exact() {
        let small = EventLabelLimits {
            failure_reason: 20,
            feature: 3,
            auth_method: 2,
        };
        let row = |id: &str, feature: &str, method: &str| {
            format!(
                r#"{{"id":"{id}","feature":"{feature}","isSuccess":true,"authMethod":"{method}","eventDateTime":"2026-11-20T10:00:00Z"}}"#
            )
        };
        let mut counter = EventCounter::new(&METRICS, small);
        poll(&mut counter, &page(&[])).unwrap();
        // The documented features are always admitted; one more slot, for the most frequent.
        let mut rows = Vec::new();
        for (i, (feature, method)) in [
            ("reset", "email"),
            ("reset", "email"),
            ("reset", "sms"),
            ("reset", "sms"),
            ("reset", "sms"),
            ("reset", "qrCode"),
            ("passkeyRegistration", "email"),
            ("passkeyRegistration", "email"),
            ("weird", "email"),
            ("registration", "fido2"),
        ]
        .into_iter()
        .enumerate()
        {
            rows.push(row(&format!("r{i}"), feature, method));
        }
        let s = poll(&mut counter, &page(&rows)).unwrap();
        assert_eq!(total(&s), 10.0);
        assert_eq!(outcome_total(&s), 10.0);
        let count = |s: &Snapshot, feature: &str, method: &str| {
            s.value(&EVENTS_TOTAL, &[feature, method, "success", ""])
        };
        assert_eq!(count(&s, "reset", "sms"), Some(3.0));
        assert_eq!(count(&s, "reset", "email"), Some(2.0));
        assert_eq!(count(&s, "reset", "other"), Some(1.0));
        assert_eq!(count(&s, "passkeyRegistration", "email"), Some(2.0));
        assert_eq!(count(&s, "other", "email"), Some(1.0));
        assert_eq!(count(&s, "registration", "other"), Some(1.0));
        assert_eq!(s.value(&OUTCOME, &["other", "success"]), Some(1.0));
        assert_eq!(
            s.value(&WINDOW_EVENTS, &["reset", "other", "success", ""]),
            Some(1.0)
        );
        assert_eq!(s.value(&LAST_EVENT, &["other"]), Some(1_795_168_800.0));
        assert_eq!(s.value(&LAST_EVENT, &["weird"]), None);

        // Across a restart the admitted values keep their series and the bounds stay full.
        let saved: SavedEvents =
            serde_json::from_str(&serde_json::to_string(&counter.save()).unwrap()).unwrap();
        let mut restored = EventCounter::restore(&METRICS, small, saved, NOW);
        rows.push(row("n1", "passkeyRegistration", "sms"));
        rows.push(row("n2", "brandNew", "qrCode"));
        let s = poll(&mut restored, &page(&rows)).unwrap();
        assert_eq!(total(&s), 12.0);
        assert_eq!(count(&s, "passkeyRegistration", "sms"), Some(1.0));
        assert_eq!(count(&s, "other", "other"), Some(1.0));
    }

    #[test]
    fn fractional_seconds_in_event_times() {
        let mut counter = EventCounter::new(&METRICS, limits(20));
        let s = poll(
            &mut counter,
            r#"{"value":[{"id":"x","feature":"reset","isSuccess":true,"authMethod":"email","eventDateTime":"2023-03-13T19:15:41.6195833Z"}]}"#,
        )
        .unwrap();
        assert_eq!(s.value(&LAST_EVENT, &["reset"]), Some(1_678_734_941.0));
    }
}
