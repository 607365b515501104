//! Request handling: the Entra token endpoint, the four legacy beta reports,
//! their successors under `/reports/authenticationMethods`, group member
//! lists and the authentication methods policy.
//!
//! Order of checks for a Graph request: count it, check the bearer token,
//! answer a retired path, apply a queued fault, then route. Faults therefore
//! fire only on authenticated requests, which is what the exporter sends. The
//! token endpoint applies retire and faults before checking credentials.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use crate::data::Simulation;
#[cfg(feature = "testing")]
use crate::faults::{Fault, Faults, LoggedRequest, Scope};
use crate::groups::{FakeGroup, member_page, transitive_members};
use crate::seeded::uuid_like;
use crate::server::FakeResponse;
#[cfg(feature = "testing")]
use crate::server::ResetConnection;
use crate::stats;
use crate::users::{UserRoles, UserTypes, user_id};
use crate::wire::rfc3339;
#[cfg(feature = "testing")]
use {
    futures_util::StreamExt as _,
    http_body_util::StreamBody,
    hyper::body::Frame,
    hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH, RETRY_AFTER},
};

const GRAPH_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
const ENTRA_JSON: &str = "application/json; charset=utf-8";
/// The real gateway marks deprecated APIs with these (Graph deprecation guidelines).
const DEPRECATION: &str = "Wed, 21 Jun 2023 00:00:00 GMT";
const SUNSET: &str = "Mon, 30 Jun 2025 00:00:00 GMT";
const DEPRECATION_LINK: &str = "<https://developer.microsoft.com/graph/changes?$filterby=beta,RemovedApis&from=2023-06-01&to=2023-07-01>; rel=\"deprecation\"; type=\"text/html\"";
const TOKEN_BODY_LIMIT: usize = 64 * 1024;
const SKIPTOKEN_PREFIX: &str = "RFNwdAIA";
/// Scrambles the cursor so clients are not tempted to parse skiptokens.
const SKIPTOKEN_MASK: u64 = 0x5a17_c3e9_0b4d_2f86;
/// `$top` above this is served as this: userEventsSummary's documented maximum.
const MAX_TOP: usize = 1000;
const PREFER_UNKNOWN_MEMBERS: &str = "include-unknown-enum-members";
/// How long a cut-short body waits after its half before the connection closes.
#[cfg(feature = "testing")]
const CUT_SHORT_PAUSE: Duration = Duration::from_millis(50);

/// What the server task and the [`FakeGraph`](crate::FakeGraph) handle share.
pub(crate) struct Shared {
    pub(crate) base_url: String,
    pub(crate) tenant_id: String,
    /// Every tenant served, `tenant_id` first; a tenant's index is its place here.
    pub(crate) tenant_ids: Vec<String>,
    /// Whether [`State::log`] keeps every request.
    #[cfg(feature = "testing")]
    pub(crate) record_requests: bool,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) page_size: usize,
    pub(crate) max_page_size: usize,
    pub(crate) token_lifetime: Duration,
    pub(crate) groups: Vec<FakeGroup>,
    pub(crate) state: Mutex<State>,
}

pub(crate) struct State {
    /// Each tenant's data, by tenant index.
    pub(crate) sims: Vec<Simulation>,
    /// access token -> (expiry, tenant index).
    tokens: HashMap<String, (Instant, usize)>,
    #[cfg(feature = "testing")]
    pub(crate) tokens_issued: usize,
    /// Graph path+query (as received) -> count. Keys are distinct targets,
    /// which grow only with paging cursors: small for test runs.
    #[cfg(feature = "testing")]
    graph_requests: HashMap<String, usize>,
    #[cfg(feature = "testing")]
    faults: Faults,
    /// Every request in order, when asked for.
    #[cfg(feature = "testing")]
    pub(crate) log: Option<Vec<LoggedRequest>>,
    /// What `/policies/authenticationMethodsPolicy` answers, in every tenant.
    pub(crate) policy: Value,
}

impl State {
    pub(crate) fn new(sims: Vec<Simulation>, policy: Value) -> Self {
        State {
            sims,
            tokens: HashMap::new(),
            #[cfg(feature = "testing")]
            tokens_issued: 0,
            #[cfg(feature = "testing")]
            graph_requests: HashMap::new(),
            #[cfg(feature = "testing")]
            faults: Faults::default(),
            #[cfg(feature = "testing")]
            log: None,
            policy,
        }
    }

    /// The tenant index of a token the fake issued that has not expired.
    fn token_tenant(&self, token: &str) -> Option<usize> {
        self.tokens
            .get(token)
            .filter(|(expiry, _)| *expiry > Instant::now())
            .map(|(_, tenant)| *tenant)
    }
}

#[cfg(feature = "testing")]
impl State {
    pub(crate) fn requests(&self, path_contains: &str) -> usize {
        self.graph_requests
            .iter()
            .filter(|(target, _)| Target::new(target).matches(path_contains))
            .map(|(_, n)| n)
            .sum()
    }

    pub(crate) fn inject(&mut self, scope: Scope, key: &str, fault: Fault) {
        self.faults.inject(scope, key, fault);
    }

    pub(crate) fn retire(&mut self, scope: Scope, key: &str, status: u16) {
        self.faults.retire(scope, key, status);
    }

    pub(crate) fn restore(&mut self, key: &str) {
        self.faults.restore(key);
    }

    pub(crate) fn queued_faults(&self, key: &str) -> usize {
        self.faults.queued(key)
    }

    pub(crate) fn clear_faults(&mut self) -> usize {
        self.faults.clear()
    }

    fn misbehaviour(
        &mut self,
        target: &Target,
        tenant: Option<&str>,
    ) -> (Option<u16>, Option<Fault>) {
        self.faults.misbehaviour(|key| target.matches(key), tenant)
    }

