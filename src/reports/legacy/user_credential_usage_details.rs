//! beta `GET /reports/userCredentialUsageDetails` (legacy): one row per SSPR registration or
//! reset event in the report window, counted by [`crate::reports::shared::events`].
//!
//! Metrics: `entra_credential_usage_window_events`, `entra_credential_usage_events_total`
//! (`{feature,auth_method,status,failure_reason}`), `entra_credential_usage_outcome_events_total`
//! (`{feature,status}`), `entra_credential_usage_recent_outcome_events{feature,status}` and
//! `entra_credential_usage_last_event_timestamp_seconds{feature}`.

use crate::reports::shared::events::{EVENT_LABELS, EventMetrics, EventsReport, OUTCOME_LABELS};
use crate::reports::spec::{BuildContext, EVENTS_INTERVAL, LEGACY_PERMISSION, Report, ReportSpec};
use crate::snapshot::{Kind, MetricDef};

pub const SPEC: ReportSpec = ReportSpec {
    name: "userCredentialUsageDetails",
    default_interval: EVENTS_INTERVAL,
    permission: LEGACY_PERMISSION,
    successor: Some("userEventsSummary"),
    probe: "/beta/reports/userCredentialUsageDetails?$top=1",
    fallback: None,
    metrics: &[
        &WINDOW_EVENTS,
        &EVENTS_TOTAL,
        &OUTCOME_EVENTS_TOTAL,
        &LAST_EVENT,
        &RECENT_EVENTS,
    ],
    fields: crate::reports::shared::events::FIELDS,
    persisted: true,
    build,
};

const PATH: &str = "/beta/reports/userCredentialUsageDetails";

pub static WINDOW_EVENTS: MetricDef = MetricDef {
    name: "entra_credential_usage_window_events",
    help: "SSPR registration and reset events currently in the credential usage details report, as of the last poll. failure_reason is empty on success.",
    kind: Kind::Gauge,
    labels: EVENT_LABELS,
};

pub static EVENTS_TOTAL: MetricDef = MetricDef {
    name: "entra_credential_usage_events_total",
    help: "SSPR registration and reset events listed in the credential usage details report, each counted once: from the first poll on (which only learns the window), continued across restarts with --state.file. As of the last poll.",
    kind: Kind::Counter,
    labels: EVENT_LABELS,
};

pub static OUTCOME_EVENTS_TOTAL: MetricDef = MetricDef {
    name: "entra_credential_usage_outcome_events_total",
    help: "SSPR registration and reset events listed in the credential usage details report, each counted once (as the detailed counter), by feature and outcome only; every registration/reset and success/failure series exists from the first poll at zero. As of the last poll.",
    kind: Kind::Counter,
    labels: OUTCOME_LABELS,
};

pub static LAST_EVENT: MetricDef = MetricDef {
    name: "entra_credential_usage_last_event_timestamp_seconds",
    help: "Time of the newest event per feature in the credential usage details report, as of the last poll.",
    kind: Kind::Gauge,
    labels: &["feature"],
};

pub static RECENT_EVENTS: MetricDef = MetricDef {
    name: "entra_credential_usage_recent_outcome_events",
    help: "SSPR registration and reset events in the credential usage details report whose eventDateTime is within the 30 minutes before the last poll, by feature and outcome; every registration/reset and success/failure series exists from the first poll.",
    kind: Kind::Gauge,
    labels: OUTCOME_LABELS,
};

static METRICS: EventMetrics = EventMetrics {
    window: &WINDOW_EVENTS,
    total: &EVENTS_TOTAL,
    outcome: &OUTCOME_EVENTS_TOTAL,
    last_event: &LAST_EVENT,
    recent: &RECENT_EVENTS,
};

fn build(context: &BuildContext) -> Box<dyn Report> {
    Box::new(EventsReport::new(&METRICS, SPEC.name, PATH, context))
}
