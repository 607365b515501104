//! `--web.config.file` against real TLS clients: certificates made here with rcgen, every
//! client auth type, `client_allowed_sans`, TLS versions, basic auth with its cache, extra
//! headers, reloads (good, bad, and ones that would remove protection), connections kept alive
//! across a reload, and start-up errors.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Exporter, WAIT, demo_command};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

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
        if server {
            let names = ["127.0.0.1", "localhost"];
            self.issue(
                CertificateParams::new(names.map(str::to_owned)).unwrap(),
                true,
            )
        } else {
            self.client(vec![SanType::DnsName("prometheus".try_into().unwrap())])
        }
    }

    /// A client certificate carrying exactly `sans`.
    fn client(&self, sans: Vec<SanType>) -> (String, String) {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        self.issue(params, false)
    }

    fn issue(&self, mut params: CertificateParams, server: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
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

    /// Files holding a server certificate of `ca` and its key.
    fn serving(ca: &Ca) -> Files {
        let files = Files::new();
        let (cert, key) = ca.leaf(true);
        files.write("server.pem", &cert);
        files.write("server.key", &key);
        files
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
    let files = Files::serving(&ca);
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
    assert_refused(&exporter, "alice");
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

fn assert_reloaded(exporter: &Exporter) {
    let reload = last_reload(exporter);
    assert!(reload.contains("web config reloaded"), "{reload}");
}

/// The last version written was refused with an error that says `why`.
fn assert_refused(exporter: &Exporter, why: &str) {
    let reload = last_reload(exporter);
    assert!(
        reload.contains("web config not reloaded")
            && reload.contains(r#""level":"ERROR""#)
            && reload.contains(why),
        "{reload}"
    );
}

fn client_auth(auth_type: &str) -> String {
    tls_block(&format!(
        "  client_auth_type: {auth_type}\n  client_ca_file: clients.pem\n"
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_client_auth_type_and_tls_version() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let rogue_ca = Ca::new("rogue CA");
    let files = Files::serving(&server_ca);
    files.write("clients.pem", &client_ca.pem);
    // A reload never drops a client certificate requirement, so RequireAnyClientCert, which
    // verifies nothing, gets an exporter of its own.
    let any_files = Files::new();
    for name in ["server.pem", "server.key", "clients.pem"] {
        std::fs::copy(files.path(name), any_files.path(name)).unwrap();
    }
    any_files.write("web.yml", &client_auth("RequireAnyClientCert"));
    files.write("web.yml", &tls_block(""));
    let (exporter, require_any) = tokio::join!(start(&files), start(&any_files));
    let url = https_url(&exporter, "/healthz");
    let good = client_ca.leaf(false);
    let rogue = rogue_ca.leaf(false);
    let none = tls_client(&server_ca.pem, None).build().unwrap();
    let with_good = tls_client(&server_ca.pem, Some(&good)).build().unwrap();
    let with_rogue = tls_client(&server_ca.pem, Some(&rogue)).build().unwrap();

    let any_url = https_url(&require_any, "/healthz");
    assert_eq!(status(&none, &any_url, None).await, None);
    assert_eq!(status(&with_good, &any_url, None).await, Some(200));
    assert_eq!(status(&with_rogue, &any_url, None).await, Some(200));
    drop(require_any);

    // NoClientCert: nobody is asked. Then each mode in turn, each demanding more.
    assert_eq!(status(&none, &url, None).await, Some(200));
    for (auth_type, without, verified, unverified) in [
        ("RequestClientCert", Some(200), Some(200), Some(200)),
        ("VerifyClientCertIfGiven", Some(200), Some(200), None),
        ("RequireAndVerifyClientCert", None, Some(200), None),
    ] {
        rewrite(&exporter, &files, &client_auth(auth_type)).await;
        assert_reloaded(&exporter);
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

    // Demanding less is refused: the last good config stays.
    for (text, dropped) in [
        (
            tls_block(""),
            "the required client certificate, client certificate verification",
        ),
        (
            client_auth("RequireAnyClientCert"),
            "client certificate verification",
        ),
        (
            client_auth("VerifyClientCertIfGiven"),
            "the required client certificate",
        ),
    ] {
        rewrite(&exporter, &files, &text).await;
        assert_refused(&exporter, &format!("turn off {dropped};"));
        assert_eq!(status(&none, &url, None).await, None, "{text}");
        assert_eq!(status(&with_rogue, &url, None).await, None, "{text}");
        assert_eq!(status(&with_good, &url, None).await, Some(200), "{text}");
    }

    // TLS versions.
    let with_good_tls = |version| {
        tls_client(&server_ca.pem, Some(&good))
            .min_tls_version(version)
            .max_tls_version(version)
            .build()
            .unwrap()
    };
    let tls12 = with_good_tls(reqwest::tls::Version::TLS_1_2);
    let tls13 = with_good_tls(reqwest::tls::Version::TLS_1_3);
    let verified = client_auth("RequireAndVerifyClientCert");
    rewrite(
        &exporter,
        &files,
        &format!("{verified}  min_version: TLS13\n"),
    )
    .await;
    assert_eq!(status(&tls12, &url, None).await, None);
    assert_eq!(status(&tls13, &url, None).await, Some(200));
    rewrite(
        &exporter,
        &files,
        &format!("{verified}  max_version: TLS12\n"),
    )
    .await;
    assert_eq!(status(&tls13, &url, None).await, None);
    assert_eq!(status(&tls12, &url, None).await, Some(200));

    // Client CAs without a client auth type are a mistake, as in exporter-toolkit.
    rewrite(
        &exporter,
        &files,
        &tls_block("  client_ca_file: clients.pem\n"),
    )
    .await;
    assert_refused(&exporter, "client_auth_type");
    assert_eq!(
        status(&tls12, &url, None).await,
        Some(200),
        "the last good config stays"
    );
}

fn run_with_web_config(text: &str, dir: &Path) -> (Option<i32>, String) {
    use std::io::{Read, Seek};
    let path = dir.join("web.yml");
    std::fs::write(&path, text).unwrap();
    let mut stderr = tempfile::tempfile().unwrap();
    let mut child = demo_command()
        .arg(format!("--web.config.file={}", path.display()))
        .stderr(stderr.try_clone().unwrap())
        .spawn()
        .unwrap();
    // A refused file ends the process at once; an accepted one would serve until killed.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the exporter started with the web config {text:?} instead of refusing it");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = String::new();
    stderr.rewind().unwrap();
    stderr.read_to_string(&mut text).unwrap();
    (status.code(), text)
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
        // Whoever passes the flag expects the file to secure something.
        ("", "configures nothing"),
        (" \n\t\n", "configures nothing"),
        ("tls_server_config:\n", "configures nothing"),
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

/// One HTTP/1.1 connection, plaintext or TLS, kept open between requests: it never reconnects,
/// so an answer can only come from the connection opened before.
struct KeptAlive(SendRequest<Empty<Bytes>>);

impl KeptAlive {
    async fn plain(exporter: &Exporter) -> KeptAlive {
        Self::over(Self::connect(exporter).await).await
    }

    async fn tls(exporter: &Exporter, ca: &str, identity: Option<&(String, String)>) -> KeptAlive {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                ServerName::try_from("127.0.0.1").unwrap(),
                Self::connect(exporter).await,
            )
            .await
            .expect("TLS handshake");
        Self::over(stream).await
    }

    async fn connect(exporter: &Exporter) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(exporter.url.trim_start_matches("http://"))
            .await
            .unwrap()
    }

    async fn over<S>(io: S) -> KeptAlive
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(connection);
        KeptAlive(sender)
    }

    /// The status of a GET on this connection, or `None` when it is closed without an answer.
    async fn get(&mut self, path: &str, auth: Option<(&str, &str)>) -> Option<u16> {
        let mut request = hyper::Request::get(path).header("host", "127.0.0.1");
        if let Some((user, password)) = auth {
            let credentials = base64_basic(user, password);
            request = request.header("authorization", format!("Basic {credentials}"));
        }
        self.0.ready().await.ok()?;
        let response = self
            .0
            .send_request(request.body(Empty::new()).unwrap())
            .await
            .ok()?;
        let status = response.status().as_u16();
        response.into_body().collect().await.ok()?;
        Some(status)
    }
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// The value of the reload gauge on a page of metrics.
fn reload_gauge(metrics: &str) -> Option<&str> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("entra_exporter_web_config_last_reload_successful "))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emptied_truncated_or_blank_web_config_never_serves_plain_http() {
    let ca = Ca::new("server CA");
    let files = Files::serving(&ca);
    let good = format!(
        "basic_auth_users:\n  alice: {}\n{}",
        bcrypt_hash("s3cret"),
        tls_block("")
    );
    files.write("web.yml", &good);
    let exporter = start(&files).await;
    let metrics = https_url(&exporter, "/metrics");
    let plain = format!("{}/metrics", exporter.url);
    let client = tls_client(&ca.pem, None).build().unwrap();
    let plain_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // Every line-boundary cut of the file (the empty file among them), a blank file, a file of
    // comments, and a cut in the middle of a line.
    let mut bad: Vec<String> = (0..good.lines().count())
        .map(|n| good.lines().take(n).map(|l| format!("{l}\n")).collect())
        .collect();
    bad.push(" \n\t\n   ".to_owned());
    bad.push("# emptied by a template\n".to_owned());
    bad.push(good[..good.len() - 6].to_owned());
    for text in &bad {
        rewrite(&exporter, &files, text).await;
        assert_eq!(
            status(&plain_client, &plain, None).await,
            None,
            "{text:?}: no plain HTTP"
        );
        assert_eq!(
            status(&plain_client, &plain, Some(("alice", "s3cret"))).await,
            None,
            "{text:?}: no plain HTTP"
        );
        assert_refused(&exporter, "--web.config.file");
        assert_eq!(status(&client, &metrics, None).await, Some(401), "{text:?}");
        let page = client
            .get(&metrics)
            .basic_auth("alice", Some("s3cret"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{text:?}: the last good config serves");
        assert_eq!(
            reload_gauge(&page.text().await.unwrap()),
            Some("0"),
            "{text:?}"
        );

        // The good file again: the gauge is back to 1, ready for the next fault.
        rewrite(&exporter, &files, &good).await;
        assert_reloaded(&exporter);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switch_to_tls_closes_plaintext_keep_alive_connections() {
    let ca = Ca::new("server CA");
    let files = Files::serving(&ca);
    let users = format!("basic_auth_users:\n  alice: {}\n", bcrypt_hash("s3cret"));
    files.write("web.yml", &users);
    let exporter = start(&files).await;
    let alice = Some(("alice", "s3cret"));

    let mut used = KeptAlive::plain(&exporter).await;
    assert_eq!(used.get("/metrics", alice).await, Some(200));
    assert_eq!(used.get("/metrics", alice).await, Some(200), "kept alive");
    let mut unused = KeptAlive::plain(&exporter).await;

    rewrite(&exporter, &files, &format!("{}{users}", tls_block(""))).await;
    assert_reloaded(&exporter);
    assert_eq!(
        used.get("/metrics", alice).await,
        None,
        "closed, unanswered"
    );
    assert_eq!(
        unused.get("/metrics", alice).await,
        None,
        "closed, unanswered"
    );
    let mut fresh = KeptAlive::tls(&exporter, &ca.pem, None).await;
    assert_eq!(fresh.get("/metrics", alice).await, Some(200));
    assert_eq!(fresh.get("/metrics", None).await, Some(401));
    let plain = reqwest::Client::new();
    assert_eq!(status(&plain, &exporter.url, alice).await, None);

    // Back to plain HTTP takes a restart: the TLS connection stays, and so does TLS.
    rewrite(&exporter, &files, &users).await;
    assert_refused(&exporter, "turn off TLS;");
    assert_eq!(fresh.get("/metrics", alice).await, Some(200));
    assert_eq!(status(&plain, &exporter.url, alice).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_or_client_auth_added_applies_to_connections_already_open() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let files = Files::serving(&server_ca);
    files.write("clients.pem", &client_ca.pem);
    files.write("web.yml", &tls_block(""));
    let exporter = start(&files).await;
    let alice = Some(("alice", "s3cret"));
    let prometheus = client_ca.leaf(false);

    // Basic auth added: the open connection's next request is not answered without it.
    let mut open = KeptAlive::tls(&exporter, &server_ca.pem, None).await;
    assert_eq!(open.get("/metrics", None).await, Some(200));
    let users = format!("basic_auth_users:\n  alice: {}\n", bcrypt_hash("s3cret"));
    rewrite(&exporter, &files, &format!("{}{users}", tls_block(""))).await;
    assert_reloaded(&exporter);
    assert_eq!(open.get("/metrics", None).await, None);
    let mut open = KeptAlive::tls(&exporter, &server_ca.pem, None).await;
    assert_eq!(open.get("/metrics", None).await, Some(401));
    assert_eq!(open.get("/metrics", alice).await, Some(200));

    // Client auth added: a connection whose handshake never showed a certificate is closed.
    rewrite(
        &exporter,
        &files,
        &format!("{}{users}", client_auth("RequireAndVerifyClientCert")),
    )
    .await;
    assert_reloaded(&exporter);
    assert_eq!(open.get("/metrics", alice).await, None);
    let without = tls_client(&server_ca.pem, None).build().unwrap();
    let metrics = https_url(&exporter, "/metrics");
    assert_eq!(status(&without, &metrics, alice).await, None);
    let mut with = KeptAlive::tls(&exporter, &server_ca.pem, Some(&prometheus)).await;
    assert_eq!(with.get("/metrics", alice).await, Some(200));
    assert_eq!(with.get("/metrics", None).await, Some(401));
}

#[tokio::test(flavor = "multi_thread")]
async fn client_allowed_sans_admits_a_listed_san_and_refuses_another_certificate_of_the_ca() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let files = Files::serving(&server_ca);
    files.write("clients.pem", &client_ca.pem);
    let dns = |name: &str| SanType::DnsName(name.try_into().unwrap());
    let spiffe = "spiffe://cluster.local/ns/monitoring/sa/prometheus";
    let pinned = |sans: &str| {
        format!(
            "{}  client_allowed_sans: {sans}\n",
            client_auth("RequireAndVerifyClientCert")
        )
    };
    files.write(
        "web.yml",
        &pinned(&format!("[prometheus.monitoring.svc, \"{spiffe}\"]")),
    );
    let exporter = start(&files).await;
    let url = https_url(&exporter, "/healthz");
    let client =
        |identity: Option<&(String, String)>| tls_client(&server_ca.pem, identity).build().unwrap();
    let by_dns = client(Some(&client_ca.client(vec![
        dns("prometheus-0.example"),
        dns("prometheus.monitoring.svc"),
    ])));
    let by_uri = client(Some(
        &client_ca.client(vec![SanType::URI(spiffe.try_into().unwrap())]),
    ));
    let other = client(Some(&client_ca.client(vec![dns("grafana.monitoring.svc")])));
    let other_case = client(Some(
        &client_ca.client(vec![dns("Prometheus.monitoring.svc")]),
    ));
    let none = client(None);

    assert_eq!(status(&by_dns, &url, None).await, Some(200));
    assert_eq!(status(&by_uri, &url, None).await, Some(200));
    assert_eq!(status(&other, &url, None).await, None, "another SAN");
    assert_eq!(
        status(&other_case, &url, None).await,
        None,
        "compared exactly"
    );
    assert_eq!(status(&none, &url, None).await, None, "no certificate");

    // Dropping the list takes a restart; changing it is a reload.
    rewrite(
        &exporter,
        &files,
        &client_auth("RequireAndVerifyClientCert"),
    )
    .await;
    assert_refused(&exporter, "turn off client_allowed_sans;");
    assert_eq!(status(&other, &url, None).await, None);
    rewrite(&exporter, &files, &pinned("[grafana.monitoring.svc]")).await;
    assert_reloaded(&exporter);
    assert_eq!(status(&other, &url, None).await, Some(200));
    assert_eq!(status(&by_dns, &url, None).await, None);
}