    /// Makes every token issued so far expire now.
    pub(crate) fn expire_tokens(&mut self) {
        let now = Instant::now();
        for (expiry, _) in self.tokens.values_mut() {
            *expiry = now;
        }
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the fake down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The index of a tenant the fake serves, by id (any case).
    pub(crate) fn tenant_index(&self, tenant_id: &str) -> Option<usize> {
        self.tenant_ids
            .iter()
            .position(|id| id.eq_ignore_ascii_case(tenant_id))
    }
}

/// A request path+query, as received and percent-decoded, for substring
/// matching: callers write `period='D1'` while clients may send `%27`.
struct Target {
    #[cfg(feature = "testing")]
    raw: String,
    decoded: String,
}

impl Target {
    fn new(raw: &str) -> Self {
        Target {
            #[cfg(feature = "testing")]
            raw: raw.to_owned(),
            decoded: percent_decode(raw),
        }
    }

    #[cfg(feature = "testing")]
    fn matches(&self, key: &str) -> bool {
        self.raw.contains(key) || self.decoded.contains(key)
    }
}

/// Ids echoed on every response, and the Graph error `innerError` block.
struct Ids {
    request_id: String,
    client_request_id: String,
}

impl Ids {
    fn new(headers: &HeaderMap) -> Self {
        let request_id = uuid_like(rand::random(), 0, 0);
        let client_request_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| request_id.clone(), str::to_owned);
        Ids {
            request_id,
            client_request_id,
        }
    }
}

/// A response before the common headers are attached.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    headers: Vec<(HeaderName, String)>,
    #[cfg(feature = "testing")]
    delivery: Delivery,
}

/// How a reply goes on the wire.
#[cfg(feature = "testing")]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Whole,
    /// Announce the whole body but send only its first half, then close the connection.
    CutShort,
    /// Close the connection without answering.
    Reset,
}

impl Reply {
    fn json(status: StatusCode, body: &Value) -> Self {
        Reply {
            status,
            content_type: GRAPH_JSON,
            body: Bytes::from(body.to_string()),
            headers: Vec::new(),
            #[cfg(feature = "testing")]
            delivery: Delivery::Whole,
        }
    }

    fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn graph_error(status: StatusCode, code: &str, message: &str, ids: &Ids) -> Self {
        Reply::json(
            status,
            &json!({"error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": rfc3339(SystemTime::now()),
                    "request-id": ids.request_id,
                    "client-request-id": ids.client_request_id,
                },
            }}),
        )
    }

    fn into_response(self, ids: &Ids, is_legacy_report: bool) -> FakeResponse {
        #[cfg(feature = "testing")]
        let whole = self.body.len();
        #[cfg(feature = "testing")]
        let body = if self.delivery == Delivery::CutShort {
            // A stream has no known size, so hyper trusts the Content-Length below. It sends
            // the half (the pause lets it reach the wire), finds the body ended early and
            // closes the connection.
            let half = Frame::data(self.body.slice(..whole / 2));
            let pause = futures_util::stream::once(tokio::time::sleep(CUT_SHORT_PAUSE))
                .filter_map(|()| async { None });
            BodyExt::boxed(StreamBody::new(
                futures_util::stream::iter([Ok(half)]).chain(pause),
            ))
        } else {
            BodyExt::boxed(Full::new(self.body))
        };
        #[cfg(not(feature = "testing"))]
        let body = BodyExt::boxed(Full::new(self.body));
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        #[cfg(feature = "testing")]
        if self.delivery == Delivery::Reset {
            resp.extensions_mut().insert(ResetConnection);
        }
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        #[cfg(feature = "testing")]
        if self.delivery == Delivery::CutShort {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(whole));
        }

        let mut common = vec![
            (
                HeaderName::from_static("request-id"),
                ids.request_id.clone(),
            ),
            (
                HeaderName::from_static("client-request-id"),
                ids.client_request_id.clone(),
            ),
        ];
        if is_legacy_report {
            common.push((HeaderName::from_static("deprecation"), DEPRECATION.into()));
            common.push((HeaderName::from_static("sunset"), SUNSET.into()));
            common.push((HeaderName::from_static("link"), DEPRECATION_LINK.into()));
        }
        for (name, value) in common.into_iter().chain(self.headers) {
            // Values come partly from tests (Retry-After); skip what HTTP can't carry.
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
        resp
    }
}

pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> FakeResponse {
    #[cfg(feature = "testing")]
    let arrived = Instant::now();
    let ids = Ids::new(req.headers());
    let raw = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
    let target = Target::new(&raw);
    let path = percent_decode(req.uri().path());
    let (tenant, response) = if let Some(tenant) = token_tenant(&path) {
        let tenant = shared.tenant_index(tenant);
        let reply = token(shared, req, &target, tenant, &ids).await;
        (tenant, reply.into_response(&ids, false))
    } else {
        // Only the log needs to know whose request this is before it is answered.
        #[cfg(feature = "testing")]
        let tenant = shared
            .record_requests
            .then(|| bearer(req.headers()).and_then(|token| shared.lock().token_tenant(token)))
            .flatten();
        #[cfg(not(feature = "testing"))]
        let tenant = None;
        let route = Route::parse(&path);
        let is_legacy_report = route.as_ref().is_ok_and(Route::is_deprecated);
        let reply = graph(shared, req, &target, &path, route, &ids).await;
        (tenant, reply.into_response(&ids, is_legacy_report))
    };
    #[cfg(feature = "testing")]
    if shared.record_requests
        && let Some(log) = &mut shared.lock().log
    {
        log.push(LoggedRequest {
            tenant: tenant.and_then(|index| shared.tenant_ids.get(index).cloned()),
            target: raw,
            at: arrived,
            // 0: closed unanswered.
            status: match response.extensions().get::<ResetConnection>() {
                Some(_) => 0,
                None => response.status().as_u16(),
            },
        });
    }
    #[cfg(not(feature = "testing"))]
    let _ = (tenant, raw);
    response
}

