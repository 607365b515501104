//! The Microsoft Graph client: one per tenant, shared by all its reports. It owns the tenant's
//! request budget ([`Limiter`]) and waits for its app registration's shared one too, pauses the
//! tenant when Graph says to wait, and handles retries, paging and the rule that the bearer
//! token only ever goes to the configured Graph host.

mod limiter;
mod rows;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientMethodOptions, Context};
use backon::{ExponentialBuilder, Retryable};
use prometheus::IntCounterVec;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use url::Url;

pub use limiter::Limiter;
pub use rows::{RowFault, Rows, parse_document};

use rows::SkippedRows;

use crate::config::{CredentialSetupError, GraphConfig};

/// The window Graph's identity-reports throttling budget is counted over.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Longest `Retry-After` honoured; anything longer is capped so a poll cannot hang for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Longest Graph error message kept for logs and the landing page.
const MAX_MESSAGE_CHARS: usize = 300;
/// Pages one poll of a report may read unless `reports.<name>.max_pages` says otherwise: far
/// above any tenant (999 million users at 999 a page), so that it only stops a runaway. Loops
/// are caught sooner, by the repeated-nextLink and empty-page guards; the hashes of the links
/// followed cost about 16 bytes a page while a poll runs.
pub const DEFAULT_MAX_PAGES: u32 = 1_000_000;

/// Why Graph will not serve a report to this tenant, as opposed to a passing failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailability {
    /// 404/410, or 400 "Resource not found": Microsoft retired the endpoint.
    Retired,
    /// 403: a missing permission or licence.
    Forbidden,
}

impl Unavailability {
    pub const ALL: [Unavailability; 2] = [Unavailability::Retired, Unavailability::Forbidden];

    /// The `cause` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailability::Retired => "retired",
            Unavailability::Forbidden => "forbidden",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("reading --graph.ca-file: {0}")]
    CaFile(#[source] reqwest::Error),
    #[error("getting a token: {message}")]
    Token { message: String, retryable: bool },
    #[error("GET {path}: {source}")]
    Transport {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {path}: HTTP {status} {code}: {message} (request-id {request_id})")]
    Http {
        path: String,
        status: u16,
        code: String,
        message: String,
        request_id: String,
        retry_after: Option<Duration>,
    },
    #[error("GET {path}: HTTP {status} {code}: {message} (request-id {request_id})")]
    Unavailable {
        cause: Unavailability,
        path: String,
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    #[error("GET {path}: invalid JSON (request-id {request_id}): {source}")]
    Json {
        path: String,
        request_id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "refusing to follow @odata.nextLink to {link_host}: the bearer token is only sent to {graph_host}"
    )]
    ForeignNextLink {
        link_host: String,
        graph_host: String,
    },
    #[error(
        "{report} is forbidden and {source_report} has not completed a scan to fall back on yet (is it enabled, with AuditLog.Read.All?)"
    )]
    NoFallbackData {
        report: &'static str,
        /// The report whose results would stand in.
        source_report: &'static str,
    },
    #[error("GET {path}: the response is larger than {limit} bytes (--graph.max-response-bytes)")]
    TooLarge { path: String, limit: usize },
    #[error("invalid @odata.nextLink {link:?}: {source}")]
    BadNextLink {
        link: String,
        #[source]
        source: url::ParseError,
    },
    #[error(
        "{report} has no fresh figures to fall back on: the last complete {source_report} scan is older than its max_age (is it failing?)"
    )]
    FallbackStale {
        report: &'static str,
        source_report: &'static str,
    },
    #[error(
        "{report}: the @odata.nextLink of page {pages} repeats a link already followed in this poll (pages read: {pages})"
    )]
    PagingLoop { report: &'static str, pages: u32 },
    #[error("{report}: page {pages} is empty but has an @odata.nextLink (pages read: {pages})")]
    EmptyPageWithNextLink { report: &'static str, pages: u32 },
    #[error(
        "{report}: more than {max_pages} pages (reports.{report}.max_pages; pages read: {pages})"
    )]
    TooManyPages {
        report: &'static str,
        pages: u32,
        max_pages: u32,
    },
    #[error(
        "{report}: page {page} is gone, its $skiptoken probably expired during the poll; the whole poll is retried at its normal interval: {source}"
    )]
    PageGone {
        report: &'static str,
        page: u32,
        #[source]
        source: Box<GraphError>,
    },
}

