//! The HTTP server: `/` (landing page), the telemetry path, `/healthz` and `/readyz`, over
//! plain HTTP or TLS, with optional basic auth (see [`crate::web_config`]) and limits on what
//! each client may hold (see [`connections`]). A connection is served only under the web config
//! it was opened under: when a reload replaces it, the connection is closed once its current
//! response is sent, and a request that arrives meanwhile is not answered.

mod connections;
mod listen;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, VARY,
    WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

pub use connections::{AcceptBackoff, Timeouts};
pub use listen::{ListenError, bind};

use crate::auth::Credential;
use crate::exposition::CONTENT_TYPE as METRICS_CONTENT_TYPE;
use crate::scrape_cache::ScrapeCache;
use crate::snapshot::Store;
use crate::web_config::{self, BasicAuth, WebConfig, WebConfigHandle};
use connections::{Admitted, Connection, Connections, RequestGuard, Tracked};

/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Largest request head (request line and headers) read; larger ones get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Descriptors kept free for Graph connections, files and the demo's fake Graph.
const RESERVED_DESCRIPTORS: u64 = 64;

/// A tenant as shown on the landing page: its label, its directory id and how its token
/// requests go, nothing secret.
#[derive(Debug, Clone)]
pub struct TenantInfo {
    pub name: String,
    pub tenant_id: String,
    pub credential: Arc<Credential>,
}

/// What clients may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Telemetry requests served at once; 0 means no limit.
    pub max_requests: usize,
    pub max_connections: usize,
    pub timeouts: Timeouts,
}

pub struct ServerContext {
    pub store: Arc<Store>,
    pub scrape_cache: ScrapeCache,
    pub telemetry_path: String,
    pub tenants: Vec<TenantInfo>,
    pub demo: bool,
    pub web_config: WebConfigHandle,
    pub limits: Limits,
}

/// Everything the request handlers share.
struct Shared {
    app: Arc<ServerContext>,
    /// `--web.max-requests`, or `None` without a limit.
    telemetry_slots: Option<Arc<Semaphore>>,
    /// bcrypt checks run one at a time, as in exporter-toolkit: each costs tens of
    /// milliseconds of CPU, and a flood of wrong passwords must not take every core.
    bcrypt: Semaphore,
}

/// Raises the soft descriptor limit to the hard one, as Go programs do at start, and warns when
/// the connection cap cannot be reached within it.
pub fn prepare_descriptor_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < max_connections as u64 + RESERVED_DESCRIPTORS => warn!(
            descriptor_limit = limit,
            max_connections,
            "the file descriptor limit is below --web.max-connections plus what polling needs; \
             accepting will pause while descriptors run out (raise LimitNOFILE / ulimit -n, or \
             lower --web.max-connections)"
        ),
        Ok(limit) => debug!(descriptor_limit = limit, "file descriptor limit"),
        Err(err) => debug!(error = %err, "the file descriptor limit could not be read"),
    }
}

