//! beta `GET /reports/authenticationMethods/userPasswordResetsAndChangesSummary`: password
//! changes and resets per day. The newest day is exported.
//!
//! Metrics: `entra_authmethods_password_events{kind}` (selfServiceChange, adminReset,
//! selfServiceReset) and `entra_authmethods_password_events_day_timestamp_seconds`.

use std::marker::PhantomData;

use serde::Deserialize;

use crate::reports::shared::daily::{DailyReport, Day};
use crate::reports::shared::de;
use crate::reports::spec::{
    AUDIT_LOG_PERMISSION, BuildContext, DAILY_INTERVAL, Report, ReportSpec,
};
use crate::snapshot::{Kind, MetricDef};

pub const SPEC: ReportSpec = ReportSpec {
    name: "userPasswordResetsAndChangesSummary",
    default_interval: DAILY_INTERVAL,
    permission: AUDIT_LOG_PERMISSION,
    successor: None,
    probe: PATH,
    fallback: None,
    metrics: &[&EVENTS, &DAY],
    fields: &[
        "aggregatedDateTime",
        "changePasswordSelfServiceCount",
        "passwordResetsByAdminCount",
        "passwordResetsSelfServiceCount",
    ],
    persisted: false,
    build,
};

const PATH: &str = "/beta/reports/authenticationMethods/userPasswordResetsAndChangesSummary";

pub static EVENTS: MetricDef = MetricDef {
    name: "entra_authmethods_password_events",
    help: "Password changes and resets on the newest day of userPasswordResetsAndChangesSummary (kind: selfServiceChange, adminReset, selfServiceReset), as of the last poll.",
    kind: Kind::Gauge,
    labels: &["kind"],
};

pub static DAY: MetricDef = MetricDef {
    name: "entra_authmethods_password_events_day_timestamp_seconds",
    help: "Start of the day entra_authmethods_password_events counts (aggregatedDateTime), as of the last poll.",
    kind: Kind::Gauge,
    labels: &[],
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(default, deserialize_with = "de::optional_text")]
    pub aggregated_date_time: String,
    #[serde(deserialize_with = "de::count")]
    pub change_password_self_service_count: u64,
    #[serde(deserialize_with = "de::count")]
    pub password_resets_by_admin_count: u64,
    #[serde(deserialize_with = "de::count")]
    pub password_resets_self_service_count: u64,
}

impl Day for Row {
    fn kinds(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("selfServiceChange", self.change_password_self_service_count),
            ("adminReset", self.password_resets_by_admin_count),
            ("selfServiceReset", self.password_resets_self_service_count),
        ]
    }

    fn date(&self) -> &str {
        &self.aggregated_date_time
    }
}

fn build(_: &BuildContext) -> Box<dyn Report> {
    Box::new(report())
}

fn report() -> DailyReport<Row> {
    DailyReport {
        report: SPEC.name,
        path: PATH,
        counts: &EVENTS,
        day: &DAY,
        rows: PhantomData,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ParsedPage, parse_page};

    #[test]
    fn the_newest_day_is_exported() {
        let ParsedPage { rows, .. } = parse_page::<Row>(
            br#"{"value":[
              {"aggregatedDateTime":"2026-11-22T00:00:00Z","changePasswordSelfServiceCount":3,"passwordResetsByAdminCount":"1","passwordResetsSelfServiceCount":9},
              {"aggregatedDateTime":"2026-11-21T00:00:00Z","changePasswordSelfServiceCount":30,"passwordResetsByAdminCount":10,"passwordResetsSelfServiceCount":90}]}"#,
        )
        .unwrap();
        let mut newest = None;
        crate::reports::shared::daily::keep_newest(&mut newest, rows);
        let s = report().snapshot(newest);
        assert_eq!(s.value(&EVENTS, &["selfServiceChange"]), Some(3.0));
        assert_eq!(s.value(&EVENTS, &["adminReset"]), Some(1.0));
        assert_eq!(s.value(&EVENTS, &["selfServiceReset"]), Some(9.0));
        assert_eq!(s.value(&DAY, &[]), Some(1_795_305_600.0));
    }
}
