//! Tokens from azure_identity. This module sets up the tenant's azure_identity credential (on
//! its first token request, reading its secret or certificate file then) so that it reaches the
//! configured authority host through the exporter's own HTTP client (and therefore trusts
//! `--graph.ca-file` too), and wraps it in a [`Credential`] that keeps the tenant's token,
//! refreshes it ahead of its expiry, uses it while a refresh fails and it is still valid, and,
//! once none is left and requests fail, lets one through only at growing intervals.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, SecretBytes, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientCertificateCredential,
    ClientCertificateCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use prometheus::IntGauge;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{CredentialConfig, CredentialSetupError, GraphConfig, TenantConfig};

#[derive(Debug, thiserror::Error)]
enum AuthError {
    #[error(transparent)]
    Setup(#[from] CredentialSetupError),
    #[error(transparent)]
    Azure(#[from] azure_core::Error),
}

impl From<AuthError> for azure_core::Error {
    fn from(err: AuthError) -> Self {
        match err {
            // Kept as the source, so that the Graph side can tell a file to fix from a passing
            // failure.
            AuthError::Setup(setup) => {
                azure_core::Error::new(azure_core::error::ErrorKind::Credential, setup)
            }
            AuthError::Azure(azure) => azure,
        }
    }
}

/// The tenant's azure_identity credential, set up on its first token request and again after
/// a request fails or Graph refused its token: secret and certificate files are read then, so
/// that one tenant's missing file fails that tenant only, and a rotated file is picked up at
/// its next attempt. Setting up again drops azure_identity's token cache, so the valid token is
/// kept by [`Credential`], not here. `http` is
/// the exporter's shared client, so proxies' extra roots and timeouts apply to the token
/// endpoint as they do to Graph.
pub fn credential(
    tenant: &TenantConfig,
    graph: &GraphConfig,
    http: reqwest::Client,
) -> Arc<dyn TokenCredential> {
    Arc::new(SetUpOnDemand {
        tenant: tenant.clone(),
        authority_host: graph
            .authority_host
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
        http,
        set_up: Mutex::new(None),
    })
}

#[derive(Debug)]
struct SetUpOnDemand {
    tenant: TenantConfig,
    authority_host: String,
    http: reqwest::Client,
    set_up: Mutex<Option<Arc<dyn TokenCredential>>>,
}

impl SetUpOnDemand {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<dyn TokenCredential>>> {
        self.set_up.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl TokenCredential for SetUpOnDemand {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        // A token Graph refused may still sit in the set-up credential's cache: start afresh.
        if rejected_token(options.as_ref()).is_some() {
            *self.lock() = None;
        }
        let existing = self.lock().clone();
        let inner = match existing {
            Some(inner) => inner,
            None => {
                let inner = set_up(&self.tenant, &self.authority_host, self.http.clone())?;
                *self.lock() = Some(inner.clone());
                inner
            }
        };
        let result = inner.get_token(scopes, options).await;
        if result.is_err() {
            *self.lock() = None;
        }
        result
    }
}

fn set_up(
    tenant: &TenantConfig,
    authority_host: &str,
    http: reqwest::Client,
) -> Result<Arc<dyn TokenCredential>, AuthError> {
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = authority_host.to_owned();
    let client_options = ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
        // The Graph client retries token failures within its own budget. The SDK's default
        // policy retries even a failed TLS handshake for over a minute and then hides the cause.
        retry: RetryOptions::none(),
        ..ClientOptions::default()
    };

    let credential: Arc<dyn TokenCredential> = match &tenant.credential {
        CredentialConfig::ClientSecret { client_id, secret } => ClientSecretCredential::new(
            &tenant.tenant_id,
            client_id.clone(),
            secret.read()?,
            Some(ClientSecretCredentialOptions { client_options }),
        )?,
        CredentialConfig::ClientCertificate {
            client_id,
            path,
            password,
        } => {
            let shown = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|source| CredentialSetupError::Read {
                path: shown.clone(),
                source,
            })?;
            if bytes.starts_with(b"-----BEGIN") {
                return Err(CredentialSetupError::PemCertificate { path: shown }.into());
            }
            let options = ClientCertificateCredentialOptions {
                client_options,
                password: password.as_ref().map(|p| p.read()).transpose()?,
            };
            ClientCertificateCredential::new(
                tenant.tenant_id.clone(),
                client_id.clone(),
                SecretBytes::new(bytes),
                Some(options),
            )?
        }
        CredentialConfig::WorkloadIdentity {
            client_id,
            token_file,
        } => {
            let options = WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions { client_options },
                client_id: Some(client_id.clone()),
                tenant_id: Some(tenant.tenant_id.clone()),
                token_file_path: Some(token_file.clone()),
            };
            WorkloadIdentityCredential::new(Some(options))?
        }
        CredentialConfig::ManagedIdentity { client_id } => {
            let options = ManagedIdentityCredentialOptions {
                client_options,
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
            };
            ManagedIdentityCredential::new(Some(options))?
        }
    };
    Ok(credential)
}