/// Serves every listener until `shutdown` is cancelled, then lets open requests finish.
pub async fn serve(
    listeners: Vec<TcpListener>,
    app: Arc<ServerContext>,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        telemetry_slots: (app.limits.max_requests > 0)
            .then(|| Arc::new(Semaphore::new(app.limits.max_requests))),
        bcrypt: Semaphore::new(1),
        app,
    });
    let connections = Connections::new(shared.app.limits.max_connections);
    let tracker = TaskTracker::new();
    let mut accept_loops = tokio::task::JoinSet::new();
    for listener in listeners {
        accept_loops.spawn(accept_loop(
            listener,
            shared.clone(),
            connections.clone(),
            tracker.clone(),
            shutdown.clone(),
        ));
    }
    while accept_loops.join_next().await.is_some() {}
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        debug!("connections still open after the grace period");
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    connections: Arc<Connections>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff.succeeded();
                stream
            }
            Err(err) => {
                if connections::out_of_descriptors(&err) {
                    connections.close_idlest();
                }
                let delay = backoff.failed("web server", &err);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
                continue;
            }
        };
        let admitted = tokio::select! {
            admitted = connections.admit() => admitted,
            () = shutdown.cancelled() => return,
        };
        let Some(admitted) = admitted else { return };
        // Responses are written in one go; Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        tracker.spawn(serve_connection(
            stream,
            admitted,
            shared.clone(),
            shutdown.clone(),
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    admitted: Admitted,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let connection = admitted.connection.clone();
    let timeouts = shared.app.limits.timeouts;
    let io = Tracked::new(stream, connection.clone());
    let (web, replaced) = shared.app.web_config.subscribe();
    let work = async {
        match &web.tls {
            None => drive(io, &connection, &shared, &web, replaced, &shutdown).await,
            Some(tls) => {
                // The handshake counts against the header-read timeout like the headers would.
                let handshake = TlsAcceptor::from(tls.clone()).accept(io);
                match tokio::time::timeout(timeouts.header_read, handshake).await {
                    Ok(Ok(stream)) => {
                        drive(stream, &connection, &shared, &web, replaced, &shutdown).await
                    }
                    Ok(Err(err)) => debug!(error = %err, "TLS handshake failed"),
                    Err(_) => debug!("TLS handshake timed out"),
                }
            }
        }
    };
    tokio::select! {
        () = work => {}
        () = connection.expired(timeouts) => debug!("closing an idle or slow connection"),
        () = connection.closed.cancelled() => debug!("closing the connection idle the longest to make room"),
    }
    drop(admitted);
}

/// Serves HTTP/1 on one connection, under `web`, until it ends; on shutdown or when `web` is
/// replaced, lets the current request finish and closes.
async fn drive<T>(
    io: T,
    connection: &Arc<Connection>,
    shared: &Arc<Shared>,
    web: &Arc<WebConfig>,
    mut replaced: watch::Receiver<Arc<WebConfig>>,
    shutdown: &CancellationToken,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let shared = shared.clone();
        let connection = connection.clone();
        let web = web.clone();
        service_fn(move |request| {
            let guard = connection.request_started();
            let shared = shared.clone();
            let web = web.clone();
            async move { handle(request, &shared, &web, guard).await }
        })
    };
    let conn = http1::Builder::new()
        // Our own watchdog enforces the header-read and idle timeouts (see `connections`).
        .header_read_timeout(None)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_HEADER_BYTES + 8 * 1024)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        Ok(()) = replaced.changed() => {
            debug!("closing a connection opened under a replaced web config");
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        debug!(error = %err, "connection ended with an error");
    }
}

/// A request on a connection opened under a web config that a reload has replaced. As the
/// service's error, it makes hyper close the connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("the web config this connection was opened under has been replaced")]
struct Superseded;

async fn handle(
    request: Request<Incoming>,
    shared: &Shared,
    web: &Arc<WebConfig>,
    guard: RequestGuard,
) -> Result<Response<Body>, Superseded> {
    let in_force = || {
        shared
            .app
            .web_config
            .in_force(web)
            .then_some(())
            .ok_or(Superseded)
    };
    in_force()?;
    let authorized = authorize(&request, web, shared).await;
    // A reload may land while a password is being checked.
    in_force()?;
    let mut response = match authorized {
        Ok(()) => route(&request, shared),
        Err(response) => response,
    };
    for (name, value) in &web.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response.body_mut().request = Some(guard);
    Ok(response)
}