/// `Some(tenant)` for `/{tenant}/oauth2/v2.0/token`.
fn token_tenant(path: &str) -> Option<&str> {
    let mut segments = path.trim_start_matches('/').split('/');
    let tenant = segments.next()?;
    let rest: Vec<&str> = segments.collect();
    (rest == ["oauth2", "v2.0", "token"]).then_some(tenant)
}

#[cfg(feature = "testing")]
/// What a queued fault leaves for the normal path to do.
enum FaultEffect {
    Answer(Reply),
    Reshape(Reshape),
    None,
}

#[cfg(feature = "testing")]
/// A change to a normal `200` JSON answer.
enum Reshape {
    NextLink(String),
    /// `@odata.nextLink` = the request's own URL.
    LoopNextLink,
    EmptyWithNextLink,
    Empty,
    NoNextLink,
    Truncate,
    Oversize {
        bytes: usize,
        gzip: bool,
    },
    BadRow {
        field: String,
        value: Option<Value>,
    },
}

#[cfg(feature = "testing")]
/// Which rows of a reshaped answer still reach the client whole.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowsKept {
    All,
    AllButLast,
    None,
}

#[cfg(feature = "testing")]
impl Reshape {
    /// Applies the change to `reply`, whose request was for `own_url`. Returns the reply and
    /// which of the rows it had still reach the client whole.
    fn apply(self, mut reply: Reply, own_url: &str) -> (Reply, RowsKept) {
        if let Reshape::Truncate = self {
            reply.delivery = Delivery::CutShort;
            return (reply, RowsKept::None);
        }
        if let Reshape::Oversize { bytes, gzip } = self {
            return (oversize(reply, bytes, gzip), RowsKept::None);
        }
        let Ok(mut body) = serde_json::from_slice::<Value>(&reply.body) else {
            return (reply, RowsKept::None);
        };
        let rows_kept = match self {
            Reshape::NextLink(url) => {
                set_next_link(&mut body, url);
                RowsKept::All
            }
            Reshape::LoopNextLink => {
                set_next_link(&mut body, own_url.to_owned());
                RowsKept::All
            }
            Reshape::NoNextLink => {
                remove_key(&mut body, "@odata.nextLink");
                RowsKept::All
            }
            Reshape::Empty => {
                remove_key(&mut body, "@odata.nextLink");
                set_value(&mut body, "value", Value::Array(Vec::new()));
                RowsKept::None
            }
            Reshape::EmptyWithNextLink => {
                if body.get("@odata.nextLink").is_none() {
                    set_next_link(&mut body, own_url.to_owned());
                }
                set_value(&mut body, "value", Value::Array(Vec::new()));
                RowsKept::None
            }
            Reshape::Truncate | Reshape::Oversize { .. } => RowsKept::None,
            Reshape::BadRow { field, value } => {
                match last_row(&mut body).and_then(Value::as_object_mut) {
                    Some(row) => {
                        match value {
                            Some(value) => row.insert(field, value),
                            None => row.remove(&field),
                        };
                        RowsKept::AllButLast
                    }
                    None => RowsKept::All,
                }
            }
        };
        reply.body = Bytes::from(body.to_string());
        (reply, rows_kept)
    }
}

#[cfg(feature = "testing")]
/// `reply`'s page grown to at least `bytes`: its rows repeated (whitespace for a page without
/// rows), its other fields kept, so that it stays a valid page; gzip-compressed if asked, as a
/// proxy may send it.
fn oversize(mut reply: Reply, bytes: usize, gzip: bool) -> Reply {
    let Ok(Value::Object(mut page)) = serde_json::from_slice::<Value>(&reply.body) else {
        return reply;
    };
    let rows: Vec<String> = match page.remove("value") {
        Some(Value::Array(rows)) => rows.iter().map(Value::to_string).collect(),
        _ => Vec::new(),
    };
    let rest = Value::Object(page).to_string();
    let mut body = Vec::with_capacity(bytes + rest.len() + 64);
    body.extend_from_slice(b"{\"value\":[");
    let mut rows = rows.iter().cycle();
    let mut first = true;
    while body.len() < bytes {
        match rows.next() {
            Some(row) => {
                if !first {
                    body.push(b',');
                }
                body.extend_from_slice(row.as_bytes());
                first = false;
            }
            None => body.resize(bytes, b' '),
        }
    }
    body.push(b']');
    // The rest of the page's fields, after its rows.
    match rest.strip_prefix('{').filter(|fields| *fields != "}") {
        Some(fields) => {
            body.push(b',');
            body.extend_from_slice(fields.as_bytes());
        }
        None => body.push(b'}'),
    }
    if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if std::io::Write::write_all(&mut encoder, &body).is_ok()
            && let Ok(compressed) = encoder.finish()
        {
            body = compressed;
            reply = reply.with_header(CONTENT_ENCODING, "gzip");
        }
    }
    reply.body = Bytes::from(body);
    reply
}

#[cfg(feature = "testing")]
/// The last row of a page's `value`, or of a single document's first list.
fn last_row(body: &mut Value) -> Option<&mut Value> {
    let object = body.as_object_mut()?;
    let list = if object.contains_key("value") {
        object.get_mut("value")
    } else {
        object.values_mut().find(|v| v.is_array())
    }?;
    list.as_array_mut()?.last_mut()
}

#[cfg(feature = "testing")]
/// Error body shape: clients parse Entra and Graph errors differently
/// (azure_identity needs `error_codes` and `error_description`).
#[derive(Clone, Copy)]
enum Flavor {
    Graph,
    Entra,
}

#[cfg(feature = "testing")]
impl Flavor {
    fn error(self, status: StatusCode, message: &str, ids: &Ids) -> Reply {
        match self {
            Flavor::Graph => Reply::graph_error(status, graph_error_code(status), message, ids),
            Flavor::Entra => {
                let (error, code) = match status.as_u16() {
                    401 => ("invalid_client", 7000215),
                    429 | 500..=599 => ("temporarily_unavailable", 90033),
                    _ => ("invalid_request", 900144),
                };
                entra_error(status, error, code, message, ids)
            }
        }
    }
}

