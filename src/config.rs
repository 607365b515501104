//! Runtime configuration: flags, the optional YAML file and the Azure SDK environment, resolved
//! and validated once at start so that a mistake is a one-line error, never a poll-time surprise.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use azure_core::credentials::Secret;
use serde::Deserialize;
use url::Url;

use crate::cli::Cli;
use crate::shard::{self, Shard};

/// Distinct values of the open-ended labels of the usage-event counters kept per tenant unless
/// the file says otherwise; the rest become `other`. Graph documents three featureType members
/// and about thirty usageAuthMethod members today.
pub const DEFAULT_EVENT_LABEL_LIMITS: EventLabelLimits = EventLabelLimits {
    failure_reason: 20,
    feature: 10,
    auth_method: 50,
};
/// Stale values are dropped once older than this many poll intervals.
pub const DEFAULT_MAX_AGE_INTERVALS: u32 = 3;
/// Groups per tenant: each is a `group` label value and a member read before every scan.
pub const MAX_GROUPS: usize = 100;
/// `--graph.requests-per-10s` unless given (and not `--demo`): Graph's own limit for identity
/// reports.
pub const DEFAULT_REQUESTS_PER_10S: u32 = 5;
/// `--graph.app-requests-per-10s` unless given (divided by `--total-shards`): Graph allows 122
/// identity-report requests per 10 s per app across all tenants; 2 are left for other tools.
pub const DEFAULT_APP_REQUESTS_PER_10S: u32 = 120;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// Shortest interval or timeout accepted anywhere: below it a report is polled in a tight
/// loop, or a timeout fires before a request can complete.
pub const MIN_DURATION: Duration = Duration::from_secs(1);

/// The fully resolved configuration the exporter runs with.
#[derive(Debug)]
pub struct Config {
    pub web: WebOptions,
    pub telemetry_path: String,
    pub graph: GraphConfig,
    pub tenants: Vec<TenantConfig>,
    /// `failure_reason_limit`, `feature_limit` and `auth_method_limit`.
    pub event_label_limits: EventLabelLimits,
    /// The file's top-level `reports`, which every tenant starts from.
    pub reports: BTreeMap<String, ReportOverride>,
    /// The file's `strength_classes` as written: class name → methods. The reports' strength
    /// table checks and applies them.
    pub strength_classes: BTreeMap<String, Vec<String>>,
    /// `--poll.interval`.
    pub poll_interval: Option<Duration>,
    /// This replica's shard; [`Shard::ALL`] when the tenants are not sharded.
    pub shard: Shard,
}

/// How many distinct values of each open-ended label the usage-event counters keep per tenant
/// (`*_usage_events_total` and friends); the rest are counted under `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLabelLimits {
    pub failure_reason: usize,
    pub feature: usize,
    pub auth_method: usize,
}

/// How the web interface listens and what it lets clients hold.
#[derive(Debug, Clone)]
pub struct WebOptions {
    pub listen_addresses: Vec<ListenAddress>,
    /// `--web.config.file`: TLS, basic auth and headers, read by [`crate::web_config`].
    pub config_file: Option<PathBuf>,
    /// Telemetry requests served at once; 0 means no limit.
    pub max_requests: usize,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// One `--web.listen-address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    /// As given on the command line, for messages.
    pub flag_value: String,
    pub target: ListenTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenTarget {
    /// `:PORT`: every interface, IPv6 and IPv4.
    AllInterfaces(u16),
    Socket(SocketAddr),
}

/// Where and how Graph and the token endpoint are reached.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Graph base URL without a trailing slash, e.g. `https://graph.microsoft.com`.
    pub endpoint: Url,
    pub authority_host: Url,
    /// Extra trusted roots (PEM) for every outbound TLS connection.
    pub extra_roots_pem: Option<Vec<u8>>,
    /// Requests per tenant per 10 s.
    pub requests_per_10s: u32,
    /// Requests per app registration (client id) per 10 s, shared by its tenants.
    pub app_requests_per_10s: u32,
    pub timeout: Duration,
    /// Largest response body read (`--graph.max-response-bytes`), after gzip decoding.
    pub max_response_bytes: usize,
}

impl GraphConfig {
    /// The OAuth scope for Graph: `<graph endpoint>/.default`, which is cloud-specific.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.endpoint.as_str().trim_end_matches('/'))
    }
}

#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// The `tenant` label value.
    pub name: String,
    pub tenant_id: String,
    pub credential: CredentialConfig,
    /// Per-report overrides: the tenant's own entries win over the file's top-level `reports`.
    pub reports: BTreeMap<String, ReportOverride>,
    /// `--poll.interval`, used where no override sets an interval.
    pub poll_interval: Option<Duration>,
    /// Groups whose members' registration is broken down, in the order configured.
    pub groups: Vec<GroupConfig>,
}

/// A group of a tenant: its Entra object id and its `group` label value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub id: String,
    pub name: String,
}

/// How a tenant authenticates. Secrets are [`Secret`]s, whose `Debug` output is redacted.
#[derive(Debug, Clone)]
pub enum CredentialConfig {
    ClientSecret {
        client_id: String,
        secret: SecretSource,
    },
    ClientCertificate {
        client_id: String,
        path: PathBuf,
        password: Option<SecretSource>,
    },
    WorkloadIdentity {
        client_id: String,
        token_file: PathBuf,
    },
    ManagedIdentity {
        client_id: Option<String>,
    },
}

/// A secret given inline, or the file that holds it. Files are read when the tenant's credential
/// is set up, not when the configuration loads: a file that is missing or unreadable fails that
/// tenant only, and a rotated file is read again after a token request fails.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Inline(Secret),
    File(PathBuf),
}

