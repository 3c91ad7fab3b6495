//! Authentication: the [`Caller`] extractor and coalesced last-used times (DESIGN §4); what a
//! failure costs (the limiter and its audit events) is `super::failures`'.
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
//! use do (DESIGN §3: start a run, finish and read its own runs, `whoami`). Every refusal a
//! handler makes through [`Caller::require`] or [`Caller::own_user`] is audited as
//! `request.denied` with the missing permission; [`Caller::allows`] only asks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde_json::json;

use super::App;
use super::client::ClientInfo;
use super::error::ApiError;
use super::failures::{Failure, Reason, WINDOW_MS};
use crate::core::apikey::{ApiKey, KeyDigest, KeyId, KeyKind};
use crate::core::name::Label;
use crate::core::perm::{self, Action, Capability, Denied, KeyFacts, Role, Standing};
use crate::core::resolve::UserId;
use crate::store::{Actor, AuditEvent, Millis};

/// At most one last-used write per key per this many milliseconds.
const TOUCH_EVERY_MS: Millis = 60_000;
/// Bound on tracked keys (the map starts over beyond it).
const MAX_TRACKED: usize = 100_000;

/// Who is calling, as established by the API key, and from where.
#[derive(Clone)]
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
    /// The creator's name (a team key acts on behalf of them).
    pub creator_name: String,
    /// The role and capability the key acts with now.
    pub standing: Standing,
    /// A team key's identity.
    pub identity: Option<Label>,
    /// The request's client.
    pub client: ClientInfo,
    /// `METHOD /route/template`, for denials.
    route: String,
    app: Arc<App>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("team", &self.team)
            .field("key_id", &self.key_id)
            .field("kind", &self.kind)
            .field("standing", &self.standing)
            .finish_non_exhaustive()
    }
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

    /// Whether this key may do `action` now (DESIGN §3), without recording anything: for
    /// choosing what to show (every run or one's own, say).
    #[must_use]
    pub fn allows(&self, action: Action) -> bool {
        perm::check(self.standing, action).is_ok()
    }

    /// Requires that this key may do `action` now (DESIGN §3); a refusal is recorded in the
    /// audit log with the permission that was missing (DESIGN §10).
    ///
    /// # Errors
    /// 403: `key_cannot_manage` for a `run` key, `forbidden` for a role that may not.
    pub async fn require(&self, action: Action) -> Result<(), ApiError> {
        match perm::check(self.standing, action) {
            Ok(()) => Ok(()),
            Err(denied) => Err(self.denied(denied.into(), &action.permission()).await),
        }
    }

    /// The user this key acts for.
    ///
    /// # Errors
    /// 403 `needs_user` for a team key (recorded as a denial).
    pub async fn own_user(&self) -> Result<UserId, ApiError> {
        match self.user_id() {
            Some(user) => Ok(user),
            None => Err(self
                .denied(
                    ApiError::new(
                        axum::http::StatusCode::FORBIDDEN,
                        "needs_user",
                        "a team key has no user; use a personal key for personal keys and secrets",
                    ),
                    "user",
                )
                .await),
        }
    }

    /// Records the refusal `error` (a 403) of this request, and returns it.
    async fn denied(&self, error: ApiError, permission: &str) -> ApiError {
        let event = AuditEvent {
            team: Some(self.team),
            at: self.app.now(),
            actor: self.actor_record(),
            action: "request.denied".to_owned(),
            target: self.route.clone(),
            outcome: "denied".to_owned(),
            detail: json!({
                "permission": permission,
                "code": error.code(),
                "role": self.role(),
                "capability": self.capability(),
            })
            .to_string(),
        };
        if let Err(e) = self.app.store.record_events(&[event]).await {
            tracing::warn!(error = %e, "cannot record a denied request");
        }
        error
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

    /// The actor's name for details: the user's, else `key:ID`.
    #[must_use]
    pub fn actor_name(&self) -> String {
        self.user
            .as_ref()
            .map_or_else(|| format!("key:{}", self.key_id), |(_, n)| n.clone())
    }

    /// Who this request's audit events name (DESIGN §10): the user and key, or the team key
    /// and the creator it acts on behalf of; the capability; the client.
    #[must_use]
    pub fn actor_record(&self) -> Actor {
        Actor {
            user: Some(self.actor()),
            key: Some(self.key_id.to_string()),
            name: self.user.as_ref().map(|(_, n)| n.clone()),
            on_behalf_of: self.user.is_none().then(|| self.creator_name.clone()),
            capability: Some(self.capability()),
            client: Some(self.client.addr_text()),
            user_agent: self.client.user_agent.clone(),
        }
    }
}

/// The raw key from `Authorization: Bearer` (the scheme in any case, RFC 9110) or `x-api-key`.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = v.trim().split_once(char::is_whitespace)?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A caller established by a web app session (`super::ui`), handed to the API's handlers
/// in-process. Only the UI's own code inserts it into a request's extensions; nothing a client
/// sends can, so `/v1/*` stays bearer-only from the outside (DESIGN §12).
#[derive(Debug, Clone)]
pub struct SessionCaller(pub Caller);

/// The key id a request authenticated with, for the request log: the router's middleware puts
/// an empty slot in the request, the extractor fills it.
#[derive(Debug, Clone, Default)]
pub struct KeySlot(pub Arc<std::sync::OnceLock<String>>);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let RunCaller(caller) = RunCaller::from_request_parts(parts, app).await?;
        if caller.capability() == Capability::Run {
            return Err(caller
                .denied(Denied::KeyCannotManage.into(), "manage")
                .await);
        }
        Ok(caller)
    }
}