/// What tests asked this request to suffer: `Err` an answer to send instead of the normal one
/// (a retired path's, a fault's), `Ok` a change to make to the normal one, if any.
#[cfg(feature = "testing")]
async fn misbehave(
    shared: &Shared,
    target: &Target,
    path: &str,
    tenant_id: Option<&str>,
    flavor: Flavor,
    ids: &Ids,
) -> Result<Option<Reshape>, Reply> {
    let (retired, fault) = shared.lock().misbehaviour(target, tenant_id);
    if let Some(status) = retired {
        return Err(retired_reply(status, path, flavor, ids));
    }
    match apply_fault(fault, flavor, ids).await {
        FaultEffect::Answer(reply) => Err(reply),
        FaultEffect::Reshape(reshape) => Ok(Some(reshape)),
        FaultEffect::None => Ok(None),
    }
}

/// The request's own URL, absolute, as a nextLink would give it.
#[cfg(feature = "testing")]
fn own_url(shared: &Shared, target: &Target) -> String {
    format!("{}{}", shared.base_url, target.raw)
}

#[cfg(feature = "testing")]
async fn apply_fault(fault: Option<Fault>, flavor: Flavor, ids: &Ids) -> FaultEffect {
    match fault {
        None => FaultEffect::None,
        Some(Fault::Status {
            code,
            retry_after,
            body,
        }) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut reply = if body.is_empty() {
                flavor.error(
                    status,
                    status.canonical_reason().unwrap_or("Unknown error"),
                    ids,
                )
            } else {
                Reply {
                    status,
                    content_type: GRAPH_JSON,
                    body: Bytes::from(body),
                    headers: Vec::new(),
                    delivery: Delivery::Whole,
                }
            };
            if let Some(retry_after) = retry_after {
                reply = reply.with_header(RETRY_AFTER, retry_after);
            }
            FaultEffect::Answer(reply)
        }
        Some(Fault::InvalidJson) => FaultEffect::Answer(Reply {
            status: StatusCode::OK,
            content_type: GRAPH_JSON,
            body: Bytes::from_static(br#"{"value":[{"id":"0f1e2d3c-","feature":"res"#),
            headers: Vec::new(),
            delivery: Delivery::Whole,
        }),
        Some(Fault::ForeignNextLink(url)) => FaultEffect::Reshape(Reshape::NextLink(url)),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            FaultEffect::None
        }
        Some(Fault::TruncatedBody) => FaultEffect::Reshape(Reshape::Truncate),
        Some(Fault::Reset) => FaultEffect::Answer(Reply {
            delivery: Delivery::Reset,
            ..Reply::json(StatusCode::OK, &Value::Null)
        }),
        Some(Fault::OversizedPage { bytes, gzip }) => {
            FaultEffect::Reshape(Reshape::Oversize { bytes, gzip })
        }
        Some(Fault::NextLinkLoop) => FaultEffect::Reshape(Reshape::LoopNextLink),
        Some(Fault::EmptyPageWithNextLink) => FaultEffect::Reshape(Reshape::EmptyWithNextLink),
        Some(Fault::EmptyCollection) => FaultEffect::Reshape(Reshape::Empty),
        Some(Fault::NoNextLink) => FaultEffect::Reshape(Reshape::NoNextLink),
        Some(Fault::BadRow { field, value }) => {
            FaultEffect::Reshape(Reshape::BadRow { field, value })
        }
    }
}

#[cfg(feature = "testing")]
fn retired_reply(status: u16, path: &str, flavor: Flavor, ids: &Ids) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
    let segment = last_segment(path);
    let message = match status.as_u16() {
        400 | 404 => format!("Resource not found for the segment '{segment}'."),
        403 => "Insufficient privileges to complete the operation.".to_owned(),
        410 => format!("The API '{segment}' has been removed."),
        _ => status
            .canonical_reason()
            .unwrap_or("Unknown error")
            .to_owned(),
    };
    flavor.error(status, &message, ids)
}

#[cfg(feature = "testing")]
fn graph_error_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequest",
        401 => "InvalidAuthenticationToken",
        403 => "Authorization_RequestDenied",
        404 => "ResourceNotFound",
        405 => "MethodNotAllowed",
        410 => "Gone",
        429 => "TooManyRequests",
        500 => "InternalServerError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        _ => "UnknownError",
    }
}

// ---- token endpoint ----

/// `tenant` is the index of the tenant in the path, `None` for one the fake does not serve.
async fn token(
    shared: &Shared,
    req: Request<Incoming>,
    target: &Target,
    tenant: Option<usize>,
    ids: &Ids,
) -> Reply {
    let tenant_id = tenant.and_then(|index| shared.tenant_ids.get(index).map(String::as_str));
    #[cfg(feature = "testing")]
    let reshape = match misbehave(
        shared,
        target,
        &target.decoded,
        tenant_id,
        Flavor::Entra,
        ids,
    )
    .await
    {
        Ok(reshape) => reshape,
        Err(reply) => return reply,
    };
    let reply = issue_token(shared, req, target, tenant.zip(tenant_id), ids).await;
    #[cfg(feature = "testing")]
    if let Some(reshape) = reshape
        && reply.status == StatusCode::OK
    {
        return reshape.apply(reply, &own_url(shared, target)).0;
    }
    reply
}

