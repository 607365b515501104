//! TLS accept loop shared by the fake Graph and the [`Recorder`].

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::FakeError;

pub(crate) type FakeResponse = Response<BoxBody<Bytes, Infallible>>;

/// A response extension: close the connection instead of sending the response.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("connection reset by the fake")]
pub(crate) struct ResetConnection;

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
        let mut backoff = crate::server::AcceptBackoff::default();
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => {
                    backoff.succeeded();
                    accepted
                }
                Err(err) => {
                    // Typically EMFILE; keep serving rather than kill the fake, without
                    // spinning.
                    tokio::time::sleep(backoff.failed("fake Graph", &err)).await;
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
                        match response.extensions().get::<ResetConnection>() {
                            Some(reset) => Err(*reset),
                            None => Ok(response),
                        }
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

pub(crate) fn https_url(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

/// A second HTTPS listener that only counts requests.
///
/// Tests point a `@odata.nextLink` at it (see
/// [`Fault::ForeignNextLink`](super::Fault::ForeignNextLink)) to prove the
/// exporter never sends its bearer token to a host other than the Graph
/// endpoint. Every request is answered `200 {"value":[]}`. The server stops
/// when the `Recorder` is dropped.
pub struct Recorder {
    url: String,
    hits: Arc<AtomicUsize>,
    authorized_hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

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

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`Recorder`] on `127.0.0.1:0`.
///
/// Pass [`FakeGraph::tls_config`](super::FakeGraph::tls_config) (or the config
/// from [`tls::generate_ca_and_leaf`](super::tls::generate_ca_and_leaf)) so that
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
