//! Tokens from azure_identity. The credential caches tokens and refreshes them before they
//! expire; this module only builds it so that it reaches the configured authority host through
//! the exporter's own HTTP client (and therefore trusts `--graph.ca-file` too).

use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{SecretBytes, TokenCredential};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientCertificateCredential,
    ClientCertificateCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

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
    #[error(transparent)]
    Token(Box<crate::graph::GraphError>),
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

/// The OAuth scope for Graph: `<graph endpoint>/.default`, which is cloud-specific.
pub fn graph_scope(graph: &GraphConfig) -> String {
    format!("{}/.default", graph.endpoint.as_str().trim_end_matches('/'))
}
