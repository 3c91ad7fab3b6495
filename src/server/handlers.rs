//! The HTTP handlers: parse, check the permission, call the store, answer. Values are sealed
//! and opened here, and leave only in the answer to `POST /v1/runs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use getrandom::SysRng;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::App;
use super::auth::Caller;
use super::boot::random_id;
use super::error::ApiError;
use crate::api::{
    AddMember, AddedMember, AuditInfo, CreateKey, CreateSecret, CreatedKey, FinishRun, KeyInfo,
    ListInfo, MemberInfo, Problem, PutList, ResolveRun, Resolved, ResolvedWriter, RunInfo,
    SecretInfo, SetRole, UpdateSecret, Whoami,
};
use crate::core::apikey::{self, ApiKey, KeyId, KeyKind};
use crate::core::crypto::{Binding, CryptoError, DataKey};
use crate::core::duration::Expiry;
use crate::core::name::{Label, SecretName};
use crate::core::perm::{Action, check};
use crate::core::resolve::{self, ResolveError, RunRequest, Scope, SecretId, UserId};
use crate::core::value::{SecretValue, WipingBuf};
use crate::store::{
    AuditEvent, Decided, Decision, KeyRow, ListKind, MemberRow, NamedList, NewKey, NewSecret,
    RunAsk, RunPlan, RunRow, Sealed, SecretRow, SecretUpdate,
};

type Shared = State<Arc<App>>;

