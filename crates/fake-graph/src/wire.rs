//! How Graph writes values: its date-times, and evolvable enum members hidden behind
//! `unknownFutureValue`.

use std::time::SystemTime;

use time::OffsetDateTime;

const UNKNOWN_FUTURE_VALUE: &str = "unknownFutureValue";

/// `2026-11-23T10:00:00Z`: whole seconds, UTC, as Graph writes most times.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Like [`rfc3339`], with 7 fractional digits when the time has any
/// (`2026-11-23T08:15:41.6195833Z`), as `lastUpdatedDateTime` comes.
pub(crate) fn rfc3339_precise(t: SystemTime) -> String {
    let whole = rfc3339(t);
    let nanos = OffsetDateTime::from(t).nanosecond();
    match whole.strip_suffix('Z') {
        Some(stem) if nanos != 0 => format!("{stem}.{:07}Z", nanos / 100),
        _ => whole,
    }
}

/// Graph collapses evolvable enum members to `unknownFutureValue` unless the
/// request sent `Prefer: include-unknown-enum-members`.
pub(crate) fn visible<'a>(member: &'a str, evolvable: &[&str], include_unknown: bool) -> &'a str {
    if include_unknown || !evolvable.contains(&member) {
        member
    } else {
        UNKNOWN_FUTURE_VALUE
    }
}
