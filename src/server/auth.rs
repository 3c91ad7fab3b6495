//! Authentication: the [`Caller`] extractor, failed-attempt rate limiting and coalesced
//! last-used times (DESIGN §4).
//!
//! A key is parsed and checksum-checked offline, looked up by its id, and its digest compared in
//! constant time. Expiry, revocation and removal of a personal key's user are checked on every
//! request, so they take effect at once. What the key may do now is
//! [`perm::standing`]: a personal key acts with its user's current
//! role, a team key with the lower of its creator's role then and now, and as `run` once its
//! creator is gone.
//!
//! Least privilege by default: [`Caller`] refuses a `run` key (403 `key_cannot_manage`), so a
//! handler accepts one only by asking for [`RunCaller`] — which only the routes a `run` key may
//! use do (DESIGN §3: start a run, finish and read its own runs, `whoami`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::App;
use super::error::ApiError;
use crate::core::apikey::{ApiKey, KeyId, KeyKind};
use crate::core::name::Label;
use crate::core::perm::{self, Action, Capability, Denied, KeyFacts, Role, Standing};
use crate::core::resolve::UserId;
use crate::store::Millis;

/// Failed authentications allowed per client address, and per key id, in one window.
const MAX_FAILURES: u32 = 20;
/// The window, in milliseconds.
const WINDOW_MS: Millis = 60_000;
/// At most one last-used write per key per this many milliseconds.
const TOUCH_EVERY_MS: Millis = 60_000;
/// Bound on tracked addresses and key ids (oldest windows are dropped first).
const MAX_TRACKED: usize = 100_000;

/// Who is calling, as established by the API key.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Team.
    pub team: i64,
    /// Team name.
    pub team_name: String,
    /// Key id.
    pub key_id: KeyId,
    /// Personal or team.
    pub kind: KeyKind,
    /// A personal key's user and name.
    pub user: Option<(UserId, String)>,
    /// The key's creator (the actor recorded for a team key's writes).
    pub creator: UserId,
    /// The role and capability the key acts with now.
    pub standing: Standing,
    /// A team key's identity.
    pub identity: Option<Label>,
}

/// A caller whose key may also be a `run` key: only for the routes such a key may use.
#[derive(Debug, Clone)]
pub struct RunCaller(pub Caller);

impl Caller {
    /// The effective role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.standing.role
    }

    /// The effective capability.
    #[must_use]
    pub fn capability(&self) -> Capability {
        self.standing.capability
    }

    /// Whether this key may do `action` now (DESIGN §3).
    ///
    /// # Errors
    /// 403: `key_cannot_manage` for a `run` key, `forbidden` for a role that may not.
    pub fn check(&self, action: Action) -> Result<(), Denied> {
        perm::check(self.standing, action)
    }

    /// The user this key acts for.
    ///
    /// # Errors
    /// 403 `needs_user` for a team key.
    pub fn own_user(&self) -> Result<UserId, ApiError> {
        self.user.as_ref().map(|(id, _)| *id).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "needs_user",
                "a team key has no user; use a personal key for personal keys and secrets",
            )
        })
    }

    /// The key's user (personal keys).
    #[must_use]
    pub fn user_id(&self) -> Option<UserId> {
        self.user.as_ref().map(|(id, _)| *id)
    }

    /// The user recorded as the author of a change: the key's user, else its creator.
    #[must_use]
    pub fn actor(&self) -> UserId {
        self.user.as_ref().map_or(self.creator, |(id, _)| *id)
    }

    /// The actor's name for audit details.
    #[must_use]
    pub fn actor_name(&self) -> String {
        self.user
            .as_ref()
            .map_or_else(|| format!("key:{}", self.key_id), |(_, n)| n.clone())
    }
}

/// Fixed-window counters of failed authentications.
#[derive(Debug, Default)]
pub struct Limiter {
    windows: Mutex<HashMap<String, (Millis, u32)>>,
}

impl Limiter {
    /// Seconds to wait if `keys` are over the limit now.
    fn blocked(&self, keys: &[String], now: Millis) -> Option<u64> {
        let windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.iter()
            .filter_map(|k| windows.get(k))
            .filter(|(start, count)| {
                now.saturating_sub(*start) < WINDOW_MS && *count >= MAX_FAILURES
            })
            .map(|(start, _)| {
                u64::try_from((start + WINDOW_MS - now).max(1000) / 1000).unwrap_or(60)
            })
            .max()
    }

    /// Counts a failure of `keys`; `shared` is the deployment-wide count of the current window
    /// when the store keeps one (several replicas), which raises the local counts to it.
    fn fail(&self, keys: &[String], now: Millis, shared: Option<u32>) {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() > MAX_TRACKED {
            windows.retain(|_, (start, _)| now - *start < WINDOW_MS);
        }
        for k in keys {
            let entry = windows.entry(k.clone()).or_insert((now, 0));
            if now - entry.0 >= WINDOW_MS {
                *entry = (now, 0);
            }
            entry.1 = (entry.1 + 1).max(shared.unwrap_or(0));
        }
    }
}