impl SecretSource {
    /// The secret, reading the file (without the trailing newline editors and `echo` add).
    pub fn read(&self) -> Result<Secret, CredentialSetupError> {
        let path = match self {
            SecretSource::Inline(secret) => return Ok(secret.clone()),
            SecretSource::File(path) => path,
        };
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| CredentialSetupError::Read {
            path: shown.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| CredentialSetupError::Invalid {
            path: shown.clone(),
            problem: "is not UTF-8 text",
        })?;
        let secret = text.trim_end_matches(['\r', '\n']);
        if secret.is_empty() {
            return Err(CredentialSetupError::Invalid {
                path: shown,
                problem: "is empty",
            });
        }
        Ok(Secret::new(secret.to_owned()))
    }
}

impl From<String> for SecretSource {
    fn from(secret: String) -> Self {
        SecretSource::Inline(Secret::new(secret))
    }
}

/// A tenant's credential that its configuration cannot set up: a secret or certificate file
/// that cannot be read or is not what it should be. Asking the token endpoint again does not
/// help, as with a refused secret: the file must be fixed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialSetupError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} {problem}")]
    Invalid { path: String, problem: &'static str },
    #[error(
        "client certificate {path} is PEM; convert it to PKCS#12 (.pfx), e.g. `openssl pkcs12 -export -in cert.pem -inkey key.pem -out cert.pfx`"
    )]
    PemCertificate { path: String },
}

impl CredentialSetupError {
    /// Whether a failed token request may succeed if sent again soon: 5xx, 429, timeouts,
    /// resets, DNS and TLS errors may pass; a refusal by the token endpoint (a 4xx other than
    /// 429) or a credential its files cannot set up stays until someone fixes it. Here because
    /// both the credential and the Graph client need the answer and neither knows the other.
    pub fn is_passing(err: &azure_core::Error) -> bool {
        let mut passing = true;
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(cause) = source {
            if cause.is::<CredentialSetupError>() {
                passing = false;
            }
            if let Some(status) = cause
                .downcast_ref::<azure_core::Error>()
                .and_then(azure_core::Error::http_status)
            {
                passing = status.is_server_error() || u16::from(status) == 429;
            }
            source = cause.source();
        }
        passing
    }
}

impl CredentialConfig {
    /// The app registration's client id; `None` for a system-assigned managed identity.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            CredentialConfig::ClientSecret { client_id, .. }
            | CredentialConfig::ClientCertificate { client_id, .. }
            | CredentialConfig::WorkloadIdentity { client_id, .. } => Some(client_id),
            CredentialConfig::ManagedIdentity { client_id } => client_id.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReportOverride {
    pub enabled: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// Pages one poll may read before it gives up (a paging loop or a runaway collection);
    /// default [`crate::graph::DEFAULT_MAX_PAGES`].
    pub max_pages: Option<u32>,
}

/// The schedule one report of one tenant runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportSettings {
    pub enabled: bool,
    pub interval: Duration,
    pub max_age: Duration,
}

impl TenantConfig {
    /// `max_pages` of every report that sets one, for the tenant's Graph client.
    pub fn max_pages(&self) -> HashMap<String, u32> {
        self.reports
            .iter()
            .filter_map(|(name, over)| Some((name.clone(), over.max_pages?)))
            .collect()
    }

