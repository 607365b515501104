//! The integration tests: one binary, one module per area, so that tests that mostly wait (on
//! the exporter's polls, a real Prometheus, the soak) overlap instead of running binary after
//! binary. `.cargo/config.toml` sets how many run at once. Run one area with
//! `cargo test --test it soak::`.

mod common;

mod bad_rows;
mod check;
mod dashboards;
mod deploy;
mod docs;
mod exporter;
mod paging;
mod policy;
mod prometheus;
mod rules;
mod server;
mod sharding;
mod soak;
mod startup;
mod state;
mod strength;
mod structure;
mod successors;
mod tenants;
mod tokens;
mod web_config;
