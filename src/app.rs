//! Wiring: configuration → credentials → Graph clients → poll loops and the HTTP server.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::auth::Credential;
use crate::cli::Cli;
use crate::config::Config;
use crate::graph::{self, BUDGET_WINDOW, GraphClient, Limiter};
use crate::poller::{Startup, Tenant, Verdict};
use crate::reports::{self, shared::strength::StrengthTable};
use crate::scrape_cache::ScrapeCache;
use crate::self_metrics::Metrics;
use crate::server::{self, Limits, ServerContext, TenantInfo, Timeouts};
use crate::snapshot::Store;
use crate::state::{StateFile, Wanted};
use crate::web_config::{self, WebConfig, WebConfigHandle};
use crate::{auth, config, poller, state};
#[cfg(feature = "demo")]
use {
    crate::cli::DemoScenario,
    crate::config::{CredentialConfig, GroupConfig, TenantConfig},
    entra_fake_graph::{FakeGraph, FakeGraphOptions, Scenario},
    std::time::Duration,
};

/// The in-process fake Graph behind `--demo`; a build without the `demo` feature has none.
#[cfg(feature = "demo")]
pub type DemoTenant = FakeGraph;
#[cfg(not(feature = "demo"))]
pub type DemoTenant = std::convert::Infallible;