    pub fn report_settings(&self, report: &str, default_interval: Duration) -> ReportSettings {
        let over = self.reports.get(report).cloned().unwrap_or_default();
        let interval = over
            .interval
            .or(self.poll_interval)
            .unwrap_or(default_interval);
        ReportSettings {
            enabled: over.enabled.unwrap_or(true),
            interval,
            max_age: over.max_age.unwrap_or(interval * DEFAULT_MAX_AGE_INTERVALS),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    tenants: Vec<FileTenant>,
    #[serde(default)]
    reports: BTreeMap<String, ReportOverride>,
    failure_reason_limit: Option<usize>,
    feature_limit: Option<usize>,
    auth_method_limit: Option<usize>,
    #[serde(default)]
    strength_classes: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTenant {
    name: Option<String>,
    tenant_id: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_certificate_path: Option<PathBuf>,
    client_certificate_password: Option<String>,
    client_certificate_password_file: Option<PathBuf>,
    federated_token_file: Option<PathBuf>,
    #[serde(default)]
    managed_identity: bool,
    #[serde(default)]
    reports: BTreeMap<String, ReportOverride>,
    #[serde(default)]
    groups: Vec<FileGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    id: String,
    name: Option<String>,
}

impl Config {
    /// Resolves flags, the config file and the environment (`env` looks a variable up).
    /// `known_reports` are the names a `reports` key may have.
    pub fn load(
        cli: &Cli,
        env: &dyn Fn(&str) -> Option<String>,
        known_reports: &[&str],
    ) -> Result<Config, ConfigError> {
        let file = match &cli.config_file {
            Some(path) => parse_file(path)?,
            None => FileConfig::default(),
        };
        let shard = resolve_shard(cli, env)?;
        validate_report_names(&file.reports, "reports", known_reports)?;
        let defaults = DEFAULT_EVENT_LABEL_LIMITS;
        let event_label_limits = EventLabelLimits {
            failure_reason: at_least_one(
                "failure_reason_limit",
                file.failure_reason_limit,
                defaults.failure_reason,
            )?,
            feature: at_least_one("feature_limit", file.feature_limit, defaults.feature)?,
            auth_method: at_least_one(
                "auth_method_limit",
                file.auth_method_limit,
                defaults.auth_method,
            )?,
        };

        let mut tenants = Vec::with_capacity(file.tenants.len());
        for (index, tenant) in file.tenants.into_iter().enumerate() {
            tenants.push(resolve_file_tenant(
                tenant,
                index,
                &file.reports,
                cli.poll_interval,
                known_reports,
            )?);
        }
        if tenants.is_empty() && !cli.demo {
            tenants.push(tenant_from_env(env, &file.reports, cli.poll_interval)?);
        }
        let mut names: Vec<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(invalid(format!(
                "tenant name {:?} is used twice; names become the `tenant` label and must be unique",
                pair[0]
            )));
        }

        let poll_interval = cli
            .poll_interval
            .map(|d| at_least_a_second("--poll.interval", d))
            .transpose()?;
        Ok(Config {
            web: WebOptions {
                listen_addresses: cli
                    .listen_addresses
                    .iter()
                    .map(|a| parse_listen_address(a))
                    .collect::<Result<_, _>>()?,
                config_file: cli.web_config_file.clone(),
                max_requests: cli.max_requests,
                max_connections: cli.max_connections as usize,
                header_read_timeout: at_least_a_second(
                    "--web.header-read-timeout",
                    cli.header_read_timeout,
                )?,
                idle_timeout: at_least_a_second("--web.idle-timeout", cli.idle_timeout)?,
            },
            telemetry_path: parse_telemetry_path(&cli.telemetry_path)?,
            graph: GraphConfig {
                endpoint: https_url(
                    "--graph.endpoint",
                    cli.graph_endpoint
                        .as_deref()
                        .unwrap_or(cli.cloud.graph_endpoint()),
                )?,
                authority_host: https_url(
                    "--azure.authority-host",
                    cli.authority_host
                        .as_deref()
                        .unwrap_or(cli.cloud.authority_host()),
                )?,
                extra_roots_pem: cli.ca_file.as_deref().map(read_file).transpose()?,
                // The demo raises the budget when none is given (app::prepare).
                requests_per_10s: cli.requests_per_10s.unwrap_or(DEFAULT_REQUESTS_PER_10S),
                // The shards share the app registration, so each gets its part of Graph's limit.
                app_requests_per_10s: cli
                    .app_requests_per_10s
                    .unwrap_or((DEFAULT_APP_REQUESTS_PER_10S / shard.total).max(1)),
                timeout: at_least_a_second("--graph.timeout", cli.graph_timeout)?,
                // More than the address space holds is no limit.
                max_response_bytes: usize::try_from(cli.max_response_bytes).unwrap_or(usize::MAX),
            },
            tenants,
            event_label_limits,
            reports: file.reports,
            strength_classes: file.strength_classes,
            poll_interval,
            shard,
        })
    }
}

/// A label limit from the file, or its default; 0 would turn every value into `other`.
fn at_least_one(key: &str, given: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match given.unwrap_or(default) {
        0 => Err(invalid(format!("{key} must be at least 1"))),
        limit => Ok(limit),
    }
}

/// `--total-shards` and `--shard` (clap makes sure both or neither are given). `--shard=auto`
/// reads the StatefulSet ordinal from POD_NAME, or from the hostname, which Kubernetes sets to
/// the pod's name.
fn resolve_shard(cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, ConfigError> {
    let (Some(total), Some(given)) = (cli.total_shards, cli.shard.as_deref()) else {
        return Ok(Shard::ALL);
    };
    let index = match given.trim() {
        "auto" => {
            let (source, name) = match env("POD_NAME").filter(|name| !name.trim().is_empty()) {
                Some(name) => ("POD_NAME", name),
                None => (
                    "the hostname",
                    gethostname::gethostname().to_string_lossy().into_owned(),
                ),
            };
            shard::ordinal(&name).ok_or_else(|| {
                invalid(format!(
                    "--shard=auto: {source} {name:?} does not end in -NUMBER (a StatefulSet pod's \
                     ordinal); set POD_NAME from metadata.name, or give --shard=N"
                ))
            })?
        }
        number => number
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| number.parse::<u32>().ok())
            .flatten()
            .ok_or_else(|| {
                invalid(format!(
                    "--shard {given:?} is neither a shard number nor auto"
                ))
            })?,
    };
    if index >= total {
        return Err(invalid(format!(
            "--shard={index} is out of range: shards are numbered from 0 to --total-shards - 1 ({})",
            total - 1
        )));
    }
    Ok(Shard { index, total })
}

fn parse_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    parse_yaml(&text).map_err(|message| ConfigError::Parse {
        path: path.to_owned(),
        message,
    })
}

/// Parses YAML into `T`. The error is one line that starts with the path of the offending key
/// (`reports.credentialUsageSummary.interval: ...`) and quotes its line and column.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let one_line = |text: String| text.lines().next().unwrap_or_default().to_owned();
    serde_saphyr::with_deserializer_from_str(text, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = err.path().to_string();
            let message = one_line(err.into_inner().to_string());
            serde::de::Error::custom(match path.as_str() {
                "." => message,
                _ => format!("{path}: {message}"),
            })
        })
    })
    .map_err(|err| one_line(err.to_string()))
}

fn read_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn validate_report_names(
    reports: &BTreeMap<String, ReportOverride>,
    place: &str,
    known_reports: &[&str],
) -> Result<(), ConfigError> {
    for name in reports.keys() {
        if !known_reports.contains(&name.as_str()) {
            return Err(invalid(format!(
                "{place}: unknown report {name:?}; known reports: {}",
                known_reports.join(", ")
            )));
        }
    }
    for (name, over) in reports {
        for (key, value) in [("interval", over.interval), ("max_age", over.max_age)] {
            if let Some(value) = value {
                at_least_a_second(&format!("{place}.{name}.{key}"), value)?;
            }
        }
        if over.max_pages == Some(0) {
            return Err(invalid(format!(
                "{place}.{name}.max_pages must be at least 1"
            )));
        }
    }
    Ok(())
}

