//! The simulated tenant: users (generated on demand, see [`users`](crate::users)),
//! a registration campaign that slowly enrols them, a passkey campaign that
//! slowly moves users who only have a phone to passkeys, and a rolling window of
//! SSPR / registration usage events. Everything random comes from `seed` and
//! the time elapsed since start, so two fakes with the same options serve the
//! same users and initial events (event ids aside: like Graph's, they are
//! unique to each run).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::options::{FakeGraphOptions, Scenario};
use crate::seeded::{SplitMix, fnv1a, mix, pick, uuid_like};
use crate::users::{Census, User, UserRoles, UserTypes, user_display_name, user_principal_name};
use crate::wire::{rfc3339, visible};

/// The longest report period (D30); older events leave the window.
pub(crate) const WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// `id` streams, so that users, events and summary rows never share ids.
/// Stream 1 (user ids) and 6 (user draws) live in `users`.
const STREAM_EVENT: u64 = 2;
const STREAM_SUMMARY: u64 = 3;
const STREAM_COUNT: u64 = 4;
const STREAM_EVENT_RNG: u64 = 5;
const STREAM_ACTIVITY: u64 = 7;
const STREAM_CAMPAIGN: u64 = 8;
const STREAM_SPIKE: u64 = 9;
const STREAM_PASSKEYS: u64 = 13;

/// usageAuthMethod members, old and new, with rough popularity.
const USAGE_METHODS: &[(&str, u32)] = &[
    ("email", 20),
    ("mobileSMS", 18),
    ("appNotification", 16),
    ("microsoftAuthenticatorPush", 12),
    ("appCode", 8),
    ("securityQuestion", 6),
    ("softwareOneTimePasscode", 5),
    ("mobileCall", 4),
    ("officePhone", 2),
    ("fido2SecurityKey", 2),
    ("temporaryAccessPass", 2),
    ("passKeyDeviceBound", 2),
    ("alternateMobileCall", 1),
];
/// Evolvable usageAuthMethod members (after `unknownFutureValue`).
const USAGE_EVOLVABLE: &[&str] = &[
    "externalAuthMethod",
    "hardwareOneTimePasscode",
    "windowsHelloForBusiness",
    "microsoftAuthenticatorPasswordless",
    "temporaryAccessPass",
    "macOsSecureEnclaveKey",
    "passKeyDeviceBound",
    "passKeyDeviceBoundAuthenticator",
    "passKeyDeviceBoundWindowsHello",
    "softwareOneTimePasscode",
    "microsoftAuthenticatorPush",
    "mobilePhone",
    "sms",
    "alternateMobilePhone",
    "fido2SecurityKey",
    "oneTimePasscode",
    "passKeySynced",
    "qrCode",
];

/// Share of automatic events that are resets (the rest are registrations),
/// and of events that fail.
const RESET_SHARE: f64 = 0.7;
const FAILURE_SHARE: f64 = 0.2;

const FAILURE_REASONS: &[&str] = &[
    "User contacted an admin after trying the email verification option",
    "User abandoned the flow after entering an incorrect verification code",
    "User's new password didn't meet the organization's password policy",
    "User timed out while answering security questions",
    "User couldn't be verified because no mobile phone number was registered",
    "Account was locked out after too many verification attempts",
];
/// A reason with a quote, a newline and non-ASCII text, to keep label escaping honest.
const AWKWARD_FAILURE_REASON: &str = "Benutzer hat \"Zurücksetzen\" abgebrochen\n";

/// Summary rows for these methods serialize their counts as JSON strings, as
/// the docs' example does; the exporter must accept both forms.
const STRING_COUNT_METHODS: &[&str] = &["email", "securityQuestion"];

/// The registration campaign enrols users in steps this far apart, so anything
/// shorter than one step (every test) sees no change.
const CAMPAIGN_STEP: Duration = Duration::from_secs(300);
/// The passkey campaign's steps: its first user moves a minute after start, so
/// that a demo shows the phone-only count falling within minutes.
const PASSKEY_STEP: Duration = Duration::from_secs(60);
/// Random picks per user a campaign step is due before it gives up (a tenant
/// where nearly everyone is registered has few candidates left).
const CAMPAIGN_ATTEMPTS: usize = 20;

