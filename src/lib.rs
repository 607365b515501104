//! entra-authmethods-exporter: Microsoft Entra ID authentication-methods reports as Prometheus metrics.
//!
//! Data flows through the modules in this order:
//! [`config`] → [`auth`] → [`graph`] (paging, limiter, retry) → [`reports`] (typed rows → aggregates)
//! → [`snapshot`] (last good result per tenant and report) → [`collector`] (text format via
//! [`exposition`]) → [`server`] (secured by [`web_config`]).
//! [`poller`] runs one poll loop per tenant; [`shard`] picks the tenants of this replica;
//! [`state`] keeps the usage counters across restarts (`--state.file`); [`check`] is the
//! preflight subcommand. The simulated Graph behind `--demo` and the tests is its own crate,
//! `entra-fake-graph` (crates/fake-graph), which knows nothing of this one; the `demo` feature
//! (on by default) links it in.

pub mod app;
pub mod auth;
pub mod check;
pub mod cli;
pub mod collector;
pub mod config;
pub mod exposition;
pub mod graph;
pub mod labels;
pub mod poller;
pub mod reports;
pub mod server;
pub mod shard;
pub mod snapshot;
pub mod state;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod web_config;

/// Errors that stop the exporter from starting. Poll-time errors are [`graph::GraphError`] and
/// never stop the process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Strength(#[from] reports::strength::StrengthError),
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

/// An error and its causes on one line, `outer: inner: ...`, skipping causes whose text the
/// outer message already repeats (the Azure SDK embeds its inner message).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_chain_joins_causes_once_on_one_line() {
        let io = std::io::Error::other("connection\nrefused");
        let outer = crate::config::ConfigError::Read {
            path: "/x".into(),
            source: io,
        };
        assert_eq!(crate::error_chain(&outer), "reading /x: connection refused");
    }
}
