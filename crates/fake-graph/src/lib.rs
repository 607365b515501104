//! A fake Microsoft Graph and Entra token endpoint for `--demo` mode and tests.
//!
//! [`FakeGraph::start`] serves real HTTPS on `127.0.0.1` (an OS-picked port)
//! with a certificate from a CA generated at start ([`FakeGraph::ca_pem`]).
//! The same base URL is both the authority host and the Graph endpoint:
//!
//! - `POST /{tenant}/oauth2/v2.0/token` (client credentials)
//! - Legacy beta reports (deprecated):
//!   - `GET /beta/reports/getCredentialUserRegistrationCount` (also `…Count()`)
//!   - `GET /beta/reports/getCredentialUsageSummary(period='D1'|'D7'|'D30')`
//!   - `GET /beta/reports/credentialUserRegistrationDetails` (paged)
//!   - `GET /beta/reports/userCredentialUsageDetails` (paged)
//! - Successors, under `/{v}/reports/authenticationMethods` where `{v}` is
//!   `v1.0` or `beta` (beta-only ones are marked):
//!   - `GET …/userRegistrationDetails` (paged)
//!   - `GET …/usersRegisteredByFeature(includedUserTypes='all',includedUserRoles='all')`,
//!     also `…()` and without parentheses; a single object, not `value`
//!   - `GET …/usersRegisteredByMethod(…)`, likewise
//!   - beta `GET …/userRegistrationActivity(period='d1'|'d7'|'d30')`
//!   - beta `GET …/userSignInsByAuthMethodSummary(period='d1'|'d7'|'d30')`
//!   - beta `GET …/userEventsSummary` (paged)
//!   - beta `GET …/userMfaSignInSummary` and
//!     `GET …/userPasswordResetsAndChangesSummary`: one row per day for the
//!     last 7 UTC days, oldest first
//! - `GET /{v}/groups/{id}/transitiveMembers/microsoft.graph.user` (paged,
//!   `{"id": …}` rows): the users of [`FakeGraphOptions::groups`], nested
//!   groups included, each user once; 404 `Request_ResourceNotFound` for an
//!   unknown or deleted group
//! - `GET /{v}/policies/authenticationMethodsPolicy`: one object, the same in
//!   every tenant; the demo's (SMS enabled, the campaign on, an unknown
//!   method) until [`FakeGraph::set_policy`]
//!
//! Every view derives from the same simulated users and usage events:
//! `usersRegisteredBy*` equal the aggregated `userRegistrationDetails`,
//! which agree field by field with `credentialUserRegistrationDetails`;
//! `userRegistrationActivity` has `getCredentialUsageSummary`'s numbers and
//! `userEventsSummary` serves `userCredentialUsageDetails`'s events.
//!
//! Behaviour that mirrors the real service and that clients must cope with:
//! Graph calls need a bearer token the fake issued and that has not expired;
//! paged collections follow `@odata.nextLink` and honour `$top` (at most
//! 1000; the nextLink keeps it); legacy summary rows for `email` and
//! `securityQuestion` carry their counts as JSON strings; evolvable enum
//! members (`externalAuthMethod`, `microsoftAuthenticatorPush`, …) read
//! `unknownFutureValue` unless the request sends
//! `Prefer: include-unknown-enum-members`; nullable successor fields are
//! sometimes `null` (and `userPreferredMethodForSecondaryAuthentication`
//! sometimes `""`); the four legacy reports answer with `Deprecation`,
//! `Sunset` and `Link` headers, the successors without.
//!
//! Users are generated on demand from `(seed, index)`, so a tenant of a
//! million users costs no memory; tenant-wide counts are computed on first
//! use and then kept up to date.
//!
//! One fake serves [`FakeGraphOptions::tenants`] tenants, as a multi-tenant
//! app registration sees them: the same client id and secret get a token in
//! each, and a token reads only the data of the tenant it was issued in. The
//! first tenant is [`FakeGraphOptions::tenant_id`]; the others have their own
//! ids ([`FakeGraph::tenant_ids`]) and their own data (the same options, the
//! seed plus the tenant's index).
//!
//! Tests steer it with [`FakeGraph::inject`] (one-shot faults: error
//! statuses with `Retry-After`, delays past the client's timeout, bodies cut
//! off on the wire, connections reset unanswered, invalid JSON, paging loops,
//! empty or shortened lists, oversized pages, rows a client cannot parse),
//! [`FakeGraph::expire_tokens`],
//! [`FakeGraph::retire`] and [`FakeGraph::restore`] (errors until lifted, the
//! token endpoint included), in every tenant or, with
//! [`FakeGraph::inject_for`] and [`FakeGraph::retire_for`], in one. They read
//! [`FakeGraph::listed_usage_events`] to know exactly which events a client
//! could have seen; [`FakeGraphOptions::record_requests`] keeps an ordered log
//! of every request ([`FakeGraph::request_log`]); [`serve_recorder`] provides a
//! "foreign host" that counts requests and bearer tokens sent to it.