/// [`Scenario::Spike`]: when, for how long, how much worse, and its story.
const SPIKE_DELAY: Duration = Duration::from_secs(60);
const SPIKE_LENGTH: Duration = Duration::from_secs(600);
const SPIKE_FACTOR: f64 = 20.0;
const SPIKE_METHOD: &str = "mobileSMS";
const SPIKE_REASON: &str = "User abandoned the flow after entering an incorrect verification code";
const SPIKE_REASON_SHARE: f64 = 0.9;

/// An SSPR or registration attempt, as `userCredentialUsageDetails` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    /// `registration` or `reset`.
    pub feature: String,
    /// A usageAuthMethod member, e.g. `email`, `microsoftAuthenticatorPush`.
    pub auth_method: String,
    pub is_success: bool,
    /// Empty on success.
    pub failure_reason: String,
    /// Index of the simulated user (`user0042@demo.contoso.test` for 42).
    pub user: usize,
}

struct StoredEvent {
    /// Creation order; paging cursors point at it so a scan survives events
    /// being added or expired between pages.
    seq: u64,
    id: String,
    at: SystemTime,
    event: UsageEvent,
    /// A complete events page has listed it.
    #[cfg(feature = "testing")]
    listed: bool,
}

/// Extra reset failures of [`Scenario::Spike`], a Poisson process of its own
/// so the steady stream stays the same in both scenarios.
struct Spike {
    rng: StdRng,
    mean_gap: Duration,
    next_at: SystemTime,
    end: SystemTime,
}

/// A campaign that changes users in steps: the registration campaign behind
/// `registration_drift_per_hour`, or the passkey campaign behind
/// `passkey_campaign_per_hour`. Step `k`, at `k` x `step` after start, brings
/// the users changed up to the hourly rate accrued by then (rounded up),
/// picked at random from those it still has something to sell; the picks
/// depend only on seed and `k`.
struct Campaign {
    per_hour: f64,
    step: Duration,
    stream: u64,
    steps_done: u64,
    /// The only per-user state the fake keeps: who the campaign changed, and when.
    changed: HashMap<usize, SystemTime>,
}

impl Campaign {
    fn new(per_hour: f64, step: Duration, stream: u64) -> Self {
        Campaign {
            per_hour,
            step,
            stream,
            steps_done: 0,
            changed: HashMap::new(),
        }
    }

    /// The next step and when it is due, if that is by `now`.
    fn due(&self, started: SystemTime, now: SystemTime) -> Option<(u64, SystemTime)> {
        if self.per_hour <= 0.0 {
            return None;
        }
        let step = self.steps_done + 1;
        let at = u32::try_from(step)
            .ok()
            .and_then(|k| self.step.checked_mul(k))
            .and_then(|offset| started.checked_add(offset))?;
        (at <= now).then_some((step, at))
    }

    /// Users the rate has accrued by step `step`, rounded up.
    fn accrued(&self, step: u64) -> usize {
        (self.per_hour * (step as f64 * self.step.as_secs_f64()) / 3600.0).ceil() as usize
    }

    /// Users step `step` changes: those the rate has accrued by then that the earlier steps
    /// did not change (a step that found too few candidates leaves them to the next), and how
    /// many random picks it may spend on them: in proportion to the step's own share of the
    /// rate, so that a campaign that has run out of candidates costs no more as time passes.
    fn wanted(&self, step: u64, users: usize) -> (usize, usize) {
        let wanted = self
            .accrued(step)
            .saturating_sub(self.changed.len())
            .min(users);
        let share = self.accrued(step).saturating_sub(self.accrued(step - 1)) + 1;
        (wanted, share.saturating_mul(CAMPAIGN_ATTEMPTS))
    }
}

/// A page of usage events; see [`Simulation::event_page`].
pub(crate) struct EventPage<'a> {
    pub(crate) rows: Vec<EventRow<'a>>,
    pub(crate) next: Option<u64>,
    pub(crate) seqs: Option<(u64, u64)>,
}

