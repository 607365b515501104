//! What tests steer and read (the `testing` feature): one-shot [`Fault`]s, retired paths, and
//! the log of requests. `--demo` needs none of it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A request as the fake received it, for tests that check order and timing.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// The tenant: of the bearer token for Graph, of the path for the token
    /// endpoint; `None` when neither names a tenant the fake serves.
    pub tenant: Option<String>,
    /// Path and query as received.
    pub target: String,
    /// When the request arrived.
    pub at: Instant,
    /// The status answered; 0 for a connection closed unanswered ([`Fault::Reset`]).
    pub status: u16,
}

/// A one-shot misbehaviour for [`FakeGraph::inject`](crate::FakeGraph::inject).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status. An empty `body` becomes a Graph error body.
    Status {
        code: u16,
        retry_after: Option<String>,
        body: String,
    },
    /// `200` with a complete body that is not valid JSON (it stops mid-object).
    InvalidJson,
    /// The normal response, with `@odata.nextLink` set to this absolute URL.
    ForeignNextLink(String),
    /// Sleep, then answer normally: longer than the client's timeout, a response that times out.
    Delay(Duration),
    /// The normal response cut in half on the wire: `Content-Length` announces the whole body,
    /// half of it is sent, then the connection closes.
    TruncatedBody,
    /// The normal response, with `@odata.nextLink` pointing at the request's own URL: a paging
    /// loop.
    NextLinkLoop,
    /// `200` with an empty `value` that still has an `@odata.nextLink` (the page's own, or the
    /// request's URL on the last page).
    EmptyPageWithNextLink,
    /// `200` with an empty `value` and no `@odata.nextLink`: a transient empty list.
    EmptyCollection,
    /// The normal page without its `@odata.nextLink`: the list ends early, a shorter window.
    NoNextLink,
    /// The connection closes before any answer, as when it is reset.
    Reset,
    /// The normal page grown to at least `bytes` bytes by repeating its rows (a valid page),
    /// sent with its `Content-Length`, or gzip-compressed (`Content-Encoding: gzip`, so only
    /// the decoded size tells), as a misbehaving proxy might.
    OversizedPage { bytes: usize, gzip: bool },
    /// The normal response with its last row spoiled so that a client cannot parse it: `field`
    /// set to `value`, or removed when `value` is `None` (a `null` `isSuccess`, an `id` of the
    /// wrong type, a missing `id`). In a single document (`usersRegisteredBy*`) the row is the
    /// last one of its first list. A spoiled usage event does not count as listed.
    BadRow {
        field: String,
        value: Option<serde_json::Value>,
    },
}

/// Where a fault or a retirement applies: every tenant, or the one with this id.
pub(crate) type Scope = Option<String>;

/// Queued faults and retired paths, keyed by a substring of the request's path+query.
#[derive(Default)]
pub(crate) struct Faults {
    /// FIFO of one-shot faults per key, in the order keys were first used.
    queued: Vec<(Scope, String, VecDeque<Fault>)>,
    retired: Vec<(Scope, String, u16)>,
}

impl Faults {
    pub(crate) fn inject(&mut self, scope: Scope, key: &str, fault: Fault) {
        match self
            .queued
            .iter_mut()
            .find(|(s, k, _)| *s == scope && k == key)
        {
            Some((_, _, queue)) => queue.push_back(fault),
            None => self
                .queued
                .push((scope, key.to_owned(), VecDeque::from([fault]))),
        }
    }

    pub(crate) fn retire(&mut self, scope: Scope, key: &str, status: u16) {
        match self
            .retired
            .iter_mut()
            .find(|(s, k, _)| *s == scope && k == key)
        {
            Some((_, _, s)) => *s = status,
            None => self.retired.push((scope, key.to_owned(), status)),
        }
    }

    /// Lifts the retirement of `key`, in every tenant it was retired for.
    pub(crate) fn restore(&mut self, key: &str) {
        self.retired.retain(|(_, k, _)| k != key);
    }

    pub(crate) fn queued(&self, key: &str) -> usize {
        self.queued
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(_, _, queue)| queue.len())
            .sum()
    }

    pub(crate) fn clear(&mut self) -> usize {
        let pending = self.queued.iter().map(|(_, _, queue)| queue.len()).sum();
        self.queued.clear();
        pending
    }

    /// What a request of `tenant` whose target `matches` a key should suffer instead of a
    /// normal answer: the status of a retired path, else the next queued fault (consumed).
    pub(crate) fn misbehaviour(
        &mut self,
        matches: impl Fn(&str) -> bool,
        tenant: Option<&str>,
    ) -> (Option<u16>, Option<Fault>) {
        let retired = self
            .retired
            .iter()
            .find(|(scope, k, _)| in_scope(scope, tenant) && matches(k))
            .map(|(_, _, s)| *s);
        if retired.is_some() {
            return (retired, None);
        }
        (None, self.take(&matches, tenant))
    }

    fn take(&mut self, matches: impl Fn(&str) -> bool, tenant: Option<&str>) -> Option<Fault> {
        let pos = self
            .queued
            .iter()
            .position(|(scope, k, _)| in_scope(scope, tenant) && matches(k))?;
        let queue = &mut self.queued.get_mut(pos)?.2;
        let fault = queue.pop_front();
        if queue.is_empty() {
            self.queued.remove(pos);
        }
        fault
    }
}

fn in_scope(scope: &Scope, tenant: Option<&str>) -> bool {
    match scope {
        None => true,
        Some(id) => tenant.is_some_and(|t| t.eq_ignore_ascii_case(id)),
    }
}
