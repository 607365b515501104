//! `tls_server_config`: the rustls server configuration, client certificates and their
//! allowed subject alternative names (`client_allowed_sans`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
use tracing::debug;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::loaded::*;

/// `tls_server_config` as exporter-toolkit defines it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) cert: Option<String>,
    pub(super) key: Option<String>,
    pub(super) client_auth_type: Option<String>,
    pub(super) client_ca_file: Option<PathBuf>,
    pub(super) client_ca: Option<String>,
    pub(super) min_version: Option<String>,
    pub(super) max_version: Option<String>,
    /// Ignored by Go since 1.18, and by rustls, which always prefers the server's order.
    #[serde(rename = "prefer_server_cipher_suites")]
    pub(super) _prefer_server_cipher_suites: Option<bool>,
    pub(super) cipher_suites: Option<IgnoredAny>,
    pub(super) curve_preferences: Option<IgnoredAny>,
    pub(super) client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuth {
    None,
    /// Asked for, not required, not verified (Go's RequestClientCert).
    Request,
    /// Required, not verified (Go's RequireAnyClientCert).
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

/// The versions this exporter offers, oldest first.
pub(super) const TLS_VERSIONS: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS12, &rustls::version::TLS13];

/// The index of a version in [`TLS_VERSIONS`].
pub(super) fn tls_version(key: &str, value: &str) -> Result<usize, String> {
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
pub(super) fn tls_config(
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
pub(super) struct AllowedSans {
    verifier: Arc<dyn ClientCertVerifier>,
    allowed: HashSet<String>,
}

/// The SANs of a DER certificate as exporter-toolkit lists them; `None` if it cannot be read.
pub(super) fn subject_alt_names(der: &[u8]) -> Option<Vec<String>> {
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

pub(super) fn ip_text(bytes: &[u8]) -> Option<String> {
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
pub(super) struct AnyClientCert {
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