/// How a tenant's token requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStatus {
    /// No token requested yet.
    Pending,
    Ok,
    /// The tenant holds a valid token, but refreshing it fails: it is used until it expires.
    Refreshing,
    /// No valid token is left and the latest request failed.
    Failing,
}

impl CredentialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialStatus::Pending => "pending",
            CredentialStatus::Ok => "ok",
            CredentialStatus::Refreshing => "ok, refresh failing",
            CredentialStatus::Failing => "failing",
        }
    }
}

/// What the landing page shows of a tenant's credential: never the secret.
#[derive(Debug, Clone)]
pub struct CredentialHealth {
    pub status: CredentialStatus,
    /// The latest failure and when it happened; kept after a recovery.
    pub last_error: Option<(SystemTime, String)>,
}

/// A tenant's credential, watched, and its token kept: the token is used while it is valid
/// and refreshed ahead of its expiry (5 minutes before, as azure_identity does, or half-way
/// through a shorter life). A refresh that fails leaves the valid token in use and is asked
/// again after 1 s, doubling up to 30 s (a passing failure: 5xx, 429, a timeout, a reset) or
/// on the schedule below (a refusal). The tenant's `entra_exporter_credential_up{tenant}` goes
/// to 0, and its reports stop, only when no valid token is left and a request for one failed;
/// its first failure and its recovery are logged once each.
///
/// Once no valid token is left, a Graph request whose token request fails in passing is retried
/// in place (at most [`IN_PLACE_RETRIES`] times), like a failed Graph request, so that a page
/// and its scan go on. After that, and after a refusal, every caller (its first-token retries
/// and all of its reports) shares one schedule: the next request goes out 1 minute later,
/// doubling up to 30 minutes; calls before then fail at once without reaching the token
/// endpoint. A success resets it.
///
/// Token lifetimes are kept on the monotonic clock: a wall-clock jump neither stretches nor
/// cuts them. A caller whose token Graph refused (401) hands it back in the request options'
/// context ([`rejected_token`]); that token is then dropped and a new one requested.
#[derive(Debug)]
pub struct Credential {
    tenant: String,
    inner: Arc<dyn TokenCredential>,
    up: IntGauge,
    health: Mutex<CredentialHealth>,
    tokens: Mutex<Tokens>,
    /// One token request at a time: the reports that find the token expired together send one
    /// request, and after a failure the others find the wait in force.
    requesting: tokio::sync::Mutex<()>,
}