/// With `basic_auth_users`, every path needs a known user and the right password.
async fn authorize(
    request: &Request<Incoming>,
    web: &Arc<WebConfig>,
    shared: &Shared,
) -> Result<(), Response<Body>> {
    let Some(auth) = &web.basic_auth else {
        return Ok(());
    };
    let unauthorized = || {
        let mut response = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(web_config::AUTHENTICATE),
        );
        response
    };
    let Some((user, password)) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(BasicAuth::credentials)
    else {
        return Err(unauthorized());
    };
    if auth.remembered(&user, &password) {
        return Ok(());
    }
    let Ok(_turn) = shared.bcrypt.acquire().await else {
        return Err(unauthorized());
    };
    let web = web.clone();
    let verified = tokio::task::spawn_blocking(move || {
        web.basic_auth
            .as_ref()
            .is_some_and(|auth| auth.verify(&user, &password))
    })
    .await
    .unwrap_or(false);
    if verified {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

fn route(request: &Request<Incoming>, shared: &Shared) -> Response<Body> {
    let app = &shared.app;
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        path if path == app.telemetry_path => metrics(request.headers(), shared),
        "/" => html(landing_page(app)),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if app.store.ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no tenant has a token yet, or reports of tenants with one have not finished their first poll\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn metrics(headers: &HeaderMap, shared: &Shared) -> Response<Body> {
    let slot = match &shared.telemetry_slots {
        Some(slots) => match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many concurrent telemetry requests (--web.max-requests); try again\n",
                );
            }
        },
        None => None,
    };
    let gzip = headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(accepts_gzip);
    let scrape = match shared.app.scrape_cache.scrape(gzip) {
        Ok(scrape) => scrape,
        Err(err) => {
            warn!(error = %err, "encoding metrics failed");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("encoding metrics failed: {err}\n"),
            );
        }
    };
    let mut response = Response::new(Body::new(scrape.chunks));
    response.body_mut().telemetry_slot = slot;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// True if an `Accept-Encoding` value accepts gzip: listed (or `*`) with a non-zero quality.
fn accepts_gzip(value: &str) -> bool {
    let mut wildcard = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next_back()
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => return quality > 0.0,
            "*" => wildcard = Some(quality > 0.0),
            _ => {}
        }
    }
    wildcard.unwrap_or(false)
}

/// A response body: chunks of bytes sent in order, with an exact length (so hyper sends
/// `Content-Length`). The request counts as in progress, and holds its telemetry slot, until
/// hyper has written the last chunk to the socket: that chunk carries them and drops them
/// when hyper lets go of it.
pub struct Body {
    chunks: VecDeque<Bytes>,
    request: Option<RequestGuard>,
    telemetry_slot: Option<OwnedSemaphorePermit>,
}

/// The last chunk of a body, with what it keeps alive.
struct LastChunk {
    bytes: Bytes,
    _request: Option<RequestGuard>,
    _telemetry_slot: Option<OwnedSemaphorePermit>,
}

