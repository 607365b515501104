use std::path::Path;

use hyper::header::HeaderValue;

use super::basic_auth::*;
use super::file::*;
use super::loaded::*;
use super::reload::*;
use super::tls::*;

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
    format!("{TLS}  client_auth_type: {auth_type}\n  client_ca_file: prometheus-ca.crt\n{extra}")
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
        error("http_server_config:\n  headers:\n    X-Powered-By: me\n").contains("X-Powered-By")
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
fn documented_example_loads_with_its_files() {
    let docs = include_str!("../../docs/security.md");
    let start = docs
        .find("<!-- web-config-example")
        .and_then(|i| docs[i..].find("```yaml").map(|j| i + j + "```yaml".len()))
        .expect("docs/security.md has the web config example");
    let end = start + docs[start..].find("```").expect("closing fence");
    let example = &docs[start..end];

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