pub(crate) struct Simulation {
    seed: u64,
    /// Drawn at start: event ids differ between runs, users do not.
    run: u64,
    users: usize,
    started: SystemTime,
    /// Subtracted from every event's time in its `eventDateTime`.
    event_time_lag: Duration,
    events: VecDeque<StoredEvent>,
    next_seq: u64,
    rng: StdRng,
    /// Mean gap between automatic events; `None` when generation is disabled.
    mean_gap: Option<Duration>,
    next_auto_at: SystemTime,
    spike: Option<Spike>,
    campaign: Campaign,
    passkeys: Campaign,
    /// Built on first use: scanning a million users takes a while and most
    /// requests (pages) never need it. Enrolments keep it up to date after.
    census: Option<Census>,
}

impl Simulation {
    pub(crate) fn new(opts: &FakeGraphOptions, now: SystemTime) -> Self {
        let rng = StdRng::seed_from_u64(mix(opts.seed, STREAM_EVENT_RNG, 0));
        let mean_gap = (opts.events_per_minute > 0.0)
            .then(|| Duration::try_from_secs_f64(60.0 / opts.events_per_minute).ok())
            .flatten();
        let spike = match opts.scenario {
            Scenario::Steady => None,
            Scenario::Spike => mean_gap.and_then(|gap| {
                let start = now.checked_add(SPIKE_DELAY)?;
                let extra = (SPIKE_FACTOR - 1.0) * RESET_SHARE * FAILURE_SHARE;
                let mut rng = StdRng::seed_from_u64(mix(opts.seed, STREAM_SPIKE, 0));
                let mean_gap = gap.div_f64(extra);
                Some(Spike {
                    next_at: after_gap(&mut rng, start, mean_gap),
                    end: start.checked_add(SPIKE_LENGTH)?,
                    rng,
                    mean_gap,
                })
            }),
        };
        let mut sim = Simulation {
            seed: opts.seed,
            run: rand::random(),
            users: opts.users,
            started: now,
            event_time_lag: opts.event_time_lag,
            events: VecDeque::new(),
            next_seq: 0,
            rng,
            mean_gap,
            next_auto_at: now,
            spike,
            campaign: Campaign::new(
                opts.registration_drift_per_hour,
                CAMPAIGN_STEP,
                STREAM_CAMPAIGN,
            ),
            passkeys: Campaign::new(
                opts.passkey_campaign_per_hour,
                PASSKEY_STEP,
                STREAM_PASSKEYS,
            ),
            census: None,
        };
        // Squaring the uniform sample skews ages towards "recent", which keeps
        // D1 < D7 < D30 clearly apart even with few events.
        let mut ages: Vec<Duration> = (0..opts.initial_events)
            .map(|_| {
                let u: f64 = sim.rng.random();
                WINDOW.mul_f64(u * u)
            })
            .collect();
        ages.sort_unstable_by(|a, b| b.cmp(a));
        for age in ages {
            let event = sim.random_event();
            let at = now.checked_sub(age).unwrap_or(now);
            sim.push(at, event);
        }
        if let Some(mean) = sim.mean_gap {
            sim.next_auto_at = after_gap(&mut sim.rng, now, mean);
        }
        sim
    }

    /// Brings the simulation up to `now`: creates the automatic and spike
    /// events that should exist by then (in time order), runs the campaigns'
    /// due steps and drops events that left the window.
    pub(crate) fn advance(&mut self, now: SystemTime) {
        let window_start = now.checked_sub(WINDOW).unwrap_or(SystemTime::UNIX_EPOCH);
        // After a long pause, skip events that would expire at once.
        if self.next_auto_at < window_start {
            self.next_auto_at = window_start;
        }
        loop {
            let auto = self
                .mean_gap
                .map(|mean| (self.next_auto_at, mean))
                .filter(|(at, _)| *at <= now);
            let spike = self
                .spike
                .as_ref()
                .map(|s| s.next_at)
                .filter(|at| *at <= now);
            match (auto, spike) {
                (Some((at, mean)), spike) if spike.is_none_or(|s| at <= s) => {
                    let event = self.random_event();
                    self.push(at, event);
                    self.next_auto_at = after_gap(&mut self.rng, at, mean);
                }
                (_, Some(at)) => self.spike_event(at),
                _ => break,
            }
        }
        self.run_campaigns(now);
        self.expire_before(window_start);
    }