/// A tenant without a token asks again after this, doubling up to [`CREDENTIAL_RETRY_MAX`].
pub const CREDENTIAL_RETRY_MIN: Duration = Duration::from_secs(60);
pub const CREDENTIAL_RETRY_MAX: Duration = Duration::from_secs(30 * 60);
/// How long before its expiry a token is refreshed (azure_identity's own margin), unless half
/// its life is shorter.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// A token is not sent in its last moments (30 s, or a tenth of a shorter life), so that it
/// does not expire on the way.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// The waits after a passing failure, between refresh attempts and between in-place retries.
const PASSING_RETRY_MIN: Duration = Duration::from_secs(1);
const PASSING_RETRY_MAX: Duration = Duration::from_secs(30);
/// Retries in place of a token request that failed in passing while no valid token is left,
/// as many as for a Graph request.
pub const IN_PLACE_RETRIES: usize = 4;

/// The waits between a tenant's token requests while they fail: 1 minute, doubling up to 30.
fn credential_backoff() -> ExponentialBackoff {
    doubling(CREDENTIAL_RETRY_MIN, CREDENTIAL_RETRY_MAX)
}

/// The waits after passing failures: 1 s, doubling up to 30 s.
fn passing_backoff() -> ExponentialBackoff {
    doubling(PASSING_RETRY_MIN, PASSING_RETRY_MAX)
}

fn doubling(min: Duration, max: Duration) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

/// Waits that grow after each failure: when the next request may go out.
#[derive(Debug)]
struct Schedule {
    waits: ExponentialBackoff,
    next: Instant,
}

impl Schedule {
    /// Time left before the next request may go out; zero without a schedule.
    fn wait(schedule: &Option<Schedule>, now: Instant) -> Duration {
        schedule
            .as_ref()
            .map_or(Duration::ZERO, |s| s.next.saturating_duration_since(now))
    }

    /// Notes a failure at `now`: the next request waits for the next step of `backoff`.
    fn failed(schedule: &mut Option<Schedule>, backoff: fn() -> ExponentialBackoff, now: Instant) {
        let schedule = schedule.get_or_insert_with(|| Schedule {
            waits: backoff(),
            next: now,
        });
        schedule.next = now + schedule.waits.next().unwrap_or(CREDENTIAL_RETRY_MAX);
    }
}

/// The tenant's token, with its life on the monotonic clock.
#[derive(Debug)]
struct Held {
    token: AccessToken,
    refresh_at: Instant,
    usable_until: Instant,
}

impl Held {
    fn new(token: AccessToken, now: Instant) -> Self {
        // Read once from the wall clock, as the token endpoint meant it.
        let life = Duration::try_from(token.expires_on - time::OffsetDateTime::now_utc())
            .unwrap_or(Duration::ZERO);
        Held {
            refresh_at: now + life.saturating_sub(REFRESH_AHEAD.min(life / 2)),
            usable_until: now + life.saturating_sub(EXPIRY_MARGIN.min(life / 10)),
            token,
        }
    }

    fn is(&self, other: &AccessToken) -> bool {
        self.token.token.secret() == other.token.secret()
    }
}

/// The tenant's token and the waits after failed requests.
#[derive(Debug, Default)]
struct Tokens {
    held: Option<Held>,
    /// After passing failures while the held token is valid: when to try refreshing again.
    refreshing: Option<Schedule>,
    /// After a refusal, or a failure with no valid token left: the shared 1-to-30-minute one.
    failing: Option<Schedule>,
}

impl Tokens {
    /// The held token if this caller may use it (valid, and not the one it saw refused), and
    /// whether it is due for a refresh.
    fn usable(&self, rejected: Option<&AccessToken>, now: Instant) -> Option<(AccessToken, bool)> {
        let held = self.held.as_ref()?;
        let refused = rejected.is_some_and(|token| held.is(token));
        (!refused && now < held.usable_until).then(|| (held.token.clone(), now >= held.refresh_at))
    }
}

/// The token a caller got 401 for, if it handed one back in `options` (see [`Credential`]).
pub fn rejected_token(options: Option<&TokenRequestOptions<'_>>) -> Option<AccessToken> {
    options?
        .method_options
        .context
        .value::<AccessToken>()
        .cloned()
}