/// The token endpoint's normal answer; `tenant` is the index and id of the tenant in the path,
/// `None` for one the fake does not serve.
async fn issue_token(
    shared: &Shared,
    req: Request<Incoming>,
    target: &Target,
    tenant: Option<(usize, &str)>,
    ids: &Ids,
) -> Reply {
    if req.method() != Method::POST {
        return entra_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
            ids,
        );
    }
    let body = match Limited::new(req.into_body(), TOKEN_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain a valid form.",
                ids,
            );
        }
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map_or("", String::as_str);

    // Entra reports each mistake differently; tests assert only on 401.
    let Some((tenant, tenant_id)) = tenant else {
        let asked = token_tenant(&target.decoded).unwrap_or_default();
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            90002,
            &format!("Tenant '{asked}' not found."),
            ids,
        );
    };
    if field("grant_type") != "client_credentials" {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
            ids,
        );
    }
    if field("client_id") != shared.client_id {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{}'.",
                field("client_id"),
                tenant_id
            ),
            ids,
        );
    }
    if field("client_secret") != shared.client_secret {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                shared.client_id
            ),
            ids,
        );
    }
    if !field("scope").ends_with("/.default") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
            ids,
        );
    }

    let access_token = format!("fake.{:032x}", rand::random::<u128>());
    {
        let mut state = shared.lock();
        let now = Instant::now();
        state.tokens.retain(|_, (expiry, _)| *expiry > now);
        state
            .tokens
            .insert(access_token.clone(), (now + shared.token_lifetime, tenant));
        #[cfg(feature = "testing")]
        {
            state.tokens_issued += 1;
        }
    }
    let lifetime = shared.token_lifetime.as_secs();
    let body = json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    });
    entra_json(StatusCode::OK, &body, ids)
}

fn entra_json(status: StatusCode, body: &Value, ids: &Ids) -> Reply {
    let mut reply = Reply::json(status, body).with_header(
        HeaderName::from_static("x-ms-request-id"),
        ids.request_id.clone(),
    );
    reply.content_type = ENTRA_JSON;
    reply
}

/// `text` must not need JSON escaping: azure_identity deserializes
/// `error_description` as a borrowed `&str`, which fails on escapes.
fn entra_error(status: StatusCode, error: &str, code: u32, text: &str, ids: &Ids) -> Reply {
    let now = rfc3339(SystemTime::now());
    entra_json(
        status,
        &json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {text} Trace ID: {} Correlation ID: {} Timestamp: {now}",
                ids.request_id, ids.client_request_id
            ),
            "error_codes": [code],
            "timestamp": now,
            "trace_id": ids.request_id,
            "correlation_id": ids.client_request_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
        ids,
    )
}

// ---- Graph ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    Beta,
    V1,
}

impl Version {
    fn as_str(self) -> &'static str {
        match self {
            Version::Beta => "beta",
            Version::V1 => "v1.0",
        }
    }
}

enum Route {
    // The four legacy beta reports, deprecated.
    RegistrationCount,
    UsageSummary(Duration),
    RegistrationDetails,
    UsageDetails,
    // Their successors under `/reports/authenticationMethods`.
    UserRegistrationDetails(Version),
    ByFeature(Version, UserTypes, UserRoles),
    ByMethod(Version, UserTypes, UserRoles),
    RegistrationActivity(Duration),
    /// The period in days.
    SignInsByMethod(u64),
    EventsSummary,
    MfaSignIns,
    PasswordChanges,
    /// `/groups/{id}/transitiveMembers[/microsoft.graph.user]`.
    GroupMembers(Version, String),
    /// `/policies/authenticationMethodsPolicy`.
    Policy(Version),
    /// A known report called with an argument Graph rejects.
    BadArgument {
        legacy: bool,
        message: String,
    },
}

impl Route {
    /// `Err` names the segment Graph would complain about.
    fn parse(path: &str) -> Result<Route, String> {
        let trimmed = path.trim_end_matches('/');
        for version in [Version::Beta, Version::V1] {
            if let Some(rest) = strip_prefix_ci(trimmed, &format!("/{}/groups/", version.as_str()))
            {
                return Route::group(version, rest).ok_or_else(|| unknown_segment(trimmed));
            }
            if let Some(rest) =
                strip_prefix_ci(trimmed, &format!("/{}/policies/", version.as_str()))
            {
                return match rest.eq_ignore_ascii_case("authenticationMethodsPolicy") {
                    true => Ok(Route::Policy(version)),
                    false => Err(unknown_segment(trimmed)),
                };
            }
        }
        let (version, rest) = if let Some(rest) = strip_prefix_ci(trimmed, "/beta/reports/") {
            (Version::Beta, rest)
        } else if let Some(rest) = strip_prefix_ci(trimmed, "/v1.0/reports/") {
            (Version::V1, rest)
        } else {
            return Err(unknown_segment(trimmed));
        };
        let route = match strip_prefix_ci(rest, "authenticationMethods/") {
            Some(name) => Route::successor(version, name),
            None if version == Version::Beta => Route::legacy(rest),
            None => None,
        };
        route.ok_or_else(|| unknown_segment(trimmed))
    }

    fn legacy(segment: &str) -> Option<Route> {
        let (name, args) = call(segment);
        let is = |expected: &str| name.eq_ignore_ascii_case(expected);
        if is("getCredentialUserRegistrationCount") && args.is_none_or(str::is_empty) {
            return Some(Route::RegistrationCount);
        }
        if is("credentialUserRegistrationDetails") && args.is_none() {
            return Some(Route::RegistrationDetails);
        }
        if is("userCredentialUsageDetails") && args.is_none() {
            return Some(Route::UsageDetails);
        }
        if is("getCredentialUsageSummary") {
            let args = args?;
            return Some(match parse_period(args, "D1, D7, D30") {
                Ok(days) => Route::UsageSummary(days_to_duration(days)),
                Err(message) => Route::BadArgument {
                    legacy: true,
                    message,
                },
            });
        }
        None
    }