    /// Appends an event and returns its id.
    pub(crate) fn push(&mut self, at: SystemTime, event: UsageEvent) -> String {
        let seq = self.next_seq;
        self.next_seq += 1;
        // Like Graph's, event ids are unique to each run: a restarted demo must not list the
        // ids an exporter's state file remembers from the last run.
        let id = uuid_like(self.seed ^ self.run, STREAM_EVENT, seq);
        self.events.push_back(StoredEvent {
            seq,
            id: id.clone(),
            at,
            event,
            #[cfg(feature = "testing")]
            listed: false,
        });
        id
    }

    pub(crate) fn expire_before(&mut self, t: SystemTime) {
        self.events.retain(|e| e.at >= t);
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    pub(crate) fn user_count(&self) -> usize {
        self.users
    }

    /// The user at `index` as it is now, what the campaigns changed included.
    pub(crate) fn user(&self, index: usize) -> User {
        let mut user = User::generate(self.seed, index, self.started);
        if let Some(at) = self.campaign.changed.get(&index) {
            user = user.enrolled(*at);
        }
        if let Some(at) = self.passkeys.changed.get(&index) {
            user = user.with_passkey(*at);
        }
        user
    }

    /// One page of users from `cursor` (a user index), and the cursor of the
    /// next page if there is one. Costs O(page), whatever the tenant size.
    pub(crate) fn user_page(&self, cursor: u64, page_size: usize) -> (Vec<User>, Option<u64>) {
        let start = usize::try_from(cursor)
            .unwrap_or(usize::MAX)
            .min(self.users);
        let end = start.saturating_add(page_size).min(self.users);
        let users = (start..end).map(|index| self.user(index)).collect();
        (users, (end < self.users).then_some(end as u64))
    }

    /// Registration totals per (userType, isAdmin) cell.
    pub(crate) fn census(&mut self) -> &Census {
        let census = match self.census.take() {
            Some(census) => census,
            None => Census::scan((0..self.users).map(|index| self.user(index))),
        };
        self.census.insert(census)
    }

    /// One page of usage events starting at event `seq` `cursor`: its rows, the cursor of the
    /// next page, and the first and last `seq` on the page (for [`Self::mark_listed`]).
    pub(crate) fn event_page(
        &self,
        cursor: u64,
        page_size: usize,
        include_unknown: bool,
    ) -> EventPage<'_> {
        let start = self.events.partition_point(|e| e.seq < cursor);
        let end = start.saturating_add(page_size).min(self.events.len());
        EventPage {
            rows: self
                .events
                .range(start..end)
                .map(|e| e.row(include_unknown, self.event_time_lag))
                .collect(),
            next: self.events.get(end).map(|e| e.seq),
            seqs: self
                .events
                .get(start)
                .zip(end.checked_sub(1).and_then(|last| self.events.get(last)))
                .filter(|_| start < end)
                .map(|(first, last)| (first.seq, last.seq)),
        }
    }

    #[cfg(feature = "testing")]
    /// Marks the events with `seq` in `first..=last` as listed (nothing when `last < first`).
    pub(crate) fn mark_listed(&mut self, (first, last): (u64, u64)) {
        let start = self.events.partition_point(|e| e.seq < first);
        for event in self.events.range_mut(start..) {
            if event.seq > last {
                break;
            }
            event.listed = true;
        }
    }

    #[cfg(feature = "testing")]
    /// Ids of the events still in the window that a complete page has listed.
    pub(crate) fn listed_ids(&self) -> std::collections::HashSet<String> {
        self.events
            .iter()
            .filter(|e| e.listed)
            .map(|e| e.id.clone())
            .collect()
    }

