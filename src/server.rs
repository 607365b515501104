//! The HTTP server: `/` (landing page), the telemetry path, `/healthz` and `/readyz`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::snapshot::Store;

/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A tenant as shown on the landing page: its label and its directory id, nothing secret.
#[derive(Debug, Clone)]
pub struct TenantInfo {
    pub name: String,
    pub tenant_id: String,
}

pub struct AppState {
    pub store: Arc<Store>,
    pub registry: Registry,
    pub telemetry_path: String,
    pub tenants: Vec<TenantInfo>,
    pub demo: bool,
}

/// Serves until `shutdown` is cancelled, then lets open requests finish.
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                warn!(error = %err, "accepting a connection failed");
                continue;
            }
        };
        let state = state.clone();
        let service = service_fn(move |request| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(&request, &state)) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                debug!(error = %err, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("connections still open after the grace period");
    }
}

fn route(request: &Request<Incoming>, state: &AppState) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match request.uri().path() {
        path if path == state.telemetry_path => metrics(&state.registry),
        "/" => html(landing_page(state)),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.store.ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: some reports have not finished their first poll\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn metrics(registry: &Registry) -> Response<Full<Bytes>> {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    if let Err(err) = encoder.encode(&registry.gather(), &mut body) {
        warn!(error = %err, "encoding metrics failed");
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding metrics failed: {err}\n"),
        );
    }
    let mut response = Response::new(Full::new(Bytes::from(body)));
    if let Ok(value) = HeaderValue::from_str(encoder.format_type()) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn html(body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn landing_page(state: &AppState) -> String {
    let mut page = String::with_capacity(4096);
    let path = escape(&state.telemetry_path);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Entra authentication-methods exporter</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head><body>\
         <h1>Entra authentication-methods exporter</h1>\
         <p>Version {version} (revision {revision}){demo}</p>\
         <p><a href=\"{path}\">Metrics</a> · <a href=\"/healthz\">Health</a> · <a href=\"/readyz\">Readiness</a></p>\
         <h2>Tenants</h2><table><tr><th>tenant</th><th>tenant id</th></tr>",
        version = env!("CARGO_PKG_VERSION"),
        revision = escape(crate::collector::revision()),
        demo = if state.demo {
            " — <strong>demo mode</strong>: simulated tenant, no Azure account"
        } else {
            ""
        },
    );
    for tenant in &state.tenants {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&tenant.name),
            escape(&tenant.tenant_id)
        );
    }
    page.push_str(
        "</table><h2>Reports</h2><table><tr><th>tenant</th><th>report</th><th>state</th>\
         <th>interval</th><th>last success</th><th>last poll took</th><th>last error</th></tr>",
    );
    for (key, report) in state.store.states() {
        let status = if report.settings.enabled {
            report.status.as_str()
        } else {
            "disabled"
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&key.tenant),
            escape(key.report),
            status,
            humantime::format_duration(report.settings.interval),
            report
                .last_success
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_else(|| "never".to_owned()),
            report
                .last_duration
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_default(),
            escape(report.last_error.as_deref().unwrap_or_default()),
        );
    }
    let _ = writeln!(
        page,
        "</table><p>Page rendered {}.</p></body></html>",
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    page
}

fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_safe(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_html() {
        let escaped = escape(r#"<script>"x"&'y'</script>"#);
        assert!(!escaped.contains('<') && !escaped.contains('"') && !escaped.contains('\''));
    }
}