    fn successor(version: Version, segment: &str) -> Option<Route> {
        let (name, args) = call(segment);
        let is = |expected: &str| name.eq_ignore_ascii_case(expected);
        let bad = |message| Route::BadArgument {
            legacy: false,
            message,
        };
        if is("userRegistrationDetails") && args.is_none() {
            return Some(Route::UserRegistrationDetails(version));
        }
        if is("usersRegisteredByFeature") || is("usersRegisteredByMethod") {
            return Some(match parse_audience(args.unwrap_or("")) {
                Ok((types, roles)) if is("usersRegisteredByFeature") => {
                    Route::ByFeature(version, types, roles)
                }
                Ok((types, roles)) => Route::ByMethod(version, types, roles),
                Err(message) => bad(message),
            });
        }
        if version != Version::Beta {
            return None;
        }
        if is("userRegistrationActivity") || is("userSignInsByAuthMethodSummary") {
            return Some(match parse_period(args?, "d1, d7, d30") {
                Ok(days) if is("userRegistrationActivity") => {
                    Route::RegistrationActivity(days_to_duration(days))
                }
                Ok(days) => Route::SignInsByMethod(days),
                Err(message) => bad(message),
            });
        }
        if args.is_some() {
            return None;
        }
        if is("userEventsSummary") {
            Some(Route::EventsSummary)
        } else if is("userMfaSignInSummary") {
            Some(Route::MfaSignIns)
        } else if is("userPasswordResetsAndChangesSummary") {
            Some(Route::PasswordChanges)
        } else {
            None
        }
    }

    /// `{id}/transitiveMembers`, optionally cast to users (the fake's groups hold only users).
    fn group(version: Version, rest: &str) -> Option<Route> {
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            [id, members] | [id, members, "microsoft.graph.user"]
                if members.eq_ignore_ascii_case("transitiveMembers") =>
            {
                Some(Route::GroupMembers(version, (*id).to_owned()))
            }
            _ => None,
        }
    }

    /// Whether the gateway marks responses with `Deprecation` and `Sunset`.
    fn is_deprecated(&self) -> bool {
        match self {
            Route::RegistrationCount
            | Route::UsageSummary(_)
            | Route::RegistrationDetails
            | Route::UsageDetails => true,
            Route::BadArgument { legacy, .. } => *legacy,
            _ => false,
        }
    }
}

/// `name(args)` -> (`name`, `Some(args)`); anything else -> (segment, `None`).
fn call(segment: &str) -> (&str, Option<&str>) {
    segment
        .strip_suffix(')')
        .and_then(|s| s.split_once('('))
        .map_or((segment, None), |(name, args)| (name, Some(args)))
}

/// `key='value',…` -> pairs; `Err` holds the malformed piece.
fn parse_args(args: &str) -> Result<Vec<(&str, &str)>, String> {
    args.split(',')
        .filter(|piece| !piece.trim().is_empty())
        .map(|piece| {
            piece
                .split_once('=')
                .and_then(|(key, value)| {
                    let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
                    Some((key.trim(), value))
                })
                .ok_or_else(|| piece.to_owned())
        })
        .collect()
}

/// `period='D7'` (any case) -> 7; `Err` is Graph's message.
fn parse_period(args: &str, allowed: &str) -> Result<u64, String> {
    let pairs = parse_args(args).map_err(|piece| format!("Invalid parameter '{piece}'."))?;
    let value = match pairs.as_slice() {
        [(key, value)] if key.eq_ignore_ascii_case("period") => *value,
        _ => return Err("The parameter 'period' is required.".to_owned()),
    };
    match value.to_ascii_lowercase().as_str() {
        "d1" => Ok(1),
        "d7" => Ok(7),
        "d30" => Ok(30),
        _ => Err(format!(
            "Invalid value '{value}' for parameter 'period'. Allowed values: {allowed}."
        )),
    }
}

/// `includedUserTypes='…',includedUserRoles='…'`, each optional (default `all`).
fn parse_audience(args: &str) -> Result<(UserTypes, UserRoles), String> {
    let pairs = parse_args(args).map_err(|piece| format!("Invalid parameter '{piece}'."))?;
    let mut audience = (UserTypes::All, UserRoles::All);
    for (key, value) in pairs {
        let invalid = || format!("Invalid value '{value}' for parameter '{key}'.");
        if key.eq_ignore_ascii_case("includedUserTypes") {
            audience.0 = UserTypes::parse(value).ok_or_else(invalid)?;
        } else if key.eq_ignore_ascii_case("includedUserRoles") {
            audience.1 = UserRoles::parse(value).ok_or_else(invalid)?;
        } else {
            return Err(format!("Unknown parameter '{key}'."));
        }
    }
    Ok(audience)
}

