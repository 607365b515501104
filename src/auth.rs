//! Tokens from azure_identity. The credential caches tokens and refreshes them before they
//! expire; this module builds it so that it reaches the configured authority host through the
//! exporter's own HTTP client (and therefore trusts `--graph.ca-file` too), and wraps it in a
//! [`Credential`] that remembers how the tenant's latest token request went.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, SecretBytes, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientCertificateCredential,
    ClientCertificateCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use prometheus::IntGauge;
use tracing::{info, warn};

use crate::config::{CredentialConfig, GraphConfig, TenantConfig};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading client certificate {path}: {source}")]
    Certificate {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "client certificate {path} is PEM; convert it to PKCS#12 (.pfx), e.g. `openssl pkcs12 -export -in cert.pem -inkey key.pem -out cert.pfx`"
    )]
    PemCertificate { path: String },
    #[error("{0}")]
    Azure(#[from] azure_core::Error),
}

/// Builds the tenant's credential. `http` is the exporter's shared client, so proxies' extra
/// roots and timeouts apply to the token endpoint as they do to Graph.
pub fn credential(
    tenant: &TenantConfig,
    graph: &GraphConfig,
    http: reqwest::Client,
) -> Result<Arc<dyn TokenCredential>, AuthError> {
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = graph
        .authority_host
        .as_str()
        .trim_end_matches('/')
        .to_owned();
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
            secret.clone(),
            Some(ClientSecretCredentialOptions { client_options }),
        )?,
        CredentialConfig::ClientCertificate {
            client_id,
            path,
            password,
        } => {
            let shown = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|source| AuthError::Certificate {
                path: shown.clone(),
                source,
            })?;
            if bytes.starts_with(b"-----BEGIN") {
                return Err(AuthError::PemCertificate { path: shown });
            }
            let options = ClientCertificateCredentialOptions {
                client_options,
                password: password.clone(),
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
#[derive(Debug)]
pub struct Credential {
    tenant: String,
    inner: Arc<dyn TokenCredential>,
    up: IntGauge,
    state: Mutex<CredentialState>,
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
        }
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
                    warn!(tenant, error = %message, "the tenant's token request failed; none of its reports is read until one succeeds");
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
        let result = self.inner.get_token(scopes, options).await;
        self.record(&result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Fails while `failing` is set.
    #[derive(Debug, Default)]
    struct Switch {
        failing: AtomicBool,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Switch {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
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

    #[tokio::test]
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
        assert!(credential.get_token(&["s"], None).await.is_err());
        assert_eq!(up.get(), 0);
        let state = credential.state();
        assert_eq!(state.status, CredentialStatus::Failing);
        assert!(state.last_error.unwrap().1.contains("AADSTS7000222"));

        switch.failing.store(false, Ordering::SeqCst);
        credential.get_token(&["s"], None).await.unwrap();
        assert_eq!(up.get(), 1);
        let state = credential.state();
        assert_eq!(state.status, CredentialStatus::Ok);
        assert!(
            state.last_error.is_some(),
            "the last error stays on the page"
        );
    }
}