mod data;
mod graph;
mod groups;
mod policy;
mod server;
mod stats;
pub mod tls;
mod users;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

pub use server::{Recorder, serve_recorder};

use data::Simulation;
use graph::{Shared, State};

/// The `id` stream of the extra tenants' ids.
const STREAM_TENANT: u64 = 10;

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
    /// [`FakeGraph::add_usage_event`].
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
    /// Keep a log of every request, in order of arrival ([`FakeGraph::request_log`]).
    pub record_requests: bool,
    /// How far behind the wall clock Graph's usage events are dated: every event's
    /// `eventDateTime` is its creation time less this, so the whole 30-day window lags too,
    /// as with stale report data or an exporter whose clock runs fast. Zero by default.
    pub event_time_lag: Duration,
}

/// A group of the simulated tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeGroup {
    /// Object id, a GUID.
    pub id: String,
    /// Display name; the demo uses it as the `group` label.
    pub name: String,
    /// Direct user members: the users with these indices (clamped to `users`).
    pub members: Range<usize>,
    /// Ids of groups nested in this one: their transitive members are members of this one.
    pub nested: Vec<String>,
    /// Deleted since someone configured it: Graph answers 404.
    pub deleted: bool,
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
            record_requests: false,
            event_time_lag: Duration::ZERO,
        }
    }
}

/// A request as the fake received it, for tests that check order and timing.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// The tenant: of the bearer token for Graph, of the path for the token
    /// endpoint; `None` when neither names a tenant the fake serves.
    pub tenant: Option<String>,
    /// Path and query as received.
    pub target: String,
    /// When the request arrived.
    pub at: std::time::Instant,
    /// The status answered; 0 for a connection closed unanswered ([`Fault::Reset`]).
    pub status: u16,
}

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