/// Refuses zero and sub-second intervals and timeouts, naming the flag or key.
pub fn at_least_a_second(name: &str, value: Duration) -> Result<Duration, ConfigError> {
    if value < MIN_DURATION {
        return Err(invalid(format!(
            "{name} must be at least 1s, not {}",
            humantime::format_duration(value)
        )));
    }
    Ok(value)
}

fn resolve_file_tenant(
    tenant: FileTenant,
    index: usize,
    global_reports: &BTreeMap<String, ReportOverride>,
    poll_interval: Option<Duration>,
    known_reports: &[&str],
) -> Result<TenantConfig, ConfigError> {
    let place = format!("tenants[{index}]");
    if tenant.tenant_id.trim().is_empty() {
        return Err(invalid(format!("{place}.tenant_id is empty")));
    }
    validate_report_names(&tenant.reports, &format!("{place}.reports"), known_reports)?;
    let client_id = tenant.client_id.filter(|id| !id.is_empty());
    let require_client_id = |what: &str| {
        client_id
            .clone()
            .ok_or_else(|| invalid(format!("{place}: {what} needs client_id")))
    };

    let secret = match (tenant.client_secret, &tenant.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "{place}: set client_secret or client_secret_file, not both"
            )));
        }
        (Some(inline), None) => Some(SecretSource::from(inline)),
        (None, Some(path)) => Some(SecretSource::File(path.clone())),
        (None, None) => None,
    };
    let password = match (
        tenant.client_certificate_password,
        &tenant.client_certificate_password_file,
    ) {
        (Some(inline), None) => Some(SecretSource::from(inline)),
        (None, Some(path)) => Some(SecretSource::File(path.clone())),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "{place}: set client_certificate_password or client_certificate_password_file, not both"
            )));
        }
    };

    let mut chosen = Vec::new();
    if let Some(secret) = secret {
        chosen.push(CredentialConfig::ClientSecret {
            client_id: require_client_id("client_secret")?,
            secret,
        });
    }
    if let Some(path) = tenant.client_certificate_path {
        chosen.push(CredentialConfig::ClientCertificate {
            client_id: require_client_id("client_certificate_path")?,
            path,
            password,
        });
    }
    if let Some(token_file) = tenant.federated_token_file {
        chosen.push(CredentialConfig::WorkloadIdentity {
            client_id: require_client_id("federated_token_file")?,
            token_file,
        });
    }
    if tenant.managed_identity {
        chosen.push(CredentialConfig::ManagedIdentity {
            client_id: client_id.clone(),
        });
    }
    let credential = match chosen.len() {
        1 => chosen.remove(0),
        0 => {
            return Err(invalid(format!(
                "{place}: no credential; set one of client_secret(_file), client_certificate_path, \
                 federated_token_file or managed_identity: true"
            )));
        }
        _ => {
            return Err(invalid(format!(
                "{place}: more than one credential is set; keep exactly one of client_secret(_file), \
                 client_certificate_path, federated_token_file, managed_identity"
            )));
        }
    };

    let mut reports = global_reports.clone();
    reports.extend(tenant.reports);
    let name = tenant
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| tenant.tenant_id.clone());
    Ok(TenantConfig {
        name,
        tenant_id: tenant.tenant_id,
        credential,
        reports,
        poll_interval,
        groups: resolve_groups(tenant.groups, &place)?,
    })
}

/// Checks a tenant's groups: at most [`MAX_GROUPS`], object ids that are GUIDs (they go into
/// the request path), and no id or name twice (a name is a series).
fn resolve_groups(groups: Vec<FileGroup>, place: &str) -> Result<Vec<GroupConfig>, ConfigError> {
    if groups.len() > MAX_GROUPS {
        return Err(invalid(format!(
            "{place}.groups: {} groups; at most {MAX_GROUPS} per tenant",
            groups.len()
        )));
    }
    let mut resolved: Vec<GroupConfig> = Vec::with_capacity(groups.len());
    for (index, group) in groups.into_iter().enumerate() {
        let id = group.id.trim().to_ascii_lowercase();
        if !is_object_id(&id) {
            return Err(invalid(format!(
                "{place}.groups[{index}].id {:?} is not a group object id (a GUID such as \
                 0b1f0c5e-6a4d-4f3e-9b8a-1c2d3e4f5a6b, from the group's overview in the Entra admin center)",
                group.id
            )));
        }
        let name = group
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| id.clone());
        if let Some(other) = resolved.iter().find(|g| g.id == id || g.name == name) {
            let what = if other.id == id { "id" } else { "name" };
            return Err(invalid(format!(
                "{place}.groups[{index}]: {what} {:?} is used twice; each group needs its own id \
                 and name (the `group` label)",
                if other.id == id { &id } else { &name }
            )));
        }
        resolved.push(GroupConfig { id, name });
    }
    Ok(resolved)
}