impl GraphError {
    /// 429/503/504, other 5xx and transport errors are worth another try; the rest are not.
    /// Nor is a token failure: the credential itself decides when the tenant asks again.
    fn is_retryable(&self) -> bool {
        match self {
            GraphError::Transport { .. } => true,
            GraphError::Http { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS.as_u16() || *status >= 500
            }
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn unavailability(&self) -> Option<Unavailability> {
        match self {
            GraphError::Unavailable { cause, .. } => Some(*cause),
            _ => None,
        }
    }

    /// The report this poll needs results from before it can answer, if that is all it lacks.
    pub fn awaited_report(&self) -> Option<&'static str> {
        match self {
            GraphError::NoFallbackData { source_report, .. } => Some(source_report),
            _ => None,
        }
    }
}

/// One page of a Graph collection.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct Page<T> {
    value: Rows<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// One parsed page of a collection.
#[derive(Debug)]
pub struct ParsedPage<T> {
    /// The rows that parse.
    pub rows: Vec<T>,
    pub next_link: Option<String>,
    /// The rows that do not, skipped.
    pub skipped: Vec<RowFault>,
}

/// Parses one page of a collection into its rows and its `@odata.nextLink`, skipping rows that
/// do not parse. Strict JSON: a malformed page is an error, never repaired.
pub fn parse_page<T: DeserializeOwned>(body: &[u8]) -> Result<ParsedPage<T>, serde_json::Error> {
    let (page, skipped) = rows::parse_document::<Page<T>>(body)?;
    Ok(ParsedPage {
        rows: page.value.into_inner(),
        next_link: page.next_link,
        skipped,
    })
}

/// Graph's error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Builds the one HTTP client used for Graph and, as azure_identity's transport, the token
/// endpoint: extra roots from `--graph.ca-file`, a timeout on every request, no redirects (a
/// redirect could carry the token elsewhere) and https only.
pub fn http_client(graph: &GraphConfig) -> Result<reqwest::Client, GraphError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!(
            env!("CARGO_PKG_NAME"),
            "/",
            env!("CARGO_PKG_VERSION")
        ))
        .timeout(graph.timeout)
        .connect_timeout(graph.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true);
    if let Some(pem) = &graph.extra_roots_pem {
        let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(GraphError::CaFile)?;
        builder = builder.tls_certs_merge(roots);
    }
    builder.build().map_err(GraphError::Client)
}

/// A tenant's Graph client.
pub struct GraphClient {
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    endpoint: Url,
    scope: String,
    limiter: Limiter,
    /// The budget of the app registration, shared with its other tenants.
    app_limiter: Arc<Limiter>,
    tenant: String,
    requests: IntCounterVec,
    /// `entra_exporter_report_rows_skipped_total{tenant,report}`.
    rows_skipped: IntCounterVec,
    backoff: ExponentialBuilder,
    /// Reports whose deprecation headers were already logged at warn level.
    deprecation_logged: Mutex<HashSet<&'static str>>,
    /// Pages one poll of a report may read, where it differs from [`DEFAULT_MAX_PAGES`].
    max_pages: HashMap<String, u32>,
    /// `--graph.max-response-bytes`.
    max_response_bytes: usize,
}

