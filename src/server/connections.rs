//! What each client may hold: open connections are capped, and a connection is closed when it
//! idles or sends its headers too slowly. Timing follows Go's net/http: headers must be complete
//! within the header-read timeout from the connection's start or from the first byte of a later
//! request; a kept-alive connection may wait the idle timeout for its next request; a response
//! may stall without a byte moving for the idle timeout.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Milliseconds since the first call: a cheap clock that fits in an atomic. Never 0.
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    base.elapsed().as_millis() as u64 + 1
}

/// The instant of a [`now_ms`] value.
fn instant_of(ms: u64) -> tokio::time::Instant {
    let now = now_ms();
    let now_instant = tokio::time::Instant::now();
    if ms >= now {
        now_instant + Duration::from_millis(ms - now)
    } else {
        now_instant
    }
}

/// Timeouts every connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
}

/// One open connection, as its watchdog and the eviction see it.
#[derive(Debug)]
pub struct Connection {
    /// Requests whose response is still being handed to the client.
    in_request: AtomicUsize,
    /// When it last started waiting for a request: accepted, or its last response sent.
    waiting_since: AtomicU64,
    /// First byte of a request that is still arriving (0: none).
    head_started: AtomicU64,
    /// Last byte read or written.
    last_io: AtomicU64,
    /// Cancelled to close the connection at once.
    pub closed: CancellationToken,
}

impl Connection {
    fn new() -> Self {
        let now = now_ms();
        Self {
            in_request: AtomicUsize::new(0),
            waiting_since: AtomicU64::new(now),
            // A new connection owes its first request's headers within the header-read timeout.
            head_started: AtomicU64::new(now),
            last_io: AtomicU64::new(now),
            closed: CancellationToken::new(),
        }
    }

    fn read(&self) {
        let now = now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_request.load(Ordering::Relaxed) == 0 {
            let _ =
                self.head_started
                    .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_io.store(now_ms(), Ordering::Relaxed);
    }

    /// A request's headers arrived; the guard marks its response handed over when dropped.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_request.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    /// When the connection is to be closed unless something happens first.
    fn deadline(&self, timeouts: Timeouts) -> u64 {
        let ms = |d: Duration| d.as_millis() as u64;
        if self.in_request.load(Ordering::Relaxed) > 0 {
            return self.last_io.load(Ordering::Relaxed) + ms(timeouts.idle);
        }
        match self.head_started.load(Ordering::Relaxed) {
            0 => {
                let since = self
                    .waiting_since
                    .load(Ordering::Relaxed)
                    .max(self.last_io.load(Ordering::Relaxed));
                since + ms(timeouts.idle)
            }
            started => started + ms(timeouts.header_read),
        }
    }

    /// Sleeps until the connection has been idle or slow for too long.
    pub async fn expired(&self, timeouts: Timeouts) {
        loop {
            let deadline = self.deadline(timeouts);
            if now_ms() >= deadline {
                return;
            }
            tokio::time::sleep_until(instant_of(deadline)).await;
        }
    }
}

/// Held by a response body: the request counts as in progress until it is dropped.
#[derive(Debug)]
pub struct RequestGuard(Arc<Connection>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.waiting_since.store(now_ms(), Ordering::Relaxed);
        self.0.in_request.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The open connections of all listeners, capped at `--web.max-connections`.
pub struct Connections {
    permits: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
}

/// A connection's place among the open ones; dropping it frees the place.
pub struct Admitted {
    pub connection: Arc<Connection>,
    id: u64,
    connections: Arc<Connections>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut open) = self.connections.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl Connections {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max)),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// A place for a new connection. At the cap, the connection waiting longest for a request
    /// is closed to make room, so that idle or slow clients cannot lock others out; while every
    /// connection is mid-request, this waits for one to finish.
    pub async fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.close_idlest();
                self.permits.clone().acquire_owned().await.ok()?
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::new());
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, connection.clone());
        }
        Some(Admitted {
            connection,
            id,
            connections: self.clone(),
            _permit: permit,
        })
    }

    /// Closes the connection that has waited longest for a request, if any is waiting.
    pub fn close_idlest(&self) -> bool {
        let Ok(open) = self.open.lock() else {
            return false;
        };
        let idlest = open
            .values()
            .filter(|c| c.in_request.load(Ordering::Relaxed) == 0 && !c.closed.is_cancelled())
            .min_by_key(|c| c.waiting_since.load(Ordering::Relaxed));
        match idlest {
            Some(connection) => {
                connection.closed.cancel();
                true
            }
            None => false,
        }
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.lock().map(|open| open.len()).unwrap_or(0)
    }
}