impl Credential {
    /// `up` is the tenant's `entra_exporter_credential_up` gauge; it reads 0 until a token
    /// request succeeds.
    pub fn new(tenant: &str, inner: Arc<dyn TokenCredential>, up: IntGauge) -> Self {
        up.set(0);
        Self {
            tenant: tenant.to_owned(),
            inner,
            up,
            health: Mutex::new(CredentialHealth {
                status: CredentialStatus::Pending,
                last_error: None,
            }),
            tokens: Mutex::new(Tokens::default()),
            requesting: tokio::sync::Mutex::new(()),
        }
    }

    /// How long until a tenant without a valid token may ask the token endpoint again: zero
    /// unless a refusal or a failure with no valid token left set the schedule.
    pub fn next_attempt_in(&self) -> Duration {
        Schedule::wait(&self.tokens().failing, Instant::now())
    }

    /// A token for the tenant's start: one request at most, no retry in place; after a failure
    /// the schedule says when the next may go out.
    pub async fn first_token(&self, scope: &str) -> azure_core::Result<AccessToken> {
        self.token(&[scope], None, 0).await
    }

    pub fn health(&self) -> CredentialHealth {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CredentialHealth> {
        // The health is replaced whole; a panic elsewhere cannot leave it half written.
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        // Each change is a field assignment: a panic elsewhere cannot leave them half written.
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
        retries: usize,
    ) -> azure_core::Result<AccessToken> {
        let rejected = rejected_token(options.as_ref());
        let usable = self.tokens().usable(rejected.as_ref(), Instant::now());
        if let Some((token, due)) = usable {
            if !due {
                return Ok(token);
            }
            // Due for a refresh: one caller asks while the others go on with the valid token.
            let Ok(_one_at_a_time) = self.requesting.try_lock() else {
                return Ok(token);
            };
            return Ok(self.refresh(scopes, options, token).await);
        }

        let _one_at_a_time = self.requesting.lock().await;
        let wait = {
            let now = Instant::now();
            let mut tokens = self.tokens();
            // Another caller may have got one while this one waited.
            if let Some((token, _)) = tokens.usable(rejected.as_ref(), now) {
                return Ok(token);
            }
            if let Some(rejected) = &rejected
                && tokens.held.as_ref().is_some_and(|held| held.is(rejected))
            {
                tokens.held = None;
            }
            Schedule::wait(&tokens.failing, now)
        };
        if !wait.is_zero() {
            return Err(self.none_left(wait));
        }
        let mut passing_waits = passing_backoff();
        let mut retried = 0;
        loop {
            match self.inner.get_token(scopes, options.clone()).await {
                Ok(token) => {
                    self.obtained(&token);
                    return Ok(token);
                }
                Err(err) if retried < retries && CredentialSetupError::is_passing(&err) => {
                    retried += 1;
                    let wait = passing_waits.next().unwrap_or(PASSING_RETRY_MAX);
                    debug!(tenant = %self.tenant, error = %crate::errors::error_chain(&err), retry_in = ?wait, "token request failed; retrying it in place");
                    tokio::time::sleep(wait).await;
                }
                Err(err) => {
                    self.failed(&err);
                    return Err(err);
                }
            }
        }
    }

    /// Asks for a new token while `valid` still is; returns whichever is to be used.
    async fn refresh(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
        valid: AccessToken,
    ) -> AccessToken {
        let now = Instant::now();
        {
            let tokens = self.tokens();
            let waiting =
                Schedule::wait(&tokens.refreshing, now).max(Schedule::wait(&tokens.failing, now));
            if !waiting.is_zero() {
                return valid;
            }
        }
        match self.inner.get_token(scopes, options).await {
            Ok(token) => {
                self.obtained(&token);
                token
            }
            Err(err) => {
                self.refresh_failed(&err);
                valid
            }
        }
    }

    fn obtained(&self, token: &AccessToken) {
        {
            let mut tokens = self.tokens();
            tokens.held = Some(Held::new(token.clone(), Instant::now()));
            tokens.refreshing = None;
            tokens.failing = None;
        }
        let tenant = self.tenant.as_str();
        let mut health = self.lock();
        match health.status {
            CredentialStatus::Failing => {
                info!(tenant, "the tenant's token request succeeds again");
            }
            CredentialStatus::Refreshing => {
                info!(
                    tenant,
                    "the tenant's token was refreshed after failed attempts"
                );
            }
            CredentialStatus::Pending | CredentialStatus::Ok => {}
        }
        health.status = CredentialStatus::Ok;
        self.up.set(1);
    }

    /// A refresh failed while the held token is valid: it stays in use, and up stays 1.
    fn refresh_failed(&self, err: &azure_core::Error) {
        let now = Instant::now();
        let passing = CredentialSetupError::is_passing(err);
        let (retry_in, valid_for) = {
            let mut tokens = self.tokens();
            if passing {
                Schedule::failed(&mut tokens.refreshing, passing_backoff, now);
            } else {
                Schedule::failed(&mut tokens.failing, credential_backoff, now);
            }
            let retry_in =
                Schedule::wait(&tokens.refreshing, now).max(Schedule::wait(&tokens.failing, now));
            let valid_for = tokens.held.as_ref().map_or(Duration::ZERO, |held| {
                held.usable_until.saturating_duration_since(now)
            });
            (retry_in, valid_for)
        };
        let message = crate::errors::error_chain(err);
        let mut health = self.lock();
        health.last_error = Some((SystemTime::now(), message.clone()));
        if health.status != CredentialStatus::Refreshing {
            health.status = CredentialStatus::Refreshing;
            let tenant = self.tenant.as_str();
            let valid_for = humantime::format_duration(Duration::from_secs(valid_for.as_secs()));
            warn!(tenant, error = %message, retry_in = ?retry_in, "refreshing the tenant's token failed; its current token is used while it is valid ({valid_for} more), and the refresh is asked for again");
        }
    }

    /// A request failed and no valid token is left.
    fn failed(&self, err: &azure_core::Error) {
        let now = Instant::now();
        {
            let mut tokens = self.tokens();
            tokens.refreshing = None;
            Schedule::failed(&mut tokens.failing, credential_backoff, now);
        }
        self.fail_tenant(crate::errors::error_chain(err), Some(SystemTime::now()));
    }

    /// No valid token is left and the schedule holds the next request back: the error every
    /// caller gets meanwhile.
    fn none_left(&self, wait: Duration) -> azure_core::Error {
        let last = self
            .lock()
            .last_error
            .as_ref()
            .map_or_else(String::new, |(_, message)| message.clone());
        // A refused refresh set the wait while the token was still valid: that has ended now.
        self.fail_tenant(last.clone(), None);
        azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            format!(
                "no token: the tenant's latest token request failed ({last}); the next one goes out in {}",
                humantime::format_duration(Duration::from_secs(wait.as_secs()))
            ),
        )
    }