impl GraphClient {
    /// `requests` is `entra_exporter_graph_requests_total{tenant,report,code}` and
    /// `rows_skipped` `entra_exporter_report_rows_skipped_total{tenant,report}`; `app_limiter`
    /// is shared by every tenant of the same app registration (`--graph.app-requests-per-10s`).
    pub fn new(
        tenant: &str,
        credential: Arc<dyn TokenCredential>,
        http: reqwest::Client,
        graph: &GraphConfig,
        requests: IntCounterVec,
        rows_skipped: IntCounterVec,
        app_limiter: Arc<Limiter>,
    ) -> Self {
        Self {
            http,
            credential,
            endpoint: graph.endpoint.clone(),
            scope: graph.scope(),
            limiter: Limiter::new(graph.requests_per_10s, BUDGET_WINDOW),
            app_limiter,
            tenant: tenant.to_owned(),
            requests,
            rows_skipped,
            backoff: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(30))
                .with_max_times(4)
                .with_jitter(),
            deprecation_logged: Mutex::new(HashSet::new()),
            max_pages: HashMap::new(),
            max_response_bytes: graph.max_response_bytes,
        }
    }

    /// Sets how many pages one poll of each report may read (`reports.<name>.max_pages`).
    pub fn with_max_pages(mut self, max_pages: HashMap<String, u32>) -> Self {
        self.max_pages = max_pages;
        self
    }

    /// The OAuth scope the client asks tokens for.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Absolute URL for a path such as `/beta/reports/credentialUserRegistrationDetails`.
    fn url(&self, path: &str) -> Result<Url, GraphError> {
        let base = self.endpoint.as_str().trim_end_matches('/');
        let link = format!("{base}{path}");
        Url::parse(&link).map_err(|source| GraphError::BadNextLink { link, source })
    }

    /// GETs a single JSON document, skipping the rows of its [`Rows`] lists that do not parse.
    pub async fn get<T: DeserializeOwned>(
        &self,
        report: &'static str,
        path: &str,
    ) -> Result<T, GraphError> {
        let url = self.url(path)?;
        let (body, request_id) = self.get_with_retry(report, &url).await?;
        let (document, faults) =
            rows::parse_document(&body).map_err(|source| GraphError::Json {
                path: url.path().to_owned(),
                request_id,
                source,
            })?;
        let mut skipped = SkippedRows::default();
        skipped.add(1, faults);
        self.report_skipped(report, &skipped);
        Ok(document)
    }

    /// GETs a collection, following `@odata.nextLink` verbatim, and hands each page's rows to
    /// `on_page` as it arrives so that callers aggregate without holding the whole collection.
    /// A failed page is retried in place; the scan never restarts from the first page. Rows
    /// that do not parse are skipped, counted and logged once per poll. Returns the number of
    /// rows read, skipped ones included.
    ///
    /// A poll that would never end fails instead: a nextLink already followed in this poll, an
    /// empty page that still has a nextLink, or more pages than the report's `max_pages`. A
    /// page after the first that Graph no longer knows (404/410, or 400 "Resource not found":
    /// an expired `$skiptoken`) fails the poll too, as a passing failure: the report is not
    /// retired.
    pub async fn for_each_page<T: DeserializeOwned>(
        &self,
        report: &'static str,
        path: &str,
        on_page: impl FnMut(Vec<T>),
    ) -> Result<u64, GraphError> {
        let mut skipped = SkippedRows::default();
        let result = self.scan_pages(report, path, &mut skipped, on_page).await;
        self.report_skipped(report, &skipped);
        result
    }

    /// [`for_each_page`](Self::for_each_page), noting the rows it skips in `skipped`.
    async fn scan_pages<T: DeserializeOwned>(
        &self,
        report: &'static str,
        path: &str,
        skipped: &mut SkippedRows,
        mut on_page: impl FnMut(Vec<T>),
    ) -> Result<u64, GraphError> {
        let max_pages = self
            .max_pages
            .get(report)
            .copied()
            .unwrap_or(DEFAULT_MAX_PAGES);
        let mut url = self.url(path)?;
        // Hashes of the links requested, so that a long scan's memory stays small.
        let mut followed = HashSet::from([link_hash(&url)]);
        let mut rows = 0u64;
        let mut pages = 0u32;
        loop {
            pages += 1;
            let (body, request_id) = match self.get_with_retry(report, &url).await {
                Ok(page) => page,
                Err(err) if pages > 1 && err.unavailability() == Some(Unavailability::Retired) => {
                    return Err(GraphError::PageGone {
                        report,
                        page: pages,
                        source: Box::new(err),
                    });
                }
                Err(err) => return Err(err),
            };
            let page = parse_page::<T>(&body).map_err(|source| GraphError::Json {
                path: url.path().to_owned(),
                request_id,
                source,
            })?;
            let empty = page.rows.is_empty() && page.skipped.is_empty();
            rows += (page.rows.len() + page.skipped.len()) as u64;
            skipped.add(pages, page.skipped);
            on_page(page.rows);
            let Some(link) = page.next_link else {
                return Ok(rows);
            };
            if empty {
                return Err(GraphError::EmptyPageWithNextLink { report, pages });
            }
            if pages >= max_pages {
                return Err(GraphError::TooManyPages {
                    report,
                    pages,
                    max_pages,
                });
            }
            url = self.checked_next_link(&link)?;
            if !followed.insert(link_hash(&url)) {
                return Err(GraphError::PagingLoop { report, pages });
            }
        }
    }

    /// The token goes with every request, so a nextLink must point at the configured Graph
    /// endpoint (same scheme, host and port); anything else is an error, never a request.
    fn checked_next_link(&self, link: &str) -> Result<Url, GraphError> {
        let next = Url::parse(link).map_err(|source| GraphError::BadNextLink {
            link: link.to_owned(),
            source,
        })?;
        let same_origin = next.scheme() == self.endpoint.scheme()
            && next.host_str() == self.endpoint.host_str()
            && next.port_or_known_default() == self.endpoint.port_or_known_default();
        if !same_origin {
            return Err(GraphError::ForeignNextLink {
                link_host: origin(&next),
                graph_host: origin(&self.endpoint),
            });
        }
        Ok(next)
    }

    async fn get_with_retry(
        &self,
        report: &'static str,
        url: &Url,
    ) -> Result<(bytes::Bytes, String), GraphError> {
        (|| self.get_once(report, url))
            .retry(self.backoff)
            .sleep(tokio::time::sleep)
            .when(GraphError::is_retryable)
            // Graph's Retry-After wins over our own backoff, but only while attempts remain.
            .adjust(|err, backoff| {
                backoff.map(|d| err.retry_after().map_or(d, |ra| ra.min(MAX_RETRY_AFTER)))
            })
            .notify(|err, delay| {
                warn!(error = %err, retry_in = ?delay, "Graph request failed, retrying");
            })
            .await
    }

    /// One request, sent once more with a new token if Graph refused the first one (401): a
    /// token can stop working before the expiry it came with (revoked, or this host's clock
    /// behind).
    async fn get_once(
        &self,
        report: &'static str,
        url: &Url,
    ) -> Result<(bytes::Bytes, String), GraphError> {
        match self.send(report, url, None).await? {
            Sent::Body(body, request_id) => Ok((body, request_id)),
            Sent::Unauthorized(refused, err) => {
                debug!(error = %err, "Graph refused the token; sending the request again with a new one");
                match self.send(report, url, Some(refused)).await? {
                    Sent::Body(body, request_id) => Ok((body, request_id)),
                    Sent::Unauthorized(_, err) => Err(err),
                }
            }
        }
    }

    /// The tenant's token; `refused` is one Graph answered 401 to, which the credential then
    /// replaces (it is handed back in the options' context).
    async fn token(&self, refused: Option<AccessToken>) -> Result<AccessToken, GraphError> {
        let options = refused.map(|token| TokenRequestOptions {
            method_options: ClientMethodOptions {
                context: Context::new().with_value(token),
            },
        });
        self.credential
            .get_token(&[self.scope.as_str()], options)
            .await
            .map_err(|err| token_error(&err))
    }

    async fn send(
        &self,
        report: &'static str,
        url: &Url,
        refused: Option<AccessToken>,
    ) -> Result<Sent, GraphError> {
        // A token first, so that a tenant without one spends none of the budgets...
        self.token(refused).await?;
        self.limiter.acquire().await;
        self.app_limiter.acquire().await;
        // Graph may have paused the tenant while this request waited for the app's budget.
        self.limiter.wait_out_pause().await;
        // ...but the one sent is taken after the waits, which can outlast it (a pause lasts up
        // to 5 minutes).
        let token = self.token(None).await?;
        let path = url.path().to_owned();
        debug!(%path, "GET");
        let response = self
            .http
            .get(url.clone())
            .bearer_auth(token.token.secret())
            .header("Accept", "application/json")
            // Without it, newer enum members collapse to unknownFutureValue.
            .header("Prefer", "include-unknown-enum-members")
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(source) => {
                self.count(report, "error");
                return Err(GraphError::Transport {
                    path,
                    source: source.without_url(),
                });
            }
        };
        let status = response.status();
        self.count(report, status.as_str());
        let headers = response.headers().clone();
        let request_id = header_str(&headers, "request-id").to_owned();
        self.log_deprecation(report, &headers, &request_id);
        let body = read_body(response, self.max_response_bytes)
            .await
            .map_err(|err| match err {
                BodyError::TooLarge => GraphError::TooLarge {
                    path: path.clone(),
                    limit: self.max_response_bytes,
                },
                BodyError::Transport(source) => GraphError::Transport {
                    path: path.clone(),
                    source: source.without_url(),
                },
            })?;
        if status.is_success() {
            return Ok(Sent::Body(body, request_id));
        }

        let detail: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        let code = detail.error.code;
        let message = one_line(&detail.error.message);
        let unavailable = match status {
            StatusCode::FORBIDDEN => Some(Unavailability::Forbidden),
            StatusCode::NOT_FOUND | StatusCode::GONE => Some(Unavailability::Retired),
            StatusCode::BAD_REQUEST if message.contains("Resource not found") => {
                Some(Unavailability::Retired)
            }
            _ => None,
        };
        if let Some(cause) = unavailable {
            return Err(GraphError::Unavailable {
                cause,
                path,
                status: status.as_u16(),
                code,
                message,
                request_id,
            });
        }
        let retry_after = retry_after(&headers, SystemTime::now());
        self.pause_if_told(status, retry_after);
        let err = GraphError::Http {
            path,
            status: status.as_u16(),
            code,
            message,
            request_id,
            retry_after,
        };
        match status {
            StatusCode::UNAUTHORIZED => Ok(Sent::Unauthorized(token, err)),
            _ => Err(err),
        }
    }

    /// Graph counts the budget per app and tenant, so a 429 or 503 with `Retry-After` holds
    /// every request of the tenant until then, not only the one that was told.
    fn pause_if_told(&self, status: StatusCode, retry_after: Option<Duration>) {
        let throttled = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        if let (true, Some(wait)) = (throttled, retry_after) {
            let wait = wait.min(MAX_RETRY_AFTER);
            debug!(wait = ?wait, status = status.as_u16(), "Graph asks to wait; pausing every request of the tenant");
            self.limiter.pause_until(tokio::time::Instant::now() + wait);
        }
    }

    /// Counts a poll's skipped rows (creating the report's series at 0 on its first poll) and
    /// logs them once, with the first one's position and field; never a value from the rows.
    fn report_skipped(&self, report: &str, skipped: &SkippedRows) {
        self.rows_skipped
            .with_label_values(&[self.tenant.as_str(), report])
            .inc_by(skipped.rows);
        if let Some((page, fault)) = &skipped.first {
            warn!(
                skipped_rows = skipped.rows,
                first_page = page,
                first_index = fault.index,
                field = %fault.field,
                found = fault.found,
                "skipped rows that cannot be parsed; the rest of the poll counts"
            );
        }
    }

    fn count(&self, report: &str, code: &str) {
        self.requests
            .with_label_values(&[self.tenant.as_str(), report, code])
            .inc();
    }

    /// Graph marks retired APIs with `Deprecation`/`Sunset` headers: worth one warning per
    /// report, then debug lines.
    fn log_deprecation(&self, report: &'static str, headers: &HeaderMap, request_id: &str) {
        let deprecation = header_str(headers, "deprecation");
        let sunset = header_str(headers, "sunset");
        if deprecation.is_empty() && sunset.is_empty() {
            return;
        }
        // Log lines take tenant and report from the poll's span.
        let first = self
            .deprecation_logged
            .lock()
            .map(|mut seen| seen.insert(report))
            .unwrap_or(false);
        if first {
            warn!(
                deprecation,
                sunset, request_id, "Graph marks this report deprecated"
            );
        } else {
            debug!(
                deprecation,
                sunset, request_id, "Graph marks this report deprecated"
            );
        }
    }
}

