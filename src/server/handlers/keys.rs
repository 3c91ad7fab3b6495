//! `whoami`, the team's settings, and API keys: create (the raw key shown once), list, revoke.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use getrandom::SysRng;
use serde_json::json;

use super::{ApiJson, Shared, event, no_store};
use crate::api::{CreateKey, CreatedKey, KeyInfo, Problem, TeamInfo, UpdateTeam, Whoami};
use crate::core::apikey::{self, ApiKey, KeyId, KeyKind};
use crate::core::crypto::CryptoError;
use crate::core::duration::Expiry;
use crate::core::perm::{Action, Capability};
use crate::server::App;
use crate::server::auth::{Caller, RunCaller};
use crate::server::error::ApiError;
use crate::store::{KeyRow, ListKind, NewKey};

/// Any key, `run` keys included.
#[utoipa::path(get, path = "/v1/whoami", tag = "keys", responses((status = 200, body = Whoami), (status = 401, body = Problem)))]
pub(in crate::server) async fn whoami(
    State(app): Shared,
    RunCaller(caller): RunCaller,
) -> Result<Json<Whoami>, ApiError> {
    caller.require(Action::Whoami).await?;
    let byok = app.store.team_byok(caller.team).await?;
    Ok(Json(Whoami {
        team: caller.team_name.clone(),
        user: caller.user.as_ref().map(|(_, n)| n.clone()),
        role: caller.role(),
        key_kind: caller.kind,
        key_id: caller.key_id.to_string(),
        capability: caller.capability(),
        identity: caller.identity.as_ref().map(ToString::to_string),
        byok,
    }))
}

/// Owners and admins (`manage` keys): the team's settings. Audited with the setting before and
/// after.
#[utoipa::path(patch, path = "/v1/team", tag = "keys", request_body = UpdateTeam, responses((status = 200, body = TeamInfo), (status = 403, body = Problem)))]
pub(in crate::server) async fn update_team(
    State(app): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateTeam>,
) -> Result<Json<TeamInfo>, ApiError> {
    caller.require(Action::ManageTeamSettings).await?;
    let before = app.store.team_byok(caller.team).await?;
    let audit = event(
        &app,
        &caller,
        "team.update",
        caller.team_name.clone(),
        &json!({ "byok": { "before": before, "after": body.byok } }),
    );
    app.store
        .set_team_byok(caller.team, body.byok, audit)
        .await?;
    Ok(Json(TeamInfo {
        name: caller.team_name.clone(),
        byok: body.byok,
    }))
}

pub(super) fn key_info(row: &KeyRow, user_names: &BTreeMap<i64, String>) -> KeyInfo {
    KeyInfo {
        id: row.key_id.to_string(),
        name: row.name.clone(),
        preview: apikey::preview(row.kind, &row.last4),
        kind: row.kind,
        capability: row.capability,
        user: row.user.and_then(|u| user_names.get(&u.0).cloned()),
        created_by: row.created_by_name.clone(),
        identity: row.identity.as_ref().map(ToString::to_string),
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
    }
}

pub(super) async fn user_names(app: &App, team: i64) -> Result<BTreeMap<i64, String>, ApiError> {
    Ok(app
        .store
        .members(team)
        .await?
        .into_iter()
        .map(|m| (m.user.0, m.name.to_string()))
        .collect())
}

/// A key's expiry as asked (`1d`, `30d`, `never`, ...), else `default` (DESIGN §4).
pub(super) fn parse_expiry(asked: Option<&str>, default: &str) -> Result<Expiry, ApiError> {
    asked
        .unwrap_or(default)
        .parse()
        .map_err(|e: crate::core::duration::DurationError| {
            ApiError::bad_request("invalid_expiry", e.to_string())
        })
}

