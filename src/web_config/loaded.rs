//! A loaded web configuration, and the handle to the one in force.

use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use tokio::sync::watch;

use super::basic_auth::*;

/// A loaded web configuration. The default, used without `--web.config.file`, serves plain
/// HTTP to everyone; a file always configures something (see [`parse`]).
#[derive(Default)]
pub struct WebConfig {
    pub tls: Option<Arc<ServerConfig>>,
    pub client_certificates: ClientCertificates,
    pub basic_auth: Option<BasicAuth>,
    /// `http_server_config.headers`, added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// What the TLS handshake demands of a client's certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCertificates {
    /// A client without a certificate is refused.
    pub required: bool,
    /// A certificate must chain to the client CA.
    pub verified: bool,
    /// A certificate must carry one of `client_allowed_sans`.
    pub pinned: bool,
}

impl std::fmt::Debug for WebConfig {
    // Never prints hashes or keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("client_certificates", &self.client_certificates)
            .field("basic_auth", &self.basic_auth.is_some())
            .field("headers", &self.headers)
            .finish()
    }
}

/// The configuration in force, swapped whole when the file changes. A connection keeps the
/// configuration it was opened under and is served only while that one is still in force: a
/// handshake cannot be redone, so a plaintext connection, or one whose client certificate was
/// never asked for, must not outlive the reload that adds TLS or client authentication.
#[derive(Clone)]
pub struct WebConfigHandle(watch::Sender<Arc<WebConfig>>);

impl Default for WebConfigHandle {
    fn default() -> Self {
        Self::new(WebConfig::default())
    }
}

impl WebConfigHandle {
    pub fn new(config: WebConfig) -> Self {
        Self(watch::Sender::new(Arc::new(config)))
    }

    pub fn current(&self) -> Arc<WebConfig> {
        self.0.borrow().clone()
    }

    /// The configuration in force and a receiver that wakes once it is replaced.
    pub fn subscribe(&self) -> (Arc<WebConfig>, watch::Receiver<Arc<WebConfig>>) {
        let mut changes = self.0.subscribe();
        let current = changes.borrow_and_update().clone();
        (current, changes)
    }

    /// True while `config` is the one in force.
    pub fn in_force(&self, config: &Arc<WebConfig>) -> bool {
        Arc::ptr_eq(&self.0.borrow(), config)
    }

    pub(super) fn replace(&self, config: WebConfig) {
        self.0.send_replace(Arc::new(config));
    }
}
