//! Tokens from azure_identity. The credential caches tokens and refreshes them before they
//! expire; this module sets it up (on the tenant's first token request, reading its secret or
//! certificate file then) so that it reaches the configured authority host through the
//! exporter's own HTTP client (and therefore trusts `--graph.ca-file` too), and wraps it in a
//! [`Credential`] that remembers how the tenant's latest token request went and, while they
//! fail, lets one through only at growing intervals.

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
use tracing::{info, warn};

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
/// a request fails: secret and certificate files are read then, so that one tenant's missing
/// file fails that tenant only, and a rotated file is picked up at its next attempt. `http` is
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

/// How a tenant's latest token request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStatus {
    /// No token requested yet.
    Pending,
    Ok,
    Failing,
}

impl CredentialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialStatus::Pending => "pending",
            CredentialStatus::Ok => "ok",
            CredentialStatus::Failing => "failing",
        }
    }
}

/// What the landing page shows of a tenant's credential: never the secret.
#[derive(Debug, Clone)]
pub struct CredentialState {
    pub status: CredentialStatus,
    /// The latest failure and when it happened; kept after a recovery.
    pub last_error: Option<(SystemTime, String)>,
}

/// A tenant's credential, watched: every token request, at start or a refresh much later,
/// sets `entra_exporter_credential_up{tenant}` and the state the landing page shows, and the
/// tenant's first failure and its recovery are logged once each.
///
/// While the tenant's token requests fail, every caller (its first-token retries and all of its
/// reports) shares one schedule: after a failure the next request goes out 1 minute later,
/// doubling up to 30 minutes; calls before then fail at once without reaching the token
/// endpoint. A success resets it.
#[derive(Debug)]
pub struct Credential {
    tenant: String,
    inner: Arc<dyn TokenCredential>,
    up: IntGauge,
    state: Mutex<CredentialState>,
    retry: Mutex<Retry>,
    /// One token request at a time: the reports that find the token expired together send one
    /// request, and after a failure the others find the wait in force.
    requesting: tokio::sync::Mutex<()>,
}

/// A tenant without a token asks again after this, doubling up to [`CREDENTIAL_RETRY_MAX`].
pub const CREDENTIAL_RETRY_MIN: Duration = Duration::from_secs(60);
pub const CREDENTIAL_RETRY_MAX: Duration = Duration::from_secs(30 * 60);

/// The waits between a tenant's token requests while they fail: 1 minute, doubling up to 30.
fn credential_backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(CREDENTIAL_RETRY_MIN)
        .with_max_delay(CREDENTIAL_RETRY_MAX)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

/// The failing tenant's schedule: `None` while its token requests succeed.
#[derive(Debug, Default)]
struct Retry {
    failing: Option<(ExponentialBackoff, Instant)>,
}

impl Retry {
    /// Time left before the next token request may go out.
    fn wait(&self, now: Instant) -> Duration {
        self.failing.as_ref().map_or(Duration::ZERO, |(_, next)| {
            next.saturating_duration_since(now)
        })
    }