/// The raw key from `Authorization: Bearer` or `x-api-key`.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v.strip_prefix("Bearer ").map(str::trim);
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let RunCaller(caller) = RunCaller::from_request_parts(parts, app).await?;
        if caller.capability() == Capability::Run {
            return Err(Denied::KeyCannotManage.into());
        }
        Ok(caller)
    }
}

impl FromRequestParts<Arc<App>> for RunCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let now = app.now();
        let ip = client_ip(parts).map_or_else(|| "ip:unknown".to_owned(), |ip| format!("ip:{ip}"));
        let Some(text) = presented(&parts.headers) else {
            return Err(ApiError::unauthorized(
                "no API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
            ));
        };
        let mut keys = vec![ip];
        let parsed = ApiKey::parse(text);
        if let Ok(key) = &parsed {
            keys.push(format!("key:{}", key.id()));
        }
        if let Some(wait) = app.limiter.blocked(&keys, now) {
            return Err(ApiError::too_many(wait));
        }
        let outcome = match parsed {
            Ok(key) => authenticate(app, &key, now).await.map(RunCaller),
            Err(e) => Err(ApiError::unauthorized(e.to_string())),
        };
        if outcome.as_ref().is_err_and(ApiError::is_auth_failure) {
            let window = now - now.rem_euclid(WINDOW_MS);
            let shared = match app.store.count_auth_failure(&keys, window).await {
                Ok(shared) => shared,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot count a failed authentication in the store");
                    None
                }
            };
            app.limiter.fail(&keys, now, shared);
            app.metrics
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        outcome
    }
}

async fn authenticate(app: &Arc<App>, key: &ApiKey, now: Millis) -> Result<Caller, ApiError> {
    let refused = || ApiError::unauthorized("this API key is not valid for this platform");
    let Some(found) = app.store.key_for_auth(&key.id()).await? else {
        return Err(refused());
    };
    let row = found.key;
    if !row.digest.matches(&key.digest()) || row.kind != key.kind() {
        return Err(refused());
    }
    if row.revoked_at.is_some() {
        return Err(ApiError::unauthorized(
            "this API key was revoked; create a new one with `latch api-key create`",
        ));
    }
    if row.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::unauthorized(
            "this API key expired; create a new one with `latch api-key create`",
        ));
    }
    let user = match (row.kind, row.user, &found.member) {
        (KeyKind::Personal, Some(user), Some((name, _))) => Some((user, name.clone())),
        _ => None,
    };
    let facts = KeyFacts {
        kind: row.kind,
        capability: row.capability,
        bound: row.identity.is_some(),
        role_at_creation: row.role_at_creation,
        user_role: found.member.as_ref().map(|(_, role)| *role),
        creator_role: found.creator_role,
    };
    let Some(standing) = perm::standing(facts) else {
        return Err(ApiError::unauthorized(
            "this API key's user is no longer a member of the team",
        ));
    };
    let team = app.team(row.team).await?;
    app.touch(row.row, row.last_used_at, now);
    Ok(Caller {
        team: row.team,
        team_name: team.name.to_string(),
        key_id: row.key_id,
        kind: row.kind,
        user,
        creator: row.created_by,
        standing,
        identity: row.identity,
    })
}

impl ApiError {
    fn is_auth_failure(&self) -> bool {
        self.status() == axum::http::StatusCode::UNAUTHORIZED
    }
}

/// Coalesces last-used writes: at most one per key per minute per replica.
#[derive(Debug, Default)]
pub struct LastUsed {
    written: Mutex<HashMap<i64, Millis>>,
}

impl LastUsed {
    /// Whether key `row` (last stored as used at `stored`) should be written as used `now`:
    /// not if it was written, by this replica or in the stored row, less than a minute ago.
    /// Notes the write when it is due.
    fn due(&self, row: i64, stored: Option<Millis>, now: Millis) -> bool {
        let mut written = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let last = written.get(&row).copied().or(stored).unwrap_or(Millis::MIN);
        if now.saturating_sub(last) < TOUCH_EVERY_MS {
            return false;
        }
        if written.len() > MAX_TRACKED {
            written.clear();
        }
        written.insert(row, now);
        true
    }
}

impl App {
    fn touch(self: &Arc<Self>, row: i64, stored: Option<Millis>, now: Millis) {
        if !self.last_used.due(row, stored, now) {
            return;
        }
        let app = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = app.store.touch_keys(&[(row, now)]).await {
                tracing::warn!(error = %e, "cannot record a key's last use");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_use_is_written_at_most_once_a_minute_per_key() {
        let last_used = LastUsed::default();
        assert!(last_used.due(1, None, 1_000_000), "a first use is written");
        for later in [1_000_001, 1_030_000, 1_000_000 + TOUCH_EVERY_MS - 1] {
            assert!(
                !last_used.due(1, None, later),
                "within the minute: no write"
            );
        }
        assert!(last_used.due(2, None, 1_000_001), "per key");
        assert!(
            last_used.due(1, None, 1_000_000 + TOUCH_EVERY_MS),
            "a minute on: written"
        );
        // A use another replica stored recently is not written again.
        assert!(!last_used.due(3, Some(5_000_000), 5_000_000 + 10));
        assert!(last_used.due(3, Some(5_000_000), 5_000_000 + TOUCH_EVERY_MS));
    }
}
