//! Daily summaries (userMfaSignInSummary, userPasswordResetsAndChangesSummary) list one row per
//! day in no promised order; the exporter exports the newest day only, as a count per `kind`
//! and the day's timestamp.

use std::marker::PhantomData;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use crate::graph::{GraphClient, GraphError};
use crate::reports::shared::de;
use crate::reports::spec::Report;
use crate::snapshot::{MetricDef, Snapshot};

/// A row of a daily summary.
pub trait Day: DeserializeOwned + Send {
    /// The row's date, as Graph sent it.
    fn date(&self) -> &str;
    /// The day's counts, by `kind` label.
    fn kinds(&self) -> Vec<(&'static str, u64)>;
}

/// A daily summary report: `counts{kind}` and `day` for the newest row of type `T`.
pub struct DailyReport<T> {
    pub report: &'static str,
    pub path: &'static str,
    pub counts: &'static MetricDef,
    pub day: &'static MetricDef,
    pub rows: PhantomData<fn() -> T>,
}

#[async_trait]
impl<T: Day> Report for DailyReport<T> {
    async fn poll(&mut self, graph: &GraphClient) -> Result<Snapshot, GraphError> {
        let mut newest = None;
        let rows = graph
            .for_each_page(self.report, self.path, |page: Vec<T>| {
                keep_newest(&mut newest, page)
            })
            .await?;
        let mut snapshot = self.snapshot(newest);
        snapshot.rows = rows;
        Ok(snapshot)
    }
}

impl<T: Day> DailyReport<T> {
    pub fn snapshot(&self, newest: Option<(i64, T)>) -> Snapshot {
        let mut snapshot = Snapshot::default();
        if let Some((day, row)) = newest {
            for (kind, count) in row.kinds() {
                snapshot.push(self.counts, vec![kind.to_owned()], count as f64);
            }
            snapshot.push(self.day, vec![], day as f64);
        }
        snapshot
    }
}

/// Keeps the row with the newest parseable date, with that date in seconds since the epoch.
pub fn keep_newest<T: Day>(newest: &mut Option<(i64, T)>, rows: Vec<T>) {
    for row in rows {
        let Some(at) = de::timestamp(row.date()) else {
            continue;
        };
        if newest.as_ref().is_none_or(|(best, _)| at > *best) {
            *newest = Some((at, row));
        }
    }
}
