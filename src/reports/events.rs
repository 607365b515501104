//! Usage events, shared by the legacy userCredentialUsageDetails and its successor
//! userEventsSummary, which list the same rows. Events are counted page by page; only counts
//! and 64-bit hashes of event ids are kept, never user names.
//!
//! Each report gets four families:
//! - `*_window_events{feature,auth_method,status,failure_reason}`: events in the report now;
//! - `*_events_total{...}`: events first seen since the exporter started. The first poll after
//!   start only learns the window (the counter starts at zero, so a restart never fakes a
//!   spike); later polls count each new event id once. Ids are forgotten when their event
//!   leaves the window;
//! - `*_outcome_events_total{feature,status}`: the same events without method and reason. Every
//!   (registration|reset, success|failure) series exists from the first completed poll, so a
//!   burst under a method or reason never seen before is growth of an existing series, which
//!   `increase()` sees in full; alerts use this one;
//! - `*_last_event_timestamp_seconds{feature}`: the newest eventDateTime.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use async_trait::async_trait;
use serde::Deserialize;

use super::{BuildContext, Report, de};
use crate::graph::{GraphClient, GraphError};
use crate::labels::{self, BoundedLabel, UNKNOWN};
use crate::snapshot::{MetricDef, Snapshot};

/// The label names shared by the window gauge and the counter.
pub const EVENT_LABELS: &[&str] = &["feature", "auth_method", "status", "failure_reason"];
/// The label names of the outcome counter.
pub const OUTCOME_LABELS: &[&str] = &["feature", "status"];
/// The features and statuses Graph documents (featureType): their outcome series are exported
/// at zero from the first completed poll.
const KNOWN_FEATURES: [&str; 2] = ["registration", "reset"];
const STATUSES: [&str; 2] = ["success", "failure"];

/// The metric families an [`EventCounter`] fills.
#[derive(Debug)]
pub struct EventMetrics {
    pub window: &'static MetricDef,
    pub total: &'static MetricDef,
    pub outcome: &'static MetricDef,
    pub last_event: &'static MetricDef,
}

/// One usage event. User names and display names are not deserialized at all.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(default, deserialize_with = "de::optional_text")]
    pub id: String,
    #[serde(default = "de::unknown", deserialize_with = "de::label")]
    pub feature: String,
    #[serde(deserialize_with = "de::flag")]
    pub is_success: bool,
    #[serde(default = "de::unknown", deserialize_with = "de::label")]
    pub auth_method: String,
    #[serde(default, deserialize_with = "de::optional_text")]
    pub failure_reason: String,
    #[serde(default, deserialize_with = "de::optional_text")]
    pub event_date_time: String,
}

/// A report that lists usage events at `path`: read whole on each poll, then committed.
pub struct EventsReport {
    counter: EventCounter,
    report: &'static str,
    path: &'static str,
}

impl EventsReport {
    pub fn new(
        metrics: &'static EventMetrics,
        report: &'static str,
        path: &'static str,
        context: &BuildContext,
    ) -> Self {
        Self {
            counter: EventCounter::new(metrics, context.failure_reason_limit),
            report,
            path,
        }
    }
}

#[async_trait]
impl Report for EventsReport {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        let mut pass = self.counter.start_pass();
        let rows = graph
            .for_each_page(self.report, self.path, |rows: Vec<Row>| pass.add(rows))
            .await?;
        let pass = pass.finish();
        let mut snapshot = self.counter.commit(pass);
        snapshot.rows = rows;
        Ok(snapshot)
    }
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
    hasher: RandomState,
    /// Hashes of the event ids in the window at the last complete poll.
    seen: HashSet<u64>,
    totals: BTreeMap<LabelKey, u64>,
    outcomes: BTreeMap<OutcomeKey, u64>,
    /// False until the first complete poll, which only learns the window.
    primed: bool,
}

impl EventCounter {
    pub fn new(metrics: &'static EventMetrics, failure_reason_limit: usize) -> Self {
        Self {
            metrics,
            reasons: BoundedLabel::new(failure_reason_limit),
            hasher: RandomState::new(),
            seen: HashSet::new(),
            totals: BTreeMap::new(),
            outcomes: KNOWN_FEATURES
                .iter()
                .flat_map(|feature| STATUSES.map(|status| (((*feature).to_owned(), status), 0)))
                .collect(),
            primed: false,
        }
    }