impl AsRef<[u8]> for LastChunk {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Body {
    fn new(chunks: Vec<Bytes>) -> Self {
        Self {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            request: None,
            telemetry_slot: None,
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(mut chunk) = self.chunks.pop_front() else {
            return Poll::Ready(None);
        };
        if self.chunks.is_empty() {
            chunk = Bytes::from_owner(LastChunk {
                bytes: chunk,
                _request: self.request.take(),
                _telemetry_slot: self.telemetry_slot.take(),
            });
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Body::new(vec![Bytes::from(body.to_owned())]));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn html(body: String) -> Response<Body> {
    let mut response = Response::new(Body::new(vec![Bytes::from(body)]));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn landing_page(context: &ServerContext) -> String {
    let mut page = String::with_capacity(4096);
    let path = escape(&context.telemetry_path);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Entra authentication-methods exporter</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head><body>\
         <h1>Entra authentication-methods exporter</h1>\
         <p>Version {version} (revision {revision}){demo}</p>\
         <p><a href=\"{path}\">Metrics</a> · <a href=\"/healthz\">Health</a> · <a href=\"/readyz\">Readiness</a></p>\
         <h2>Tenants</h2><table><tr><th>tenant</th><th>tenant id</th><th>credential</th>\
         <th>last credential error</th></tr>",
        version = env!("CARGO_PKG_VERSION"),
        revision = escape(crate::self_metrics::revision()),
        demo = if context.demo {
            " — <strong>demo mode</strong>: simulated tenant, no Azure account"
        } else {
            ""
        },
    );
    for tenant in &context.tenants {
        // The state holds the token endpoint's message, never the secret or the token.
        let credential = tenant.credential.health();
        let last_error = credential
            .last_error
            .map(|(at, message)| format!("{}: {message}", humantime::format_rfc3339_seconds(at)))
            .unwrap_or_default();
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&tenant.name),
            escape(&tenant.tenant_id),
            credential.status.as_str(),
            escape(&last_error),
        );
    }
    page.push_str(
        "</table><h2>Reports</h2><table><tr><th>tenant</th><th>report</th><th>state</th>\
         <th>interval</th><th>last success</th><th>last poll took</th><th>last error</th></tr>",
    );
    for (key, report) in context.store.records() {
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
    fn gzip_negotiation_follows_the_quality_values() {
        for (value, gzip) in [
            ("gzip", true),
            ("gzip, deflate, br", true),
            ("deflate, GZIP;q=0.5", true),
            ("x-gzip", true),
            ("*", true),
            ("identity", false),
            ("", false),
            ("gzip;q=0", false),
            ("gzip; q=0.0, *", false),
            ("*;q=0", false),
            ("br, *;q=0.1", true),
        ] {
            assert_eq!(accepts_gzip(value), gzip, "{value:?}");
        }
    }

    fn shared(max_requests: usize) -> Shared {
        let store = Arc::new(Store::new());
        let metrics = crate::self_metrics::Metrics::new().unwrap();
        let app = ServerContext {
            scrape_cache: ScrapeCache::new(store.clone(), metrics).unwrap(),
            store,
            telemetry_path: "/metrics".to_owned(),
            tenants: Vec::new(),
            demo: false,
            web_config: WebConfigHandle::default(),
            limits: Limits {
                max_requests,
                max_connections: 4,
                timeouts: Timeouts {
                    header_read: Duration::from_secs(10),
                    idle: Duration::from_secs(10),
                },
            },
        };
        Shared {
            telemetry_slots: Some(Arc::new(Semaphore::new(max_requests))),
            bcrypt: Semaphore::new(1),
            app: Arc::new(app),
        }
    }

    #[tokio::test]
    async fn a_scrape_holds_its_slot_until_its_last_byte_is_let_go() {
        use http_body_util::BodyExt;
        let shared = shared(1);
        let first = metrics(&HeaderMap::new(), &shared);
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(
            metrics(&HeaderMap::new(), &shared).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // Handed over but not yet written: the last chunk still holds the slot.
        let mut body = first.into_body();
        let mut written = Vec::new();
        while let Some(frame) = body.frame().await {
            written.push(frame.unwrap().into_data().unwrap());
        }
        drop(body);
        assert_eq!(
            metrics(&HeaderMap::new(), &shared).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        drop(written);
        let third = metrics(&HeaderMap::new(), &shared);
        assert_eq!(third.status(), StatusCode::OK);
        assert_eq!(third.headers()[VARY], "Accept-Encoding");
        assert!(third.headers().get(CONTENT_ENCODING).is_none());
        drop(third);
        let mut gzip = HeaderMap::new();
        gzip.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate"));
        assert_eq!(metrics(&gzip, &shared).headers()[CONTENT_ENCODING], "gzip");
    }

    #[test]
    fn a_body_announces_its_exact_length() {
        use hyper::body::Body as _;
        let body = Body::new(vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"de"),
        ]);
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
    }

    #[test]
    fn escape_html() {
        let escaped = escape(r#"<script>"x"&'y'</script>"#);
        assert!(!escaped.contains('<') && !escaped.contains('"') && !escaped.contains('\''));
    }
}
