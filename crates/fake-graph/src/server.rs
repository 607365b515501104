//! TLS accept loop shared by the fake Graph and the `Recorder` (a foreign host for tests).

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
#[cfg(feature = "testing")]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
#[cfg(feature = "testing")]
use {
    http_body_util::{BodyExt, Full},
    hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue},
};

use crate::error::FakeError;

pub(crate) type FakeResponse = Response<BoxBody<Bytes, Infallible>>;

/// A response extension: close the connection instead of sending the response.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("connection reset by the fake")]
pub(crate) struct ResetConnection;

/// Why a connection's service fails: only to drop the connection unanswered, for tests.
#[cfg(feature = "testing")]
type ServiceError = ResetConnection;
#[cfg(not(feature = "testing"))]
type ServiceError = Infallible;

/// Binds `127.0.0.1` on a port the OS picks. Separate from
/// [`spawn_tls_server`] because handlers need the URL before serving.
pub(crate) async fn bind_loopback() -> Result<(TcpListener, SocketAddr), FakeError> {
    let bind_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let listener = TcpListener::bind(bind_addr)
        .await
        .map_err(|source| FakeError::Bind {
            addr: bind_addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(FakeError::LocalAddr)?;
    Ok((listener, addr))
}

/// Serves HTTPS on `listener` with `handler` until the returned task is
/// aborted. Aborting it also ends every open connection, because the
/// connection tasks live in a `JoinSet` owned by the accept loop; otherwise
/// pooled keep-alive connections would outlive a "stopped" fake.
pub(crate) fn spawn_tls_server<H, F>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: H,
) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = FakeResponse> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        let mut backoff: Option<ExponentialBackoff> = None;
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => {
                    backoff = None;
                    accepted
                }
                Err(err) => {
                    // Typically EMFILE; keep serving rather than kill the fake, without
                    // spinning.
                    let delay = backoff
                        .get_or_insert_with(accept_backoff)
                        .next()
                        .unwrap_or(ACCEPT_BACKOFF_MAX);
                    tracing::debug!(%err, ?delay, "fake server: accepting a connection failed");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            connections.spawn(async move {
                let tls_stream = match acceptor.accept(tcp).await {
                    Ok(stream) => stream,
                    Err(err) => {
                        tracing::debug!(%err, %peer, "fake server: TLS handshake failed");
                        return;
                    }
                };
                let service = service_fn(move |req| {
                    let fut = handler(req);
                    async move {
                        let response = fut.await;
                        // A service error makes hyper drop the connection unanswered.
                        #[cfg(feature = "testing")]
                        if let Some(reset) = response.extensions().get::<ResetConnection>() {
                            return Err(*reset);
                        }
                        Ok::<_, ServiceError>(response)
                    }
                });
                if let Err(err) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls_stream), service)
                    .await
                {
                    tracing::debug!(%err, %peer, "fake server: connection ended with error");
                }
            });
        }
    })
}

const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Waits after failed accepts: 5 ms, doubling up to a second, until one succeeds.
fn accept_backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(5))
        .with_max_delay(ACCEPT_BACKOFF_MAX)
        .without_max_times()
        .build()
}

pub(crate) fn https_url(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

#[cfg(feature = "testing")]
/// A second HTTPS listener that only counts requests.
///
/// Tests point a `@odata.nextLink` at it (see
/// [`Fault::ForeignNextLink`](crate::Fault::ForeignNextLink)) to prove the
/// exporter never sends its bearer token to a host other than the Graph
/// endpoint. Every request is answered `200 {"value":[]}`. The server stops
/// when the `Recorder` is dropped.
pub struct Recorder {
    url: String,
    hits: Arc<AtomicUsize>,
    authorized_hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

#[cfg(feature = "testing")]
impl Recorder {
    /// `https://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Requests received so far that carried an `Authorization` header.
    pub fn authorized_hits(&self) -> usize {
        self.authorized_hits.load(Ordering::SeqCst)
    }
}

#[cfg(feature = "testing")]
impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(feature = "testing")]
/// Starts a [`Recorder`] on `127.0.0.1:0`.
///
/// Pass [`FakeGraph::tls_config`](crate::FakeGraph::tls_config) (or the config
/// from [`tls::generate_ca_and_leaf`](crate::tls::generate_ca_and_leaf)) so that
/// clients trusting that CA also trust the recorder; a TLS failure would hide
/// whether the token was about to be sent.
pub async fn serve_recorder(tls: Arc<rustls::ServerConfig>) -> Result<Recorder, FakeError> {
    let hits = Arc::new(AtomicUsize::new(0));
    let authorized_hits = Arc::new(AtomicUsize::new(0));
    let (listener, addr) = bind_loopback().await?;
    let task = spawn_tls_server(listener, tls, {
        let hits = Arc::clone(&hits);
        let authorized_hits = Arc::clone(&authorized_hits);
        move |req: Request<Incoming>| {
            hits.fetch_add(1, Ordering::SeqCst);
            if req.headers().contains_key(AUTHORIZATION) {
                authorized_hits.fetch_add(1, Ordering::SeqCst);
            }
            async move {
                let mut resp =
                    Response::new(Full::new(Bytes::from_static(br#"{"value":[]}"#)).boxed());
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp
            }
        }
    });
    Ok(Recorder {
        url: https_url(addr),
        hits,
        authorized_hits,
        task,
    })
}
