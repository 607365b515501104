//! `--web.config.file`: TLS, client certificates, basic auth and extra response headers, in the
//! Prometheus exporter-toolkit format, read again whenever the file or a file it names changes.
//! A reload may add or change protection but never remove it (see [`check_reload`]), and every
//! connection opened under a replaced configuration is closed (see [`WebConfigHandle`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::self_metrics::PromptGauge;
use aws_lc_rs::hmac;
use base64::Engine as _;
use hyper::header::{HeaderName, HeaderValue};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoClientAuth, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// How often the file and the files it names are compared with what was loaded: changes take
/// effect within this period (and the 5 s promised in the README).
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// `WWW-Authenticate` of a 401.
pub const AUTHENTICATE: &str = "Basic realm=\"entra-authmethods-exporter\"";

/// Successful basic-auth checks remembered per loaded configuration.
const AUTH_CACHE_ENTRIES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("--web.config.file: reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--web.config.file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

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

    fn replace(&self, config: WebConfig) {
        self.0.send_replace(Arc::new(config));
    }
}

/// The file as exporter-toolkit defines it. Keys the toolkit knows but this exporter cannot
/// honour are read so that they can be refused by name rather than silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    http_server_config: Option<HttpFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_ca: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    /// Ignored by Go since 1.18, and by rustls, which always prefers the server's order.
    #[serde(rename = "prefer_server_cipher_suites")]
    _prefer_server_cipher_suites: Option<bool>,
    cipher_suites: Option<IgnoredAny>,
    curve_preferences: Option<IgnoredAny>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    /// This exporter speaks HTTP/1.1 only; `http2: true` is accepted as a wish.
    #[serde(rename = "http2")]
    _http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// The headers exporter-toolkit lets a web config set, with their allowed values where the
/// toolkit restricts them.
const EXTRA_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Reads and checks the file and everything it names.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, dir).map_err(|message| WebConfigError::Invalid {
        path: path.to_owned(),
        message,
    })
}

/// Parses the file's text; relative paths are relative to `dir`, as in exporter-toolkit.
/// Errors are one line.
///
/// A file that turns on neither TLS, basic auth nor a header is refused, unlike in
/// exporter-toolkit, where an empty file serves plain HTTP to everyone: whoever passes the flag
/// expects the file to secure something, and an emptied or truncated file (an editor, a
/// template, a ConfigMap update) must not open `/metrics`.
pub fn parse(text: &str, dir: &Path) -> Result<WebConfig, String> {
    let file = parse_file(text)?;
    if file.rate_limit.is_some() {
        return Err("rate_limit is not supported by this exporter; remove it (--web.max-requests caps concurrent scrapes)".to_owned());
    }
    let (tls, client_certificates) = match file.tls_server_config {
        Some(tls) => match tls_config(tls, dir)? {
            Some((tls, client_certificates)) => (Some(tls), client_certificates),
            None => (None, ClientCertificates::default()),
        },
        None => (None, ClientCertificates::default()),
    };
    let http = file.http_server_config.unwrap_or_default();
    let headers = extra_headers(http.headers.unwrap_or_default())?;
    let users = file.basic_auth_users.unwrap_or_default();
    let basic_auth = (!users.is_empty())
        .then(|| BasicAuth::new(users))
        .transpose()?;
    if tls.is_none() && basic_auth.is_none() && headers.is_empty() {
        return Err("the file configures nothing (no TLS certificate, basic_auth_users or http_server_config.headers), as an empty or truncated file does; it is refused rather than read as plain HTTP open to everyone. To serve plain HTTP, drop --web.config.file".to_owned());
    }
    Ok(WebConfig {
        tls,
        client_certificates,
        basic_auth,
        headers,
    })
}

