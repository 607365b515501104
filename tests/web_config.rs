//! `--web.config.file` against real TLS clients: certificates made here with rcgen, every
//! client auth type, TLS versions, basic auth with its cache, extra headers, reloads (good and
//! bad) and start-up errors.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Exporter, WAIT, demo_command};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

const AUTHENTICATE: &str = r#"Basic realm="entra-authmethods-exporter""#;

/// A CA that signs leaves.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// `(certificate PEM, key PEM)` of a leaf for the server (127.0.0.1) or a client.
    fn leaf(&self, server: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names = if server {
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()]
        } else {
            vec!["prometheus".to_owned()]
        };
        let mut params = CertificateParams::new(names).unwrap();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Files in a temporary directory; the web config names them relative to its own folder.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, text: &str) {
        // Write then rename, as Kubernetes and editors do, so a reader never sees half a file.
        let tmp = self.0.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.0.path().join(name)).unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.0.path().join(name).display().to_string()
    }
}

fn bcrypt_hash(password: &str) -> String {
    // Cost 4 keeps the debug-build exporter quick; the cost does not change the behaviour.
    bcrypt::hash(password, 4).unwrap()
}

async fn start(files: &Files) -> Exporter {
    let mut command = demo_command();
    command.arg(format!("--web.config.file={}", files.path("web.yml")));
    Exporter::spawn(command, Vec::new()).await
}

fn https_url(exporter: &Exporter, path: &str) -> String {
    format!("{}{path}", exporter.url.replace("http://", "https://"))
}

/// A client that trusts only `ca`, optionally presenting a client certificate.
fn tls_client(ca: &str, identity: Option<&(String, String)>) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20));
    if let Some((cert, key)) = identity {
        builder = builder
            .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    builder
}

/// The status of a GET, or `None` when TLS or the connection failed.
async fn status(client: &reqwest::Client, url: &str, auth: Option<(&str, &str)>) -> Option<u16> {
    let mut request = client.get(url);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    response.bytes().await.ok()?;
    Some(status)
}