    fn failed(&mut self, now: Instant) {
        let (waits, next) = self
            .failing
            .get_or_insert_with(|| (credential_backoff(), now));
        *next = now + waits.next().unwrap_or(CREDENTIAL_RETRY_MAX);
    }
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
            state: Mutex::new(CredentialState {
                status: CredentialStatus::Pending,
                last_error: None,
            }),
            retry: Mutex::new(Retry::default()),
            requesting: tokio::sync::Mutex::new(()),
        }
    }

    /// How long until a token request may reach the token endpoint again: zero unless the
    /// latest one failed.
    pub fn next_attempt_in(&self) -> Duration {
        self.retry_lock().wait(Instant::now())
    }

    fn retry_lock(&self) -> std::sync::MutexGuard<'_, Retry> {
        self.retry.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> CredentialState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CredentialState> {
        // The state is replaced whole; a panic elsewhere cannot leave it half written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, result: &azure_core::Result<AccessToken>) {
        let tenant = self.tenant.as_str();
        match result {
            Ok(_) => self.retry_lock().failing = None,
            Err(_) => self.retry_lock().failed(Instant::now()),
        }
        let mut state = self.lock();
        let before = state.status;
        match result {
            Ok(_) => {
                state.status = CredentialStatus::Ok;
                self.up.set(1);
                if before == CredentialStatus::Failing {
                    info!(tenant, "the tenant's token request succeeds again");
                }
            }
            Err(err) => {
                let message = crate::error_chain(err);
                state.status = CredentialStatus::Failing;
                state.last_error = Some((SystemTime::now(), message.clone()));
                self.up.set(0);
                // One line when the tenant starts failing; its retries stay quiet.
                if before != CredentialStatus::Failing {
                    warn!(tenant, error = %message, retry_in = ?self.next_attempt_in(), "the tenant's token request failed; none of its reports is read until one succeeds, asked for again at growing intervals up to 30 minutes");
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl TokenCredential for Credential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let _one_at_a_time = self.requesting.lock().await;
        let wait = self.next_attempt_in();
        if !wait.is_zero() {
            let last = self
                .lock()
                .last_error
                .as_ref()
                .map_or_else(String::new, |(_, message)| message.clone());
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!(
                    "no token: the tenant's latest token request failed ({last}); the next one goes out in {}",
                    humantime::format_duration(Duration::from_secs(wait.as_secs()))
                ),
            ));
        }
        let result = self.inner.get_token(scopes, options).await;
        self.record(&result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Fails while `failing` is set; counts the requests that reach it.
    #[derive(Debug, Default)]
    struct Switch {
        failing: AtomicBool,
        requests: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Switch {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.requests.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    "AADSTS7000222: The provided client secret keys are expired.",
                ));
            }
            Ok(AccessToken::new(
                "token",
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            ))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_token_request_sets_the_gauge_and_the_state() {
        let switch = Arc::new(Switch::default());
        let up = IntGauge::new("up", "up").unwrap();
        let credential = Credential::new("contoso", switch.clone(), up.clone());
        assert_eq!(up.get(), 0);
        assert_eq!(credential.state().status, CredentialStatus::Pending);

        credential.get_token(&["s"], None).await.unwrap();
        assert_eq!(up.get(), 1);
        assert_eq!(credential.state().status, CredentialStatus::Ok);

        // A refresh that fails later, as when the secret expires.
        switch.failing.store(true, Ordering::SeqCst);
        assert!(credential.get_token(&["s"], None).await.is_err());
        assert_eq!(up.get(), 0);
        let state = credential.state();
        assert_eq!(state.status, CredentialStatus::Failing);
        assert!(state.last_error.unwrap().1.contains("AADSTS7000222"));

        switch.failing.store(false, Ordering::SeqCst);
        tokio::time::advance(CREDENTIAL_RETRY_MIN).await;
        credential.get_token(&["s"], None).await.unwrap();
        assert_eq!(up.get(), 1);
        let state = credential.state();
        assert_eq!(state.status, CredentialStatus::Ok);
        assert!(
            state.last_error.is_some(),
            "the last error stays on the page"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_tenant_asks_once_a_minute_then_less_often_whoever_calls() {
        let switch = Arc::new(Switch::default());
        switch.failing.store(true, Ordering::SeqCst);
        let credential = Credential::new(
            "contoso",
            switch.clone(),
            IntGauge::new("up", "up").unwrap(),
        );
        let requests = || switch.requests.load(Ordering::SeqCst);

        assert!(credential.get_token(&["s"], None).await.is_err());
        assert_eq!(requests(), 1);
        // Every report of the tenant asking in between fails at once, with the reason.
        for _ in 0..12 {
            let err = credential.get_token(&["s"], None).await.unwrap_err();
            assert!(err.to_string().contains("AADSTS7000222"), "{err}");
            assert!(err.to_string().contains("next one goes out in 1m"), "{err}");
        }
        assert_eq!(requests(), 1);
        assert_eq!(credential.next_attempt_in(), CREDENTIAL_RETRY_MIN);

        // Then 1, 2, 4, 8, 16, 30, 30 minutes between the requests that go out.
        let mut waits = Vec::new();
        for _ in 0..7 {
            let wait = credential.next_attempt_in();
            waits.push(wait.as_secs() / 60);
            tokio::time::advance(wait - Duration::from_secs(1)).await;
            assert!(credential.get_token(&["s"], None).await.is_err());
            tokio::time::advance(Duration::from_secs(1)).await;
            let before = requests();
            assert!(credential.get_token(&["s"], None).await.is_err());
            assert_eq!(requests(), before + 1);
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);

        // A success starts over: the next failure waits a minute again.
        tokio::time::advance(credential.next_attempt_in()).await;
        switch.failing.store(false, Ordering::SeqCst);
        credential.get_token(&["s"], None).await.unwrap();
        assert_eq!(credential.next_attempt_in(), Duration::ZERO);
        switch.failing.store(true, Ordering::SeqCst);
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
            assert!(crate::error_chain(&err).contains(needle), "{err}");
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