/// A one-shot misbehaviour for [`FakeGraph::inject`].
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status. An empty `body` becomes a Graph error body.
    Status {
        code: u16,
        retry_after: Option<String>,
        body: String,
    },
    /// `200` with a complete body that is not valid JSON (it stops mid-object).
    InvalidJson,
    /// The normal response, with `@odata.nextLink` set to this absolute URL.
    ForeignNextLink(String),
    /// Sleep, then answer normally: longer than the client's timeout, a response that times out.
    Delay(Duration),
    /// The normal response cut in half on the wire: `Content-Length` announces the whole body,
    /// half of it is sent, then the connection closes.
    TruncatedBody,
    /// The normal response, with `@odata.nextLink` pointing at the request's own URL: a paging
    /// loop.
    NextLinkLoop,
    /// `200` with an empty `value` that still has an `@odata.nextLink` (the page's own, or the
    /// request's URL on the last page).
    EmptyPageWithNextLink,
    /// `200` with an empty `value` and no `@odata.nextLink`: a transient empty list.
    EmptyCollection,
    /// The normal page without its `@odata.nextLink`: the list ends early, a shorter window.
    NoNextLink,
    /// The connection closes before any answer, as when it is reset.
    Reset,
    /// The normal page grown to at least `bytes` bytes by repeating its rows (a valid page),
    /// sent with its `Content-Length`, or gzip-compressed (`Content-Encoding: gzip`, so only
    /// the decoded size tells), as a misbehaving proxy might.
    OversizedPage { bytes: usize, gzip: bool },
    /// The normal response with its last row spoiled so that a client cannot parse it: `field`
    /// set to `value`, or removed when `value` is `None` (a `null` `isSuccess`, an `id` of the
    /// wrong type, a missing `id`). In a single document (`usersRegisteredBy*`) the row is the
    /// last one of its first list. A spoiled usage event does not count as listed.
    BadRow {
        field: String,
        value: Option<serde_json::Value>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    #[error("invalid fake Graph options: {0}")]
    InvalidOptions(&'static str),
    #[error("generating the fake {what}")]
    Cert {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("building the fake server's TLS config")]
    Tls(#[source] rustls::Error),
    #[error("binding the fake server to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the fake server's bound address")]
    LocalAddr(#[source] std::io::Error),
}

/// A running fake; the server stops when this is dropped.
pub struct FakeGraph {
    shared: Arc<Shared>,
    ca_pem: String,
    tls: Arc<rustls::ServerConfig>,
    task: JoinHandle<()>,
}

impl FakeGraph {
    /// Generates the CA, binds `127.0.0.1:0` and starts serving.
    pub async fn start(opts: FakeGraphOptions) -> Result<FakeGraph, FakeError> {
        if opts.page_size == 0 || opts.max_page_size == 0 {
            return Err(FakeError::InvalidOptions(
                "page_size and max_page_size must be at least 1",
            ));
        }
        if !(opts.events_per_minute.is_finite() && opts.events_per_minute >= 0.0) {
            return Err(FakeError::InvalidOptions(
                "events_per_minute must be a finite number >= 0",
            ));
        }
        if !(opts.registration_drift_per_hour.is_finite()
            && opts.registration_drift_per_hour >= 0.0)
        {
            return Err(FakeError::InvalidOptions(
                "registration_drift_per_hour must be a finite number >= 0",
            ));
        }
        if !(opts.passkey_campaign_per_hour.is_finite() && opts.passkey_campaign_per_hour >= 0.0) {
            return Err(FakeError::InvalidOptions(
                "passkey_campaign_per_hour must be a finite number >= 0",
            ));
        }
        if opts.tenants == 0 {
            return Err(FakeError::InvalidOptions("tenants must be at least 1"));
        }
        let (ca_pem, tls) = tls::generate_ca_and_leaf()?;
        let tls = Arc::new(tls);
        let (listener, addr) = server::bind_loopback().await?;
        let now = SystemTime::now();
        let tenant_ids: Vec<String> = std::iter::once(opts.tenant_id.clone())
            .chain(
                (1..opts.tenants)
                    .map(|index| data::uuid_like(opts.seed, STREAM_TENANT, index as u64)),
            )
            .collect();
        let sims = (0..opts.tenants)
            .map(|index| {
                let seed = opts.seed.wrapping_add(index as u64);
                Simulation::new(
                    &FakeGraphOptions {
                        seed,
                        ..opts.clone()
                    },
                    now,
                )
            })
            .collect();
        let shared = Arc::new(Shared {
            base_url: server::https_url(addr),
            tenant_id: opts.tenant_id.clone(),
            tenant_ids,
            record_requests: opts.record_requests,
            client_id: opts.client_id.clone(),
            client_secret: opts.client_secret.clone(),
            page_size: opts.page_size,
            max_page_size: opts.max_page_size,
            token_lifetime: opts.token_lifetime,
            groups: opts.groups.clone(),
            state: Mutex::new(State::new(
                sims,
                opts.record_requests,
                policy::demo_policy(&opts.groups),
            )),
        });
        let task = server::spawn_tls_server(listener, Arc::clone(&tls), {
            let shared = Arc::clone(&shared);
            move |req| {
                let shared = Arc::clone(&shared);
                async move { graph::handle(&shared, req).await }
            }
        });
        Ok(FakeGraph {
            shared,
            ca_pem,
            tls,
            task,
        })
    }

    /// `https://127.0.0.1:PORT`, no trailing slash: the authority host and the
    /// Graph endpoint alike.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server's TLS config, to start another server (e.g. a
    /// [`Recorder`]) that clients trusting [`ca_pem`](Self::ca_pem) accept.
    pub fn tls_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.tls)
    }

    pub fn tenant_id(&self) -> &str {
        &self.shared.tenant_id
    }

    /// Every tenant served, [`tenant_id`](Self::tenant_id) first.
    pub fn tenant_ids(&self) -> &[String] {
        &self.shared.tenant_ids
    }

    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }

    /// The tenant's groups, deleted ones included.
    pub fn groups(&self) -> &[FakeGroup] {
        &self.shared.groups
    }

    /// Successful token responses so far, in every tenant.
    pub fn tokens_issued(&self) -> usize {
        self.shared.lock().tokens_issued
    }

    /// Every request so far in order of arrival, if
    /// [`FakeGraphOptions::record_requests`] is set; empty otherwise.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.clone().unwrap_or_default()
    }

    /// Graph (non-token) requests so far whose path+query contains
    /// `path_contains`, as sent or percent-decoded. Counts every request,
    /// including rejected ones.
    ///
    /// Matching is a case-sensitive substring test, as for [`inject`](Self::inject)
    /// and [`retire`](Self::retire): `"userRegistrationDetails"` does not match
    /// the legacy `credentialUserRegistrationDetails`, but `"RegistrationDetails"`
    /// matches both and `"usersRegisteredBy"` both summary functions.
    pub fn requests(&self, path_contains: &str) -> usize {
        self.shared.lock().requests(path_contains)
    }

    /// Queues `fault` for the next request whose path+query contains
    /// `path_contains` (token endpoint included), in any tenant. Faults for
    /// one key fire in FIFO order, once each; Graph requests only consume
    /// them once authenticated.
    pub fn inject(&self, path_contains: &str, fault: Fault) {
        self.shared.lock().inject(None, path_contains, fault);
    }

    /// [`inject`](Self::inject) for the requests of one tenant only: Graph
    /// requests with its tokens, and its token endpoint.
    pub fn inject_for(&self, tenant_id: &str, path_contains: &str, fault: Fault) {
        let tenant = Some(tenant_id.to_owned());
        self.shared.lock().inject(tenant, path_contains, fault);
    }

    /// From now on every request whose path+query contains `path_contains`
    /// answers `status` with a Graph error body: 400/404 "Resource not found
    /// for the segment …", 403 `Authorization_RequestDenied` "Insufficient
    /// privileges to complete the operation." (what app-only callers of
    /// `usersRegisteredByFeature` may get), 410 `Gone`.
    pub fn retire(&self, path_contains: &str, status: u16) {
        self.shared.lock().retire(None, path_contains, status);
    }

    /// [`retire`](Self::retire) in one tenant only, as when one customer
    /// lacks a permission or a licence.
    pub fn retire_for(&self, tenant_id: &str, path_contains: &str, status: u16) {
        let tenant = Some(tenant_id.to_owned());
        self.shared.lock().retire(tenant, path_contains, status);
    }

    /// Lifts [`retire`](Self::retire) for `path_contains`: such requests are answered normally
    /// again (e.g. a token endpoint that refused for a while).
    pub fn restore(&self, path_contains: &str) {
        self.shared.lock().restore(path_contains);
    }

    /// From now on `/policies/authenticationMethodsPolicy` answers `policy` (without
    /// `@odata.context`, which the fake adds), in every tenant.
    pub fn set_policy(&self, policy: serde_json::Value) {
        self.shared.lock().policy = policy;
    }

    /// Makes every token issued so far expire now, as when Entra revokes them or the client's
    /// clock runs behind: Graph answers 401 to them.
    pub fn expire_tokens(&self) {
        self.shared.lock().expire_tokens();
    }

    /// Faults queued under `path_contains` (as given to [`inject`](Self::inject) or
    /// [`inject_for`](Self::inject_for)) that have not fired yet.
    pub fn queued_faults(&self, path_contains: &str) -> usize {
        self.shared.lock().queued_faults(path_contains)
    }

    /// Drops every queued fault; returns how many had not fired yet.
    pub fn clear_faults(&self) -> usize {
        self.shared.lock().clear_faults()
    }

    /// Ids of the usage events still in the window that a complete, valid events page
    /// (userCredentialUsageDetails or userEventsSummary) has listed so far: a page cut short,
    /// emptied or answered with an error by a fault lists nothing. The first tenant's, as for
    /// [`add_usage_event`](Self::add_usage_event).
    pub fn listed_usage_events(&self) -> std::collections::HashSet<String> {
        self.shared.lock().sims[0].listed_ids()
    }

    /// Records `event` at the current time and returns its id.
    pub fn add_usage_event(&self, event: UsageEvent) -> String {
        let now = SystemTime::now();
        let mut state = self.shared.lock();
        // Catch up first so automatic events keep creation order ~ time order.
        state.sims[0].advance(now);
        state.sims[0].push(now, event)
    }

    /// Drops events older than `t`, as if they had left the report window.
    pub fn expire_usage_events_before(&self, t: SystemTime) {
        self.shared.lock().sims[0].expire_before(t);
    }

    /// Stops the server and closes its connections (dropping does the same).
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.task.abort();
    }
}
