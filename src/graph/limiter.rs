//! The per-tenant request budget. Graph allows 5 requests per 10 s per app per tenant, counted
//! over any 10-second window. Requests are spaced evenly, one every `window / requests`: that
//! can never exceed the budget in any window, and it leaves no bursts for one report to grab.
//! Waiters are served in arrival order (tokio's mutex is FIFO), so a long scan and a cheap
//! summary take turns: the summary waits at most a couple of slots, however long the scan.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Limiter {
    spacing: Duration,
    /// When the next request may go.
    next: Mutex<Option<Instant>>,
}

impl Limiter {
    pub fn new(requests: u32, window: Duration) -> Self {
        Self {
            spacing: window / requests.max(1),
            next: Mutex::new(None),
        }
    }

    /// Waits for this caller's slot. Holding the lock while sleeping is deliberate: it keeps
    /// later callers queued behind this one, in order.
    pub async fn acquire(&self) {
        let mut next = self.next.lock().await;
        let now = Instant::now();
        let at = next.map_or(now, |next| next.max(now));
        tokio::time::sleep_until(at).await;
        *next = Some(at + self.spacing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_budget_in_any_window() {
        let limiter = Limiter::new(5, Duration::from_secs(10));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..12 {
            limiter.acquire().await;
            times.push(start.elapsed());
        }
        assert_eq!(times[0], Duration::ZERO);
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_secs(2));
        }
        for (i, t) in times.iter().enumerate().skip(5) {
            assert!(*t >= times[i - 5] + Duration::from_secs(10));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_limiter_lets_the_next_request_go_at_once() {
        let limiter = Limiter::new(5, Duration::from_secs(10));
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let before = Instant::now();
        limiter.acquire().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_arrival_order() {
        let limiter = Arc::new(Limiter::new(1, Duration::from_secs(10)));
        limiter.acquire().await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for id in 0..4 {
            let (limiter, order) = (limiter.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                limiter.acquire().await;
                order.lock().unwrap().push(id);
            }));
            // Let each task queue up before the next one starts.
            tokio::task::yield_now().await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    }
}
