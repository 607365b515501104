//! Command-line flags, in the Prometheus exporter style (`--web.listen-address`, `--log.level`, ...).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

/// `--graph.max-response-bytes` unless given: a page of 999 users is about 0.6 MB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Prometheus exporter for Microsoft Entra ID authentication-methods reports (SSPR, MFA,
/// passwordless), read from Microsoft Graph.
///
/// `entra-authmethods-exporter check` takes the same flags and tells, per tenant and report,
/// whether the app registration can read it.
///
/// Credentials for a single tenant come from the Azure SDK environment: AZURE_TENANT_ID and
/// AZURE_CLIENT_ID plus one of AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or
/// AZURE_FEDERATED_TOKEN_FILE. Several tenants, managed identity and secrets read from files are
/// set in the YAML file given by --config.file.
#[derive(Debug, Clone, Parser)]
// A repeated flag takes its last value, so wrappers can append overrides.
#[command(
    name = "entra-authmethods-exporter",
    version,
    about,
    long_about,
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on for the web interface and telemetry; repeat the flag for several.
    /// ":PORT" means every interface, IPv6 and IPv4.
    #[arg(
        long = "web.listen-address",
        default_value = ":9929",
        value_name = "ADDR",
        action = ArgAction::Append,
        global = true
    )]
    pub listen_addresses: Vec<String>,

    /// Web configuration file in the Prometheus exporter-toolkit format: TLS, client
    /// certificates, basic auth users and extra response headers. Read again when it changes.
    #[arg(long = "web.config.file", value_name = "FILE", global = true)]
    pub web_config_file: Option<PathBuf>,

    /// Most telemetry requests served at once; more are answered 503 (0: no limit).
    #[arg(
        long = "web.max-requests",
        default_value_t = 40,
        value_name = "N",
        global = true
    )]
    pub max_requests: usize,

    /// Most open connections; beyond it the connection idle the longest is closed.
    #[arg(long = "web.max-connections", default_value_t = 512, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..),
        global = true)]
    pub max_connections: u32,

    /// Time a client has to send a request's headers, from the connection's start or from the
    /// first byte of a request on a kept-alive connection.
    #[arg(long = "web.header-read-timeout", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION", global = true)]
    pub header_read_timeout: Duration,

    /// Time a kept-alive connection may wait for its next request, and a response may stall
    /// without any byte moving, before the connection is closed.
    #[arg(long = "web.idle-timeout", default_value = "2m", value_parser = humantime::parse_duration, value_name = "DURATION", global = true)]
    pub idle_timeout: Duration,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        default_value = "/metrics",
        value_name = "PATH",
        global = true
    )]
    pub telemetry_path: String,

    /// YAML configuration file: tenants, credentials and per-report settings.
    #[arg(long = "config.file", value_name = "FILE", global = true)]
    pub config_file: Option<PathBuf>,

    /// Poll interval for every report that the config file does not set one for
    /// [default: 10m for summary reports, 1h for per-user details, 5m for usage events].
    #[arg(long = "poll.interval", value_parser = humantime::parse_duration, value_name = "DURATION", global = true)]
    pub poll_interval: Option<Duration>,

    /// Microsoft Graph endpoint [default: from --azure.cloud, https://graph.microsoft.com].
    #[arg(long = "graph.endpoint", value_name = "URL", global = true)]
    pub graph_endpoint: Option<String>,

    /// Microsoft Entra authority host for tokens [default: from --azure.cloud,
    /// https://login.microsoftonline.com].
    #[arg(
        long = "azure.authority-host",
        env = "AZURE_AUTHORITY_HOST",
        value_name = "URL",
        global = true
    )]
    pub authority_host: Option<String>,

    /// National cloud: sets both the Graph endpoint and the authority host.
    #[arg(long = "azure.cloud", value_enum, default_value_t = Cloud::Public, global = true)]
    pub cloud: Cloud,

    /// PEM file of extra trusted root certificates for all outbound TLS (Graph and the token
    /// endpoint), for TLS-inspecting proxies.
    #[arg(long = "graph.ca-file", value_name = "FILE", global = true)]
    pub ca_file: Option<PathBuf>,

    /// Graph requests allowed per tenant in any 10-second window, shared by all its reports
    /// [default: 5, or 50 with --demo].
    #[arg(long = "graph.requests-per-10s", value_parser = clap::value_parser!(u32).range(1..), value_name = "N", global = true)]
    pub requests_per_10s: Option<u32>,

    /// Graph requests allowed in any 10-second window to all tenants of this process that share
    /// an app registration (client id), on top of each tenant's budget; Graph allows 122 per app
    /// across tenants [default: 120, divided by --total-shards].
    #[arg(long = "graph.app-requests-per-10s", value_parser = clap::value_parser!(u32).range(1..), value_name = "N", global = true)]
    pub app_requests_per_10s: Option<u32>,

    /// Number of replicas the tenants are spread over; each polls only its own share, chosen by
    /// rendezvous hashing of the tenant name. Needs --shard.
    #[arg(long = "total-shards", value_parser = clap::value_parser!(u32).range(1..), value_name = "M", requires = "shard", global = true)]
    pub total_shards: Option<u32>,

    /// This replica's shard, 0-based and below --total-shards; `auto` takes the number after the
    /// last `-` of POD_NAME (a StatefulSet pod's ordinal), else of the hostname.
    #[arg(
        long = "shard",
        value_name = "N|auto",
        requires = "total_shards",
        global = true
    )]
    pub shard: Option<String>,

    /// Timeout for each HTTP request to Graph.
    #[arg(long = "graph.timeout", default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION", global = true)]
    pub graph_timeout: Duration,

    /// Largest Graph response body read, in bytes after gzip decoding (16 MiB by default): a
    /// larger one fails its poll, so a misbehaving proxy or page cannot take the exporter's
    /// memory.
    #[arg(long = "graph.max-response-bytes", default_value_t = DEFAULT_MAX_RESPONSE_BYTES, value_parser = clap::value_parser!(u64).range(1..), value_name = "BYTES", global = true)]
    pub max_response_bytes: u64,

    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value_t = LogLevel::Info, global = true)]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt, global = true)]
    pub log_format: LogFormat,

    /// File that keeps the usage-event counters, their remembered event ids and admitted failure
    /// reasons across restarts; written atomically after every events poll. Without it the
    /// counters start at zero after each restart.
    #[arg(long = "state.file", value_name = "FILE", global = true)]
    pub state_file: Option<PathBuf>,

    /// Run against a simulated tenant served by a built-in fake Graph over HTTPS on loopback; no
    /// Azure account needed.
    #[arg(long = "demo", global = true)]
    pub demo: bool,

    /// What the demo tenant's sign-in events do: `steady`, or `spike` (SSPR reset failures jump
    /// to about 20 times their usual rate from about 60 s after start, for about 10 minutes).
    #[arg(long = "demo.scenario", value_enum, default_value_t = DemoScenario::Steady, requires = "demo", global = true)]
    pub demo_scenario: DemoScenario,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Preflight: get each tenant's token and make one cheap request per enabled report, then
    /// tell what works, what is refused and what to do. Exit code 0 when every tenant has a
    /// credential and every report is ok, served from a fallback, or retired.
    Check {
        /// `table` for people, `json` for scripts.
        #[arg(long = "output", value_enum, default_value_t = CheckOutput::Table)]
        output: CheckOutput,
    },
}

