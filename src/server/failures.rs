//! Failed authentications (DESIGN §4, §10): the limiter that slows them per client address, and
//! their audit events, written at most once a second per address with a count.
//!
//! The limiter only ever refuses requests that fail anyway: a request carrying a valid key is
//! authenticated and served whatever its address did before, so a fleet behind one NAT is
//! never locked out by a neighbour's bad key, and knowing a key id (which listings print)
//! lets nobody lock its key out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;

use super::App;
use super::client::ClientInfo;
use crate::store::{Actor, AuditEvent, Millis};

/// Failed authentications allowed per client address in one window.
pub const MAX_FAILURES: u32 = 20;
/// The window, in milliseconds.
pub const WINDOW_MS: Millis = 60_000;
/// Bound on tracked addresses (expired windows are dropped first).
const MAX_TRACKED: usize = 100_000;
/// Key ids named in one aggregated event at most.
const MAX_KEY_IDS: usize = 16;

/// Why an authentication failed, as the audit log and the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No key was sent.
    NoKey,
    /// The token is not a key of this platform (malformed, or no key has its id).
    UnknownKey,
    /// A key with this id exists, but the secret part differs.
    WrongSecret,
    /// The key was revoked.
    Revoked,
    /// The key expired.
    Expired,
    /// The key's user is no longer a member.
    NotAMember,
}

impl Reason {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoKey => "no_key",
            Self::UnknownKey => "unknown_key",
            Self::WrongSecret => "wrong_secret",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::NotAMember => "not_a_member",
        }
    }
}

/// One failed authentication.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Why.
    pub reason: Reason,
    /// The key id, when the token parsed.
    pub key_id: Option<String>,
    /// The key's team, when a key has that id.
    pub team: Option<i64>,
    /// What the client is told.
    pub message: String,
}

/// Fixed-window counts of failed authentications per client address.
#[derive(Debug)]
pub struct Limiter {
    windows: Mutex<HashMap<String, (Millis, u32)>>,
    /// Failures allowed per address and window (`latch serve --auth-failure-budget`).
    budget: u32,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::with_budget(MAX_FAILURES)
    }
}

impl Limiter {
    /// A limiter allowing `budget` failures per address a minute.
    #[must_use]
    pub fn with_budget(budget: u32) -> Self {
        Self {
            windows: Mutex::default(),
            budget,
        }
    }

    /// Counts a failure from `addr` at `now`; `shared` is the deployment-wide count of the
    /// current window when the store keeps one (several replicas), which raises the local
    /// count to it. Returns the seconds to wait when the address is now over its budget.
    pub fn fail(&self, addr: &str, now: Millis, shared: Option<u32>) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() > MAX_TRACKED {
            windows.retain(|_, (start, _)| now - *start < WINDOW_MS);
        }
        let entry = windows.entry(addr.to_owned()).or_insert((now, 0));
        if now - entry.0 >= WINDOW_MS {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1).max(shared.unwrap_or(0));
        (entry.1 > self.budget)
            .then(|| u64::try_from((entry.0 + WINDOW_MS - now).max(1000) / 1000).unwrap_or(60))
    }
}

/// Failures of one address (and team) not yet written.
#[derive(Debug)]
struct Pending {
    first_at: Millis,
    count: u32,
    reasons: BTreeMap<&'static str, u32>,
    key_ids: BTreeSet<String>,
    user_agent: Option<String>,
}

/// The `auth.failed` events waiting to be written: one per address and team per second.
#[derive(Debug, Default)]
pub struct FailureLog {
    pending: Mutex<HashMap<(Option<i64>, String), Pending>>,
    flushing: AtomicBool,
}

impl FailureLog {
    /// Notes `failure` from `client`, and makes sure a writer will flush it within a second.
    pub fn note(&self, app: &Arc<App>, failure: &Failure, client: &ClientInfo, now: Millis) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = pending
                .entry((failure.team, client.addr_text()))
                .or_insert_with(|| Pending {
                    first_at: now,
                    count: 0,
                    reasons: BTreeMap::new(),
                    key_ids: BTreeSet::new(),
                    user_agent: client.user_agent.clone(),
                });
            entry.count = entry.count.saturating_add(1);
            *entry.reasons.entry(failure.reason.as_str()).or_insert(0) += 1;
            if let Some(id) = &failure.key_id
                && entry.key_ids.len() < MAX_KEY_IDS
            {
                entry.key_ids.insert(id.clone());
            }
        }
        if !self.flushing.swap(true, Ordering::AcqRel) {
            let app = Arc::clone(app);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    app.failures.flush(&app).await;
                    app.failures.flushing.store(false, Ordering::Release);
                    // A failure noted between the flush and the store above started no writer.
                    if app.failures.is_empty() || app.failures.flushing.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                }
            });
        }
    }

    fn is_empty(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Writes every pending event now (also when the server stops).
    pub async fn flush(&self, app: &App) {
        let drained: Vec<_> = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        let events: Vec<AuditEvent> = drained
            .into_iter()
            .map(|((team, addr), p)| AuditEvent {
                team,
                at: p.first_at,
                actor: Actor {
                    client: Some(addr.clone()),
                    user_agent: p.user_agent,
                    ..Actor::default()
                },
                action: "auth.failed".to_owned(),
                target: addr,
                outcome: "failed".to_owned(),
                detail: json!({
                    "count": p.count,
                    "reasons": p.reasons,
                    "key_ids": p.key_ids,
                })
                .to_string(),
            })
            .collect();
        if let Err(e) = app.store.record_events(&events).await {
            tracing::warn!(error = %e, events = events.len(), "cannot record failed authentications");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_slowed_after_its_budget_and_its_window_starts_over() {
        let limiter = Limiter::default();
        for _ in 0..MAX_FAILURES {
            assert_eq!(limiter.fail("ip:a", 1_000, None), None);
        }
        assert_eq!(
            limiter.fail("ip:a", 1_500, None),
            Some(59),
            "the budget is spent"
        );
        assert_eq!(limiter.fail("ip:b", 1_500, None), None, "per address");
        assert_eq!(
            limiter.fail("ip:a", 1_000 + WINDOW_MS, None),
            None,
            "a new window"
        );
        assert_eq!(
            limiter.fail("ip:c", 2_000, Some(MAX_FAILURES + 5)),
            Some(60),
            "shared count"
        );
        assert_eq!(limiter.fail("ip:d", 2_000 + WINDOW_MS - 10, None), None);
    }
}
