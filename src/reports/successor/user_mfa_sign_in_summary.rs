//! beta `GET /reports/authenticationMethods/userMfaSignInSummary`: sign-ins per day, split into
//! single- and multi-factor. The newest day is exported.
//!
//! Metrics: `entra_authmethods_mfa_signins{kind}` (total, singleFactor, multiFactor) and
//! `entra_authmethods_mfa_signins_day_timestamp_seconds`.

use std::marker::PhantomData;

use serde::Deserialize;

use crate::reports::shared::daily::{DailyReport, Day};
use crate::reports::shared::de;
use crate::reports::spec::{
    AUDIT_LOG_PERMISSION, BuildContext, DAILY_INTERVAL, Report, ReportSpec,
};
use crate::snapshot::{Kind, MetricDef};

pub const SPEC: ReportSpec = ReportSpec {
    name: "userMfaSignInSummary",
    default_interval: DAILY_INTERVAL,
    permission: AUDIT_LOG_PERMISSION,
    successor: None,
    probe: PATH,
    fallback: None,
    metrics: &[&SIGNINS, &DAY],
    fields: &[
        "createdDateTime",
        "multiFactorSignIns",
        "singleFactorSignIns",
        "totalSignIns",
    ],
    persisted: false,
    build,
};

/// The entity set supports no query options.
const PATH: &str = "/beta/reports/authenticationMethods/userMfaSignInSummary";

pub static SIGNINS: MetricDef = MetricDef {
    name: "entra_authmethods_mfa_signins",
    help: "Sign-ins on the newest day of userMfaSignInSummary (kind: total, singleFactor, multiFactor), as of the last poll.",
    kind: Kind::Gauge,
    labels: &["kind"],
};

pub static DAY: MetricDef = MetricDef {
    name: "entra_authmethods_mfa_signins_day_timestamp_seconds",
    help: "Start of the day entra_authmethods_mfa_signins counts (createdDateTime), as of the last poll.",
    kind: Kind::Gauge,
    labels: &[],
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(default, deserialize_with = "de::optional_text")]
    pub created_date_time: String,
    #[serde(deserialize_with = "de::count")]
    pub total_sign_ins: u64,
    #[serde(deserialize_with = "de::count")]
    pub single_factor_sign_ins: u64,
    #[serde(deserialize_with = "de::count")]
    pub multi_factor_sign_ins: u64,
}

impl Day for Row {
    fn kinds(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("total", self.total_sign_ins),
            ("singleFactor", self.single_factor_sign_ins),
            ("multiFactor", self.multi_factor_sign_ins),
        ]
    }

    fn date(&self) -> &str {
        &self.created_date_time
    }
}

fn build(_: &BuildContext) -> Box<dyn Report> {
    Box::new(report())
}

fn report() -> DailyReport<Row> {
    DailyReport {
        report: SPEC.name,
        path: PATH,
        counts: &SIGNINS,
        day: &DAY,
        rows: PhantomData,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ParsedPage, parse_page};

    #[test]
    fn the_newest_day_wins_whatever_the_order() {
        // The docs' example has totalSignIns 1000 but 9900 multi-factor: values are passed on
        // as Graph gives them.
        let ParsedPage { rows, .. } = parse_page::<Row>(
            br#"{"value":[
              {"id":"a","createdDateTime":"2025-07-16T00:00:00Z","totalSignIns":1000,"singleFactorSignIns":100,"multiFactorSignIns":9900},
              {"id":"b","createdDateTime":"2025-07-14T00:00:00Z","totalSignIns":5,"singleFactorSignIns":"2","multiFactorSignIns":3},
              {"id":"c","createdDateTime":null,"totalSignIns":7,"singleFactorSignIns":7,"multiFactorSignIns":0}]}"#,
        )
        .unwrap();
        let mut newest = None;
        crate::reports::shared::daily::keep_newest(&mut newest, rows);
        let s = report().snapshot(newest);
        assert_eq!(s.value(&SIGNINS, &["total"]), Some(1000.0));
        assert_eq!(s.value(&SIGNINS, &["multiFactor"]), Some(9900.0));
        assert_eq!(s.value(&DAY, &[]), Some(1_752_624_000.0));
    }

    #[test]
    fn no_days_no_samples() {
        assert!(report().snapshot(None).samples.is_empty());
        // A day without all its counts is a bad row: skipped, not a day of zeros.
        let page = parse_page::<Row>(
            br#"{"value":[{"createdDateTime":"2025-07-16T00:00:00Z","totalSignIns":1}]}"#,
        )
        .unwrap();
        assert!(page.rows.is_empty());
        assert_eq!(page.skipped.len(), 1);
    }
}
