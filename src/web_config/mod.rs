//! `--web.config.file`: TLS, client certificates, basic auth and extra response headers, in the
//! Prometheus exporter-toolkit format, read again whenever the file or a file it names changes.
//! A reload may add or change protection but never remove it (see [`check_reload`]), and every
//! connection opened under a replaced configuration is closed (see [`WebConfigHandle`]).

mod basic_auth;
mod error;
mod file;
mod loaded;
mod reload;
#[cfg(test)]
mod tests;
mod tls;

pub use basic_auth::{AUTHENTICATE, BasicAuth};
pub use error::WebConfigError;
pub use file::{load, parse};
pub use loaded::{ClientCertificates, WebConfig, WebConfigHandle};
pub use reload::{RELOAD_CHECK, check_reload, watch};