/// Refuses a reload that would turn protection off: a truncated or emptied file must not open
/// what the running exporter protects. Adding or changing protection is a reload; removing it
/// takes a restart.
pub fn check_reload(current: &WebConfig, next: &WebConfig) -> Result<(), String> {
    let was = current.client_certificates;
    let will = next.client_certificates;
    let dropped: Vec<&str> = [
        (current.tls.is_some() && next.tls.is_none(), "TLS"),
        (
            current.basic_auth.is_some() && next.basic_auth.is_none(),
            "basic_auth_users",
        ),
        (
            was.required && !will.required,
            "the required client certificate",
        ),
        (
            was.verified && !will.verified,
            "client certificate verification",
        ),
        (was.pinned && !will.pinned, "client_allowed_sans"),
    ]
    .into_iter()
    .filter_map(|(dropped, what)| dropped.then_some(what))
    .collect();
    if dropped.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the new version would turn off {}; a reload may add or change protection but not remove it: restart the exporter to apply this file",
            dropped.join(", ")
        ))
    }
}

fn parse_file(text: &str) -> Result<File, String> {
    if text.trim().is_empty() {
        return Ok(File::default());
    }
    crate::config::parse_yaml::<Option<File>>(text).map(Option::unwrap_or_default)
}

/// Files the configuration names, so that the watcher also notices a renewed certificate.
fn named_files(text: &str, dir: &Path) -> Vec<PathBuf> {
    let Ok(File {
        tls_server_config: Some(tls),
        ..
    }) = parse_file(text)
    else {
        return Vec::new();
    };
    [tls.cert_file, tls.key_file, tls.client_ca_file]
        .into_iter()
        .flatten()
        .map(|p| dir.join(p))
        .collect()
}

fn extra_headers(
    headers: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    headers
        .into_iter()
        .map(|(name, value)| {
            let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(known, _)| *known == name)
            else {
                let known: Vec<&str> = EXTRA_HEADERS.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "http_server_config.headers: HTTP header {name:?} can not be configured; allowed: {}",
                    known.join(", ")
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(format!(
                    "http_server_config.headers: invalid value for {name}: expected one of {allowed:?}, got {value:?}"
                ));
            }
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|err| format!("http_server_config.headers: {name}: {err}"))?;
            let header_value = HeaderValue::from_str(&value)
                .map_err(|err| format!("http_server_config.headers: {name}: {err}"))?;
            Ok((header_name, header_value))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    /// Asked for, not required, not verified (Go's RequestClientCert).
    Request,
    /// Required, not verified (Go's RequireAnyClientCert).
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

/// The versions this exporter offers, oldest first.
const TLS_VERSIONS: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS12, &rustls::version::TLS13];

/// The index of a version in [`TLS_VERSIONS`].
fn tls_version(key: &str, value: &str) -> Result<usize, String> {
    match value {
        "TLS12" => Ok(0),
        "TLS13" => Ok(1),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key}: {value} is not supported; TLS12 and TLS13 are"
        )),
        other => Err(format!(
            "tls_server_config.{key}: unknown TLS version {other:?}; use TLS12 or TLS13"
        )),
    }
}