    /// Starts reading the report once. Nothing changes here until [`EventCounter::commit`], so
    /// a poll that fails half-way leaves the counters as they were.
    pub fn start_pass(&self) -> Pass<'_> {
        Pass {
            seen: &self.seen,
            hasher: &self.hasher,
            window: HashMap::new(),
            ids: HashSet::new(),
            newest: BTreeMap::new(),
        }
    }

    pub fn commit(&mut self, pass: FinishedPass) -> Snapshot {
        let mut reason_counts: HashMap<String, u64> = HashMap::new();
        for ((_, _, success, reason), counts) in &pass.window {
            if !success {
                *reason_counts.entry(reason.clone()).or_default() += counts.events;
            }
        }
        self.reasons.admit(&reason_counts);

        let mut window: BTreeMap<LabelKey, u64> = BTreeMap::new();
        for ((feature, method, success, reason), counts) in pass.window {
            let (status, reason) = if success {
                ("success", String::new())
            } else {
                ("failure", self.reasons.label(&reason).to_owned())
            };
            let outcome = self.outcomes.entry((feature.clone(), status)).or_default();
            let key = (feature, method, status, reason);
            let total = self.totals.entry(key.clone()).or_default();
            if self.primed {
                *total += counts.new;
                *outcome += counts.new;
            }
            *window.entry(key).or_default() += counts.events;
        }
        self.seen = pass.ids;
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
        for (feature, newest) in pass.newest {
            snapshot.push(self.metrics.last_event, vec![feature], newest as f64);
        }
        snapshot
    }
}

/// One read of the report in progress.
pub struct Pass<'a> {
    seen: &'a HashSet<u64>,
    hasher: &'a RandomState,
    window: HashMap<RawKey, KeyCounts>,
    ids: HashSet<u64>,
    newest: BTreeMap<String, i64>,
}

/// A complete read, ready to commit.
pub struct FinishedPass {
    window: HashMap<RawKey, KeyCounts>,
    ids: HashSet<u64>,
    newest: BTreeMap<String, i64>,
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
            // Rows without an id are identified by their content instead.
            let id = if row.id.is_empty() {
                self.hasher.hash_one((
                    &row.feature,
                    &row.auth_method,
                    row.is_success,
                    &reason,
                    &row.event_date_time,
                ))
            } else {
                self.hasher.hash_one(&row.id)
            };
            // A row seen twice within one read (pages shifting under us) counts once as new.
            let first_in_pass = self.ids.insert(id);
            let new = first_in_pass && !self.seen.contains(&id);
            if let Some(at) = de::timestamp(&row.event_date_time) {
                let newest = self.newest.entry(row.feature.clone()).or_insert(at);
                *newest = (*newest).max(at);
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::parse_page;
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
    static METRICS: EventMetrics = EventMetrics {
        window: &WINDOW_EVENTS,
        total: &EVENTS_TOTAL,
        outcome: &OUTCOME,
        last_event: &LAST_EVENT,
    };

    fn poll(counter: &mut EventCounter, json: &str) -> Result<Snapshot, serde_json::Error> {
        let (rows, _) = parse_page::<Row>(json.as_bytes())?;
        let mut pass = counter.start_pass();
        pass.add(rows);
        let pass = pass.finish();
        Ok(counter.commit(pass))
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
        let mut counter = EventCounter::new(&METRICS, 20);
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
        let mut counter = EventCounter::new(&METRICS, 20);
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

        // An id that left the window and comes back is new again: it was forgotten.
        let fourth = poll(&mut counter, &page(&[event("a", false, "bad code")])).unwrap();
        assert_eq!(fourth.value(&EVENTS_TOTAL, &FAIL), Some(2.0));
    }

    #[test]
    fn outcome_counters_exist_at_zero_from_the_first_poll_and_see_a_burst_under_a_new_reason() {
        let mut counter = EventCounter::new(&METRICS, 20);
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
        let mut counter = EventCounter::new(&METRICS, 1);
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
        let mut counter = EventCounter::new(&METRICS, 20);
        poll(&mut counter, &page(&[event("a", false, "bad code")])).unwrap();
        {
            let mut pass = counter.start_pass();
            let (rows, _) =
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
        let mut counter = EventCounter::new(&METRICS, 2);
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
        let mut counter = EventCounter::new(&METRICS, 20);
        let s = poll(
            &mut counter,
            r#"{"value":[{"id":null,"feature":null,"isSuccess":"false","authMethod":"qrCode","failureReason":null,"eventDateTime":"not a date"}]}"#,
        )
        .unwrap();
        assert_eq!(
            s.value(&WINDOW_EVENTS, &["unknown", "qrCode", "failure", "unknown"]),
            Some(1.0)
        );
        assert_eq!(s.value(&LAST_EVENT, &["unknown"]), None);
        assert!(poll(&mut counter, r#"{"value":[{"id":"x","feature":"reset"}]}"#).is_err());
        assert!(
            poll(
                &mut counter,
                r#"{"value":[{"id":"x","isSuccess":"maybe"}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn fractional_seconds_in_event_times() {
        let mut counter = EventCounter::new(&METRICS, 20);
        let s = poll(
            &mut counter,
            r#"{"value":[{"id":"x","feature":"reset","isSuccess":true,"authMethod":"email","eventDateTime":"2023-03-13T19:15:41.6195833Z"}]}"#,
        )
        .unwrap();
        assert_eq!(s.value(&LAST_EVENT, &["reset"]), Some(1_678_734_941.0));
    }
}
