//! A request budget: a tenant's (Graph allows 5 requests per 10 s per app per tenant) or an app
//! registration's across its tenants (122 per 10 s), counted over any 10-second window.
//! Requests are spaced evenly, one every `window / requests`: that can never exceed the budget
//! in any window, and it leaves no bursts for one report to grab. Waiters are served in arrival
//! order (tokio's mutex is FIFO), so a long scan and a cheap summary take turns: the summary
//! waits at most a couple of slots, however long the scan.
//!
//! A tenant's limiter can also be paused: when Graph answers 429 or 503 with `Retry-After`, it
//! counts the budget for the whole tenant, so every request of the tenant waits until then, not
//! only the one that was told.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Limiter {
    spacing: Duration,
    /// When the next request may go.
    next: Mutex<Option<Instant>>,
    /// No request goes before this.
    paused_until: std::sync::Mutex<Option<Instant>>,
}

impl Limiter {
    pub fn new(requests: u32, window: Duration) -> Self {
        Self {
            spacing: window / requests.max(1),
            next: Mutex::new(None),
            paused_until: std::sync::Mutex::new(None),
        }
    }

    /// Waits for this caller's slot. Holding the lock while sleeping is deliberate: it keeps
    /// later callers queued behind this one, in order.
    pub async fn acquire(&self) {
        let mut next = self.next.lock().await;
        let now = Instant::now();
        let mut at = next.map_or(now, |next| next.max(now));
        // A pause may begin while this caller sleeps: look again after every wake-up.
        loop {
            at = self.paused_until().map_or(at, |until| at.max(until));
            tokio::time::sleep_until(at).await;
            if self.paused_until().is_none_or(|until| until <= at) {
                break;
            }
        }
        *next = Some(at + self.spacing);
    }

    /// Returns once no pause is in force: for a request that got its slot here, then waited for
    /// another budget (the app's) while Graph paused the tenant.
    pub async fn wait_out_pause(&self) {
        while let Some(until) = self.paused_until().filter(|until| *until > Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Holds every request until `until` (a later pause already in force wins).
    pub fn pause_until(&self, until: Instant) {
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        *paused = Some(paused.map_or(until, |p| p.max(until)));
    }

    fn paused_until(&self) -> Option<Instant> {
        *self.paused_until.lock().unwrap_or_else(|p| p.into_inner())
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
    async fn a_request_past_its_slot_still_waits_out_a_pause() {
        let limiter = Limiter::new(5, Duration::from_secs(10));
        let start = Instant::now();
        limiter.wait_out_pause().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "no pause, no wait");
        limiter.pause_until(start + Duration::from_secs(30));
        limiter.wait_out_pause().await;
        assert_eq!(start.elapsed(), Duration::from_secs(30));
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
    async fn a_pause_holds_every_waiter_including_those_already_queued() {
        let limiter = Arc::new(Limiter::new(5, Duration::from_secs(10)));
        let start = Instant::now();
        limiter.acquire().await;
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (limiter, times) = (limiter.clone(), times.clone());
            tasks.push(tokio::spawn(async move {
                limiter.acquire().await;
                times.lock().unwrap().push(start.elapsed());
            }));
            tokio::task::yield_now().await;
        }
        // The first waiter is asleep until 2 s when Graph says: nothing before 30 s.
        tokio::time::sleep(Duration::from_secs(1)).await;
        limiter.pause_until(start + Duration::from_secs(30));
        // An earlier end does not shorten the pause.
        limiter.pause_until(start + Duration::from_secs(5));
        for task in tasks {
            task.await.unwrap();
        }
        let times = times.lock().unwrap().clone();
        assert_eq!(
            times,
            [30, 32, 34].map(Duration::from_secs),
            "every queued request waits for the pause, then the spacing holds"
        );
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