/// A stream that tells its [`Connection`] when bytes move.
pub struct Tracked<T> {
    inner: T,
    connection: Arc<Connection>,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, connection: Arc<Connection>) -> Self {
        Self { inner, connection }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.connection.read();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.connection.wrote();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.connection.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How long to wait after `accept()` fails, and whether to say so. Without it a listener that
/// hits the descriptor limit (EMFILE) retries at once, for ever: a full core and a log flood.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    delay: Duration,
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);
    /// At most one log line per this period while failures go on.
    const LOG_EVERY: Duration = Duration::from_secs(60);

    /// Records a failure and returns how long to wait before accepting again.
    pub fn failed(&mut self, what: &str, err: &io::Error) -> Duration {
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::MAX);
        if self
            .last_logged
            .is_none_or(|at| at.elapsed() >= Self::LOG_EVERY)
        {
            warn!(
                error = %err,
                failures_not_logged = self.unlogged,
                retry_in = ?self.delay,
                "{what}: accepting a connection failed; backing off (at most one such line a minute)"
            );
            self.last_logged = Some(Instant::now());
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        self.delay
    }

    pub fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

/// True for accept errors that mean "out of descriptors", where closing an idle connection
/// gives the listener room again.
pub fn out_of_descriptors(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(code) if code == 24 /* EMFILE */ || code == 23 /* ENFILE */)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_second_and_logs_rarely() {
        let mut backoff = AcceptBackoff::default();
        let err = io::Error::from_raw_os_error(24);
        let delays: Vec<Duration> = (0..12).map(|_| backoff.failed("test", &err)).collect();
        assert_eq!(delays[0], Duration::from_millis(5));
        assert_eq!(delays[1], Duration::from_millis(10));
        assert_eq!(*delays.last().unwrap(), Duration::from_secs(1));
        assert_eq!(backoff.unlogged, 11, "only the first failure is logged");
        backoff.succeeded();
        assert_eq!(backoff.failed("test", &err), Duration::from_millis(5));
        assert!(out_of_descriptors(&err));
        assert!(!out_of_descriptors(&io::Error::from_raw_os_error(103)));
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(120),
        }
    }

    #[test]
    fn deadlines_follow_the_state_of_the_connection() {
        let connection = Arc::new(Connection::new());
        let accepted = connection.head_started.load(Ordering::Relaxed);
        // New: headers are due within the header-read timeout.
        assert_eq!(connection.deadline(timeouts()), accepted + 10_000);
        let guard = connection.request_started();
        // Mid-response: the idle timeout from the last byte moved.
        assert_eq!(
            connection.deadline(timeouts()),
            connection.last_io.load(Ordering::Relaxed) + 120_000
        );
        drop(guard);
        // Kept alive: the idle timeout from the end of the response.
        let waiting = connection.waiting_since.load(Ordering::Relaxed);
        assert_eq!(connection.deadline(timeouts()), waiting + 120_000);
        // The next request's first byte starts its header-read timeout.
        connection.read();
        let started = connection.head_started.load(Ordering::Relaxed);
        assert_ne!(started, 0);
        assert_eq!(connection.deadline(timeouts()), started + 10_000);
    }

    #[tokio::test]
    async fn at_the_cap_the_connection_waiting_longest_is_closed() {
        let connections = Connections::new(2);
        let first = connections.admit().await.unwrap();
        let busy = connections.admit().await.unwrap();
        let _request = busy.connection.request_started();
        assert_eq!(connections.open(), 2);
        let closer = first.connection.closed.clone();
        let waiting = tokio::spawn({
            let connections = connections.clone();
            async move {
                connections
                    .admit()
                    .await
                    .map(|a| a.connection.closed.is_cancelled())
            }
        });
        // The idle one is told to close; once it does, the newcomer gets its place.
        closer.cancelled().await;
        assert!(
            !busy.connection.closed.is_cancelled(),
            "a busy connection stays"
        );
        drop(first);
        assert_eq!(waiting.await.unwrap(), Some(false));
    }
}