/// `None` when the block configures nothing, as exporter-toolkit serves plain HTTP then.
fn tls_config(
    tls: TlsFile,
    dir: &Path,
) -> Result<Option<(Arc<ServerConfig>, ClientCertificates)>, String> {
    for (key, set) in [
        ("cipher_suites", tls.cipher_suites.is_some()),
        ("curve_preferences", tls.curve_preferences.is_some()),
    ] {
        if set {
            return Err(format!(
                "tls_server_config.{key} is not supported by this exporter (rustls negotiates only modern suites and groups); remove it"
            ));
        }
    }
    let enabled = tls.cert_file.is_some()
        || tls.cert.is_some()
        || tls.key_file.is_some()
        || tls.key.is_some()
        || tls.client_ca_file.is_some()
        || tls.client_ca.is_some()
        || tls.client_auth_type.is_some();
    if !enabled {
        if tls.client_allowed_sans.is_some() {
            return Err("tls_server_config.client_allowed_sans needs TLS: set cert_file, key_file, client_auth_type RequireAndVerifyClientCert and client_ca_file".to_owned());
        }
        return Ok(None);
    }
    let read = |key: &str,
                file: &Option<PathBuf>,
                inline: &Option<String>|
     -> Result<Option<Vec<u8>>, String> {
        match (file, inline) {
            (Some(_), Some(_)) => Err(format!(
                "tls_server_config: set {key}_file or {key}, not both"
            )),
            (Some(path), None) => {
                let path = dir.join(path);
                std::fs::read(&path).map(Some).map_err(|err| {
                    format!(
                        "tls_server_config.{key}_file: reading {}: {err}",
                        path.display()
                    )
                })
            }
            (None, Some(text)) => Ok(Some(text.clone().into_bytes())),
            (None, None) => Ok(None),
        }
    };
    let cert_pem = read("cert", &tls.cert_file, &tls.cert)?
        .ok_or("tls_server_config: missing one of cert or cert_file")?;
    let key_pem = read("key", &tls.key_file, &tls.key)?
        .ok_or("tls_server_config: missing one of key or key_file")?;
    let ca_pem = read("client_ca", &tls.client_ca_file, &tls.client_ca)?;

    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("tls_server_config: the certificate is not PEM: {err}"))?;
    if chain.is_empty() {
        return Err("tls_server_config: no certificate in the cert PEM".to_owned());
    }
    // The key's own error could quote key material; say only what is wrong.
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| "tls_server_config: no PEM private key in the key".to_owned())?;

    let client_auth = match tls.client_auth_type.as_deref() {
        None | Some("" | "NoClientCert") => ClientAuth::None,
        Some("RequestClientCert") => ClientAuth::Request,
        // RequireClientCert is the toolkit's old name.
        Some("RequireAnyClientCert" | "RequireClientCert") => ClientAuth::RequireAny,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerify,
        Some(other) => {
            return Err(format!(
                "tls_server_config.client_auth_type: unknown value {other:?}; use NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ));
        }
    };
    // As in exporter-toolkit, a present list (even empty) is checked and needs a mode in which
    // every client sends a certificate. Unlike it, RequireAnyClientCert is refused (anyone can
    // make a certificate carrying any SAN), and so is an empty list (it would admit no one).
    let allowed_sans = match tls.client_allowed_sans {
        None => None,
        Some(_) if client_auth != ClientAuth::RequireAndVerify => {
            return Err("tls_server_config.client_allowed_sans needs client_auth_type RequireAndVerifyClientCert (with client_ca_file): without verification anyone can make a certificate that carries an allowed SAN".to_owned());
        }
        Some(sans) if sans.is_empty() => {
            return Err("tls_server_config.client_allowed_sans is empty, which would admit no client; list the SANs to admit, or remove the key".to_owned());
        }
        Some(sans) => Some(sans),
    };
    let client_certificates = ClientCertificates {
        required: matches!(
            client_auth,
            ClientAuth::RequireAny | ClientAuth::RequireAndVerify
        ),
        verified: matches!(
            client_auth,
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify
        ),
        pinned: allowed_sans.is_some(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ClientCertVerifier> = match (client_auth, ca_pem) {
        (ClientAuth::None, Some(_)) => {
            return Err("tls_server_config: client CAs are set but client_auth_type is NoClientCert; set a client_auth_type".to_owned());
        }
        (ClientAuth::None, None) => Arc::new(NoClientAuth),
        (ClientAuth::Request | ClientAuth::RequireAny, _) => Arc::new(AnyClientCert {
            mandatory: client_auth == ClientAuth::RequireAny,
            algorithms: provider.signature_verification_algorithms,
        }),
        (ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify, None) => {
            return Err("tls_server_config: client_auth_type VerifyClientCertIfGiven and RequireAndVerifyClientCert need client_ca_file".to_owned());
        }
        (ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify, Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert =
                    cert.map_err(|err| format!("tls_server_config: client CA PEM: {err}"))?;
                roots
                    .add(cert)
                    .map_err(|err| format!("tls_server_config: client CA: {err}"))?;
            }
            if roots.is_empty() {
                return Err("tls_server_config: no certificate in the client CA PEM".to_owned());
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = match client_auth {
                ClientAuth::VerifyIfGiven => builder.allow_unauthenticated(),
                _ => builder,
            };
            let verifier = builder
                .build()
                .map_err(|err| format!("tls_server_config: client CA: {err}"))?;
            match allowed_sans {
                Some(allowed) => Arc::new(AllowedSans {
                    verifier,
                    allowed: allowed.into_iter().collect(),
                }),
                None => verifier,
            }
        }
    };

    let min = tls_version("min_version", tls.min_version.as_deref().unwrap_or("TLS12"))?;
    let max = tls_version("max_version", tls.max_version.as_deref().unwrap_or("TLS13"))?;
    let Some(versions) = TLS_VERSIONS.get(min..=max).filter(|v| !v.is_empty()) else {
        return Err("tls_server_config: min_version is above max_version".to_owned());
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|err| format!("tls_server_config: {err}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|err| format!("tls_server_config: certificate and key: {err}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some((Arc::new(config), client_certificates)))
}

/// `client_allowed_sans`: after the usual verification, the client's own certificate must carry
/// a listed Subject Alternative Name, compared as exporter-toolkit compares them: exactly (case
/// included, no wildcards), DNS names, e-mail addresses and URIs as written, IP addresses in Go's
/// form (dotted IPv4, IPv4-mapped IPv6 as IPv4, compressed IPv6).
#[derive(Debug)]
struct AllowedSans {
    verifier: Arc<dyn ClientCertVerifier>,
    allowed: HashSet<String>,
}

/// The SANs of a DER certificate as exporter-toolkit lists them; `None` if it cannot be read.
fn subject_alt_names(der: &[u8]) -> Option<Vec<String>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let Some(extension) = cert.subject_alternative_name().ok()? else {
        return Some(Vec::new());
    };
    let names = extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(text) | GeneralName::RFC822Name(text) | GeneralName::URI(text) => {
                Some((*text).to_owned())
            }
            GeneralName::IPAddress(bytes) => ip_text(bytes),
            _ => None,
        })
        .collect();
    Some(names)
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(Ipv4Addr::from(v4).to_string());
    }
    let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => v6.to_string(),
    })
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.verifier.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.verifier.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.verifier.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        let Some(names) = subject_alt_names(end_entity) else {
            debug!("client certificate refused: its SANs cannot be read");
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::BadEncoding,
            ));
        };
        if names.iter().any(|name| self.allowed.contains(name)) {
            Ok(verified)
        } else {
            debug!(sans = ?names, "client certificate refused: none of its SANs is in client_allowed_sans");
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier.supported_verify_schemes()
    }
}

