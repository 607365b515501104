//! Throw-away PKI for the fake servers.
//!
//! azure_identity only accepts an `https://` authority host, so the fake token
//! endpoint (and with it the fake Graph) must speak real TLS. Each call mints a
//! fresh CA and a leaf for `127.0.0.1` / `localhost`; clients trust the CA PEM.
//!
//! To run a second TLS server trusted by the same CA (for example the "foreign
//! host" [`Recorder`](crate::Recorder)), reuse the [`rustls::ServerConfig`]
//! returned here or by [`FakeGraph::tls_config`](crate::FakeGraph::tls_config):
//! certificates are not bound to a port, so one leaf serves any loopback port.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::error::FakeError;

/// Generates a CA and a leaf it signed, and builds a server config for the leaf.
///
/// Returns `(ca_pem, server_config)`. The leaf covers IP `127.0.0.1` and DNS
/// `localhost`, has basicConstraints `CA:FALSE` and EKU `serverAuth`, so strict
/// verifiers (webpki, the platform verifier) accept it. The config offers only
/// HTTP/1.1 via ALPN because the fake servers speak nothing else.
pub fn generate_ca_and_leaf() -> Result<(String, ServerConfig), FakeError> {
    let now = OffsetDateTime::now_utc();
    // Back-date a little so clients with a slightly skewed clock still accept it.
    let not_before = now.checked_sub(Duration::days(1)).unwrap_or(now);
    let not_after = now.checked_add(Duration::days(3650)).unwrap_or(now);

    let ca_key = KeyPair::generate().map_err(|source| FakeError::Cert {
        what: "CA key",
        source,
    })?;
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "entra-authmethods-exporter fake CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|source| FakeError::Cert {
            what: "CA certificate",
            source,
        })?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().map_err(|source| FakeError::Cert {
        what: "leaf key",
        source,
    })?;
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).map_err(
            |source| FakeError::Cert {
                what: "leaf subject alternative names",
                source,
            },
        )?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.not_before = not_before;
    leaf_params.not_after = not_after;
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &issuer)
        .map_err(|source| FakeError::Cert {
            what: "leaf certificate",
            source,
        })?;

    // Pin the provider instead of relying on the process default, which panics
    // when several rustls providers are compiled in and none was installed.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(FakeError::Tls)?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .map_err(FakeError::Tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    Ok((ca_cert.pem(), config))
}