    /// Marks the tenant without a token: up 0, and one warning when it starts.
    fn fail_tenant(&self, message: String, at: Option<SystemTime>) {
        let mut health = self.lock();
        let before = health.status;
        health.status = CredentialStatus::Failing;
        if let Some(at) = at {
            health.last_error = Some((at, message.clone()));
        }
        self.up.set(0);
        // One line when the tenant starts failing; its retries stay quiet.
        if before != CredentialStatus::Failing {
            let tenant = self.tenant.as_str();
            warn!(tenant, error = %message, retry_in = ?self.next_attempt_in(), "the tenant's token request failed and no valid token is left; none of its reports is read until one succeeds, asked for again at growing intervals up to 30 minutes");
        }
    }
}

#[async_trait::async_trait]
impl TokenCredential for Credential {
    /// The Graph client's way in: the held token, refreshed ahead of expiry, and a passing
    /// failure retried in place when no valid token is left.
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.token(scopes, options, IN_PLACE_RETRIES).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::{ClientMethodOptions, Context, StatusCode};
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Clone, Copy)]
    enum Answer {
        /// A token, distinct from every other one.
        Token,
        /// 503: worth asking again soon.
        Unavailable,
        /// 401 with an expired secret: not.
        Refused,
    }

    /// A token endpoint that gives the queued answers, then `then` for ever; counts requests.
    #[derive(Debug)]
    struct Endpoint {
        queued: std::sync::Mutex<VecDeque<Answer>>,
        then: std::sync::Mutex<Answer>,
        lifetime: Duration,
        requests: AtomicUsize,
    }

    impl Endpoint {
        fn new(lifetime: Duration) -> Arc<Self> {
            Arc::new(Endpoint {
                queued: std::sync::Mutex::default(),
                then: std::sync::Mutex::new(Answer::Token),
                lifetime,
                requests: AtomicUsize::new(0),
            })
        }

        fn queue(&self, answers: &[Answer]) {
            self.queued.lock().unwrap().extend(answers);
        }

        fn answer(&self, answer: Answer) {
            *self.then.lock().unwrap() = answer;
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    fn http_error(status: StatusCode, message: &'static str) -> azure_core::Error {
        azure_core::Error::with_message(
            azure_core::error::ErrorKind::HttpResponse {
                status,
                error_code: None,
                raw_response: None,
            },
            message,
        )
    }

    #[async_trait::async_trait]
    impl TokenCredential for Endpoint {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
            let queued = self.queued.lock().unwrap().pop_front();
            match queued.unwrap_or(*self.then.lock().unwrap()) {
                Answer::Token => Ok(AccessToken::new(
                    format!("token-{n}"),
                    time::OffsetDateTime::now_utc() + self.lifetime,
                )),
                Answer::Unavailable => Err(http_error(
                    StatusCode::ServiceUnavailable,
                    "AADSTS90033: A transient error has occurred.",
                )),
                Answer::Refused => Err(http_error(
                    StatusCode::Unauthorized,
                    "AADSTS7000222: The provided client secret keys are expired.",
                )),
            }
        }
    }

    fn watched(endpoint: &Arc<Endpoint>) -> (Credential, IntGauge) {
        let up = IntGauge::new("up", "up").unwrap();
        (Credential::new("contoso", endpoint.clone(), up.clone()), up)
    }

    async fn token(credential: &Credential) -> azure_core::Result<String> {
        credential
            .get_token(&["s"], None)
            .await
            .map(|token| token.token.secret().to_owned())
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn a_valid_token_is_used_until_its_refresh_is_due_then_one_request_renews_it() {
        let endpoint = Endpoint::new(HOUR);
        let (credential, up) = watched(&endpoint);
        assert_eq!(up.get(), 0);
        assert_eq!(credential.health().status, CredentialStatus::Pending);
        assert_eq!(token(&credential).await.unwrap(), "token-1");
        assert_eq!(up.get(), 1);
        assert_eq!(credential.health().status, CredentialStatus::Ok);

        tokio::time::advance(HOUR - REFRESH_AHEAD - Duration::from_secs(1)).await;
        for _ in 0..10 {
            assert_eq!(token(&credential).await.unwrap(), "token-1");
        }
        assert_eq!(endpoint.requests(), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(token(&credential).await.unwrap(), "token-2");
        assert_eq!(token(&credential).await.unwrap(), "token-2");
        assert_eq!(endpoint.requests(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_that_fails_in_passing_keeps_the_valid_token_and_asks_again_soon() {
        let endpoint = Endpoint::new(HOUR);
        let (credential, up) = watched(&endpoint);
        token(&credential).await.unwrap();
        tokio::time::advance(HOUR - REFRESH_AHEAD).await;
        endpoint.queue(&[Answer::Unavailable; 3]);

        // Three failed refreshes 1 and 2 s apart; callers meanwhile get the valid token
        // without a request, and the tenant stays up.
        let mut asked_at = Vec::new();
        let started = Instant::now();
        while endpoint.requests() < 5 {
            let before = endpoint.requests();
            assert!(token(&credential).await.unwrap().starts_with("token-"));
            if endpoint.requests() > before {
                asked_at.push(started.elapsed().as_secs());
            }
            assert_eq!(up.get(), 1);
            tokio::time::advance(Duration::from_millis(250)).await;
        }
        assert_eq!(asked_at, [0, 1, 3, 7]);
        assert_eq!(token(&credential).await.unwrap(), "token-5");
        let health = credential.health();
        assert_eq!(health.status, CredentialStatus::Ok);
        assert!(health.last_error.unwrap().1.contains("AADSTS90033"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_tenant_fails_only_when_no_valid_token_is_left() {
        let endpoint = Endpoint::new(HOUR);
        let (credential, up) = watched(&endpoint);
        token(&credential).await.unwrap();
        // The secret expires: the refresh is refused, and asked for again a minute later.
        endpoint.answer(Answer::Refused);
        tokio::time::advance(HOUR - REFRESH_AHEAD).await;
        assert_eq!(token(&credential).await.unwrap(), "token-1");
        assert_eq!(credential.health().status, CredentialStatus::Refreshing);
        assert_eq!(up.get(), 1);
        for _ in 0..4 {
            tokio::time::advance(Duration::from_secs(60)).await;
            assert_eq!(token(&credential).await.unwrap(), "token-1");
        }
        assert_eq!(endpoint.requests(), 4, "1, 2 and 4 minutes apart");

        // The token's last 30 s are not used: from then on callers fail at once.
        tokio::time::advance(REFRESH_AHEAD - Duration::from_secs(240 + 30)).await;
        let err = token(&credential).await.unwrap_err();
        assert!(err.to_string().contains("AADSTS7000222"), "{err}");
        assert!(err.to_string().contains("next one goes out in"), "{err}");
        assert_eq!(up.get(), 0);
        assert_eq!(credential.health().status, CredentialStatus::Failing);
        assert_eq!(endpoint.requests(), 4);

        endpoint.answer(Answer::Token);
        tokio::time::advance(credential.next_attempt_in()).await;
        assert_eq!(token(&credential).await.unwrap(), "token-5");
        assert_eq!(up.get(), 1);
        let health = credential.health();
        assert_eq!(health.status, CredentialStatus::Ok);
        assert!(
            health.last_error.is_some(),
            "the last error stays on the page"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_valid_token_a_passing_failure_is_retried_in_place() {
        let endpoint = Endpoint::new(HOUR);
        let (credential, up) = watched(&endpoint);
        endpoint.queue(&[Answer::Unavailable; 3]);
        let started = Instant::now();
        assert_eq!(token(&credential).await.unwrap(), "token-4");
        assert_eq!(started.elapsed(), Duration::from_secs(1 + 2 + 4));
        assert_eq!(up.get(), 1);
        assert_eq!(credential.health().status, CredentialStatus::Ok);

        // At most four retries, then the shared schedule.
        tokio::time::advance(HOUR).await;
        endpoint.answer(Answer::Unavailable);
        assert!(token(&credential).await.is_err());
        assert_eq!(endpoint.requests(), 4 + 1 + IN_PLACE_RETRIES);
        assert_eq!(up.get(), 0);
        assert_eq!(credential.next_attempt_in(), CREDENTIAL_RETRY_MIN);

        // A tenant's first token request is not retried in place.
        let endpoint = Endpoint::new(HOUR);
        let (credential, _) = watched(&endpoint);
        endpoint.queue(&[Answer::Unavailable]);
        assert!(credential.first_token("s").await.is_err());
        assert_eq!(endpoint.requests(), 1);
        assert_eq!(credential.next_attempt_in(), CREDENTIAL_RETRY_MIN);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_graph_refused_is_replaced_once_for_every_caller() {
        let endpoint = Endpoint::new(HOUR);
        let (credential, _) = watched(&endpoint);
        let refused = credential.get_token(&["s"], None).await.unwrap();
        let handed_back = || TokenRequestOptions {
            method_options: ClientMethodOptions {
                context: Context::new().with_value(refused.clone()),
            },
        };
        for _ in 0..3 {
            let token = credential
                .get_token(&["s"], Some(handed_back()))
                .await
                .unwrap();
            assert_eq!(token.token.secret(), "token-2");
        }
        assert_eq!(endpoint.requests(), 2);
        assert_eq!(token(&credential).await.unwrap(), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_tenant_asks_once_a_minute_then_less_often_whoever_calls() {
        let endpoint = Endpoint::new(HOUR);
        endpoint.answer(Answer::Refused);
        let (credential, _) = watched(&endpoint);

        assert!(credential.get_token(&["s"], None).await.is_err());
        assert_eq!(endpoint.requests(), 1);
        // Every report of the tenant asking in between fails at once, with the reason.
        for _ in 0..12 {
            let err = credential.get_token(&["s"], None).await.unwrap_err();
            assert!(err.to_string().contains("AADSTS7000222"), "{err}");
            assert!(err.to_string().contains("next one goes out in 1m"), "{err}");
        }
        assert_eq!(endpoint.requests(), 1);
        assert_eq!(credential.next_attempt_in(), CREDENTIAL_RETRY_MIN);

        // Then 1, 2, 4, 8, 16, 30, 30 minutes between the requests that go out.
        let mut waits = Vec::new();
        for _ in 0..7 {
            let wait = credential.next_attempt_in();
            waits.push(wait.as_secs() / 60);
            tokio::time::advance(wait - Duration::from_secs(1)).await;
            assert!(credential.get_token(&["s"], None).await.is_err());
            tokio::time::advance(Duration::from_secs(1)).await;
            let before = endpoint.requests();
            assert!(credential.get_token(&["s"], None).await.is_err());
            assert_eq!(endpoint.requests(), before + 1);
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);

        // A success starts over: the next failure (once no valid token is left) waits a
        // minute again.
        tokio::time::advance(credential.next_attempt_in()).await;
        endpoint.answer(Answer::Token);
        credential.get_token(&["s"], None).await.unwrap();
        assert_eq!(credential.next_attempt_in(), Duration::ZERO);
        endpoint.answer(Answer::Refused);
        tokio::time::advance(HOUR).await;
        assert!(credential.get_token(&["s"], None).await.is_err());
        assert_eq!(credential.next_attempt_in(), CREDENTIAL_RETRY_MIN);
    }

    #[tokio::test]
    async fn a_certificate_file_that_cannot_be_used_fails_its_token_requests_for_good() {
        use clap::Parser;
        use std::io::Write;
        let mut pem = tempfile::NamedTempFile::new().unwrap();
        pem.write_all(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
            .unwrap();
        for (path, needle) in [
            (
                pem.path().display().to_string(),
                "is PEM; convert it to PKCS#12",
            ),
            (
                "/nonexistent/cert.pfx".to_owned(),
                "reading /nonexistent/cert.pfx",
            ),
        ] {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            write!(
                file,
                "tenants:\n  - {{tenant_id: t, client_id: c, client_certificate_path: {path}}}\n"
            )
            .unwrap();
            let cli = crate::cli::Cli::try_parse_from([
                "x",
                "--config.file",
                file.path().to_str().unwrap(),
            ])
            .unwrap();
            let config =
                crate::config::Config::load(&cli, &|_| None, &crate::reports::names()).unwrap();
            let credential = credential(&config.tenants[0], &config.graph, reqwest::Client::new());
            let err = credential.get_token(&["s"], None).await.unwrap_err();
            assert!(crate::errors::error_chain(&err).contains(needle), "{err}");
            // Not worth asking again soon: alone, such a tenant ends the start.
            assert!(matches!(
                crate::graph::token_error(&err),
                crate::graph::GraphError::Token {
                    retryable: false,
                    ..
                }
            ));
        }
    }
}