impl FromRequestParts<Arc<App>> for RunCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        if let Some(SessionCaller(caller)) = parts.extensions.get::<SessionCaller>() {
            return Ok(Self(Caller {
                route: format!("{} {route}", parts.method),
                ..caller.clone()
            }));
        }
        let now = app.now();
        let client = ClientInfo::of(parts, &app.trusted_proxies);
        let outcome = match presented(&parts.headers) {
            None => Err(Failure {
                reason: Reason::NoKey,
                key_id: None,
                team: None,
                message: "no API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`"
                    .to_owned(),
            }),
            Some(text) => match ApiKey::parse(text) {
                Ok(key) => authenticate(app, &key, now).await?,
                Err(e) => Err(Failure {
                    reason: Reason::UnknownKey,
                    key_id: None,
                    team: None,
                    message: e.to_string(),
                }),
            },
        };
        let found = match outcome {
            Ok(found) => found,
            Err(failure) => return Err(failed(app, &failure, &client, now).await),
        };
        if let Some(slot) = parts.extensions.get::<KeySlot>() {
            let _ = slot.0.set(found.key_id.to_string());
        }
        Ok(Self(Caller {
            route: format!("{} {route}", parts.method),
            client,
            app: Arc::clone(app),
            ..found
        }))
    }
}

/// Counts and notes a failed authentication; the answer is 401, or 429 once the client's
/// address is over its budget (DESIGN §4).
pub(super) async fn failed(
    app: &Arc<App>,
    failure: &Failure,
    client: &ClientInfo,
    now: Millis,
) -> ApiError {
    app.metrics.auth_failed(failure.reason.as_str());
    app.failures.note(app, failure, client, now);
    let bucket = format!("ip:{}", client.addr_text());
    let window = now - now.rem_euclid(WINDOW_MS);
    let shared = match app
        .store
        .count_auth_failure(std::slice::from_ref(&bucket), window)
        .await
    {
        Ok(shared) => shared,
        Err(e) => {
            tracing::warn!(error = %e, "cannot count a failed authentication in the store");
            None
        }
    };
    match app.limiter.fail(&bucket, now, shared) {
        Some(wait) => {
            app.metrics.rate_limited.inc();
            ApiError::too_many(wait)
        }
        None => ApiError::unauthorized(failure.message.clone()),
    }
}

/// Checks `key` against the store: the caller (without its request's details), or why not.
///
/// # Errors
/// The store's error (a 503, not an authentication failure).
async fn authenticate(
    app: &Arc<App>,
    key: &ApiKey,
    now: Millis,
) -> Result<Result<Caller, Failure>, ApiError> {
    check_key(app, &key.id(), key.kind(), &key.digest(), now).await
}

/// Checks the key with id `id`, kind `kind` and digest `digest` against the store, as a
/// presented key is checked: a web app session re-checks the key it stands for this way on
/// every request. The caller (for `client` and `route`), or why not.
///
/// # Errors
/// The store's error (a 503, not an authentication failure).
pub(super) async fn check_key(
    app: &Arc<App>,
    id: &KeyId,
    kind: KeyKind,
    digest: &KeyDigest,
    now: Millis,
) -> Result<Result<Caller, Failure>, ApiError> {
    let key_id = id.to_string();
    let failure = |reason, team, message: &str| {
        Ok(Err(Failure {
            reason,
            key_id: Some(key_id.clone()),
            team,
            message: message.to_owned(),
        }))
    };
    let refused = "this API key is not valid for this platform";
    let Some(found) = app.store.key_for_auth(id).await? else {
        return failure(Reason::UnknownKey, None, refused);
    };
    let row = found.key;
    if row.kind != kind {
        return failure(Reason::UnknownKey, Some(row.team), refused);
    }
    if !row.digest.matches(digest) {
        return failure(Reason::WrongSecret, Some(row.team), refused);
    }
    if row.revoked_at.is_some() {
        return failure(
            Reason::Revoked,
            Some(row.team),
            "this API key was revoked; create a new one with `latch api-key create`",
        );
    }
    if row.expires_at.is_some_and(|at| at <= now) {
        return failure(
            Reason::Expired,
            Some(row.team),
            "this API key expired; create a new one with `latch api-key create`",
        );
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
        return failure(
            Reason::NotAMember,
            Some(row.team),
            "this API key's user is no longer a member of the team",
        );
    };
    let team = app.team(row.team).await?;
    app.touch(row.row, row.last_used_at, now);
    Ok(Ok(Caller {
        team: row.team,
        team_name: team.name.to_string(),
        key_id: row.key_id,
        kind: row.kind,
        user,
        creator: row.created_by,
        creator_name: row.created_by_name,
        standing,
        identity: row.identity,
        client: ClientInfo::default(),
        route: String::new(),
        app: Arc::clone(app),
    }))
}

impl Caller {
    /// This caller as the web app's request from `client` sees it.
    #[must_use]
    pub(super) fn with_client(self, client: ClientInfo, route: String) -> Self {
        Self {
            client,
            route,
            ..self
        }
    }

    /// When the key expires, if it does.
    pub(super) async fn key_expires_at(&self) -> Result<Option<Millis>, ApiError> {
        Ok(self
            .app
            .store
            .key_for_auth(&self.key_id)
            .await?
            .and_then(|found| found.key.expires_at))
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