/// Draws a key and describes it for storage.
pub(super) fn draw_key(
    kind: KeyKind,
    capability: Capability,
    name: String,
    now: i64,
    expires: Expiry,
) -> Result<(ApiKey, NewKey), ApiError> {
    let key = ApiKey::generate(kind, &mut SysRng).map_err(|_| ApiError::from(CryptoError::Rng))?;
    let expires_at = match expires {
        Expiry::Never => None,
        Expiry::After(d) => {
            Some(now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
        }
    };
    let new = NewKey {
        key_id: key.id(),
        digest: key.digest(),
        last4: key.last4().to_owned(),
        kind,
        capability,
        role_at_creation: None,
        identity: None,
        name,
        created_at: now,
        expires_at,
    };
    Ok((key, new))
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "keys", request_body = CreateKey, responses((status = 201, description = "the raw key, shown once", body = CreatedKey), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub(in crate::server) async fn create_key(
    State(app): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    let name = body.name;
    if name.trim().is_empty()
        || name.trim() != name
        || name.chars().count() > 100
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a key name is 1 to 100 characters, without control characters or whitespace at either end",
        ));
    }
    let expires = parse_expiry(body.expires.as_deref(), "90d")?;
    // The creating key is `manage` (the extractor refuses `run` keys), so no new key has more
    // capability than it; a team key gets the creator's effective role, so never a higher one.
    let capability = body
        .capability
        .unwrap_or(Capability::default_for(body.kind));
    let (user, role_at_creation) = match body.kind {
        KeyKind::Personal => {
            caller.require(Action::CreatePersonalKey).await?;
            if body.identity.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_identity",
                    "only team keys are bound to an identity",
                ));
            }
            (Some(caller.own_user().await?), None)
        }
        KeyKind::Team => {
            caller.require(Action::CreateTeamKey).await?;
            if body.identity.is_some() && capability == Capability::Manage {
                return Err(ApiError::bad_request(
                    "invalid_capability",
                    "a key bound to an identity is always `run`; ask for one or the other",
                ));
            }
            (None, Some(caller.role()))
        }
    };
    if let Some(identity) = &body.identity
        && app
            .store
            .list(ListKind::Identity, caller.team, identity)
            .await?
            .is_none()
    {
        return Err(ApiError::not_found(
            "unknown_identity",
            format!("identity `{identity}` does not exist"),
        ));
    }
    let (key, mut new) = draw_key(body.kind, capability, name, app.now(), expires)?;
    new.role_at_creation = role_at_creation;
    new.identity = body.identity;
    let audit = event(
        &app,
        &caller,
        "api_key.create",
        new.key_id.to_string(),
        &json!({
            "kind": body.kind,
            "name": new.name,
            "capability": capability,
            "identity": new.identity,
            "expires_at": new.expires_at,
        }),
    );
    let row_key_id = new.key_id.clone();
    app.store
        .create_key(caller.team, user, caller.actor(), new, audit)
        .await?;
    let names = user_names(&app, caller.team).await?;
    let row = app
        .store
        .keys(caller.team, None)
        .await?
        .into_iter()
        .find(|k| k.key_id == row_key_id)
        .ok_or_else(|| ApiError::internal("created key not found"))?;
    let created = CreatedKey {
        info: key_info(&row, &names),
        key: key.expose().to_owned(),
    };
    Ok(no_store(
        (StatusCode::CREATED, Json(created)).into_response(),
    ))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "keys", responses((status = 200, body = [KeyInfo])))]
pub(in crate::server) async fn list_keys(
    State(app): Shared,
    caller: Caller,
) -> Result<Json<Vec<KeyInfo>>, ApiError> {
    let only = if caller.allows(Action::ManageAllKeys) {
        None
    } else {
        caller.require(Action::ManageOwnKeys).await?;
        Some(caller.actor())
    };
    let names = user_names(&app, caller.team).await?;
    let keys = app.store.keys(caller.team, only).await?;
    Ok(Json(keys.iter().map(|k| key_info(k, &names)).collect()))
}

#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "keys", params(("id" = String, Path, description = "key id")), responses((status = 204, description = "revoked"), (status = 404, body = Problem)))]
pub(in crate::server) async fn revoke_key(
    State(app): Shared,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key_id =
        KeyId::try_from(id).map_err(|e| ApiError::bad_request("invalid_key_id", e.to_string()))?;
    let only = if caller.allows(Action::ManageAllKeys) {
        None
    } else {
        caller.require(Action::ManageOwnKeys).await?;
        Some(caller.actor())
    };
    // The event names the key (DESIGN §10): read it among those the caller may revoke.
    let known = app.store.keys(caller.team, only).await?;
    let key = known.iter().find(|k| k.key_id == key_id);
    let audit = event(
        &app,
        &caller,
        "api_key.revoke",
        key_id.to_string(),
        &json!({
            "name": key.map(|k| k.name.as_str()),
            "kind": key.map(|k| k.kind),
            "capability": key.map(|k| k.capability),
            "identity": key.and_then(|k| k.identity.as_ref()),
        }),
    );
    if app
        .store
        .revoke_key(caller.team, &key_id, only, audit)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "unknown_key",
            "no such key, or already revoked",
        ))
    }
}