/// An Entra object id: a GUID, `8-4-4-4-12` hex digits.
fn is_object_id(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A single tenant from the Azure SDK's standard environment variables.
fn tenant_from_env(
    env: &dyn Fn(&str) -> Option<String>,
    reports: &BTreeMap<String, ReportOverride>,
    poll_interval: Option<Duration>,
) -> Result<TenantConfig, ConfigError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let Some(tenant_id) = var("AZURE_TENANT_ID") else {
        return Err(invalid(
            "no tenant configured: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET \
             (or AZURE_CLIENT_CERTIFICATE_PATH / AZURE_FEDERATED_TOKEN_FILE), list tenants in \
             --config.file, or try --demo",
        ));
    };
    let Some(client_id) = var("AZURE_CLIENT_ID") else {
        return Err(invalid("AZURE_TENANT_ID is set but AZURE_CLIENT_ID is not"));
    };
    let credential = if let Some(secret) = var("AZURE_CLIENT_SECRET") {
        CredentialConfig::ClientSecret {
            client_id,
            secret: SecretSource::from(secret),
        }
    } else if let Some(path) = var("AZURE_CLIENT_CERTIFICATE_PATH") {
        CredentialConfig::ClientCertificate {
            client_id,
            path: path.into(),
            password: var("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(SecretSource::from),
        }
    } else if let Some(path) = var("AZURE_FEDERATED_TOKEN_FILE") {
        CredentialConfig::WorkloadIdentity {
            client_id,
            token_file: path.into(),
        }
    } else {
        return Err(invalid(
            "AZURE_TENANT_ID and AZURE_CLIENT_ID are set but no credential: set \
             AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE \
             (managed identity is set per tenant in --config.file)",
        ));
    };
    Ok(TenantConfig {
        name: tenant_id.clone(),
        tenant_id,
        credential,
        reports: reports.clone(),
        poll_interval,
        groups: Vec::new(),
    })
}

fn parse_listen_address(address: &str) -> Result<ListenAddress, ConfigError> {
    let bad = || {
        invalid(format!(
            "--web.listen-address {address:?} is not HOST:PORT, [IPV6]:PORT or :PORT"
        ))
    };
    // ":9929" is the Prometheus convention for "every interface".
    let target = match address.strip_prefix(':') {
        Some(port) => ListenTarget::AllInterfaces(port.parse().map_err(|_| bad())?),
        None => ListenTarget::Socket(
            address
                .to_socket_addrs()
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or_else(bad)?,
        ),
    };
    Ok(ListenAddress {
        flag_value: address.to_owned(),
        target,
    })
}

fn parse_telemetry_path(path: &str) -> Result<String, ConfigError> {
    if !path.starts_with('/') || ["/", "/healthz", "/readyz"].contains(&path) {
        return Err(invalid(format!(
            "--web.telemetry-path {path:?} must start with / and not be /, /healthz or /readyz"
        )));
    }
    Ok(path.to_owned())
}

/// Parses an https URL and drops a trailing slash, so paths can be appended uniformly.
fn https_url(flag: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim_end_matches('/'))
        .map_err(|err| invalid(format!("{flag} {value:?}: {err}")))?;
    if url.scheme() != "https" || url.host_str().is_none() {
        return Err(invalid(format!(
            "{flag} {value:?} must be an https:// URL: tokens are only sent over TLS"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Write;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// The report names these tests use; the exporter passes the reports module's list.
    const KNOWN: &[&str] = &[
        "credentialUsageSummary",
        "credentialUserRegistrationDetails",
        "userCredentialUsageDetails",
        "userEventsSummary",
        "userRegistrationDetails",
    ];

    fn load(cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::load(cli, env, KNOWN)
    }

    fn yaml(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn load_yaml(text: &str) -> Result<Config, ConfigError> {
        let file = yaml(text);
        load(
            &cli(&["--config.file", file.path().to_str().unwrap()]),
            &no_env,
        )
    }

    #[test]
    fn env_tenant_with_client_secret() {
        let env = |name: &str| match name {
            "AZURE_TENANT_ID" => Some("tid".to_owned()),
            "AZURE_CLIENT_ID" => Some("cid".to_owned()),
            "AZURE_CLIENT_SECRET" => Some("s3cret".to_owned()),
            _ => None,
        };
        let config = load(&cli(&[]), &env).unwrap();
        assert_eq!(config.tenants.len(), 1);
        assert_eq!(config.tenants[0].name, "tid");
        assert!(matches!(
            &config.tenants[0].credential,
            CredentialConfig::ClientSecret { client_id, secret } if client_id == "cid" && secret.read().unwrap().secret() == "s3cret"
        ));
        assert_eq!(
            config.web.listen_addresses[0].target,
            ListenTarget::AllInterfaces(9929)
        );
        assert_eq!(
            config.graph.endpoint.as_str(),
            "https://graph.microsoft.com/"
        );
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn missing_tenant_points_at_the_fix() {
        let err = load(&cli(&[]), &no_env).unwrap_err().to_string();
        assert!(err.contains("AZURE_TENANT_ID"), "{err}");
        assert!(err.contains("--demo"), "{err}");
    }

    #[test]
    fn env_tenant_without_credential_is_an_error() {
        let env = |name: &str| match name {
            "AZURE_TENANT_ID" | "AZURE_CLIENT_ID" => Some("x".to_owned()),
            _ => None,
        };
        let err = load(&cli(&[]), &env).unwrap_err().to_string();
        assert!(err.contains("AZURE_CLIENT_SECRET"), "{err}");
    }

    #[test]
    fn cloud_sets_both_hosts_and_flags_override() {
        let c = load(&cli(&["--demo", "--azure.cloud=china"]), &no_env).unwrap();
        assert_eq!(
            c.graph.endpoint.host_str(),
            Some("microsoftgraph.chinacloudapi.cn")
        );
        assert_eq!(
            c.graph.authority_host.host_str(),
            Some("login.chinacloudapi.cn")
        );
        let c = load(
            &cli(&[
                "--demo",
                "--azure.cloud=usgov",
                "--graph.endpoint=https://graph.example.test/",
            ]),
            &no_env,
        )
        .unwrap();
        assert_eq!(c.graph.endpoint.host_str(), Some("graph.example.test"));
        assert_eq!(c.graph.scope(), "https://graph.example.test/.default");
        assert_eq!(
            c.graph.authority_host.host_str(),
            Some("login.microsoftonline.us")
        );
    }

    #[test]
    fn plain_http_endpoint_is_refused() {
        let err = load(
            &cli(&["--demo", "--graph.endpoint=http://graph.example.test"]),
            &no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("https"), "{err}");
    }

    #[test]
    fn bad_listen_address_and_path() {
        assert!(load(&cli(&["--demo", "--web.listen-address=nonsense"]), &no_env).is_err());
        assert!(load(&cli(&["--demo", "--web.telemetry-path=metrics"]), &no_env).is_err());
        assert!(load(&cli(&["--demo", "--web.listen-address=:x"]), &no_env).is_err());
        let c = load(
            &cli(&[
                "--demo",
                "--web.listen-address=127.0.0.1:0",
                "--web.listen-address=[::1]:9",
            ]),
            &no_env,
        )
        .unwrap();
        let targets: Vec<ListenTarget> = c.web.listen_addresses.iter().map(|a| a.target).collect();
        assert_eq!(
            targets,
            [
                ListenTarget::Socket("127.0.0.1:0".parse().unwrap()),
                ListenTarget::Socket("[::1]:9".parse().unwrap())
            ]
        );
    }

    #[test]
    fn zero_and_sub_second_durations_name_the_flag() {
        for flag in [
            "--poll.interval",
            "--graph.timeout",
            "--web.header-read-timeout",
            "--web.idle-timeout",
        ] {
            for value in ["0s", "500ms"] {
                let err = load(&cli(&["--demo", &format!("{flag}={value}")]), &no_env)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(flag) && err.contains("at least 1s"), "{err}");
            }
        }
        // Negative durations do not parse; clap names the flag.
        let err = Cli::try_parse_from(["x", "--poll.interval=-5s"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--poll.interval"), "{err}");
        load(&cli(&["--demo", "--poll.interval=1s"]), &no_env).unwrap();
    }

    #[test]
    fn zero_negative_and_sub_second_durations_name_the_config_key() {
        for (text, key) in [
            (
                "reports:\n  credentialUsageSummary: {interval: 0s}\n",
                "reports.credentialUsageSummary.interval",
            ),
            (
                "reports:\n  credentialUsageSummary: {max_age: 100ms}\n",
                "reports.credentialUsageSummary.max_age",
            ),
            (
                "reports:\n  credentialUsageSummary: {interval: -5s}\n",
                "reports.credentialUsageSummary.interval",
            ),
            (
                "tenants:\n  - tenant_id: t\n    managed_identity: true\n    reports:\n      userEventsSummary: {interval: 999ms}\n",
                "tenants[0].reports.userEventsSummary.interval",
            ),
        ] {
            let err = load_yaml(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn yaml_tenants_secrets_from_files_and_report_overrides() {
        let secret = yaml("from-file\n");
        let config = load_yaml(&format!(
            r#"
failure_reason_limit: 5
auth_method_limit: 7
reports:
  credentialUsageSummary: {{interval: 5m}}
  credentialUserRegistrationDetails: {{interval: 2h, max_age: 12h}}
tenants:
  - name: contoso
    tenant_id: 00000000-0000-0000-0000-000000000001
    client_id: app
    client_secret_file: {}
    reports:
      credentialUserRegistrationDetails: {{enabled: false}}
  - tenant_id: 00000000-0000-0000-0000-000000000002
    managed_identity: true
"#,
            secret.path().display()
        ))
        .unwrap();
        assert_eq!(
            config.event_label_limits,
            EventLabelLimits {
                failure_reason: 5,
                auth_method: 7,
                ..DEFAULT_EVENT_LABEL_LIMITS
            }
        );
        let contoso = &config.tenants[0];
        assert_eq!(contoso.name, "contoso");
        assert!(matches!(&contoso.credential,
            CredentialConfig::ClientSecret { secret, .. } if secret.read().unwrap().secret() == "from-file"));
        let summary = contoso.report_settings("credentialUsageSummary", Duration::from_secs(600));
        assert_eq!(summary.interval, Duration::from_secs(300));
        assert_eq!(summary.max_age, Duration::from_secs(900));
        assert!(
            !contoso
                .report_settings("credentialUserRegistrationDetails", Duration::from_secs(1))
                .enabled
        );
        let second = &config.tenants[1];
        assert_eq!(second.name, "00000000-0000-0000-0000-000000000002");
        assert!(matches!(
            second.credential,
            CredentialConfig::ManagedIdentity { client_id: None }
        ));
        let details =
            second.report_settings("credentialUserRegistrationDetails", Duration::from_secs(1));
        assert_eq!(details.interval, Duration::from_secs(7200));
        assert_eq!(details.max_age, Duration::from_secs(43200));
    }

    #[test]
    fn max_pages_per_report_with_tenant_overrides() {
        let config = load_yaml(
            "reports:\n  userEventsSummary: {max_pages: 50}\n  userRegistrationDetails: {max_pages: 7000}\ntenants:\n  - {tenant_id: t, managed_identity: true, reports: {userEventsSummary: {max_pages: 3}}}\n",
        )
        .unwrap();
        let limits = config.tenants[0].max_pages();
        assert_eq!(limits.get("userEventsSummary"), Some(&3));
        assert_eq!(limits.get("userRegistrationDetails"), Some(&7000));
        assert_eq!(limits.get("credentialUserRegistrationDetails"), None);
    }

    #[test]
    fn poll_interval_flag_applies_where_the_file_is_silent() {
        let file = yaml(
            "reports:\n  credentialUsageSummary: {interval: 5m}\ntenants:\n  - {tenant_id: t, managed_identity: true}\n",
        );
        let config = load(
            &cli(&[
                "--poll.interval=2m",
                "--config.file",
                file.path().to_str().unwrap(),
            ]),
            &no_env,
        )
        .unwrap();
        let t = &config.tenants[0];
        assert_eq!(
            t.report_settings("credentialUsageSummary", Duration::from_secs(600))
                .interval,
            Duration::from_secs(300)
        );
        assert_eq!(
            t.report_settings("userCredentialUsageDetails", Duration::from_secs(600))
                .interval,
            Duration::from_secs(120)
        );
    }

    #[test]
    fn yaml_mistakes_are_one_line_errors() {
        for (text, needle) in [
            ("tenants:\n  - tenant_id: t\n", "no credential"),
            (
                "tenants:\n  - {tenant_id: t, client_id: c, client_secret: s, managed_identity: true}\n",
                "more than one credential",
            ),
            (
                "tenants:\n  - {tenant_id: t, client_secret: s}\n",
                "needs client_id",
            ),
            (
                "reports:\n  nosuchReport: {enabled: false}\n",
                "unknown report",
            ),
            (
                "reports:\n  credentialUsageSummary: {interval: soon}\n",
                "parsing",
            ),
            ("tenant:\n  - x\n", "parsing"),
            (
                "tenants:\n  - {name: a, tenant_id: t1, managed_identity: true}\n  - {name: a, tenant_id: t2, managed_identity: true}\n",
                "used twice",
            ),
            (
                "failure_reason_limit: 0\ntenants: []\n",
                "failure_reason_limit must be at least 1",
            ),
            (
                "feature_limit: 0\ntenants: []\n",
                "feature_limit must be at least 1",
            ),
            (
                "auth_method_limit: 0\ntenants: []\n",
                "auth_method_limit must be at least 1",
            ),
            (
                "reports:\n  userEventsSummary: {max_pages: 0}\n",
                "userEventsSummary.max_pages must be at least 1",
            ),
        ] {
            let err = load_yaml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "multi-line error for {text:?}: {err}");
        }
    }

    #[test]
    fn documented_example_parses() {
        let docs = include_str!("../docs/configuration.md");
        let start = docs
            .find("<!-- config-example")
            .and_then(|i| docs[i..].find("```yaml").map(|j| i + j + "```yaml".len()))
            .expect("docs/configuration.md has the config example");
        let end = start + docs[start..].find("```").expect("closing fence");
        let file: FileConfig = serde_saphyr::from_str(&docs[start..end]).unwrap();
        validate_report_names(&file.reports, "reports", KNOWN).unwrap();
        assert_eq!(file.tenants.len(), 4);
        for (index, tenant) in file.tenants.into_iter().enumerate() {
            validate_report_names(&tenant.reports, "tenant", KNOWN).unwrap();
            assert_eq!(tenant.managed_identity, index == 3);
            let groups = resolve_groups(tenant.groups, "tenant").unwrap();
            assert_eq!(groups.len(), if index == 0 { 2 } else { 0 });
        }
        assert_eq!(file.strength_classes.len(), 1);
    }

    #[test]
    fn groups_and_strength_classes() {
        let config = load_yaml(
            r#"
strength_classes:
  phishingResistant: [fido2SecurityKey, passKeyDeviceBound]
  appMfa: [microsoftAuthenticatorPush]
tenants:
  - tenant_id: t
    managed_identity: true
    groups:
      - {id: 0B1F0C5E-6A4D-4F3E-9B8A-1C2D3E4F5A6B, name: fido2-pilot}
      - id: 1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f
  - {tenant_id: u, managed_identity: true}
"#,
        )
        .unwrap();
        assert_eq!(
            config.tenants[0].groups,
            [
                GroupConfig {
                    id: "0b1f0c5e-6a4d-4f3e-9b8a-1c2d3e4f5a6b".into(),
                    name: "fido2-pilot".into()
                },
                GroupConfig {
                    id: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f".into(),
                    name: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f".into()
                },
            ]
        );
        assert!(config.tenants[1].groups.is_empty());
        // Config keeps the classes as written; the strength table checks them.
        assert_eq!(
            config.strength_classes["phishingResistant"],
            ["fido2SecurityKey", "passKeyDeviceBound"]
        );
        assert_eq!(config.strength_classes.len(), 2);
    }

    #[test]
    fn group_mistakes_are_one_line_errors() {
        let group = |i: usize| format!("{{id: 00000000-0000-4000-8000-{i:012}}}");
        let many: Vec<String> = (0..=MAX_GROUPS).map(group).collect();
        let tenant = |groups: &str| {
            format!("tenants:\n  - {{tenant_id: t, managed_identity: true, groups: [{groups}]}}\n")
        };
        let hundred: Vec<String> = (0..MAX_GROUPS).map(group).collect();
        assert_eq!(
            load_yaml(&tenant(&hundred.join(", "))).unwrap().tenants[0]
                .groups
                .len(),
            MAX_GROUPS
        );
        for (groups, needle) in [
            (many.join(", "), "at most 100"),
            ("{id: fido2-pilot}".to_owned(), "not a group object id"),
            (
                "{id: \"00000000-0000-4000-8000-000000000001/../../users\"}".to_owned(),
                "not a group object id",
            ),
            (format!("{}, {}", group(1), group(1)), "id \"00000000"),
            (
                "{id: 00000000-0000-4000-8000-000000000001, name: a}, {id: 00000000-0000-4000-8000-000000000002, name: a}".to_owned(),
                "name \"a\" is used twice",
            ),
            ("{name: a}".to_owned(), "parsing"),
            ("{id: 00000000-0000-4000-8000-000000000001, colour: red}".to_owned(), "parsing"),
        ] {
            let err = load_yaml(&tenant(&groups)).unwrap_err().to_string();
            assert!(err.contains(needle), "{groups}: {err}");
            assert!(!err.contains('\n'), "multi-line error for {groups}: {err}");
        }
    }

    #[test]
    fn shards_and_the_app_budget() {
        let c = load(&cli(&["--demo"]), &no_env).unwrap();
        assert_eq!(c.shard, Shard::ALL);
        assert_eq!(c.graph.app_requests_per_10s, DEFAULT_APP_REQUESTS_PER_10S);
        let c = load(&cli(&["--demo", "--total-shards=3", "--shard=2"]), &no_env).unwrap();
        assert_eq!(c.shard, Shard { index: 2, total: 3 });
        // The shards share the app's limit.
        assert_eq!(c.graph.app_requests_per_10s, 40);
        let c = load(
            &cli(&[
                "--demo",
                "--total-shards=3",
                "--shard=0",
                "--graph.app-requests-per-10s=90",
            ]),
            &no_env,
        )
        .unwrap();
        assert_eq!(c.graph.app_requests_per_10s, 90);
        let c = load(
            &cli(&["--demo", "--total-shards=500", "--shard=0"]),
            &no_env,
        )
        .unwrap();
        assert_eq!(c.graph.app_requests_per_10s, 1);

        let pod =
            |name: &'static str| move |var: &str| (var == "POD_NAME").then(|| name.to_owned());
        let auto = cli(&["--demo", "--total-shards=4", "--shard=auto"]);
        let c = load(&auto, &pod("entra-authmethods-exporter-3")).unwrap();
        assert_eq!(c.shard, Shard { index: 3, total: 4 });
        // Without POD_NAME, the hostname (a pod's name in Kubernetes) decides.
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        match (shard::ordinal(&host), load(&auto, &no_env)) {
            (Some(n), Ok(c)) if n < 4 => assert_eq!(c.shard, Shard { index: n, total: 4 }),
            (Some(_), Err(err)) => assert!(err.to_string().contains("out of range"), "{err}"),
            (None, Err(err)) => {
                let err = err.to_string();
                assert!(err.contains(&format!("the hostname {host:?}")), "{err}");
            }
            (ordinal, result) => panic!("hostname {host:?} ({ordinal:?}): {result:?}"),
        }
        for (name, needle) in [
            ("entra-authmethods-exporter-4", "out of range"),
            (
                "entra-authmethods-exporter",
                "POD_NAME \"entra-authmethods-exporter\"",
            ),
        ] {
            let err = load(&auto, &pod(name)).unwrap_err().to_string();
            assert!(err.contains(needle), "{name}: {err}");
        }
        for (args, needle) in [
            (["--total-shards=3", "--shard=3"], "out of range"),
            (
                ["--total-shards=3", "--shard=one"],
                "neither a shard number nor auto",
            ),
            (
                ["--total-shards=3", "--shard=-1"],
                "neither a shard number nor auto",
            ),
            (
                ["--total-shards=3", "--shard=+1"],
                "neither a shard number nor auto",
            ),
        ] {
            let mut all = vec!["--demo"];
            all.extend(args);
            let err = load(&cli(&all), &no_env).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn secret_files_are_read_when_the_credential_is_set_up_not_at_load() {
        let config = load_yaml(
            "tenants:\n  - {tenant_id: t, client_id: c, client_secret_file: /nonexistent/secret}\n",
        )
        .unwrap();
        let CredentialConfig::ClientSecret { secret, .. } = &config.tenants[0].credential else {
            panic!("a client secret");
        };
        let err = secret.read().unwrap_err().to_string();
        assert!(err.contains("reading /nonexistent/secret"), "{err}");

        for (content, needle) in [(&b""[..], "is empty"), (&b"\xff\xfe"[..], "not UTF-8")] {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            file.write_all(content).unwrap();
            let source = SecretSource::File(file.path().to_owned());
            let err = source.read().unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"rotated\n").unwrap();
        let source = SecretSource::File(file.path().to_owned());
        assert_eq!(source.read().unwrap().secret(), "rotated");
    }

    #[test]
    fn inline_secret_never_shows_in_debug_output() {
        let config = load_yaml(
            "tenants:\n  - {tenant_id: t, client_id: c, client_secret: hunter2-very-secret}\n",
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        const KEYS: &[&str] = &[
            "tenants",
            "reports",
            "failure_reason_limit",
            "feature_limit",
            "auth_method_limit",
            "name",
            "tenant_id",
            "client_id",
            "client_secret",
            "client_certificate_password",
            "managed_identity",
            "enabled",
            "interval",
            "max_age",
            "credentialUsageSummary",
            "userEventsSummary",
        ];

        fn value() -> impl Strategy<Value = Value> {
            let scalar = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                "(0s|1s|500ms|-5s|10m|1h 30m|soon|99999999999999h|)".prop_map(Value::from),
                "[ -~]{0,24}".prop_map(Value::from),
            ];
            crate::testing::document(KEYS, scalar.boxed())
        }

        fn load_text(text: &str) {
            let file = yaml(text);
            let _ = load(
                &cli(&["--config.file", file.path().to_str().unwrap()]),
                &no_env,
            );
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_text_is_loaded_or_refused(text in "(?s).{0,200}") {
                load_text(&text);
            }

            #[test]
            fn arbitrary_structures_are_loaded_or_refused(value in value()) {
                // JSON is YAML.
                load_text(&value.to_string());
            }
        }
    }
}