/// How `check` prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckOutput {
    Table,
    Json,
}

/// A storyline for the demo tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoScenario {
    /// A steady stream of SSPR and registration events, 20% of them failures.
    Steady,
    /// Steady, plus an SMS incident that makes the SSPR reset failure spike alert fire.
    Spike,
}

/// A Microsoft national cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cloud {
    /// Global Azure: graph.microsoft.com, login.microsoftonline.com.
    Public,
    /// US Government L4: graph.microsoft.us, login.microsoftonline.us.
    Usgov,
    /// US Government L5 (DoD): dod-graph.microsoft.us, login.microsoftonline.us.
    Usgovdod,
    /// Azure China (21Vianet): microsoftgraph.chinacloudapi.cn, login.chinacloudapi.cn.
    China,
}

impl Cloud {
    pub fn graph_endpoint(self) -> &'static str {
        match self {
            Cloud::Public => "https://graph.microsoft.com",
            Cloud::Usgov => "https://graph.microsoft.us",
            Cloud::Usgovdod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Public => "https://login.microsoftonline.com",
            Cloud::Usgov | Cloud::Usgovdod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_interface() {
        let cli = Cli::try_parse_from(["entra-authmethods-exporter"]).unwrap();
        assert_eq!(cli.listen_addresses, [":9929"]);
        assert_eq!(cli.max_requests, 40);
        assert_eq!(cli.max_connections, 512);
        assert_eq!(cli.header_read_timeout, Duration::from_secs(10));
        assert_eq!(cli.idle_timeout, Duration::from_secs(120));
        assert!(cli.web_config_file.is_none());
        assert_eq!(cli.telemetry_path, "/metrics");
        assert_eq!(cli.requests_per_10s, None);
        assert_eq!(cli.graph_timeout, Duration::from_secs(30));
        assert_eq!(cli.max_response_bytes, 16 * 1024 * 1024);
        assert_eq!(cli.cloud, Cloud::Public);
        assert_eq!(cli.log_format, LogFormat::Logfmt);
        assert!(!cli.demo);
    }

    #[test]
    fn dotted_flags_parse() {
        let cli = Cli::try_parse_from([
            "x",
            "--web.listen-address=127.0.0.1:1234",
            "--poll.interval=90s",
            "--azure.cloud=usgovdod",
            "--graph.requests-per-10s=3",
            "--log.format=json",
            "--demo",
        ])
        .unwrap();
        assert_eq!(cli.listen_addresses, ["127.0.0.1:1234"]);
        assert_eq!(cli.poll_interval, Some(Duration::from_secs(90)));
        assert_eq!(cli.cloud.graph_endpoint(), "https://dod-graph.microsoft.us");
        assert_eq!(cli.requests_per_10s, Some(3));
        assert!(cli.demo);
    }

    #[test]
    fn the_last_of_a_repeated_flag_wins() {
        let cli = Cli::try_parse_from(["x", "--log.level=debug", "--log.level=warn"]).unwrap();
        assert_eq!(cli.log_level, LogLevel::Warn);
    }

    #[test]
    fn listen_addresses_add_up_and_replace_the_default() {
        let cli = Cli::try_parse_from([
            "x",
            "--web.listen-address=127.0.0.1:1",
            "--web.listen-address=[::1]:2",
        ])
        .unwrap();
        assert_eq!(cli.listen_addresses, ["127.0.0.1:1", "[::1]:2"]);
    }

    #[test]
    fn zero_budget_is_rejected() {
        assert!(Cli::try_parse_from(["x", "--graph.requests-per-10s=0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--graph.max-response-bytes=0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--graph.app-requests-per-10s=0"]).is_err());
    }

    #[test]
    fn check_takes_the_exporters_flags_before_or_after_it() {
        let cli = Cli::try_parse_from([
            "x",
            "--config.file=a.yaml",
            "check",
            "--output=json",
            "--graph.requests-per-10s=3",
            "--demo",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Check {
                output: CheckOutput::Json
            })
        ));
        assert_eq!(cli.config_file, Some(PathBuf::from("a.yaml")));
        assert_eq!(cli.requests_per_10s, Some(3));
        assert!(cli.demo);
        let cli = Cli::try_parse_from(["x", "check"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Check {
                output: CheckOutput::Table
            })
        ));
        assert!(Cli::try_parse_from(["x", "--output=json"]).is_err());
        assert!(
            Cli::try_parse_from(["x", "--demo"])
                .unwrap()
                .command
                .is_none()
        );
    }

    #[test]
    fn shard_flags_come_together() {
        assert!(Cli::try_parse_from(["x", "--total-shards=3"]).is_err());
        assert!(Cli::try_parse_from(["x", "--shard=1"]).is_err());
        assert!(Cli::try_parse_from(["x", "--total-shards=0", "--shard=0"]).is_err());
        let cli = Cli::try_parse_from(["x", "--total-shards=3", "--shard=auto"]).unwrap();
        assert_eq!(cli.total_shards, Some(3));
        assert_eq!(cli.shard.as_deref(), Some("auto"));
    }
}