/// Errors that stop the exporter from starting. Poll-time errors are [`graph::GraphError`] and
/// never stop the process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Strength(#[from] reports::shared::strength::StrengthError),
    /// The token endpoint refused every tenant: the first refusal, out of `tenants`.
    #[error("credential for tenant {tenant}: {source}{}", refused_too(*tenants))]
    Refused {
        tenant: String,
        #[source]
        source: Box<graph::GraphError>,
        tenants: usize,
    },
    #[error("HTTP client: {0}")]
    HttpClient(#[from] graph::GraphError),
    #[error(transparent)]
    Listen(#[from] server::ListenError),
    #[error(transparent)]
    WebConfig(#[from] web_config::WebConfigError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[cfg(feature = "demo")]
    #[error("demo tenant: {0}")]
    Demo(#[from] entra_fake_graph::FakeError),
    #[cfg(not(feature = "demo"))]
    #[error(
        "--demo: this build has no demo tenant (built without the `demo` feature); build with default features to use it"
    )]
    DemoNotBuilt,
    #[error("{0}")]
    State(#[from] state::StateError),
}

fn refused_too(tenants: usize) -> String {
    match tenants {
        0 | 1 => String::new(),
        n => format!(" (the token endpoint refused all {n} tenants; each is logged above)"),
    }
}

/// The configuration the exporter and `check` run with: the demo tenant in place with `--demo`,
/// and only the tenants of this replica's shard.
pub struct Prepared {
    pub config: Config,
    pub strength: Arc<StrengthTable>,
    /// The in-process fake Graph behind `--demo`; it serves as long as this lives.
    pub demo: Option<DemoTenant>,
}

/// Loads the configuration, starts the demo's fake Graph if asked, and keeps this shard's
/// tenants.
pub async fn prepare(cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Prepared, Error> {
    // The demo tenant is a real HTTPS server on loopback, reached through the same code path
    // as Microsoft's.
    let demo = match cli.demo {
        #[cfg(feature = "demo")]
        true => Some(FakeGraph::start(demo_options(cli.demo_scenario)).await?),
        #[cfg(not(feature = "demo"))]
        true => return Err(Error::DemoNotBuilt),
        false => None,
    };
    let mut config = Config::load(cli, env, &reports::names())?;
    let strength = Arc::new(StrengthTable::with_overrides(&config.strength_classes)?);
    #[cfg(feature = "demo")]
    if let Some(fake) = &demo {
        use_demo_tenant(&mut config, fake)?;
        // The fake does not throttle: at Graph's 5 requests per 10 s the demo would take a
        // minute to show every report. A budget given on the command line, even 5, is kept.
        if cli.requests_per_10s.is_none() {
            config.graph.requests_per_10s = DEMO_REQUESTS_PER_10S;
            info!(
                requests_per_10s = DEMO_REQUESTS_PER_10S,
                "demo: Graph request budget raised"
            );
        }
    }
    let shard = config.shard;
    let configured = config.tenants.len();
    config.tenants.retain(|tenant| shard.owns(&tenant.name));
    if shard.total > 1 {
        info!(
            shard = shard.index,
            total_shards = shard.total,
            tenants = config.tenants.len(),
            configured,
            "polling the tenants of this shard"
        );
        if config.tenants.is_empty() {
            warn!(
                "this shard owns none of the configured tenants: are there more shards than tenants?"
            );
        }
    }
    Ok(Prepared {
        config,
        strength,
        demo,
    })
}

/// Every tenant's credential and Graph client. A credential that cannot be set up (a missing
/// secret file) fails at its tenant's token requests, not here.
pub fn build_tenants(config: &Config, http: &reqwest::Client, metrics: &Metrics) -> Vec<Tenant> {
    let mut tenants = Vec::with_capacity(config.tenants.len());
    for (tenant, app_limiter) in config.tenants.iter().zip(app_budgets(config)) {
        let inner = auth::credential(tenant, &config.graph, http.clone());
        let up = metrics
            .credential_up
            .with_label_values(&[tenant.name.as_str()]);
        let credential = Arc::new(Credential::new(&tenant.name, inner, up));
        let graph = GraphClient::new(
            &tenant.name,
            credential.clone(),
            http.clone(),
            &config.graph,
            metrics.graph_requests.clone(),
            metrics.report_rows_skipped.clone(),
            app_limiter,
        )
        .with_max_pages(tenant.max_pages());
        tenants.push(Tenant {
            config: tenant.clone(),
            credential,
            graph: Arc::new(graph),
        });
    }
    tenants
}

/// Each tenant's app budget, in the order of the tenants: one limiter per app registration
/// (client id), shared by its tenants, since Graph counts 122 requests per 10 s per app across
/// all tenants.
fn app_budgets(config: &Config) -> Vec<Arc<Limiter>> {
    let mut by_app: HashMap<Option<&str>, Arc<Limiter>> = HashMap::new();
    config
        .tenants
        .iter()
        .map(|tenant| {
            by_app
                .entry(tenant.credential.client_id())
                .or_insert_with(|| {
                    Arc::new(Limiter::new(
                        config.graph.app_requests_per_10s,
                        BUDGET_WINDOW,
                    ))
                })
                .clone()
        })
        .collect()
}

/// Runs the exporter until `shutdown` is cancelled. Errors are start-up errors only, and the
/// token endpoint refusing every tenant: once one tenant works (or may work after a passing
/// failure), Graph failures are reported through metrics and logs, never by returning.
pub async fn run(
    cli: Cli,
    env: &dyn Fn(&str) -> Option<String>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let Prepared {
        config,
        strength,
        demo: _demo,
    } = prepare(&cli, env).await?;
    let web_config = match &config.web.config_file {
        Some(path) => web_config::load(path)?,
        None => WebConfig::default(),
    };
    let web_config = WebConfigHandle::new(web_config);

    let store = Arc::new(Store::new());
    let metrics = Metrics::new()?;
    let state_file = match &cli.state_file {
        Some(path) => Some(StateFile::open(
            path,
            &state_wanted(&config),
            metrics.state_writes.clone(),
        )?),
        None => None,
    };
    let shard = config.shard;
    metrics
        .shard_info
        .with_label_values(&[shard.index.to_string(), shard.total.to_string()])
        .set(1);
    metrics.shard_tenants.set(config.tenants.len() as i64);
    let http = graph::http_client(&config.graph)?;
    let tenants = build_tenants(&config, &http, &metrics);

    server::prepare_descriptor_limit(config.web.max_connections);
    let listeners = config
        .web
        .listen_addresses
        .iter()
        .map(server::bind)
        .collect::<Result<Vec<_>, _>>()?;
    let tls = web_config.current().tls.is_some();
    for listener in &listeners {
        if let Ok(address) = listener.local_addr() {
            info!(address = %address, tls, telemetry_path = %config.telemetry_path, tenants = tenants.len(), demo = cli.demo, "listening");
        }
    }
    if let Some(path) = &config.web.config_file {
        tokio::spawn(web_config::watch(
            path.clone(),
            web_config.clone(),
            metrics.web_config_reload_successful.clone(),
            shutdown.clone(),
        ));
    }

    let tenant_infos = tenants
        .iter()
        .map(|tenant| TenantInfo {
            name: tenant.config.name.clone(),
            tenant_id: tenant.config.tenant_id.clone(),
            credential: tenant.credential.clone(),
        })
        .collect();
    // Every tenant gets its first token on its own (at most 16 requests at once), so a tenant
    // that is refused or unreachable holds up no other.
    let (startup, first_tokens) = Startup::new();
    let tenant_count = tenants.len();
    for tenant in &tenants {
        store.expect_tenant(&tenant.config.name);
    }
    let mut tenant_loops = JoinSet::new();
    for tenant in tenants {
        tenant_loops.spawn(poller::run_tenant(
            tenant,
            startup.clone(),
            store.clone(),
            config.event_label_limits,
            strength.clone(),
            state_file.clone(),
            shutdown.clone(),
        ));
    }

    let context = Arc::new(ServerContext {
        scrape_cache: ScrapeCache::new(store.clone(), metrics)?,
        store,
        telemetry_path: config.telemetry_path.clone(),
        tenants: tenant_infos,
        demo: cli.demo,
        web_config,
        limits: Limits {
            max_requests: config.web.max_requests,
            max_connections: config.web.max_connections,
            timeouts: Timeouts {
                header_read: config.web.header_read_timeout,
                idle: config.web.idle_timeout,
            },
        },
    });
    let server = tokio::spawn(server::serve(listeners, context, shutdown.clone()));
    // A single wrong secret still fails fast: the process ends only if the token endpoint
    // refuses every tenant.
    let result = match Startup::verdict(first_tokens, tenant_count, &shutdown).await {
        Verdict::AllRefused {
            tenant,
            error,
            tenants,
        } => {
            shutdown.cancel();
            Err(Error::Refused {
                tenant,
                source: Box::new(error),
                tenants,
            })
        }
        Verdict::Run | Verdict::Stopped => Ok(()),
    };
    let _ = server.await;
    while tenant_loops.join_next().await.is_some() {}
    if result.is_ok() {
        info!("stopped");
    }
    result
}

/// The tenants and reports whose state `--state.file` keeps: every other entry is dropped, so
/// a shard keeps only its own tenants.
fn state_wanted(config: &Config) -> Vec<Wanted> {
    config
        .tenants
        .iter()
        .map(|tenant| Wanted {
            tenant: tenant.name.clone(),
            tenant_id: tenant.tenant_id.clone(),
            reports: reports::persisted()
                .filter(|spec| {
                    tenant
                        .report_settings(spec.name, spec.default_interval)
                        .enabled
                })
                .map(|spec| spec.name)
                .collect(),
        })
        .collect()
}

/// The demo's budget when `--graph.requests-per-10s` is not given.
#[cfg(feature = "demo")]
const DEMO_REQUESTS_PER_10S: u32 = 50;

#[cfg(feature = "demo")]
/// The demo's poll interval when `--poll.interval` is not given: short enough that dashboards
/// move within minutes of `docker compose up`.
const DEMO_POLL_INTERVAL: Duration = Duration::from_secs(30);

#[cfg(feature = "demo")]
fn demo_options(scenario: DemoScenario) -> FakeGraphOptions {
    FakeGraphOptions {
        scenario: match scenario {
            DemoScenario::Steady => Scenario::Steady,
            DemoScenario::Spike => Scenario::Spike,
        },
        ..FakeGraphOptions::default()
    }
}

#[cfg(feature = "demo")]
/// Points the configuration at the in-process fake: its URL for Graph and the authority, its
/// CA as the extra trusted root, and its app registration as the one tenant.
fn use_demo_tenant(config: &mut Config, fake: &FakeGraph) -> Result<(), Error> {
    let base = url::Url::parse(&fake.base_url())
        .map_err(|err| crate::config::ConfigError::Invalid(format!("demo server URL: {err}")))?;
    config.graph.endpoint = base.clone();
    config.graph.authority_host = base;
    config.graph.extra_roots_pem = Some(fake.ca_pem().as_bytes().to_vec());
    config.tenants = vec![TenantConfig {
        name: "demo".to_owned(),
        tenant_id: fake.tenant_id().to_owned(),
        credential: CredentialConfig::ClientSecret {
            client_id: fake.client_id().to_owned(),
            secret: fake.client_secret().to_owned().into(),
        },
        reports: config.reports.clone(),
        poll_interval: config.poll_interval.or(Some(DEMO_POLL_INTERVAL)),
        // Every group the fake knows, one of them deleted (answered 404) to show the warning.
        groups: fake
            .groups()
            .iter()
            .map(|group| GroupConfig {
                id: group.id.clone(),
                name: group.name.clone(),
            })
            .collect(),
    }];
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Write;

    #[cfg(feature = "demo")]
    #[tokio::test]
    async fn the_demo_tenant_keeps_the_global_report_settings_and_poll_interval() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"reports:\n  credentialUsageSummary: {enabled: false}\n")
            .unwrap();
        let cli = Cli::try_parse_from([
            "x",
            "--demo",
            "--poll.interval=30s",
            "--config.file",
            file.path().to_str().unwrap(),
        ])
        .unwrap();
        let mut config = Config::load(&cli, &|_| None, &reports::names()).unwrap();
        let fake = FakeGraph::start(FakeGraphOptions::default()).await.unwrap();
        use_demo_tenant(&mut config, &fake).unwrap();
        let tenant = &config.tenants[0];
        assert_eq!(tenant.tenant_id, fake.tenant_id());
        assert!(
            !tenant
                .report_settings("credentialUsageSummary", Duration::from_secs(600))
                .enabled
        );
        assert_eq!(
            tenant
                .report_settings("userRegistrationDetails", Duration::from_secs(3600))
                .interval,
            Duration::from_secs(30)
        );
    }

    /// The link between the specs and the fake Graph (which cannot name the specs): each
    /// report's probe is answered 200 by the fake the demo and the tests run against.
    #[cfg(feature = "demo")]
    #[tokio::test]
    async fn the_fake_answers_every_reports_probe() {
        let cli = Cli::try_parse_from(["x", "--demo"]).unwrap();
        let mut config = Config::load(&cli, &|_| None, &reports::names()).unwrap();
        let options = FakeGraphOptions {
            record_requests: true,
            ..FakeGraphOptions::default()
        };
        let fake = FakeGraph::start(options).await.unwrap();
        use_demo_tenant(&mut config, &fake).unwrap();
        config.graph.requests_per_10s = DEMO_REQUESTS_PER_10S;
        let http = graph::http_client(&config.graph).unwrap();
        let tenant = build_tenants(&config, &http, &Metrics::new().unwrap()).remove(0);
        for spec in reports::ALL {
            let answer = tenant
                .graph
                .get::<serde::de::IgnoredAny>(spec.name, spec.probe)
                .await;
            let statuses: Vec<u16> = fake
                .request_log()
                .iter()
                .filter(|request| request.target == spec.probe)
                .map(|request| request.status)
                .collect();
            assert_eq!(statuses, [200], "{}: {answer:?}", spec.name);
        }
    }

    #[cfg(feature = "demo")]
    #[tokio::test]
    async fn the_demo_raises_the_request_budget_only_when_none_is_given() {
        let budget = |args: &'static [&'static str]| async move {
            let cli = Cli::try_parse_from(args).unwrap();
            // Without the demo, a tenant from the environment.
            let env = |name: &str| name.starts_with("AZURE_").then(|| "t".to_owned());
            let prepared = prepare(&cli, &env).await.unwrap();
            prepared.config.graph.requests_per_10s
        };
        assert_eq!(budget(&["x", "--demo"]).await, DEMO_REQUESTS_PER_10S);
        // 5 is also the default without the demo: given, it must still be kept.
        assert_eq!(
            budget(&["x", "--demo", "--graph.requests-per-10s=5"]).await,
            5
        );
        assert_eq!(
            budget(&["x", "--demo", "--graph.requests-per-10s=7"]).await,
            7
        );
        assert_eq!(
            budget(&["x"]).await,
            crate::config::DEFAULT_REQUESTS_PER_10S
        );
    }

    #[cfg(feature = "demo")]
    #[tokio::test]
    async fn the_demo_polls_every_30s_unless_told_otherwise() {
        let cli = Cli::try_parse_from(["x", "--demo"]).unwrap();
        let mut config = Config::load(&cli, &|_| None, &reports::names()).unwrap();
        let fake = FakeGraph::start(FakeGraphOptions::default()).await.unwrap();
        use_demo_tenant(&mut config, &fake).unwrap();
        for report in reports::names() {
            let settings = config.tenants[0].report_settings(report, Duration::from_secs(3600));
            assert_eq!(settings.interval, DEMO_POLL_INTERVAL, "{report}");
        }
    }

    #[test]
    fn tenants_of_one_app_registration_share_its_budget() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(
            b"tenants:\n\
              - {name: a, tenant_id: t1, client_id: app-1, client_secret: s}\n\
              - {name: b, tenant_id: t2, client_id: app-2, client_secret: s}\n\
              - {name: c, tenant_id: t3, client_id: app-1, client_secret: s}\n\
              - {name: d, tenant_id: t4, managed_identity: true}\n",
        )
        .unwrap();
        let cli =
            Cli::try_parse_from(["x", "--config.file", file.path().to_str().unwrap()]).unwrap();
        let config = Config::load(&cli, &|_| None, &reports::names()).unwrap();
        let budgets = app_budgets(&config);
        assert_eq!(budgets.len(), 4);
        assert!(Arc::ptr_eq(&budgets[0], &budgets[2]), "same client id");
        assert!(!Arc::ptr_eq(&budgets[0], &budgets[1]));
        assert!(!Arc::ptr_eq(&budgets[0], &budgets[3]));
        assert!(!Arc::ptr_eq(&budgets[1], &budgets[3]));
    }

    #[cfg(not(feature = "demo"))]
    #[tokio::test]
    async fn a_build_without_the_demo_refuses_the_demo_flag() {
        let cli = Cli::try_parse_from(["x", "--demo"]).unwrap();
        let Err(err) = prepare(&cli, &|_| None).await else {
            panic!("--demo accepted by a build without the demo");
        };
        assert!(matches!(err, Error::DemoNotBuilt), "{err}");
        assert!(err.to_string().starts_with("--demo: "), "{err}");
    }

    #[cfg(feature = "demo")]
    #[test]
    fn the_scenario_flag_needs_the_demo_and_picks_the_fake_scenario() {
        assert!(Cli::try_parse_from(["x", "--demo.scenario=spike"]).is_err());
        let cli = Cli::try_parse_from(["x", "--demo", "--demo.scenario=spike"]).unwrap();
        assert_eq!(demo_options(cli.demo_scenario).scenario, Scenario::Spike);
        let cli = Cli::try_parse_from(["x", "--demo"]).unwrap();
        assert_eq!(demo_options(cli.demo_scenario).scenario, Scenario::Steady);
    }
}