    /// `getCredentialUsageSummary` rows for events within `period` before `now`.
    pub(crate) fn usage_summary(
        &self,
        now: SystemTime,
        period: Duration,
        include_unknown: bool,
    ) -> Vec<ActivityRow<'_>> {
        self.activity(now, period, include_unknown)
            .into_iter()
            .map(|((feature, method), (ok, failed))| {
                let count = |n: u64| {
                    if STRING_COUNT_METHODS.contains(&method) {
                        Int64::Text(n.to_string())
                    } else {
                        Int64::Number(n)
                    }
                };
                ActivityRow {
                    id: uuid_like(self.seed, STREAM_SUMMARY, fnv1a(&[feature, method])),
                    feature,
                    successful_activity_count: count(ok),
                    failure_activity_count: count(failed),
                    auth_method: method,
                }
            })
            .collect()
    }

    /// `userRegistrationActivity` rows: the same numbers as
    /// [`usage_summary`](Self::usage_summary), always as JSON numbers.
    pub(crate) fn registration_activity(
        &self,
        now: SystemTime,
        period: Duration,
        include_unknown: bool,
    ) -> Vec<ActivityRow<'_>> {
        self.activity(now, period, include_unknown)
            .into_iter()
            .map(|((feature, method), (ok, failed))| ActivityRow {
                id: uuid_like(self.seed, STREAM_ACTIVITY, fnv1a(&[feature, method])),
                feature,
                successful_activity_count: Int64::Number(ok),
                failure_activity_count: Int64::Number(failed),
                auth_method: method,
            })
            .collect()
    }

    /// Successful self-service resets in `[from, to)`.
    pub(crate) fn self_service_resets(&self, from: SystemTime, to: SystemTime) -> u64 {
        self.events
            .iter()
            .filter(|e| e.at >= from && e.at < to)
            .filter(|e| e.event.feature == "reset" && e.event.is_success)
            .count() as u64
    }

    /// The single `getCredentialUserRegistrationCount` row.
    pub(crate) fn registration_count(&mut self) -> RegistrationCountRow {
        let id = uuid_like(self.seed, STREAM_COUNT, 0);
        let totals = self.census().select(UserTypes::All, UserRoles::All);
        let counts = [
            ("registered", totals.sspr_registered),
            ("enabled", totals.sspr_enabled),
            ("capable", totals.sspr_capable),
            ("mfaRegistered", totals.mfa_registered),
        ];
        RegistrationCountRow {
            id,
            total_user_count: totals.users,
            user_registration_counts: counts
                .into_iter()
                .map(|(registration_status, registration_count)| StatusCount {
                    registration_status,
                    registration_count,
                })
                .collect(),
        }
    }

    /// (feature, visible method) -> (successes, failures) within `period`.
    fn activity(
        &self,
        now: SystemTime,
        period: Duration,
        include_unknown: bool,
    ) -> BTreeMap<(&str, &str), (u64, u64)> {
        let since = now.checked_sub(period).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut counts: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
        for e in self.events.iter().filter(|e| e.at >= since) {
            let method = visible(&e.event.auth_method, USAGE_EVOLVABLE, include_unknown);
            let entry = counts
                .entry((e.event.feature.as_str(), method))
                .or_default();
            if e.event.is_success {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        counts
    }

    fn random_event(&mut self) -> UsageEvent {
        let rng = &mut self.rng;
        let feature = if rng.random_bool(RESET_SHARE) {
            "reset"
        } else {
            "registration"
        };
        let is_success = !rng.random_bool(FAILURE_SHARE);
        let failure_reason = if is_success {
            String::new()
        } else if rng.random_bool(0.05) {
            AWKWARD_FAILURE_REASON.to_owned()
        } else {
            FAILURE_REASONS
                .choose(rng)
                .map_or_else(String::new, |r| (*r).to_owned())
        };
        UsageEvent {
            feature: feature.to_owned(),
            auth_method: pick(rng, USAGE_METHODS).to_owned(),
            is_success,
            failure_reason,
            user: rng.random_range(0..self.users.max(1)),
        }
    }

    /// Records the spike's event due at `at` and schedules the next one.
    fn spike_event(&mut self, at: SystemTime) {
        let users = self.users.max(1);
        let Some(spike) = self.spike.as_mut() else {
            return;
        };
        let rng = &mut spike.rng;
        let failure_reason = if rng.random_bool(SPIKE_REASON_SHARE) {
            SPIKE_REASON
        } else {
            FAILURE_REASONS.choose(rng).copied().unwrap_or(SPIKE_REASON)
        };
        let event = UsageEvent {
            feature: "reset".to_owned(),
            auth_method: SPIKE_METHOD.to_owned(),
            is_success: false,
            failure_reason: failure_reason.to_owned(),
            user: rng.random_range(0..users),
        };
        spike.next_at = after_gap(rng, at, spike.mean_gap);
        if spike.next_at >= spike.end {
            self.spike = None;
        }
        self.push(at, event);
    }

    /// Runs the steps of both campaigns due by `now`, in time order (the
    /// registration campaign first at the same instant), so that the users
    /// depend only on seed and elapsed time, not on when Graph was asked.
    fn run_campaigns(&mut self, now: SystemTime) {
        if self.users == 0 {
            return;
        }
        loop {
            let registration = self.campaign.due(self.started, now);
            let passkeys = self.passkeys.due(self.started, now);
            let (is_passkeys, (step, at)) = match (registration, passkeys) {
                (Some(r), Some(p)) if p.1 < r.1 => (true, p),
                (Some(r), _) => (false, r),
                (None, Some(p)) => (true, p),
                (None, None) => return,
            };
            let users = self.users;
            let campaign = self.campaign_mut(is_passkeys);
            campaign.steps_done = step;
            let stream = campaign.stream;
            let (mut wanted, mut attempts) = campaign.wanted(step, users);
            let mut rng = SplitMix(mix(self.seed, stream, step));
            while wanted > 0 && attempts > 0 {
                attempts -= 1;
                let index = rng.random_range(0..self.users);
                let before = self.user(index);
                let wants = if is_passkeys {
                    before.phone_only()
                } else {
                    before.needs_enrolment()
                };
                if wants {
                    self.change(index, before, at, is_passkeys);
                    wanted -= 1;
                }
            }
        }
    }

    fn campaign_mut(&mut self, is_passkeys: bool) -> &mut Campaign {
        if is_passkeys {
            &mut self.passkeys
        } else {
            &mut self.campaign
        }
    }

    fn change(&mut self, index: usize, before: User, at: SystemTime, is_passkeys: bool) {
        self.campaign_mut(is_passkeys).changed.insert(index, at);
        let after = self.user(index);
        if let Some(census) = self.census.as_mut() {
            census.remove(&before);
            census.add(&after);
        }
    }
}

impl StoredEvent {
    fn row(&self, include_unknown: bool, lag: Duration) -> EventRow<'_> {
        let e = &self.event;
        EventRow {
            id: &self.id,
            feature: &e.feature,
            user_principal_name: user_principal_name(e.user),
            user_display_name: user_display_name(e.user),
            is_success: e.is_success,
            auth_method: visible(&e.auth_method, USAGE_EVOLVABLE, include_unknown),
            failure_reason: &e.failure_reason,
            event_date_time: rfc3339(self.at.checked_sub(lag).unwrap_or(self.at)),
        }
    }
}

