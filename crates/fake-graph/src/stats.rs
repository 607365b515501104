//! Simulated sign-in and password statistics for the beta summary reports.
//!
//! There is no per-sign-in state: each UTC day's numbers are a function of
//! seed, tenant size and the day, so they stay put within a day and
//! `d30 >= d7 >= d1` holds by construction. Self-service resets are the one
//! exception: they count the simulation's own successful reset events, so
//! `userPasswordResetsAndChangesSummary` agrees with the usage reports.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::data::Simulation;
use crate::seeded::{fnv1a, mix, uuid_like};
use crate::wire::rfc3339;

const DAY: Duration = Duration::from_secs(24 * 3600);
/// Days in `userMfaSignInSummary` and `userPasswordResetsAndChangesSummary`.
const DAILY_ROWS: u64 = 7;

const STREAM_STATS: u64 = 10;
const STREAM_MFA_DAY: u64 = 11;
const STREAM_RESET_DAY: u64 = 12;

/// Sign-ins per user and weekday by method, roughly a hybrid-work tenant.
const SIGN_IN_METHODS: &[(&str, f64)] = &[
    ("password", 0.55),
    ("microsoftAuthenticatorPush", 0.30),
    ("windowsHelloForBusiness", 0.12),
    ("softwareOneTimePasscode", 0.06),
    ("sms", 0.05),
    ("passKeyDeviceBound", 0.03),
    ("fido2SecurityKey", 0.02),
    ("email", 0.01),
    ("temporaryAccessPass", 0.002),
];
/// Sign-ins per user and weekday, and the share that used MFA.
const SIGN_INS_PER_USER: f64 = 1.3;
const MFA_SHARE: (f64, f64) = (0.86, 0.10);
/// Self-service password changes and admin resets per user and weekday.
const CHANGES_PER_USER: f64 = 0.004;
const ADMIN_RESETS_PER_USER: f64 = 0.001;

/// A `userSignInsByAuthMethodSummary` row; the method is the key, no `id`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignInRow {
    authentication_method: &'static str,
    success_activity_count: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MfaSignInRow {
    id: String,
    created_date_time: String,
    total_sign_ins: u64,
    single_factor_sign_ins: u64,
    multi_factor_sign_ins: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PasswordRow {
    id: String,
    aggregated_date_time: String,
    change_password_self_service_count: u64,
    password_resets_by_admin_count: u64,
    password_resets_self_service_count: u64,
}

/// `userSignInsByAuthMethodSummary` over the `days` UTC days ending with today.
pub(crate) fn sign_ins_by_method(sim: &Simulation, now: SystemTime, days: u64) -> Vec<SignInRow> {
    let today = utc_day(now);
    SIGN_IN_METHODS
        .iter()
        .map(|(method, rate)| SignInRow {
            authentication_method: method,
            success_activity_count: (today.saturating_sub(days.saturating_sub(1))..=today)
                .map(|day| daily(sim, *rate, fnv1a(&[method]), day))
                .sum(),
        })
        .collect()
}

/// `userMfaSignInSummary`: the last [`DAILY_ROWS`] days, oldest first, so a
/// client that takes the last row rather than the newest date shows up.
pub(crate) fn mfa_sign_ins(sim: &Simulation, now: SystemTime) -> Vec<MfaSignInRow> {
    recent_days(now)
        .map(|day| {
            let total = daily(sim, SIGN_INS_PER_USER, STREAM_MFA_DAY, day);
            let share = MFA_SHARE.0 + MFA_SHARE.1 * unit(sim.seed(), STREAM_MFA_DAY, day);
            let multi = ((total as f64 * share).round() as u64).min(total);
            MfaSignInRow {
                id: uuid_like(sim.seed(), STREAM_MFA_DAY, day),
                created_date_time: rfc3339(day_start(day)),
                total_sign_ins: total,
                single_factor_sign_ins: total - multi,
                multi_factor_sign_ins: multi,
            }
        })
        .collect()
}

/// `userPasswordResetsAndChangesSummary`: the last [`DAILY_ROWS`] days, oldest first.
pub(crate) fn password_changes(sim: &Simulation, now: SystemTime) -> Vec<PasswordRow> {
    recent_days(now)
        .map(|day| {
            let start = day_start(day);
            PasswordRow {
                id: uuid_like(sim.seed(), STREAM_RESET_DAY, day),
                aggregated_date_time: rfc3339(start),
                change_password_self_service_count: daily(
                    sim,
                    CHANGES_PER_USER,
                    STREAM_RESET_DAY,
                    day,
                ),
                password_resets_by_admin_count: daily(
                    sim,
                    ADMIN_RESETS_PER_USER,
                    STREAM_RESET_DAY + 1,
                    day,
                ),
                password_resets_self_service_count: sim
                    .self_service_resets(start, start.checked_add(DAY).unwrap_or(start)),
            }
        })
        .collect()
}

fn recent_days(now: SystemTime) -> impl Iterator<Item = u64> {
    let today = utc_day(now);
    today.saturating_sub(DAILY_ROWS - 1)..=today
}

/// `rate` per user on `day`: weekdays wobble ±20%, weekends run at about a
/// third. `salt` keeps series (methods, kinds of count) independent.
fn daily(sim: &Simulation, rate: f64, salt: u64, day: u64) -> u64 {
    let u = unit(sim.seed(), STREAM_STATS ^ salt, day);
    // Day 0 (1970-01-01) was a Thursday, so Saturday and Sunday are 2 and 3.
    let weekend = matches!(day % 7, 2 | 3);
    let factor = if weekend {
        0.25 + 0.15 * u
    } else {
        0.8 + 0.4 * u
    };
    (sim.user_count() as f64 * rate * factor).round() as u64
}

/// A uniform draw in `[0, 1)` from `(seed, stream, n)`.
fn unit(seed: u64, stream: u64, n: u64) -> f64 {
    (mix(seed, stream, n) >> 11) as f64 / (1u64 << 53) as f64
}

fn utc_day(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / DAY.as_secs())
}

fn day_start(day: u64) -> SystemTime {
    day.checked_mul(DAY.as_secs())
        .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}