/// Writes the web config and waits until the exporter has read it (successfully or not).
async fn rewrite(exporter: &Exporter, files: &Files, text: &str) -> Duration {
    let count = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("web config reloaded") || l.contains("web config not reloaded"))
            .count()
    };
    let before = count(&exporter.logs());
    files.write("web.yml", text);
    let started = Instant::now();
    while count(&exporter.logs()) == before {
        assert!(
            started.elapsed() < WAIT,
            "the change was never read:\n{}",
            exporter.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

fn tls_block(extra: &str) -> String {
    format!("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n{extra}")
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_basic_auth_headers_and_reloads() {
    let ca = Ca::new("server CA");
    let files = Files::new();
    let (cert, key) = ca.leaf(true);
    files.write("server.pem", &cert);
    files.write("server.key", &key);
    let users = |password: &str| format!("basic_auth_users:\n  alice: {}\n", bcrypt_hash(password));
    let headers = "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n    X-Content-Type-Options: nosniff\n";
    files.write(
        "web.yml",
        &format!("{}{}{headers}", tls_block(""), users("old-password")),
    );
    let exporter = start(&files).await;
    let logs = exporter.logs();
    assert!(logs.contains(r#""tls":true"#), "{logs}");
    let metrics = https_url(&exporter, "/metrics");
    let client = tls_client(&ca.pem, None).build().unwrap();

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new().get(&exporter.url).send().await;
    assert!(plain.map(|r| r.status().as_u16()).unwrap_or(0) != 200);

    // Every path needs credentials; 401s carry the realm and the configured headers.
    for path in ["/metrics", "/healthz", "/", "/readyz"] {
        let response = client.get(https_url(&exporter, path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], AUTHENTICATE);
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000"
        );
    }
    for (user, password) in [("alice", "wrong"), ("bob", "old-password"), ("", "")] {
        let response = client
            .get(&metrics)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{user}:{password}");
        assert_eq!(response.headers()["www-authenticate"], AUTHENTICATE);
    }
    let response = client
        .get(&metrics)
        .basic_auth("alice", Some("old-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let text = response.text().await.unwrap();
    assert!(text.contains("entra_exporter_web_config_last_reload_successful 1"));
    // Remembered now: and it must be forgotten when the file changes.
    assert_eq!(
        status(&client, &metrics, Some(("alice", "old-password"))).await,
        Some(200)
    );

    let took = rewrite(
        &exporter,
        &files,
        &format!("{}{}{headers}", tls_block(""), users("new-password")),
    )
    .await;
    println!("password change read after {took:?}");
    assert_eq!(
        status(&client, &metrics, Some(("alice", "old-password"))).await,
        Some(401)
    );
    assert_eq!(
        status(&client, &metrics, Some(("alice", "new-password"))).await,
        Some(200)
    );

    // A bad file keeps the last good configuration and says so.
    rewrite(
        &exporter,
        &files,
        &format!(
            "{}basic_auth_users:\n  alice: not-a-bcrypt-hash\n",
            tls_block("")
        ),
    )
    .await;
    assert!(exporter.logs().contains("web config not reloaded"));
    let response = client
        .get(&metrics)
        .basic_auth("alice", Some("new-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("entra_exporter_web_config_last_reload_successful 0")
    );
    assert!(
        !exporter.logs().contains("not-a-bcrypt-hash"),
        "the hash is not logged"
    );

    // Certificate rotation: a renewed certificate from a new CA is used without a restart.
    let new_ca = Ca::new("renewed CA");
    let (cert, key) = new_ca.leaf(true);
    files.write("server.key", &key);
    files.write("server.pem", &cert);
    files.write(
        "web.yml",
        &format!("{}{}", tls_block(""), users("new-password")),
    );
    let renewed = tls_client(&new_ca.pem, None).build().unwrap();
    let started = Instant::now();
    while status(&renewed, &metrics, Some(("alice", "new-password"))).await != Some(200) {
        assert!(
            started.elapsed() < WAIT,
            "renewed certificate not served:\n{}",
            exporter.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("renewed certificate served after {:?}", started.elapsed());
    assert_eq!(
        status(&client, &metrics, Some(("alice", "new-password"))).await,
        None
    );
    let response = renewed
        .get(&metrics)
        .basic_auth("alice", Some("new-password"))
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "headers follow the file"
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("entra_exporter_web_config_last_reload_successful 1"));
}

/// The last reload outcome in the log.
fn last_reload(exporter: &Exporter) -> String {
    exporter
        .logs()
        .lines()
        .rfind(|l| l.contains("web config reloaded") || l.contains("web config not reloaded"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_client_auth_type_and_tls_version() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let rogue_ca = Ca::new("rogue CA");
    let files = Files::new();
    let (cert, key) = server_ca.leaf(true);
    files.write("server.pem", &cert);
    files.write("server.key", &key);
    files.write("clients.pem", &client_ca.pem);
    files.write("web.yml", &tls_block(""));
    let exporter = start(&files).await;
    let url = https_url(&exporter, "/healthz");
    let good = client_ca.leaf(false);
    let rogue = rogue_ca.leaf(false);
    let none = tls_client(&server_ca.pem, None).build().unwrap();
    let with_good = tls_client(&server_ca.pem, Some(&good)).build().unwrap();
    let with_rogue = tls_client(&server_ca.pem, Some(&rogue)).build().unwrap();

    // NoClientCert: nobody is asked.
    assert_eq!(status(&none, &url, None).await, Some(200));
    for (auth_type, without, verified, unverified) in [
        ("RequireAndVerifyClientCert", None, Some(200), None),
        ("VerifyClientCertIfGiven", Some(200), Some(200), None),
        ("RequireAnyClientCert", None, Some(200), Some(200)),
        ("RequestClientCert", Some(200), Some(200), Some(200)),
    ] {
        rewrite(
            &exporter,
            &files,
            &tls_block(&format!(
                "  client_auth_type: {auth_type}\n  client_ca_file: clients.pem\n"
            )),
        )
        .await;
        assert!(
            last_reload(&exporter).contains("web config reloaded"),
            "{auth_type}"
        );
        assert_eq!(
            status(&none, &url, None).await,
            without,
            "{auth_type} without a certificate"
        );
        assert_eq!(
            status(&with_good, &url, None).await,
            verified,
            "{auth_type} with a client-CA certificate"
        );
        assert_eq!(
            status(&with_rogue, &url, None).await,
            unverified,
            "{auth_type} with a certificate of another CA"
        );
    }

    // TLS versions.
    rewrite(&exporter, &files, &tls_block("  min_version: TLS13\n")).await;
    let tls12 = tls_client(&server_ca.pem, None)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert_eq!(status(&tls12, &url, None).await, None);
    assert_eq!(status(&none, &url, None).await, Some(200));
    rewrite(&exporter, &files, &tls_block("  max_version: TLS12\n")).await;
    let tls13 = tls_client(&server_ca.pem, None)
        .min_tls_version(reqwest::tls::Version::TLS_1_3)
        .build()
        .unwrap();
    assert_eq!(status(&tls13, &url, None).await, None);
    assert_eq!(status(&tls12, &url, None).await, Some(200));

    // Client CAs without a client auth type are a mistake, as in exporter-toolkit.
    rewrite(
        &exporter,
        &files,
        &tls_block("  client_ca_file: clients.pem\n"),
    )
    .await;
    let reload = last_reload(&exporter);
    assert!(
        reload.contains("not reloaded") && reload.contains("client_auth_type"),
        "{reload}"
    );
    assert_eq!(
        status(&tls12, &url, None).await,
        Some(200),
        "the last good config stays"
    );
}

fn run_with_web_config(text: &str, dir: &Path) -> (Option<i32>, String) {
    let path = dir.join("web.yml");
    std::fs::write(&path, text).unwrap();
    let output = demo_command()
        .arg(format!("--web.config.file={}", path.display()))
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_bad_web_config_at_start_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        (
            "tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n  colour: blue\n",
            "colour",
        ),
        (
            "basic_auth_users:\n  alice: secret-in-plain-text\n",
            "alice",
        ),
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n",
            "missing.pem",
        ),
        (
            "http_server_config:\n  headers:\n    Server: me\n",
            "Server",
        ),
    ] {
        let (code, stderr) = run_with_web_config(text, dir.path());
        assert_eq!(code, Some(1), "{text:?}:\n{stderr}");
        let errors = common::error_lines(&stderr);
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(
            errors[0].contains("--web.config.file") && errors[0].contains(needle),
            "{stderr}"
        );
        assert!(!stderr.contains("secret-in-plain-text"), "{stderr}");
    }
}