/// A JSON object body; every rejection is problem+json: 415 without a JSON content type, 413
/// over the size limit, 400 `invalid_json` for malformed JSON, 400 `invalid_body` for anything
/// else that is not the expected object (including an array where an object is expected, which
/// serde would otherwise accept for a struct).
pub(super) struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as `content-type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the request body is too large",
                    )
                } else {
                    ApiError::bad_request("invalid_body", r.body_text())
                }
            })?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the body must be a JSON object",
            ));
        }
        serde_json::from_slice(&bytes).map(Self).map_err(|e| {
            let code = match e.classify() {
                serde_json::error::Category::Data => "invalid_body",
                _ => "invalid_json",
            };
            ApiError::bad_request(code, e.to_string())
        })
    }
}

/// Query string whose rejections are problem+json too.
pub(super) struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))
    }
}

fn label(text: &str, what: &str) -> Result<Label, ApiError> {
    Label::new(text).map_err(|e| ApiError::bad_request("invalid_name", format!("{what}: {e}")))
}

fn secret_name(text: &str) -> Result<SecretName, ApiError> {
    SecretName::new(text).map_err(|e| ApiError::bad_request("invalid_name", e.to_string()))
}

fn scope_of(text: &str) -> Result<Scope, ApiError> {
    match text {
        "team" => Ok(Scope::Team),
        "personal" => Ok(Scope::Personal),
        _ => Err(ApiError::bad_request(
            "invalid_scope",
            "scope must be `team` or `personal`",
        )),
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn event(
    app: &App,
    caller: &Caller,
    action: &str,
    target: String,
    detail: serde_json::Value,
) -> AuditEvent {
    let mut detail = detail;
    if let Some(map) = detail.as_object_mut() {
        map.insert("actor".into(), json!(caller.actor_name()));
    }
    AuditEvent {
        detail: detail.to_string(),
        ..event_without_detail(app, caller, action, target)
    }
}

/// An event whose detail the caller writes itself (a run's, from its decision).
fn event_without_detail(app: &App, caller: &Caller, action: &str, target: String) -> AuditEvent {
    AuditEvent {
        team: caller.team,
        at: app.now(),
        actor_user: Some(caller.actor()),
        actor_key: Some(caller.key_id.to_string()),
        action: action.to_owned(),
        target,
        outcome: "ok".to_owned(),
        detail: String::new(),
    }
}

async fn data_key(app: &App, team: i64) -> Result<(DataKey, u32), ApiError> {
    let row = app.team(team).await?;
    Ok((app.root.unwrap(team, &row.data_key)?, row.key_version))
}

// Health ------------------------------------------------------------------------------------

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "the process is up", body = String)))]
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "the database answers", body = String), (status = 503, description = "database unavailable", body = Problem)))]
pub(super) async fn readyz(State(app): Shared) -> Result<&'static str, ApiError> {
    app.store.ping().await?;
    Ok("ready\n")
}

#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format", body = String)))]
pub(super) async fn metrics(State(app): Shared) -> Response {
    let m = &app.metrics;
    let text = format!(
        "# HELP latch_http_requests_total HTTP requests answered.\n\
         # TYPE latch_http_requests_total counter\n\
         latch_http_requests_total {}\n\
         # HELP latch_runs_total Runs resolved (delivered or refused).\n\
         # TYPE latch_runs_total counter\n\
         latch_runs_total {}\n\
         # HELP latch_auth_failures_total Failed authentications.\n\
         # TYPE latch_auth_failures_total counter\n\
         latch_auth_failures_total {}\n",
        m.requests.load(Ordering::Relaxed),
        m.runs.load(Ordering::Relaxed),
        m.auth_failures.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub(super) async fn not_found() -> ApiError {
    ApiError::not_found("no_such_route", "no such route; see DESIGN §9 for the API")
}

#[utoipa::path(get, path = "/v1/whoami", tag = "keys", responses((status = 200, body = Whoami), (status = 401, body = Problem)))]
pub(super) async fn whoami(caller: Caller) -> Json<Whoami> {
    Json(Whoami {
        team: caller.team_name.clone(),
        user: caller.user.as_ref().map(|(_, n)| n.clone()),
        role: caller.role,
        key_kind: caller.kind,
        key_id: caller.key_id.to_string(),
        identity: caller.identity.as_ref().map(ToString::to_string),
    })
}

// API keys -----------------------------------------------------------------------------------

fn key_info(row: &KeyRow, user_names: &BTreeMap<i64, String>) -> KeyInfo {
    KeyInfo {
        id: row.key_id.to_string(),
        name: row.name.clone(),
        preview: apikey::preview(row.kind, &row.last4),
        kind: row.kind,
        user: row.user.and_then(|u| user_names.get(&u.0).cloned()),
        created_by: row.created_by_name.clone(),
        identity: row.identity.as_ref().map(ToString::to_string),
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
    }
}

async fn user_names(app: &App, team: i64) -> Result<BTreeMap<i64, String>, ApiError> {
    Ok(app
        .store
        .members(team)
        .await?
        .into_iter()
        .map(|m| (m.user.0, m.name.to_string()))
        .collect())
}

/// Draws a key and describes it for storage.
fn draw_key(
    kind: KeyKind,
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
        role_at_creation: None,
        identity: None,
        name,
        created_at: now,
        expires_at,
    };
    Ok((key, new))
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "keys", request_body = CreateKey, responses((status = 201, description = "the raw key, shown once", body = CreatedKey), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub(super) async fn create_key(
    State(app): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a key name is 1 to 100 printable characters",
        ));
    }
    let expires: Expiry = body.expires.as_deref().unwrap_or("90d").parse().map_err(
        |e: crate::core::duration::DurationError| {
            ApiError::bad_request("invalid_expiry", e.to_string())
        },
    )?;
    let (user, role_at_creation) = match body.kind {
        KeyKind::Personal => {
            check(caller.role, Action::CreatePersonalKey)?;
            if body.identity.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_identity",
                    "only team keys are bound to an identity",
                ));
            }
            (Some(caller.own_user()?), None)
        }
        KeyKind::Team => {
            check(caller.role, Action::CreateTeamKey)?;
            (None, Some(caller.role))
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
    let (key, mut new) = draw_key(body.kind, name, app.now(), expires)?;
    new.role_at_creation = role_at_creation;
    new.identity = body.identity;
    let audit = event(
        &app,
        &caller,
        "api_key.create",
        new.key_id.to_string(),
        json!({ "kind": body.kind, "name": new.name }),
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
pub(super) async fn list_keys(
    State(app): Shared,
    caller: Caller,
) -> Result<Json<Vec<KeyInfo>>, ApiError> {
    let only = if check(caller.role, Action::ManageAllKeys).is_ok() {
        None
    } else {
        check(caller.role, Action::ManageOwnKeys)?;
        Some(caller.actor())
    };
    let names = user_names(&app, caller.team).await?;
    let keys = app.store.keys(caller.team, only).await?;
    Ok(Json(keys.iter().map(|k| key_info(k, &names)).collect()))
}

#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "keys", params(("id" = String, Path, description = "key id")), responses((status = 204, description = "revoked"), (status = 404, body = Problem)))]
pub(super) async fn revoke_key(
    State(app): Shared,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key_id =
        KeyId::try_from(id).map_err(|e| ApiError::bad_request("invalid_key_id", e.to_string()))?;
    let only = if check(caller.role, Action::ManageAllKeys).is_ok() {
        None
    } else {
        Some(caller.actor())
    };
    let audit = event(
        &app,
        &caller,
        "api_key.revoke",
        key_id.to_string(),
        json!({}),
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

// Secrets --------------------------------------------------------------------------------------

fn secret_info(row: &SecretRow) -> SecretInfo {
    SecretInfo {
        name: row.name.to_string(),
        scope: row.scope,
        owner: row.owner_name.clone(),
        description: row.description.clone(),
        version: row.version,
        value_length: row.value_len,
        created_at: row.created_at,
        created_by: row.created_by.clone(),
        updated_at: row.updated_at,
        updated_by: row.updated_by.clone(),
    }
}

/// Who owns a secret of `scope` written by `caller`, after the permission check.
fn owner_for(caller: &Caller, scope: Scope) -> Result<Option<UserId>, ApiError> {
    match scope {
        Scope::Team => {
            check(caller.role, Action::WriteTeamSecret)?;
            Ok(None)
        }
        Scope::Personal => {
            check(caller.role, Action::WriteOwnPersonalSecret)?;
            Ok(Some(caller.own_user()?))
        }
    }
}

fn value_of(text: String) -> Result<SecretValue, ApiError> {
    SecretValue::new(text).map_err(|e| ApiError::bad_request("invalid_value", e.to_string()))
}

fn description_of(text: String) -> Result<String, ApiError> {
    if text.len() > 1024 || text.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_description",
            "a description is at most 1024 bytes, without NUL",
        ));
    }
    Ok(text)
}

#[utoipa::path(post, path = "/v1/secrets", tag = "secrets", request_body = CreateSecret, responses((status = 201, body = SecretInfo), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn create_secret(
    State(app): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<CreateSecret>,
) -> Result<Response, ApiError> {
    let owner = owner_for(&caller, body.scope)?;
    let value = value_of(body.value)?;
    let description = description_of(body.description)?;
    let (key, key_version) = data_key(&app, caller.team).await?;
    let id = SecretId(random_id(&mut SysRng)?);
    let binding = Binding {
        team: caller.team,
        scope: body.scope,
        owner: owner.map(|u| u.0),
        secret: id.0,
        name: body.name.as_str(),
        version: 1,
        key_version,
    };
    let ciphertext = key.seal(&binding, &value, &mut SysRng)?;
    let target = format!("{}/{}", body.scope, body.name);
    let audit = event(
        &app,
        &caller,
        "secret.create",
        target,
        json!({ "name": body.name.as_str(), "scope": body.scope }),
    );
    let secret = NewSecret {
        id,
        team: caller.team,
        scope: body.scope,
        owner,
        name: body.name.clone(),
        description,
        key_version,
        ciphertext,
        value_len: u32::try_from(value.len()).unwrap_or(u32::MAX),
        actor: caller.actor(),
        at: app.now(),
    };
    app.store.create_secret(secret, audit).await?;
    let row = app
        .store
        .secret(caller.team, body.scope, owner, &body.name)
        .await?
        .ok_or_else(|| ApiError::internal("created secret not found"))?;
    Ok((StatusCode::CREATED, Json(secret_info(&row))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListSecretsQuery {
    #[serde(default)]
    all: bool,
}

#[utoipa::path(get, path = "/v1/secrets", tag = "secrets", params(("all" = Option<bool>, Query, description = "add every member's personal secret names (owners and admins)")), responses((status = 200, body = [SecretInfo])))]
pub(super) async fn list_secrets(
    State(app): Shared,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListSecretsQuery>,
) -> Result<Json<Vec<SecretInfo>>, ApiError> {
    check(caller.role, Action::ListSecrets)?;
    if query.all {
        check(caller.role, Action::ListAllPersonalSecrets)?;
    }
    let viewer = caller.user.as_ref().map_or(UserId(0), |(id, _)| *id);
    let rows = app.store.secrets(caller.team, viewer, query.all).await?;
    Ok(Json(rows.iter().map(secret_info).collect()))
}

async fn find_secret(
    app: &App,
    caller: &Caller,
    scope: &str,
    name: &str,
) -> Result<(SecretRow, Option<UserId>), ApiError> {
    let scope = scope_of(scope)?;
    let name = secret_name(name)?;
    let owner = owner_for(caller, scope)?;
    let row = app
        .store
        .secret(caller.team, scope, owner, &name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("unknown_secret", format!("no {scope} secret `{name}`"))
        })?;
    Ok((row, owner))
}

#[utoipa::path(patch, path = "/v1/secrets/{scope}/{name}", tag = "secrets", params(("scope" = String, Path), ("name" = String, Path)), request_body = UpdateSecret, responses((status = 200, body = SecretInfo), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn update_secret(
    State(app): Shared,
    caller: Caller,
    Path((scope, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateSecret>,
) -> Result<Json<SecretInfo>, ApiError> {
    if body.value.is_none() && body.description.is_none() {
        return Err(ApiError::bad_request(
            "empty_update",
            "give a new value, a new description, or both",
        ));
    }
    let (row, owner) = find_secret(&app, &caller, &scope, &name).await?;
    let description = body.description.map(description_of).transpose()?;
    let value = match body.value {
        None => None,
        Some(text) => {
            let value = value_of(text)?;
            let (key, key_version) = data_key(&app, caller.team).await?;
            let binding = Binding {
                team: caller.team,
                scope: row.scope,
                owner: owner.map(|u| u.0),
                secret: row.id.0,
                name: row.name.as_str(),
                version: row.version + 1,
                key_version,
            };
            let sealed = key.seal(&binding, &value, &mut SysRng)?;
            Some((sealed, u32::try_from(value.len()).unwrap_or(u32::MAX)))
        }
    };
    let detail = json!({ "name": row.name.as_str(), "value_changed": value.is_some() });
    let audit = event(
        &app,
        &caller,
        "secret.update",
        format!("{}/{}", row.scope, row.name),
        detail,
    );
    let update = SecretUpdate {
        id: row.id,
        expected_version: row.version,
        value,
        description,
        actor: caller.actor(),
        at: app.now(),
    };
    app.store.update_secret(update, audit).await?;
    let row = app
        .store
        .secret(caller.team, row.scope, owner, &row.name)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the secret was deleted meanwhile",
            )
        })?;
    Ok(Json(secret_info(&row)))
}

#[utoipa::path(delete, path = "/v1/secrets/{scope}/{name}", tag = "secrets", params(("scope" = String, Path), ("name" = String, Path)), responses((status = 204, description = "deleted"), (status = 404, body = Problem)))]
pub(super) async fn delete_secret(
    State(app): Shared,
    caller: Caller,
    Path((scope, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (row, _) = find_secret(&app, &caller, &scope, &name).await?;
    let audit = event(
        &app,
        &caller,
        "secret.delete",
        format!("{}/{}", row.scope, row.name),
        json!({ "name": row.name.as_str() }),
    );
    if app.store.delete_secret(row.id, audit).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "unknown_secret",
            "the secret was deleted meanwhile",
        ))
    }
}

// Environments and identities ----------------------------------------------------------------

fn list_info(list: &NamedList) -> ListInfo {
    ListInfo {
        name: list.name.to_string(),
        description: list.description.clone(),
        secrets: list
            .secrets
            .as_ref()
            .map(|s| s.iter().map(ToString::to_string).collect()),
        updated_at: list.updated_at,
    }
}

const fn kind_name(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Environment => "environment",
        ListKind::Identity => "identity",
    }
}

async fn put_list(
    kind: ListKind,
    app: Arc<App>,
    caller: Caller,
    name: String,
    body: PutList,
) -> Result<Json<ListInfo>, ApiError> {
    check(caller.role, Action::ManageEnvironments)?;
    let name = label(&name, kind_name(kind))?;
    let secrets = match kind {
        ListKind::Environment => body.secrets,
        ListKind::Identity => Some(body.secrets.unwrap_or_default()),
    };
    if secrets.as_ref().is_some_and(|s| s.len() > 1000) {
        return Err(ApiError::bad_request(
            "too_many_names",
            "at most 1000 secret names",
        ));
    }
    let list = NamedList {
        name,
        description: description_of(body.description)?,
        secrets,
        updated_at: app.now(),
    };
    let names: Vec<String> = list
        .secrets
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    let audit = event(
        &app,
        &caller,
        &format!("{}.put", kind_name(kind)),
        list.name.to_string(),
        json!({ "secrets": names }),
    );
    app.store
        .put_list(kind, caller.team, list.clone(), audit)
        .await?;
    Ok(Json(list_info(&list)))
}

async fn get_list(
    kind: ListKind,
    app: Arc<App>,
    caller: Caller,
    name: String,
) -> Result<Json<ListInfo>, ApiError> {
    check(caller.role, Action::ReadEnvironments)?;
    let name = label(&name, kind_name(kind))?;
    let list = app
        .store
        .list(kind, caller.team, &name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_name",
                format!("{} `{name}` does not exist", kind_name(kind)),
            )
        })?;
    Ok(Json(list_info(&list)))
}

async fn get_lists(
    kind: ListKind,
    app: Arc<App>,
    caller: Caller,
) -> Result<Json<Vec<ListInfo>>, ApiError> {
    check(caller.role, Action::ReadEnvironments)?;
    Ok(Json(
        app.store
            .lists(kind, caller.team)
            .await?
            .iter()
            .map(list_info)
            .collect(),
    ))
}

async fn delete_list(
    kind: ListKind,
    app: Arc<App>,
    caller: Caller,
    name: String,
) -> Result<StatusCode, ApiError> {
    check(caller.role, Action::ManageEnvironments)?;
    let name = label(&name, kind_name(kind))?;
    let audit = event(
        &app,
        &caller,
        &format!("{}.delete", kind_name(kind)),
        name.to_string(),
        json!({}),
    );
    if app
        .store
        .delete_list(kind, caller.team, &name, audit)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "unknown_name",
            format!("{} `{name}` does not exist", kind_name(kind)),
        ))
    }
}

macro_rules! list_routes {
    ($kind:expr, $base:literal, $tag:literal, $put:ident, $get:ident, $all:ident, $delete:ident) => {
        #[utoipa::path(put, path = concat!($base, "/{name}"), tag = $tag, params(("name" = String, Path)),
            request_body = PutList, responses((status = 200, body = ListInfo), (status = 403, body = Problem)))]
        pub(super) async fn $put(State(app): Shared, caller: Caller, Path(name): Path<String>, ApiJson(body): ApiJson<PutList>) -> Result<Json<ListInfo>, ApiError> {
            put_list($kind, app, caller, name, body).await
        }
        #[utoipa::path(get, path = concat!($base, "/{name}"), tag = $tag, params(("name" = String, Path)),
            responses((status = 200, body = ListInfo), (status = 404, body = Problem)))]
        pub(super) async fn $get(State(app): Shared, caller: Caller, Path(name): Path<String>) -> Result<Json<ListInfo>, ApiError> {
            get_list($kind, app, caller, name).await
        }
        #[utoipa::path(get, path = $base, tag = $tag, responses((status = 200, body = [ListInfo])))]
        pub(super) async fn $all(State(app): Shared, caller: Caller) -> Result<Json<Vec<ListInfo>>, ApiError> {
            get_lists($kind, app, caller).await
        }
        #[utoipa::path(delete, path = concat!($base, "/{name}"), tag = $tag, params(("name" = String, Path)),
            responses((status = 204, description = "deleted"), (status = 404, body = Problem)))]
        pub(super) async fn $delete(State(app): Shared, caller: Caller, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
            delete_list($kind, app, caller, name).await
        }
    };
}

list_routes!(
    ListKind::Environment,
    "/v1/environments",
    "environments",
    put_environment,
    get_environment,
    list_environments,
    delete_environment
);
list_routes!(
    ListKind::Identity,
    "/v1/identities",
    "identities",
    put_identity,
    get_identity,
    list_identities,
    delete_identity
);

// Members -------------------------------------------------------------------------------------

fn member_info(m: &MemberRow) -> MemberInfo {
    MemberInfo {
        name: m.name.to_string(),
        role: m.role,
        created_at: m.created_at,
    }
}

#[utoipa::path(post, path = "/v1/members", tag = "members", request_body = AddMember, responses((status = 201, description = "the member and their first key, shown once", body = AddedMember), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn add_member(
    State(app): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<Response, ApiError> {
    check(caller.role, Action::AddMember { role: body.role })?;
    let now = app.now();
    let (key, new) = draw_key(
        KeyKind::Personal,
        "first key".to_owned(),
        now,
        Expiry::Never,
    )?;
    let key_id = new.key_id.clone();
    let audit = event(
        &app,
        &caller,
        "member.add",
        body.name.to_string(),
        json!({ "role": body.role }),
    );
    let user = app
        .store
        .add_member(
            caller.team,
            &body.name,
            body.role,
            new,
            caller.actor(),
            audit,
        )
        .await?;
    let names = user_names(&app, caller.team).await?;
    let row = app
        .store
        .keys(caller.team, Some(user))
        .await?
        .into_iter()
        .find(|k| k.key_id == key_id);
    let row = row.ok_or_else(|| ApiError::internal("new member's key not found"))?;
    let added = AddedMember {
        member: MemberInfo {
            name: body.name.to_string(),
            role: body.role,
            created_at: now,
        },
        key: CreatedKey {
            info: key_info(&row, &names),
            key: key.expose().to_owned(),
        },
    };
    Ok(no_store((StatusCode::CREATED, Json(added)).into_response()))
}

#[utoipa::path(get, path = "/v1/members", tag = "members", responses((status = 200, body = [MemberInfo])))]
pub(super) async fn list_members(
    State(app): Shared,
    caller: Caller,
) -> Result<Json<Vec<MemberInfo>>, ApiError> {
    check(caller.role, Action::ListMembers)?;
    Ok(Json(
        app.store
            .members(caller.team)
            .await?
            .iter()
            .map(member_info)
            .collect(),
    ))
}

async fn find_member(app: &App, caller: &Caller, name: &str) -> Result<MemberRow, ApiError> {
    let name = label(name, "user")?;
    app.store
        .member(caller.team, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_member", format!("`{name}` is not a member")))
}

#[utoipa::path(patch, path = "/v1/members/{user}", tag = "members", params(("user" = String, Path)), request_body = SetRole, responses((status = 200, body = MemberInfo), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn set_role(
    State(app): Shared,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<crate::api::SetRole>,
) -> Result<Json<MemberInfo>, ApiError> {
    let SetRole { role } = body;
    let member = find_member(&app, &caller, &name).await?;
    check(
        caller.role,
        Action::ChangeRole {
            from: member.role,
            to: role,
        },
    )?;
    let audit = event(
        &app,
        &caller,
        "member.role",
        member.name.to_string(),
        json!({ "from": member.role, "to": role }),
    );
    app.store
        .set_role(caller.team, member.user, role, audit)
        .await?;
    Ok(Json(MemberInfo {
        role,
        ..member_info(&member)
    }))
}

#[utoipa::path(delete, path = "/v1/members/{user}", tag = "members", params(("user" = String, Path)), responses((status = 204, description = "removed"), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn remove_member(
    State(app): Shared,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let member = find_member(&app, &caller, &name).await?;
    check(caller.role, Action::RemoveMember { role: member.role })?;
    let audit = event(
        &app,
        &caller,
        "member.remove",
        member.name.to_string(),
        json!({ "role": member.role }),
    );
    app.store
        .remove_member(caller.team, member.user, audit)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// Runs ----------------------------------------------------------------------------------------

/// A new run id: the start time in milliseconds (48 bits) then 80 random bits, in hex, like a
/// UUIDv7. Ids made later sort later, so new runs append to the end of the id index instead of
/// landing on a random page of it (each random landing is a page written per run).
fn run_id(now: i64) -> Result<String, ApiError> {
    use rand_core::TryRng;
    use std::fmt::Write as _;
    let mut random = [0u8; 10];
    SysRng
        .try_fill_bytes(&mut random)
        .map_err(|_| ApiError::from(CryptoError::Rng))?;
    let ms = u64::try_from(now).unwrap_or(0) & 0xffff_ffff_ffff;
    let mut id = format!("run_{ms:012x}");
    for b in random {
        let _ = write!(id, "{b:02x}");
    }
    Ok(id)
}

#[utoipa::path(post, path = "/v1/runs", tag = "runs", request_body = ResolveRun, responses((status = 201, description = "the run and its secrets (the only response that carries values)", body = Resolved), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, description = "a required secret is missing", body = Problem)))]
pub(super) async fn resolve(
    State(app): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<ResolveRun>,
) -> Result<Response, ApiError> {
    check(caller.role, Action::StartRun)?;
    let core_caller = match &caller.user {
        Some((user, _)) => resolve::Caller::Personal { user: *user },
        None => resolve::Caller::Team {
            identity: caller.identity.clone(),
        },
    };
    let request = RunRequest {
        trigger: body.trigger,
        environment: body.environment.clone(),
        secrets: body.secrets.clone(),
        required: body.required.clone(),
    };
    let now = app.now();
    let id = run_id(now)?;
    let base_event = event_without_detail(&app, &caller, "run.start", id.clone());
    let user = caller.user.as_ref().map(|(u, _)| *u);
    let started = RunStart {
        id,
        key_id: caller.key_id.to_string(),
        user,
        user_name: caller.user.as_ref().map(|(_, n)| n.clone()),
        identity: caller.identity.clone(),
        actor: caller.actor_name(),
        now,
    };
    let ask = RunAsk {
        user,
        environment: request.environment.clone(),
        inputs: request.inputs(&core_caller),
        decide: Box::new(move |snapshot| {
            let result = resolve::resolve(&core_caller, &request, snapshot);
            let record = to_json(&DecidedRecord::of(&request, &result));
            Decided { result, record }
        }),
        start: Box::new(move |decision| started.plan(decision, base_event)),
    };
    let run = app.store.resolve_run(caller.team, ask).await?;
    // The answer is prepared (the values opened) while the record is being committed, and
    // nothing leaves, not even a refusal, before the record is durable (fail closed).
    let prepared = match &run.decision.result {
        Ok(resolution) => Ok(answer(
            &app,
            caller.team,
            &run.plan.id,
            resolution,
            &run.decision.sealed,
        )
        .await),
        Err(e) => Err(refusal(e)),
    };
    run.durable.wait().await?;
    app.metrics.runs.fetch_add(1, Ordering::Relaxed);
    let body = prepared??;
    let response = (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(Bytes::from_owner(body)),
    );
    Ok(no_store(response.into_response()))
}

/// The answer to a refused resolution.
fn refusal(e: &ResolveError) -> ApiError {
    match e {
        ResolveError::TriggerRequiresUser { trigger } => ApiError::bad_request(
            "trigger_requires_user",
            format!(
                "trigger `{trigger}` needs a user and a team key has none; use a personal key or \
                 a schedule/integration trigger"
            ),
        ),
        ResolveError::EnvironmentNotFound { name } => ApiError::not_found(
            "unknown_environment",
            format!("environment `{name}` does not exist"),
        ),
        ResolveError::RequiredMissing { missing, .. } => {
            ApiError::required_missing(missing.clone())
        }
    }
}

/// Writes the answer to a delivered run ([`api::Resolved`]), opening each value (with its kept
/// [`ValueKey`](crate::core::crypto::ValueKey), made from the team's data key on first use)
/// into one reused scratch buffer and escaping it straight into the answer.
/// Both buffers are wiped when dropped; the answer's when the server has sent it.
async fn answer(
    app: &App,
    team: i64,
    run_id: &str,
    resolution: &resolve::Resolution,
    sealed: &[Arc<Sealed>],
) -> Result<WipingBuf, ApiError> {
    const ENTRY: usize = r#"{"name":"","scope":"personal","version":4294967295,"value":""},"#.len();
    let mut data: Option<DataKey> = None;
    let capacity = 256
        + sealed
            .iter()
            .map(|s| ENTRY + s.name.as_str().len() + s.ciphertext.len())
            .sum::<usize>()
        + 64 * (resolution.missing.len() + resolution.shadowed.len());
    let unwritable = |_| ApiError::internal("the answer could not be written");
    let mut out = ResolvedWriter::new(run_id, resolution.trigger, capacity).map_err(unwritable)?;
    let mut scratch = Zeroizing::new(Vec::new());
    for s in sealed {
        let binding = Binding {
            team,
            scope: s.scope,
            owner: s.owner.map(|u| u.0),
            secret: s.id.0,
            name: s.name.as_str(),
            version: s.version,
            key_version: s.key_version,
        };
        if s.key.get().is_none() {
            let key = match data.take() {
                Some(key) => key,
                None => data_key(app, team).await?.0,
            };
            // Concurrent first opens may race; the key that loses is dropped, and wiped.
            let _ = s.key.set(key.value_key(&s.ciphertext)?);
            data = Some(key);
        }
        let value = s
            .key
            .get()
            .ok_or_else(|| ApiError::internal("a value's key was not kept"))?
            .open_into(&binding, &s.ciphertext, &mut scratch)?;
        out.secret(&s.name, s.scope, s.version, value)
            .map_err(unwritable)?;
    }
    out.finish(&resolution.missing, &resolution.shadowed)
        .map_err(unwritable)
}

/// Who started a run and when: what its record and audit event say besides the resolution.
struct RunStart {
    id: String,
    key_id: String,
    user: Option<UserId>,
    user_name: Option<String>,
    identity: Option<Label>,
    actor: String,
    now: i64,
}

/// A run's own part of its record (names only, never values): who started it. The rest is its
/// decision's [`DecidedRecord`]; `GET /v1/runs/{id}` shows both as one object.
#[derive(serde::Serialize)]
struct OwnRecord<'a> {
    who: Who<'a>,
}

/// The part of a run record that follows from its decision, shared by every run with the same
/// inputs over the same snapshot (and stored once for them all).
#[derive(serde::Serialize)]
struct DecidedRecord<'a> {
    environment: Option<&'a Label>,
    requested: Option<&'a [SecretName]>,
    required: &'a [SecretName],
    #[serde(flatten)]
    outcome: RecordOutcome<'a>,
}

impl<'a> DecidedRecord<'a> {
    fn of(request: &'a RunRequest, result: &'a Result<resolve::Resolution, ResolveError>) -> Self {
        let outcome = match result {
            Ok(r) => RecordOutcome::Started {
                trigger: r.trigger,
                user_context: r.user_context.is_some(),
                delivered: Delivered::of(&r.delivered),
                missing: &r.missing,
                shadowed: &r.shadowed,
            },
            Err(e) => RecordOutcome::Refused {
                refused: e.to_string(),
                missing: match e {
                    ResolveError::RequiredMissing { missing, .. } => Some(missing),
                    _ => None,
                },
            },
        };
        Self {
            environment: request.environment.as_ref(),
            requested: request.secrets.as_deref(),
            required: &request.required,
            outcome,
        }
    }
}

#[derive(serde::Serialize)]
struct Who<'a> {
    key_id: &'a str,
    user: Option<&'a str>,
    identity: Option<&'a Label>,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum RecordOutcome<'a> {
    Started {
        trigger: resolve::Trigger,
        user_context: bool,
        delivered: Delivered<'a>,
        missing: &'a [resolve::Missing],
        shadowed: &'a [SecretName],
    },
    Refused {
        refused: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        missing: Option<&'a [resolve::Missing]>,
    },
}

/// The delivered names of a run record, by scope, each with its version:
/// `{"team": {"NAME": 3}, "personal": {"OTHER": 1}}`. A map per scope keeps a record of a
/// hundred names under one database page, where a list of objects took two.
#[derive(serde::Serialize, Default)]
struct Delivered<'a> {
    team: NameVersions<'a>,
    personal: NameVersions<'a>,
}

#[derive(Default)]
struct NameVersions<'a>(Vec<(&'a SecretName, u32)>);

impl serde::Serialize for NameVersions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, version)| (*name, *version)))
    }
}

impl<'a> Delivered<'a> {
    fn of(deliveries: &'a [resolve::Delivery]) -> Self {
        let mut delivered = Self::default();
        for d in deliveries {
            let scope = match d.scope {
                Scope::Team => &mut delivered.team,
                Scope::Personal => &mut delivered.personal,
            };
            scope.0.push((&d.name, d.version));
        }
        delivered
    }
}

/// The detail of a run's audit event. The delivered names are in the run record (the event's
/// target is the run id, written in the same transaction); the event counts them, so a run
/// is not written twice over.
#[derive(serde::Serialize)]
struct RunAudit<'a> {
    actor: &'a str,
    status: &'static str,
    delivered_count: usize,
    missing: &'a [resolve::Missing],
}

impl RunStart {
    /// This run's own part of its record, and its audit event, for `decision`.
    fn plan(self, decision: &Decision, mut audit: AuditEvent) -> RunPlan {
        let (status, delivered_count, missing): (_, _, &[resolve::Missing]) = match &decision.result
        {
            Ok(r) => ("started", r.delivered.len(), &r.missing),
            Err(ResolveError::RequiredMissing { missing, .. }) => ("refused", 0, missing),
            Err(_) => ("refused", 0, &[]),
        };
        if status == "refused" {
            "refused".clone_into(&mut audit.outcome);
        }
        audit.detail = to_json(&RunAudit {
            actor: &self.actor,
            status,
            delivered_count,
            missing,
        });
        let record = to_json(&OwnRecord {
            who: Who {
                key_id: &self.key_id,
                user: self.user_name.as_deref(),
                identity: self.identity.as_ref(),
            },
        });
        RunPlan {
            record,
            id: self.id,
            key_id: self.key_id,
            user: self.user,
            status,
            started_at: self.now,
            audit,
        }
    }
}

/// JSON text of a record made of names, numbers and enums (serializing it cannot fail).
fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

fn run_info(row: RunRow) -> RunInfo {
    RunInfo {
        id: row.id,
        status: row.status,
        started_at: row.started_at,
        ended_at: row.ended_at,
        record: row.record,
        outcome: row.outcome,
    }
}

/// Runs the caller may read: all, or only those of its own key's user.
fn run_filter(caller: &Caller) -> Result<Option<UserId>, ApiError> {
    if check(caller.role, Action::ReadAllRuns).is_ok() {
        return Ok(None);
    }
    check(caller.role, Action::ReadOwnRuns)?;
    Ok(Some(caller.own_user()?))
}

#[utoipa::path(post, path = "/v1/runs/{id}/finish", tag = "runs", params(("id" = String, Path)), request_body = FinishRun, responses((status = 200, body = RunInfo), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn finish_run(
    State(app): Shared,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FinishRun>,
) -> Result<Json<RunInfo>, ApiError> {
    let run = app.store.run(caller.team, &id).await?;
    let run = run.ok_or_else(|| ApiError::not_found("unknown_run", "no such run"))?;
    if run.key_id != caller.key_id.as_str() && check(caller.role, Action::ReadAllRuns).is_err() {
        return Err(ApiError::not_found("unknown_run", "no such run"));
    }
    let outcome = json!({
        "exit_code": body.exit_code,
        "signal": body.signal,
        "duration_ms": body.duration_ms,
        "masked": body.masked,
    });
    let audit = event(&app, &caller, "run.finish", id.clone(), outcome.clone());
    if !app
        .store
        .finish_run(caller.team, &id, outcome, app.now(), audit)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_not_started",
            "the run is already finished or was refused",
        ));
    }
    let row = app
        .store
        .run(caller.team, &id)
        .await?
        .ok_or_else(|| ApiError::internal("finished run vanished"))?;
    Ok(Json(run_info(row)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Limit {
    #[serde(default = "default_limit")]
    limit: u32,
}

const fn default_limit() -> u32 {
    50
}

#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(("limit" = Option<u32>, Query)), responses((status = 200, body = [RunInfo])))]
pub(super) async fn list_runs(
    State(app): Shared,
    caller: Caller,
    ApiQuery(q): ApiQuery<Limit>,
) -> Result<Json<Vec<RunInfo>>, ApiError> {
    let only = run_filter(&caller)?;
    let rows = app
        .store
        .runs(caller.team, only, q.limit.clamp(1, 1000))
        .await?;
    Ok(Json(rows.into_iter().map(run_info).collect()))
}

#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path)), responses((status = 200, body = RunInfo), (status = 404, body = Problem)))]
pub(super) async fn show_run(
    State(app): Shared,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunInfo>, ApiError> {
    let only = run_filter(&caller)?;
    let row = app.store.run(caller.team, &id).await?;
    match row {
        Some(row) if only.is_none() || row.user == only => Ok(Json(run_info(row))),
        _ => Err(ApiError::not_found("unknown_run", "no such run")),
    }
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(("limit" = Option<u32>, Query)), responses((status = 200, body = [AuditInfo]), (status = 403, body = Problem)))]
pub(super) async fn audit(
    State(app): Shared,
    caller: Caller,
    ApiQuery(q): ApiQuery<Limit>,
) -> Result<Json<Vec<AuditInfo>>, ApiError> {
    check(caller.role, Action::ReadAudit)?;
    let rows = app.store.audit(caller.team, q.limit.clamp(1, 1000)).await?;
    let events = rows
        .into_iter()
        .map(|r| {
            let detail: serde_json::Value = serde_json::from_str(&r.event.detail)
                .map_err(|_| ApiError::internal("an audit event's detail is not JSON"))?;
            Ok(AuditInfo {
                id: r.id,
                at: r.event.at,
                actor: detail
                    .get("actor")
                    .and_then(|a| a.as_str())
                    .map(ToOwned::to_owned),
                key_id: r.event.actor_key,
                action: r.event.action,
                target: r.event.target,
                outcome: r.event.outcome,
                detail,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_time_ordered_hex_with_80_random_bits() {
        let id = run_id(1_700_000_000_000).expect("id");
        let hex = id.strip_prefix("run_").expect("prefix");
        assert_eq!(hex.len(), 32, "{id}");
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{id}"
        );
        assert!(
            hex.starts_with(&format!("{:012x}", 1_700_000_000_000_u64)),
            "{id}"
        );
        let same_ms: std::collections::BTreeSet<String> = (0..100)
            .map(|_| run_id(1_700_000_000_000).expect("id"))
            .collect();
        assert_eq!(same_ms.len(), 100, "ids of one millisecond differ");
        let later = run_id(1_700_000_000_001).expect("id");
        assert!(
            same_ms.iter().all(|earlier| *earlier < later),
            "a later id sorts later"
        );
    }
}
