//! Logging: logfmt or JSON lines on stderr, filtered by `--log.level` (or `RUST_LOG` when set,
//! for per-module detail while debugging).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::{LogFormat, LogLevel};

pub fn init(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    };
    // Libraries speak at warn and above only: the Azure SDK logs every token request at info,
    // and the TLS verifier logs each failed handshake at error, which our own error already
    // reports with its cause.
    let directives =
        format!("warn,entra_authmethods_exporter={level},rustls_platform_verifier=off");
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(directives));
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (as in tests) keeps the first subscriber; that is fine.
    let _ = match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .with_span_path(false)
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}