fn days_to_duration(days: u64) -> Duration {
    Duration::from_secs(days * 24 * 3600)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// The segment Graph names in "Resource not found for the segment": the
/// first one after the version, `reports` and `authenticationMethods`.
fn unknown_segment(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut rest = segments.as_slice();
    for container in [
        &["beta", "v1.0"][..],
        &["reports"],
        &["authenticationMethods"],
    ] {
        if let [first, tail @ ..] = rest
            && !tail.is_empty()
            && container.iter().any(|c| first.eq_ignore_ascii_case(c))
        {
            rest = tail;
        }
    }
    let segment = rest.first().copied().unwrap_or(path);
    segment.split('(').next().unwrap_or(segment).to_owned()
}

#[cfg(feature = "testing")]
fn last_segment(path: &str) -> &str {
    let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
    let segment = path.rsplit('/').next().unwrap_or(path);
    segment.split('(').next().unwrap_or(segment)
}

async fn graph(
    shared: &Shared,
    req: Request<Incoming>,
    target: &Target,
    path: &str,
    route: Result<Route, String>,
    ids: &Ids,
) -> Reply {
    #[cfg(not(feature = "testing"))]
    let _ = (target, path);
    let authorized = {
        let state = shared.lock();
        #[cfg(feature = "testing")]
        let mut state = state;
        #[cfg(feature = "testing")]
        {
            *state.graph_requests.entry(target.raw.clone()).or_default() += 1;
        }
        bearer(req.headers()).map(|t| state.token_tenant(t))
    };
    let tenant = match authorized {
        Some(Some(tenant)) => tenant,
        Some(None) => return unauthorized("Access token has expired or is not yet valid.", ids),
        None => return unauthorized("Access token is empty.", ids),
    };
    #[cfg(feature = "testing")]
    let reshape = {
        let tenant_id = shared.tenant_ids.get(tenant).map(String::as_str);
        match misbehave(shared, target, path, tenant_id, Flavor::Graph, ids).await {
            Ok(reshape) => reshape,
            Err(reply) => return reply,
        }
    };
    let route = match route {
        Ok(route) => route,
        Err(segment) => {
            return Reply::graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Resource not found for the segment '{segment}'."),
                ids,
            );
        }
    };
    if req.method() != Method::GET {
        return Reply::graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("The HTTP method '{}' is not allowed.", req.method()),
            ids,
        );
    }
    let include_unknown = prefers_unknown_members(req.headers());
    let bad_request =
        |message: &str| Reply::graph_error(StatusCode::BAD_REQUEST, "BadRequest", message, ids);
    let query = match Query::parse(req.uri().query()) {
        Ok(query) => query,
        Err(message) => return bad_request(&message),
    };
    let (body, listed) = match report(shared, tenant, route, &query, include_unknown) {
        Ok(page) => page,
        Err(ReportError::BadArgument(message)) => return bad_request(&message),
        Err(ReportError::NotFound(id)) => {
            return Reply::graph_error(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                &format!(
                    "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
                ),
                ids,
            );
        }
        Err(ReportError::Encode(err)) => {
            tracing::warn!(%err, "fake Graph: encoding a response failed");
            return Reply::graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Encoding the response failed.",
                ids,
            );
        }
    };
    let reply = Reply {
        status: StatusCode::OK,
        content_type: GRAPH_JSON,
        body,
        headers: Vec::new(),
        #[cfg(feature = "testing")]
        delivery: Delivery::Whole,
    };
    #[cfg(feature = "testing")]
    let reply = {
        let (reply, rows_kept) = match reshape {
            Some(reshape) => reshape.apply(reply, &own_url(shared, target)),
            None => (reply, RowsKept::All),
        };
        let listed = listed.and_then(|(first, last)| match rows_kept {
            RowsKept::All => Some((first, last)),
            // Events are listed in seq order, so the last row is the one with the last seq.
            RowsKept::AllButLast => last.checked_sub(1).map(|before| (first, before)),
            RowsKept::None => None,
        });
        if let Some(seqs) = listed
            && let Some(sim) = shared.lock().sims.get_mut(tenant)
        {
            sim.mark_listed(seqs);
        }
        reply
    };
    #[cfg(not(feature = "testing"))]
    let _ = listed;
    if include_unknown {
        reply.with_header(
            HeaderName::from_static("preference-applied"),
            PREFER_UNKNOWN_MEMBERS,
        )
    } else {
        reply
    }
}

fn unauthorized(message: &str, ids: &Ids) -> Reply {
    Reply::graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
        ids,
    )
    .with_header(
        WWW_AUTHENTICATE,
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
    )
}

/// The token of a non-empty `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

fn prefers_unknown_members(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case(PREFER_UNKNOWN_MEMBERS))
        })
}

/// The query options the fake honours; others (`$filter`, `$select`) are ignored.
struct Query {
    /// Page cursor from `$skiptoken`, 0 without one.
    cursor: u64,
    /// `$top`, capped at [`MAX_TOP`].
    top: Option<usize>,
}

impl Query {
    /// `Err` is Graph's message for a `$skiptoken` we did not issue or a bad `$top`.
    fn parse(query: Option<&str>) -> Result<Query, String> {
        let mut parsed = Query {
            cursor: 0,
            top: None,
        };
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if key.eq_ignore_ascii_case("$skiptoken") {
                parsed.cursor = decode_skiptoken(&value)
                    .ok_or_else(|| format!("Invalid $skiptoken '{value}'."))?;
            } else if key.eq_ignore_ascii_case("$top") {
                let top = value
                    .parse::<usize>()
                    .ok()
                    .filter(|top| *top > 0)
                    .ok_or_else(|| format!("Invalid value '{value}' for query option '$top'."))?;
                parsed.top = Some(top.min(MAX_TOP));
            }
        }
        Ok(parsed)
    }
}

enum ReportError {
    BadArgument(String),
    /// An object id that does not exist (any more).
    NotFound(String),
    Encode(serde_json::Error),
}

/// A response body: `@odata.context`, the payload's fields, and the link to
/// the next page if any.
#[derive(Serialize)]
struct Envelope<B> {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(flatten)]
    body: B,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

#[derive(Serialize)]
struct Collection<T> {
    value: Vec<T>,
}

