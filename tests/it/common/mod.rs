//! Test harness: the fake Graph in this process, the real exporter binary as a child process
//! pointed at it through `--graph.endpoint`, `--azure.authority-host` and `--graph.ca-file`, and
//! the azure_identity client-secret credential from the standard environment variables.

pub mod dashboards;
pub mod docs;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entra_fake_graph::{FakeGraph, FakeGraphOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_entra-authmethods-exporter");
pub const WAIT: Duration = Duration::from_secs(60);
/// Faults queued so that a report polled every second stays down for half a minute, until a test
/// has seen it, however slowly a busy machine lets it scrape; the test then clears them.
pub const STAY_DOWN_POLLS: usize = 30;

pub struct Exporter {
    child: Child,
    pub url: String,
    logs: Arc<Mutex<Vec<String>>>,
    /// Reads stderr into `logs` until the process closes it.
    reader: Option<std::thread::JoinHandle<()>>,
    _files: Vec<tempfile::NamedTempFile>,
}

/// Flags and environment that point the exporter at `fake`. Tests add their own flags.
pub fn command_for(fake: &FakeGraph, ca_file: &tempfile::NamedTempFile) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AZURE_TENANT_ID", fake.tenant_id())
        .env("AZURE_CLIENT_ID", fake.client_id())
        .env("AZURE_CLIENT_SECRET", fake.client_secret())
        .args([
            "--web.listen-address=127.0.0.1:0",
            "--log.format=json",
            "--log.level=debug",
            // The fake does not throttle: neither budget should slow a test down unless it
            // sets one itself (a later flag overrides).
            "--graph.requests-per-10s=1000",
            "--graph.app-requests-per-10s=100000",
            "--graph.timeout=5s",
        ])
        .arg(format!("--graph.endpoint={}", fake.base_url()))
        .arg(format!("--azure.authority-host={}", fake.base_url()))
        .arg(format!("--graph.ca-file={}", ca_file.path().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// The exporter on its built-in demo tenant, logging JSON to a piped stderr; tests add flags.
pub fn demo_command() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args([
            "--demo",
            "--web.listen-address=127.0.0.1:0",
            "--log.format=json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

pub fn ca_file(fake: &FakeGraph) -> tempfile::NamedTempFile {
    temp_file(fake.ca_pem())
}

pub fn temp_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write temp file");
    file
}

pub async fn fake(options: FakeGraphOptions) -> FakeGraph {
    FakeGraph::start(options).await.expect("fake Graph starts")
}

/// Options for a quiet, deterministic tenant: no events appear and no registrations change on
/// their own.
pub fn quiet() -> FakeGraphOptions {
    FakeGraphOptions {
        events_per_minute: 0.0,
        registration_drift_per_hour: 0.0,
        passkey_campaign_per_hour: 0.0,
        ..FakeGraphOptions::default()
    }
}

/// A tenant of a `--config.file`: its `tenant` label, its directory and its client secret.
pub struct ConfiguredTenant<'a> {
    pub name: &'a str,
    pub tenant_id: &'a str,
    pub secret: &'a str,
}

/// Tenants of the fake with the right secret: `names[i]` is the fake's i-th tenant.
pub fn fake_tenants<'a>(fake: &'a FakeGraph, names: &'a [String]) -> Vec<ConfiguredTenant<'a>> {
    names
        .iter()
        .zip(fake.tenant_ids())
        .map(|(name, tenant_id)| ConfiguredTenant {
            name,
            tenant_id,
            secret: fake.client_secret(),
        })
        .collect()
}

/// The error lines of an exporter's JSON log.
pub fn json_error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(r#""level":"ERROR""#))
        .collect()
}

/// The config file's `reports:` section that enables only `reports` (nothing when empty).
pub fn reports_yaml(reports: &[&str]) -> String {
    if reports.is_empty() {
        return String::new();
    }
    let mut yaml = "reports:\n".to_owned();
    for report in entra_authmethods_exporter::reports::names() {
        let enabled = reports.contains(&report);
        yaml.push_str(&format!("  {report}: {{enabled: {enabled}}}\n"));
    }
    yaml
}

/// A config file for `tenants`, all with the fake's client id, where only `reports` are
/// enabled (all of them when empty).
pub fn tenants_config(
    fake: &FakeGraph,
    tenants: &[ConfiguredTenant],
    reports: &[&str],
) -> tempfile::NamedTempFile {
    let mut yaml = reports_yaml(reports);
    yaml.push_str("tenants:\n");
    for tenant in tenants {
        yaml.push_str(&format!(
            "  - {{name: {}, tenant_id: {}, client_id: {}, client_secret: {}}}\n",
            tenant.name,
            tenant.tenant_id,
            fake.client_id(),
            tenant.secret
        ));
    }
    temp_file(&yaml)
}

impl Exporter {
    /// Starts the exporter against `fake` with `args` added, and waits until it listens.
    pub async fn start(fake: &FakeGraph, args: &[&str]) -> Exporter {
        let ca = ca_file(fake);
        let mut command = command_for(fake, &ca);
        command.args(args);
        Self::spawn(command, vec![ca]).await
    }

    pub async fn spawn(mut command: Command, files: Vec<tempfile::NamedTempFile>) -> Exporter {
        let mut child = command.spawn().expect("exporter starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let started = Instant::now();
        let url = loop {
            let address = logs.lock().unwrap().iter().find_map(|line| {
                let json: serde_json::Value = serde_json::from_str(line).ok()?;
                (json["message"] == "listening")
                    .then(|| json["address"].as_str().map(str::to_owned))?
            });
            if let Some(address) = address {
                break format!("http://{address}");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "exporter exited with {status} before listening:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
            assert!(started.elapsed() < WAIT, "exporter did not start listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Exporter {
            child,
            url,
            logs,
            reader: Some(reader),
            _files: files,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("exporter answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    pub async fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        body
    }

    pub async fn wait_ready(&self) {
        let started = Instant::now();
        while self.get("/readyz").await.0 != 200 {
            assert!(started.elapsed() < WAIT, "not ready:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scrapes until `check` accepts the output; returns that output.
    pub async fn wait_for_metrics(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        self.wait_longer_for_metrics(what, WAIT, check).await
    }

    /// [`wait_for_metrics`](Self::wait_for_metrics) with a deadline of its own, for what takes
    /// a retry a minute away.
    pub async fn wait_longer_for_metrics(
        &self,
        what: &str,
        deadline: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let started = Instant::now();
        loop {
            let text = self.metrics().await;
            if check(&text) {
                return text;
            }
            assert!(
                started.elapsed() < deadline,
                "timed out waiting for {what}; last scrape:\n{text}\nlogs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_for_log(&self, needle: &str) {
        let started = Instant::now();
        while !self.logs().contains(needle) {
            assert!(
                started.elapsed() < WAIT,
                "no log line with {needle:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Its last lines may still be in the pipe: read to the end.
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(started.elapsed() < WAIT, "exporter ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The env-configured tenant is labelled with its tenant id (the fake's default).
pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";

/// The legacy beta reports, from the exporter's report specs.
pub fn legacy_reports() -> Vec<&'static str> {
    entra_authmethods_exporter::reports::ALL
        .iter()
        .filter(|spec| spec.is_legacy())
        .map(|spec| spec.name)
        .collect()
}

/// Their v1.0 successors under /reports/ (the policy aside), from the specs.
pub fn successor_reports() -> Vec<&'static str> {
    entra_authmethods_exporter::reports::ALL
        .iter()
        .filter(|spec| !spec.is_legacy() && spec.probe.starts_with("/v1.0/reports/"))
        .map(|spec| spec.name)
        .collect()
}

/// `entra_exporter_report_up` of a report of [`TENANT`].
pub fn up(report: &str) -> String {
    format!(r#"entra_exporter_report_up{{tenant="{TENANT}",report="{report}"}}"#)
}

/// `entra_exporter_credential_up` of `tenant`.
pub fn credential_up(text: &str, tenant: &str) -> Option<f64> {
    value(
        text,
        &format!(r#"entra_exporter_credential_up{{tenant="{tenant}"}}"#),
    )
}

/// `entra_exporter_report_up` of a report of `tenant`.
pub fn report_up(text: &str, tenant: &str, report: &str) -> Option<f64> {
    value(
        text,
        &format!(r#"entra_exporter_report_up{{tenant="{tenant}",report="{report}"}}"#),
    )
}

/// Log lines at `level` about `tenant` whose message contains `text`.
pub fn log_lines(exporter: &Exporter, level: &str, tenant: &str, text: &str) -> usize {
    exporter
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|json| {
            json["level"] == level
                && json["tenant"] == tenant
                && json["message"].as_str().is_some_and(|m| m.contains(text))
        })
        .count()
}

/// The value of the first sample whose line starts with `series` (name and labels as printed).
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Every sample of a metric family: its labels and value.
pub fn samples(text: &str, metric: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(inner) => {
                    let (labels, value) = inner.rsplit_once("} ")?;
                    (parse_labels(labels), value)
                }
                None => (BTreeMap::new(), rest.strip_prefix(' ')?),
            };
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// `a="x",b="y \"quoted\""` as a map; escapes are undone.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() || chars.next() != Some('"') {
            return labels;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                _ => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

/// Reads the fake's Graph directly over TLS with a token of its own: the oracle that tests and
/// benches compare the exporter with.
pub struct FakeReader {
    client: reqwest::Client,
    token: String,
    base: String,
}

impl FakeReader {
    pub async fn new(fake: &FakeGraph) -> FakeReader {
        let client = reqwest::Client::builder()
            .tls_certs_only([
                reqwest::Certificate::from_pem(fake.ca_pem().as_bytes()).expect("fake CA")
            ])
            .build()
            .expect("client");
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "client_credentials"),
                ("client_id", fake.client_id()),
                ("client_secret", fake.client_secret()),
                ("scope", &format!("{}/.default", fake.base_url())),
            ])
            .finish();
        let token: serde_json::Value = client
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                fake.base_url(),
                fake.tenant_id()
            ))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token JSON");
        FakeReader {
            client,
            token: token["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            base: fake.base_url(),
        }
    }

    /// The body of `GET {base}{path}` (or of an absolute URL), which must succeed.
    pub async fn get(&self, path_or_url: &str) -> Vec<u8> {
        let url = match path_or_url.starts_with("https://") {
            true => path_or_url.to_owned(),
            false => format!("{}{path_or_url}", self.base),
        };
        let response = self
            .client
            .get(&url)
            .bearer_auth(&self.token)
            .header("Prefer", "include-unknown-enum-members")
            .send()
            .await
            .expect("fake answers");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.bytes().await.expect("body").to_vec()
    }

    /// Every row of a paged collection.
    pub async fn rows(&self, path: &str) -> Vec<serde_json::Value> {
        let mut rows = Vec::new();
        let mut next = Some(path.to_owned());
        while let Some(url) = next {
            let page: serde_json::Value =
                serde_json::from_slice(&self.get(&url).await).expect("page JSON");
            rows.extend(page["value"].as_array().expect("value").iter().cloned());
            next = page["@odata.nextLink"].as_str().map(str::to_owned);
        }
        rows
    }
}

/// The sum of every sample of a metric family.
pub fn sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A `/proc/<pid>/status` field in KiB, such as `VmRSS:` or `VmHWM:` (peak RSS).
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User plus system CPU time of a process.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports clock ticks of 1/100 s (USER_HZ).
    Some(Duration::from_millis(ticks * 10))
}

/// Whether the tests run in CI (`CI` set, as `.ci/run` does, and not `false`): there a check
/// that cannot run fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|ci| !ci.is_empty() && ci != "false")
}

/// A command for an external tool the tests need (promtool, prometheus, ...). `.ci/run`
/// installs them; outside CI a missing tool skips the check with a message instead of failing.
pub fn tool(program: &str, install_hint: &str) -> Option<Command> {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    match (found, in_ci()) {
        (true, _) => Some(Command::new(program)),
        (false, false) => {
            eprintln!("SKIPPED: {program} not found; {install_hint}");
            None
        }
        (false, true) => panic!("{program} is required in CI; {install_hint}"),
    }
}

pub const PROMETHEUS_PACKAGE: &str = "install the Debian package prometheus";

/// Runs `promtool check metrics` on the text.
pub fn promtool_check_metrics(text: &str) {
    let Some(mut promtool) = tool("promtool", PROMETHEUS_PACKAGE) else {
        return;
    };
    let mut child = promtool
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool runs");
    assert_success("promtool check metrics", &output);
}

/// The error lines of the exporter's log, in either log format.
pub fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(r#""level":"ERROR""#) || l.contains("level=error"))
        .collect()
}

/// Fails the test with the command's output unless it exited successfully.
pub fn assert_success(what: &str, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A YAML file of the repository as a JSON value, for structural checks.
pub fn repo_yaml(path: &str) -> serde_json::Value {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}