/// A `userCredentialUsageDetails` / `userEventsSummary` row.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventRow<'a> {
    id: &'a str,
    feature: &'a str,
    user_principal_name: String,
    user_display_name: String,
    is_success: bool,
    auth_method: &'a str,
    failure_reason: &'a str,
    event_date_time: String,
}

/// An Int64 as a JSON number or, as some legacy rows do, a string.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Int64 {
    Number(u64),
    Text(String),
}

/// A `getCredentialUsageSummary` / `userRegistrationActivity` row.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActivityRow<'a> {
    id: String,
    feature: &'a str,
    successful_activity_count: Int64,
    failure_activity_count: Int64,
    auth_method: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RegistrationCountRow {
    id: String,
    total_user_count: u64,
    user_registration_counts: Vec<StatusCount>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusCount {
    registration_status: &'static str,
    registration_count: u64,
}

/// `from` plus an exponentially distributed gap (a Poisson process), so
/// the demo's rates wobble like real traffic.
fn after_gap(rng: &mut StdRng, from: SystemTime, mean: Duration) -> SystemTime {
    let u: f64 = rng.random();
    let gap = Duration::try_from_secs_f64(-(1.0 - u).ln() * mean.as_secs_f64())
        .unwrap_or(mean)
        // A floor keeps absurd rates from spinning `advance` on tiny steps.
        .max(Duration::from_millis(1));
    from.checked_add(gap).unwrap_or(from)
}