/// A token failure as a Graph error: worth asking again unless the token endpoint refused the
/// request (4xx other than 429) or the credential could not be set up from its files.
pub fn token_error(err: &azure_core::Error) -> GraphError {
    GraphError::Token {
        message: crate::errors::error_chain(err),
        retryable: CredentialSetupError::is_passing(err),
    }
}

fn link_hash(url: &Url) -> u64 {
    xxhash_rust::xxh3::xxh3_64(url.as_str().as_bytes())
}

fn origin(url: &Url) -> String {
    match url.port_or_known_default() {
        Some(port) => format!(
            "{}://{}:{port}",
            url.scheme(),
            url.host_str().unwrap_or_default()
        ),
        None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .unwrap_or_default()
}

/// How a request that reached Graph came back, short of an error.
enum Sent {
    /// A 2xx body and its request-id.
    Body(bytes::Bytes, String),
    /// 401 to this token.
    Unauthorized(AccessToken, GraphError),
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// The response body, at most `limit` bytes of it as decoded (a gzip body counts as it
/// inflates): refused at once when `Content-Length` says more, else as soon as the running count
/// passes the limit, so no more than `limit` bytes are ever held.
async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<bytes::Bytes, BodyError> {
    // Only an identity body announces its length: a decoded one's is unknown here.
    let announced = response.content_length();
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body: Vec<u8> =
        Vec::with_capacity(announced.map_or(0, |length| length as usize).min(limit));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if chunk.len() > limit - body.len() {
            return Err(BodyError::TooLarge);
        }
        if body.capacity() - body.len() < chunk.len() {
            // Doubling, as a Vec would, but never past the limit.
            let wanted = (body.capacity() * 2).clamp(body.len() + chunk.len(), limit);
            body.reserve_exact(wanted - body.len());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(bytes::Bytes::from(body))
}

/// Error text for a single log line: newlines collapsed, length capped.
fn one_line(text: &str) -> String {
    let mut out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = out.char_indices().nth(MAX_MESSAGE_CHARS) {
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = header_str(headers, "retry-after").trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = httpdate::parse_http_date("Sun, 22 Nov 2026 10:00:00 GMT").unwrap();
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Sun, 22 Nov 2026 10:00:30 GMT")]),
                now
            ),
            Some(Duration::from_secs(30))
        );
        // A date in the past means "now", not a negative wait.
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Sun, 22 Nov 2026 09:00:00 GMT")]),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[]), now), None);
    }

    #[test]
    fn retryable_statuses() {
        let http = |status| GraphError::Http {
            path: String::new(),
            status,
            code: String::new(),
            message: String::new(),
            request_id: String::new(),
            retry_after: None,
        };
        for status in [429, 500, 502, 503, 504] {
            assert!(http(status).is_retryable(), "{status}");
        }
        for status in [400, 401, 409] {
            assert!(!http(status).is_retryable(), "{status}");
        }
    }

    #[test]
    fn one_line_collapses_and_caps() {
        assert_eq!(one_line("a\n b\t\tc"), "a b c");
        let long = "x".repeat(1000);
        assert_eq!(one_line(&long).chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
