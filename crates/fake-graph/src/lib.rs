//! A fake Microsoft Graph and Entra token endpoint for the exporter's `--demo` mode and tests.
//! It knows nothing of the exporter (tests/it/structure.rs checks it).
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
//! With the `testing` feature (tests only: the exporter turns it on through its
//! dev-dependency, so `--demo` and release builds carry none of it), tests steer it with
//! [`FakeGraph::inject`] (one-shot faults: error
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
mod error;
#[cfg(feature = "testing")]
mod faults;
mod graph;
mod groups;
mod options;
mod policy;
mod seeded;
mod server;
mod stats;
pub mod tls;
mod users;
mod wire;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::task::JoinHandle;

pub use data::UsageEvent;
pub use error::FakeError;
#[cfg(feature = "testing")]
pub use faults::{Fault, LoggedRequest};
pub use groups::FakeGroup;
pub use options::{FakeGraphOptions, Scenario};
#[cfg(feature = "testing")]
pub use server::{Recorder, serve_recorder};

use data::Simulation;
use graph::{Shared, State};
use seeded::uuid_like;

/// The `id` stream of the extra tenants' ids.
const STREAM_TENANT: u64 = 10;

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
            .chain((1..opts.tenants).map(|index| uuid_like(opts.seed, STREAM_TENANT, index as u64)))
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
            #[cfg(feature = "testing")]
            record_requests: opts.record_requests,
            client_id: opts.client_id.clone(),
            client_secret: opts.client_secret.clone(),
            page_size: opts.page_size,
            max_page_size: opts.max_page_size,
            token_lifetime: opts.token_lifetime,
            groups: opts.groups.clone(),
            state: Mutex::new(State::new(sims, policy::demo_policy(&opts.groups))),
        });
        #[cfg(feature = "testing")]
        if opts.record_requests {
            shared.lock().log = Some(Vec::new());
        }
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

    /// Stops the server and closes its connections (dropping does the same).
    pub fn shutdown(self) {
        self.task.abort();
    }
}

/// What tests steer and read: faults, retired paths, expired tokens, added events, policy
/// changes, the request log and counts.
#[cfg(feature = "testing")]
impl FakeGraph {
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
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.task.abort();
    }
}