/// Accepts any client certificate without checking who issued it, as Go's RequestClientCert
/// and RequireAnyClientCert do; the handshake still proves the client holds its key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `basic_auth_users`: user names and bcrypt hashes, and the checks that already succeeded.
pub struct BasicAuth {
    users: HashMap<String, String>,
    /// Checked for unknown users, at the cost of the costliest configured hash, so that the
    /// time of an answer does not tell which user names exist.
    decoy: String,
    /// Keys the remembered checks; random per loaded configuration, so a remembered check
    /// never outlives the file it was made against.
    cache_key: hmac::Key,
    verified: Mutex<HashSet<Vec<u8>>>,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> Result<Self, String> {
        let mut cost = 0;
        for (user, hash) in &users {
            let parts: bcrypt::HashParts = hash.parse().map_err(|_| {
                format!("basic_auth_users: the password of user {user:?} is not a bcrypt hash")
            })?;
            cost = cost.max(parts.get_cost());
        }
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let decoy = bcrypt::hash(secret, cost)
            .map_err(|err| format!("basic_auth_users: making the decoy hash: {err}"))?;
        rand::fill(&mut secret);
        Ok(Self {
            users: users.into_iter().collect(),
            decoy,
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// User name and password of a `Basic` Authorization header.
    pub fn credentials(header: &HeaderValue) -> Option<(String, String)> {
        let encoded = header.to_str().ok()?;
        let (scheme, encoded) = encoded.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }

    fn tag(&self, user: &str, password: &str) -> Vec<u8> {
        let mut context = hmac::Context::with_key(&self.cache_key);
        context.update(&(user.len() as u64).to_le_bytes());
        context.update(user.as_bytes());
        context.update(password.as_bytes());
        context.sign().as_ref().to_vec()
    }

    /// True if this pair already passed a full check against this configuration.
    pub fn remembered(&self, user: &str, password: &str) -> bool {
        let tag = self.tag(user, password);
        self.verified
            .lock()
            .map(|set| set.contains(&tag))
            .unwrap_or(false)
    }

    /// The full bcrypt check; CPU-heavy, so call it off the async runtime.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let (hash, known) = match self.users.get(user) {
            Some(hash) => (hash.as_str(), true),
            None => (self.decoy.as_str(), false),
        };
        let ok = bcrypt::verify(password, hash).unwrap_or(false) && known;
        if ok && let Ok(mut set) = self.verified.lock() {
            if set.len() >= AUTH_CACHE_ENTRIES {
                set.clear();
            }
            set.insert(self.tag(user, password));
        }
        ok
    }
}

/// Loads the file again, refusing a version that would remove protection `current` gives.
fn reload(path: &Path, current: &WebConfig) -> Result<WebConfig, WebConfigError> {
    let next = load(path)?;
    check_reload(current, &next).map_err(|message| WebConfigError::Invalid {
        path: path.to_owned(),
        message,
    })?;
    Ok(next)
}

/// The bytes of the file and of every file it names, to notice any change.
fn fingerprint(path: &Path) -> Vec<Option<Vec<u8>>> {
    let main = std::fs::read(path).ok();
    let dir = path.parent().unwrap_or(Path::new("."));
    let named = main
        .as_deref()
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .map(|text| named_files(text, dir))
        .unwrap_or_default();
    std::iter::once(main)
        .chain(named.iter().map(|p| std::fs::read(p).ok()))
        .collect()
}

/// Reads the file again whenever it or a file it names changes, until `shutdown`. A bad
/// version is logged once and leaves the last good configuration in force.
pub async fn watch(
    path: PathBuf,
    handle: WebConfigHandle,
    reload_successful: PromptGauge,
    shutdown: CancellationToken,
) {
    let mut seen = fingerprint(&path);
    loop {
        tokio::select! {
            () = tokio::time::sleep(RELOAD_CHECK) => {}
            () = shutdown.cancelled() => return,
        }
        let watched = path.clone();
        let Ok(latest) = tokio::task::spawn_blocking(move || fingerprint(&watched)).await else {
            continue;
        };
        if latest == seen {
            continue;
        }
        seen = latest;
        let loading = path.clone();
        let current = handle.current();
        // Loading may make a bcrypt decoy hash: off the async runtime.
        match tokio::task::spawn_blocking(move || reload(&loading, &current)).await {
            Ok(Ok(config)) => {
                let (tls, client_certificates, basic_auth) = (
                    config.tls.is_some(),
                    config.client_certificates,
                    config.basic_auth.is_some(),
                );
                // In force before it is logged as such.
                handle.replace(config);
                reload_successful.set(1);
                info!(
                    tls,
                    ?client_certificates,
                    basic_auth,
                    "web config reloaded; connections opened under the previous one are closed"
                );
            }
            Ok(Err(err)) => {
                reload_successful.set(0);
                error!(error = %crate::errors::error_chain(&err), "web config not reloaded; keeping the previous one");
            }
            Err(err) => {
                reload_successful.set(0);
                error!(error = %err, "web config reload task failed; keeping the previous one");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(text, Path::new("/nonexistent")).unwrap_err()
    }

    #[test]
    fn a_file_that_configures_nothing_is_refused() {
        for text in [
            "",
            "\n",
            " \t\n  \n",
            "# nothing\n",
            "{}\n",
            "tls_server_config:\nhttp_server_config:\n",
            "tls_server_config: {}\nbasic_auth_users: {}\n",
            "http_server_config:\n  http2: false\n",
        ] {
            let err = error(text);
            assert!(
                err.contains("configures nothing") && err.contains("--web.config.file"),
                "{text:?}: {err}"
            );
        }
        // Headers alone are a configuration.
        parse(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
            Path::new("."),
        )
        .unwrap();
    }

    /// A server certificate and key, a client CA, and a web config file naming them.
    struct TlsFiles(tempfile::TempDir);

    impl TlsFiles {
        fn new() -> TlsFiles {
            let dir = tempfile::tempdir().unwrap();
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca = rcgen::CertificateParams::default();
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
            let issuer = rcgen::Issuer::new(ca, ca_key);
            let key = rcgen::KeyPair::generate().unwrap();
            let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            std::fs::write(dir.path().join("server.crt"), leaf.pem()).unwrap();
            std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
            std::fs::write(dir.path().join("prometheus-ca.crt"), ca_pem).unwrap();
            TlsFiles(dir)
        }

        fn parse(&self, text: &str) -> Result<WebConfig, String> {
            parse(text, self.0.path())
        }
    }

    const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

    fn client_auth(auth_type: &str, extra: &str) -> String {
        format!(
            "{TLS}  client_auth_type: {auth_type}\n  client_ca_file: prometheus-ca.crt\n{extra}"
        )
    }

    #[test]
    fn a_reload_may_add_protection_but_never_remove_it() {
        let files = TlsFiles::new();
        let users = format!(
            "basic_auth_users:\n  alice: {}\n",
            bcrypt::hash("pw", 4).unwrap()
        );
        let headers = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n";
        let pinned = client_auth(
            "RequireAndVerifyClientCert",
            "  client_allowed_sans: [prometheus]\n",
        );
        let verified = client_auth("RequireAndVerifyClientCert", "");
        let any = client_auth("RequireAnyClientCert", "");
        let if_given = client_auth("VerifyClientCertIfGiven", "");
        let requested = client_auth("RequestClientCert", "");
        let with_users = format!("{TLS}{users}");
        for (before, after, dropped) in [
            (TLS, headers, Some("TLS")),
            (with_users.as_str(), users.as_str(), Some("TLS")),
            (with_users.as_str(), headers, Some("TLS, basic_auth_users")),
            (with_users.as_str(), TLS, Some("basic_auth_users")),
            (
                &verified,
                TLS,
                Some("the required client certificate, client certificate verification"),
            ),
            (&verified, &any, Some("client certificate verification")),
            (
                &verified,
                &if_given,
                Some("the required client certificate"),
            ),
            (&any, &requested, Some("the required client certificate")),
            (
                &if_given,
                &requested,
                Some("client certificate verification"),
            ),
            (&pinned, &verified, Some("client_allowed_sans")),
            // Adding or changing protection is a reload.
            (headers, TLS, None),
            (headers, users.as_str(), None),
            (TLS, &pinned, None),
            (&requested, &any, None),
            (&any, &verified, None),
            (&if_given, &verified, None),
            (
                &pinned,
                &client_auth(
                    "RequireAndVerifyClientCert",
                    "  client_allowed_sans: [grafana]\n",
                ),
                None,
            ),
            (with_users.as_str(), &format!("{with_users}{headers}"), None),
            (&format!("{with_users}{headers}"), with_users.as_str(), None),
        ] {
            let current = files.parse(before).unwrap();
            let next = files.parse(after).unwrap();
            let verdict = check_reload(&current, &next);
            match dropped {
                None => assert!(verdict.is_ok(), "{before:?} -> {after:?}: {verdict:?}"),
                Some(what) => {
                    let err = verdict.unwrap_err();
                    assert!(
                        err.contains(&format!("turn off {what};")) && err.contains("restart"),
                        "{before:?} -> {after:?}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn client_allowed_sans_needs_a_verified_required_certificate_and_a_list() {
        let files = TlsFiles::new();
        let sans = "  client_allowed_sans: [prometheus]\n";
        for (text, needle) in [
            (
                client_auth("RequireAnyClientCert", sans),
                "RequireAndVerifyClientCert",
            ),
            (
                client_auth("VerifyClientCertIfGiven", sans),
                "RequireAndVerifyClientCert",
            ),
            (
                client_auth("RequestClientCert", sans),
                "RequireAndVerifyClientCert",
            ),
            (format!("{TLS}{sans}"), "RequireAndVerifyClientCert"),
            (format!("tls_server_config:\n{sans}"), "needs TLS"),
            (
                client_auth("RequireAndVerifyClientCert", "  client_allowed_sans: []\n"),
                "admit no client",
            ),
        ] {
            let err = files.parse(&text).err().unwrap_or_default();
            assert!(
                err.contains("client_allowed_sans") && err.contains(needle),
                "{text:?}: {err}"
            );
        }
        let config = files
            .parse(&client_auth("RequireAndVerifyClientCert", sans))
            .unwrap();
        assert_eq!(
            config.client_certificates,
            ClientCertificates {
                required: true,
                verified: true,
                pinned: true
            }
        );
    }

    #[test]
    fn sans_are_written_as_exporter_toolkit_writes_them() {
        use rcgen::SanType;
        let ia5 = |text: &str| text.try_into().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![
            SanType::DnsName(ia5("Prometheus.example")),
            SanType::Rfc822Name(ia5("ops@example.com")),
            SanType::URI(ia5("spiffe://cluster.local/ns/monitoring/sa/prometheus")),
            SanType::IpAddress("192.0.2.7".parse().unwrap()),
            SanType::IpAddress("2001:DB8:0:0:0:0:0:1".parse().unwrap()),
            SanType::IpAddress("::ffff:198.51.100.1".parse().unwrap()),
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_alt_names(cert.der()).unwrap(),
            [
                "Prometheus.example",
                "ops@example.com",
                "spiffe://cluster.local/ns/monitoring/sa/prometheus",
                "192.0.2.7",
                "2001:db8::1",
                "198.51.100.1",
            ]
        );
        let bare = rcgen::CertificateParams::default()
            .self_signed(&key)
            .unwrap();
        assert_eq!(subject_alt_names(bare.der()).unwrap(), Vec::<String>::new());
        assert_eq!(subject_alt_names(b"not a certificate"), None);
    }

    #[test]
    fn unknown_and_unsupported_keys_are_named() {
        for (text, needle) in [
            ("tls_config: {}\n", "tls_config"),
            ("tls_server_config:\n  cert_filename: x\n", "cert_filename"),
            ("http_server_config:\n  header: {}\n", "header"),
            ("rate_limit: {burst: 1, interval: 1s}\n", "rate_limit"),
            (
                "tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                "cipher_suites",
            ),
        ] {
            let err = error(text);
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn headers_follow_the_toolkit_rules() {
        let config = parse(
            "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n    X-Frame-Options: deny\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(config.headers.len(), 2);
        assert!(
            error("http_server_config:\n  headers:\n    X-Powered-By: me\n")
                .contains("X-Powered-By")
        );
        assert!(
            error("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n")
                .contains("nosniff")
        );
        // http2 is accepted, as in the toolkit's own examples.
        parse(
            "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n",
            Path::new("."),
        )
        .unwrap();
    }

    #[test]
    fn tls_mistakes_are_clear() {
        for (text, needle) in [
            (
                "tls_server_config:\n  key_file: k\n",
                "missing one of cert or cert_file",
            ),
            (
                "tls_server_config:\n  cert: c\n",
                "missing one of key or key_file",
            ),
            (
                "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n",
                "/nonexistent/c.pem",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n",
                "no certificate",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n  min_version: TLS10\n",
                "no certificate",
            ),
            (
                "tls_server_config:\n  client_auth_type: Sometimes\n",
                "missing one of cert",
            ),
        ] {
            let err = error(text);
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn bcrypt_hashes_are_checked_at_load_and_never_printed() {
        let err = error("basic_auth_users:\n  alice: plaintext-password\n");
        assert!(
            err.contains("alice") && !err.contains("plaintext-password"),
            "{err}"
        );
    }

    #[test]
    fn basic_auth_verifies_remembers_and_forgets_with_a_new_file() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let text = format!("basic_auth_users:\n  alice: {hash}\n");
        let config = parse(&text, Path::new(".")).unwrap();
        let auth = config.basic_auth.unwrap();
        assert!(!auth.remembered("alice", "s3cret"));
        assert!(!auth.verify("alice", "wrong"));
        assert!(!auth.verify("bob", "s3cret"));
        assert!(auth.verify("alice", "s3cret"));
        assert!(auth.remembered("alice", "s3cret"));
        assert!(!auth.remembered("alice", "wrong"));
        // The decoy costs what the real hashes cost.
        let decoy: bcrypt::HashParts = auth.decoy.parse().unwrap();
        assert_eq!(decoy.get_cost(), 4);
        // The same file loaded again starts with nothing remembered.
        let again = parse(&text, Path::new(".")).unwrap().basic_auth.unwrap();
        assert!(!again.remembered("alice", "s3cret"));
    }

    #[test]
    fn readme_example_loads_with_its_files() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("<!-- web-config-example")
            .and_then(|i| readme[i..].find("```yaml").map(|j| i + j + "```yaml".len()))
            .expect("README has the web config example");
        let end = start + readme[start..].find("```").expect("closing fence");
        let example = &readme[start..end];

        let config = TlsFiles::new().parse(example).unwrap();
        assert!(config.tls.is_some());
        assert_eq!(config.headers.len(), 2);
        let auth = config.basic_auth.unwrap();
        let hash = &auth.users["prometheus"];
        assert!(bcrypt::verify("change-me", hash).unwrap());
    }

    #[test]
    fn basic_credentials_parse() {
        let header = HeaderValue::from_static("Basic YWxpY2U6czNjcjp0"); // alice:s3cr:t
        assert_eq!(
            BasicAuth::credentials(&header),
            Some(("alice".to_owned(), "s3cr:t".to_owned()))
        );
        for bad in ["Bearer abc", "Basic !!!", "Basic", "Basic YWxpY2U="] {
            assert_eq!(
                BasicAuth::credentials(&HeaderValue::from_static(bad)),
                None,
                "{bad}"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        const KEYS: &[&str] = &[
            "tls_server_config",
            "http_server_config",
            "basic_auth_users",
            "rate_limit",
            "cert_file",
            "key_file",
            "cert",
            "key",
            "client_auth_type",
            "client_ca_file",
            "client_ca",
            "min_version",
            "max_version",
            "cipher_suites",
            "headers",
            "http2",
            "Strict-Transport-Security",
            "X-Frame-Options",
            "client_allowed_sans",
            "alice",
        ];

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                "(TLS12|TLS13|TLS10|NoClientCert|RequestClientCert|RequireAnyClientCert|VerifyClientCertIfGiven|RequireAndVerifyClientCert|deny|nosniff|\\$2y\\$04\\$abc|-----BEGIN CERTIFICATE-----)".prop_map(Value::from),
                "[ -~]{0,24}".prop_map(Value::from),
            ];
            crate::testing::document(KEYS, leaf.boxed())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_text_is_loaded_or_refused(text in "(?s).{0,200}") {
                let _ = parse(&text, Path::new("/nonexistent"));
            }

            #[test]
            fn arbitrary_structures_are_loaded_or_refused(value in value()) {
                if let Err(err) = parse(&value.to_string(), Path::new("/nonexistent")) {
                    prop_assert!(!err.contains('\n'), "{}", err);
                }
            }
        }
    }
}
