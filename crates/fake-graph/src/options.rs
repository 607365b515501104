//! What a fake serves: [`FakeGraphOptions`], and the [`Scenario`] its events follow.

use std::time::Duration;

use crate::groups::{self, FakeGroup};

/// Knobs for the simulated tenant. `Default` gives a lively demo.
#[derive(Debug, Clone)]
pub struct FakeGraphOptions {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Simulated users in the registration reports.
    pub users: usize,
    /// Rows per page of the paged collections; must be at least 1.
    pub page_size: usize,
    /// The most rows a page holds whatever `$top` asks (Graph may serve fewer rows than asked);
    /// at most 1000, userEventsSummary's documented maximum.
    pub max_page_size: usize,
    /// `expires_in` of issued tokens. azure_identity refreshes 300 s before
    /// expiry, so anything shorter makes every `get_token` fetch a new token.
    pub token_lifetime: Duration,
    /// Seed for users and events; equal seeds give equal data.
    pub seed: u64,
    /// Usage events generated as wall time passes (a Poisson process); 0
    /// disables generation so tests control events via
    /// [`FakeGraph::add_usage_event`](crate::FakeGraph::add_usage_event).
    pub events_per_minute: f64,
    /// Events already in the 30-day window at start, skewed towards recent.
    pub initial_events: usize,
    /// A registration campaign: users who lack SSPR or MFA registration
    /// enrol at about this rate, in steps 5 minutes apart (so nothing changes
    /// during the first 5 minutes), and every registration report shows it.
    /// Deterministic from seed and elapsed time; 0 keeps registrations fixed.
    pub registration_drift_per_hour: f64,
    /// A passkey campaign ahead of the SMS and voice retirement: users who
    /// only have a phone (as their strongest MFA method, or to reset their
    /// password) register a passkey in Microsoft Authenticator at about this
    /// rate, in steps a minute apart, the first one a minute after start.
    /// Deterministic from seed and elapsed time; 0 keeps them as they are.
    pub passkey_campaign_per_hour: f64,
    /// What the usage events do over time.
    pub scenario: Scenario,
    /// Groups for the member lists; the default is the demo's.
    pub groups: Vec<FakeGroup>,
    /// Tenants served, `tenant_id` first; at least 1.
    pub tenants: usize,
    /// Keep a log of every request, in order of arrival ([`FakeGraph::request_log`](crate::FakeGraph::request_log)).
    #[cfg(feature = "testing")]
    pub record_requests: bool,
    /// How far behind the wall clock Graph's usage events are dated: every event's
    /// `eventDateTime` is its creation time less this, so the whole 30-day window lags too,
    /// as with stale report data or an exporter whose clock runs fast. Zero by default.
    pub event_time_lag: Duration,
}

/// A storyline for the usage events, e.g. to make a demo alert fire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scenario {
    /// Events at `events_per_minute`, 20% of them failures.
    #[default]
    Steady,
    /// Steady, plus an SMS incident: from about 60 s after start and for
    /// about 10 minutes, SSPR reset failures arrive at about 20 times their
    /// steady rate, nearly all `mobileSMS` with one dominant failure reason.
    /// Scales with `events_per_minute`, so a rate of 0 disables it too.
    Spike,
}

impl Default for FakeGraphOptions {
    fn default() -> Self {
        const USERS: usize = 250;
        FakeGraphOptions {
            tenant_id: "11111111-2222-3333-4444-555555555555".to_owned(),
            client_id: "demo-client-id".to_owned(),
            client_secret: "demo-client-secret".to_owned(),
            users: USERS,
            page_size: 100,
            max_page_size: 1000,
            token_lifetime: Duration::from_secs(3600),
            seed: 42,
            events_per_minute: 6.0,
            initial_events: 200,
            registration_drift_per_hour: 30.0,
            passkey_campaign_per_hour: 6.0,
            scenario: Scenario::Steady,
            groups: groups::demo_groups(USERS),
            tenants: 1,
            #[cfg(feature = "testing")]
            record_requests: false,
            event_time_lag: Duration::ZERO,
        }
    }
}
