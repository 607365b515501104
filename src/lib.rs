//! entra-authmethods-exporter: Microsoft Entra ID authentication-methods reports as Prometheus metrics.
//!
//! Data flows through the modules in this order:
//! [`config`] → [`auth`] → [`graph`] (paging, limiter, retry) → [`reports`] (typed rows → aggregates)
//! → [`snapshot`] (last good result per tenant and report) → [`scrape_cache`] (text format via
//! [`exposition`]; the exporter's own metrics are in [`self_metrics`]) → [`server`] (secured by
//! [`web_config`]).
//! [`poller`] runs one poll loop per tenant; [`shard`] picks the tenants of this replica;
//! [`state`] keeps the usage counters across restarts (`--state.file`); [`check`] is the
//! preflight subcommand. The simulated Graph behind `--demo` and the tests is its own crate,
//! `entra-fake-graph` (crates/fake-graph), which knows nothing of this one; the `demo` feature
//! (on by default) links it in.

pub mod app;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod errors;
pub mod exposition;
pub mod graph;
pub mod labels;
pub mod poller;
pub mod reports;
pub mod scrape_cache;
pub mod self_metrics;
pub mod server;
pub mod shard;
pub mod snapshot;
pub mod state;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod web_config;