/// Builds and encodes the body for `route`. Runs under the state lock: pages
/// borrow events from the simulation, and a 999-row page encodes in about a
/// millisecond.
fn report(
    shared: &Shared,
    tenant: usize,
    route: Route,
    query: &Query,
    include_unknown: bool,
) -> Result<(Bytes, Option<(u64, u64)>), ReportError> {
    let now = SystemTime::now();
    let base = shared.base_url.as_str();
    let page_size = query
        .top
        .unwrap_or(shared.page_size)
        .min(shared.max_page_size);
    let metadata = |version: Version, fragment: &str| {
        format!("{base}/{}/$metadata#{fragment}", version.as_str())
    };
    let collection = |type_name: &str| {
        metadata(
            Version::Beta,
            &format!("Collection(microsoft.graph.{type_name})"),
        )
    };
    let next_link = |version: Version, path: &str, cursor: Option<u64>| {
        let top = query
            .top
            .map(|top| format!("$top={top}&"))
            .unwrap_or_default();
        cursor.map(|cursor| {
            format!(
                "{base}/{}/reports/{path}?{top}$skiptoken={}",
                version.as_str(),
                encode_skiptoken(cursor)
            )
        })
    };
    let mut state = shared.lock();
    let Some(sim) = state.sims.get_mut(tenant) else {
        return Err(ReportError::NotFound(format!("tenant {tenant}")));
    };
    sim.advance(now);
    let seed = sim.seed();
    let mut listed = None;
    let body = match route {
        Route::BadArgument { message, .. } => Err(ReportError::BadArgument(message)),
        Route::RegistrationCount => encode(
            collection("credentialUserRegistrationCount"),
            Collection {
                value: vec![sim.registration_count()],
            },
            None,
        ),
        Route::UsageSummary(period) => encode(
            collection("credentialUsageSummary"),
            Collection {
                value: sim.usage_summary(now, period, include_unknown),
            },
            None,
        ),
        Route::RegistrationDetails => {
            let (users, cursor) = sim.user_page(query.cursor, page_size);
            let value = users
                .iter()
                .map(|u| u.legacy_row(seed, include_unknown))
                .collect();
            encode(
                collection("credentialUserRegistrationDetails"),
                Collection { value },
                next_link(Version::Beta, "credentialUserRegistrationDetails", cursor),
            )
        }
        Route::UsageDetails => {
            let page = sim.event_page(query.cursor, page_size, include_unknown);
            listed = page.seqs;
            encode(
                collection("userCredentialUsageDetails"),
                Collection { value: page.rows },
                next_link(Version::Beta, "userCredentialUsageDetails", page.next),
            )
        }
        Route::EventsSummary => {
            let page = sim.event_page(query.cursor, page_size, include_unknown);
            listed = page.seqs;
            encode(
                metadata(
                    Version::Beta,
                    "reports/authenticationMethods/userEventsSummary",
                ),
                Collection { value: page.rows },
                next_link(
                    Version::Beta,
                    "authenticationMethods/userEventsSummary",
                    page.next,
                ),
            )
        }
        Route::UserRegistrationDetails(version) => {
            let (users, cursor) = sim.user_page(query.cursor, page_size);
            let value = users.iter().map(|u| u.successor_row(seed)).collect();
            encode(
                metadata(
                    version,
                    "reports/authenticationMethods/userRegistrationDetails",
                ),
                Collection { value },
                next_link(
                    version,
                    "authenticationMethods/userRegistrationDetails",
                    cursor,
                ),
            )
        }
        Route::ByFeature(version, types, roles) => encode(
            metadata(version, "microsoft.graph.userRegistrationFeatureSummary"),
            sim.census().feature_summary(types, roles),
            None,
        ),
        Route::ByMethod(version, types, roles) => encode(
            metadata(version, "microsoft.graph.userRegistrationMethodSummary"),
            sim.census().method_summary(types, roles),
            None,
        ),
        Route::RegistrationActivity(period) => encode(
            collection("userRegistrationActivitySummary"),
            Collection {
                value: sim.registration_activity(now, period, include_unknown),
            },
            None,
        ),
        Route::SignInsByMethod(days) => encode(
            collection("userSignInUsageByAuthMethodActivity"),
            Collection {
                value: stats::sign_ins_by_method(sim, now, days),
            },
            None,
        ),
        Route::MfaSignIns => encode(
            metadata(
                Version::Beta,
                "reports/authenticationMethods/userMfaSignInSummary",
            ),
            Collection {
                value: stats::mfa_sign_ins(sim, now),
            },
            None,
        ),
        Route::PasswordChanges => encode(
            metadata(
                Version::Beta,
                "reports/authenticationMethods/userPasswordResetsAndChangesSummary",
            ),
            Collection {
                value: stats::password_changes(sim, now),
            },
            None,
        ),
        Route::Policy(version) => encode(
            metadata(version, "policies/authenticationMethodsPolicy/$entity"),
            state.policy.clone(),
            None,
        ),
        Route::GroupMembers(version, id) => {
            let ranges = transitive_members(&shared.groups, &id, sim.user_count())
                .ok_or(ReportError::NotFound(id.clone()))?;
            let cursor = usize::try_from(query.cursor).unwrap_or(usize::MAX);
            let (users, cursor) = member_page(&ranges, cursor, page_size);
            let value = users
                .into_iter()
                .map(|index| MemberRow {
                    id: user_id(seed, index),
                })
                .collect();
            let top = query.top.unwrap_or(page_size);
            let next = cursor.map(|cursor| {
                format!(
                    "{base}/{}/groups/{id}/transitiveMembers/microsoft.graph.user?$select=id&$top={top}&$skiptoken={}",
                    version.as_str(),
                    encode_skiptoken(cursor as u64)
                )
            });
            encode(metadata(version, "users(id)"), Collection { value }, next)
        }
    };
    body.map(|body| (body, listed))
}

/// A member of a group as `$select=id` returns it.
#[derive(Serialize)]
struct MemberRow {
    id: String,
}

fn encode<B: Serialize>(
    context: String,
    body: B,
    next_link: Option<String>,
) -> Result<Bytes, ReportError> {
    serde_json::to_vec(&Envelope {
        context,
        body,
        next_link,
    })
    .map(Bytes::from)
    .map_err(ReportError::Encode)
}

/// `$skiptoken` for a page cursor. Masked so clients are not tempted to
/// parse it; tests build tokens for deep pages with it.
pub(super) fn encode_skiptoken(cursor: u64) -> String {
    format!("{SKIPTOKEN_PREFIX}{:016x}", cursor ^ SKIPTOKEN_MASK)
}

fn decode_skiptoken(token: &str) -> Option<u64> {
    token
        .strip_prefix(SKIPTOKEN_PREFIX)
        .filter(|hex| hex.len() == 16)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .map(|masked| masked ^ SKIPTOKEN_MASK)
}

/// Decodes `%XX` escapes; malformed escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(feature = "testing")]
/// Replaces `@odata.nextLink` (all bodies here are JSON objects).
fn set_next_link(body: &mut Value, url: String) {
    set_value(body, "@odata.nextLink", Value::String(url));
}

#[cfg(feature = "testing")]
fn set_value(body: &mut Value, key: &str, value: Value) {
    if let Some(object) = body.as_object_mut() {
        object.insert(key.to_owned(), value);
    }
}

#[cfg(feature = "testing")]
fn remove_key(body: &mut Value, key: &str) {
    if let Some(object) = body.as_object_mut() {
        object.remove(key);
    }
}
