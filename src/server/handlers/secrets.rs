//! Write-only secrets: create, list metadata, update, delete. Values are sealed here and never
//! answered.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use getrandom::SysRng;
use serde::Deserialize;
use serde_json::json;

use super::{ApiJson, ApiQuery, IfMatch, Shared, data_key, event, scope_of, with_etag};
use crate::api::{CreateSecret, Problem, SealKey, SecretInfo, UpdateSecret};
use crate::core::broker::{Policy, PolicySpec};
use crate::core::crypto::Binding;
use crate::core::name::SecretName;
use crate::core::perm::Action;
use crate::core::resolve::{Scope, SecretId, UserId};
use crate::core::seal::{self, SealError, SealKeyPair, Sealed, Target};
use crate::core::value::SecretValue;
use crate::server::App;
use crate::server::auth::Caller;
use crate::server::boot::random_id;
use crate::server::error::{ApiError, OwnerShown};
use crate::store::{NewSecret, Refused, SealKeyRow, SecretRow, SecretUpdate, StoreError};

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
        revision: row.revision,
        broker: row.broker.as_ref().map(Policy::spec),
    }
}

/// A broker policy from a request (DESIGN §13).
pub(super) fn policy_of(spec: &PolicySpec) -> Result<Policy, ApiError> {
    Policy::from_spec(spec).map_err(|e| ApiError::bad_request("invalid_broker", e.to_string()))
}

/// Who owns a secret of `scope` written by `caller`, after the permission check.
async fn owner_for(caller: &Caller, scope: Scope) -> Result<Option<UserId>, ApiError> {
    match scope {
        Scope::Team => {
            caller.require(Action::WriteTeamSecret).await?;
            Ok(None)
        }
        Scope::Personal => {
            caller.require(Action::WriteOwnPersonalSecret).await?;
            Ok(Some(caller.own_user().await?))
        }
    }
}

fn value_of(text: String) -> Result<SecretValue, ApiError> {
    SecretValue::new(text).map_err(|e| ApiError::bad_request("invalid_value", e.to_string()))
}

/// The value a write carries, plain or sealed for `target` (DESIGN §12): a sealed value is
/// opened here, in the write path only, into a wiping buffer that becomes the value.
async fn written_value(
    app: &App,
    target: &Target<'_>,
    value: Option<String>,
    sealed: Option<&Sealed>,
) -> Result<Option<SecretValue>, ApiError> {
    match (value, sealed) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "invalid_value",
            "give `value` or `sealed_value`, not both",
        )),
        (Some(text), None) => value_of(text).map(Some),
        (None, None) => Ok(None),
        (None, Some(sealed)) => {
            let Some(pair) = seal_pair(app, target.team).await? else {
                return Err(ApiError::bad_request(
                    "seal_mismatch",
                    "this team has no sealing key yet: fetch GET /v1/seal-key and seal to it",
                ));
            };
            let mut plain = pair.open(target, sealed).map_err(|e| match e {
                SealError::Malformed(_) => {
                    ApiError::bad_request("invalid_sealed_value", e.to_string())
                }
                SealError::Key => ApiError::internal("unusable sealing key"),
                SealError::OtherKey { .. } | SealError::Mismatch => {
                    ApiError::bad_request("seal_mismatch", e.to_string())
                }
            })?;
            let bytes = std::mem::take(&mut *plain);
            SecretValue::from_bytes(bytes)
                .map(Some)
                .map_err(|e| ApiError::bad_request("invalid_value", e.to_string()))
        }
    }
}

/// Team `team`'s sealing key pair, if it has one.
async fn seal_pair(app: &App, team: i64) -> Result<Option<SealKeyPair>, ApiError> {
    match app.store.seal_key(team).await? {
        None => Ok(None),
        Some(row) => pair_of(app, team, row).map(Some),
    }
}

fn pair_of(app: &App, team: i64, row: SealKeyRow) -> Result<SealKeyPair, ApiError> {
    let private = app.root.unwrap_seal_key(team, &row.wrapped_private)?;
    let pair = SealKeyPair::from_parts(row.public, private)
        .map_err(|_| ApiError::internal("malformed sealing key"))?;
    if pair.key_id() != row.key_id {
        return Err(ApiError::internal("sealing key id does not match its key"));
    }
    Ok(pair)
}

/// Makes the team's sealing key pair, unless another replica was first: the one kept is the
/// one answered.
async fn make_seal_pair(app: &App, caller: &Caller) -> Result<SealKeyPair, ApiError> {
    let made = SealKeyPair::generate().map_err(|_| ApiError::internal("sealing key"))?;
    let row = SealKeyRow {
        key_id: made.key_id(),
        public: made.public().to_vec(),
        wrapped_private: app
            .root
            .wrap_seal_key(caller.team, made.private(), &mut SysRng)?,
    };
    let audit = event(
        app,
        caller,
        "team.seal_key",
        row.key_id.clone(),
        &json!({ "key_id": row.key_id, "suite": seal::SUITE_NAME }),
    );
    let kept = app.store.init_seal_key(caller.team, row, audit).await?;
    pair_of(app, caller.team, kept)
}

/// The team's sealing public key (DESIGN §12), made on first use, for a writer to seal a value
/// to. Any role; `manage` keys only (a `run` key writes nothing).
#[utoipa::path(get, path = "/v1/seal-key", tag = "secrets", responses((status = 200, body = SealKey), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(in crate::server) async fn seal_key(
    State(app): Shared,
    caller: Caller,
) -> Result<Json<SealKey>, ApiError> {
    use base64::Engine as _;
    caller.require(Action::ReadSealKey).await?;
    let pair = match seal_pair(&app, caller.team).await? {
        Some(pair) => pair,
        None => make_seal_pair(&app, &caller).await?,
    };
    Ok(Json(SealKey {
        key_id: pair.key_id(),
        public_key: base64::engine::general_purpose::STANDARD.encode(pair.public()),
        suite: seal::SUITE_NAME.to_owned(),
        info: String::from_utf8_lossy(seal::INFO).into_owned(),
        team: caller.team.to_string(),
        owner: caller.user_id().map(|u| u.0.to_string()),
    }))
}

pub(super) fn description_of(text: String) -> Result<String, ApiError> {
    if text.chars().count() > 1024 || text.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_description",
            "a description is at most 1024 characters, without NUL",
        ));
    }
    Ok(text)
}

#[utoipa::path(post, path = "/v1/secrets", tag = "secrets", request_body = CreateSecret, responses((status = 201, body = SecretInfo), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(in crate::server) async fn create_secret(
    State(app): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<CreateSecret>,
) -> Result<Response, ApiError> {
    let owner = owner_for(&caller, body.scope).await?;
    let target = Target {
        team: caller.team,
        scope: body.scope,
        owner: owner.map(|u| u.0),
        name: body.name.as_str(),
    };
    let sealed = body.sealed_value.is_some();
    let value = written_value(&app, &target, body.value, body.sealed_value.as_ref())
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_value",
                "give the value, as `value` or `sealed_value`",
            )
        })?;
    let description = description_of(body.description)?;
    let broker = body.broker.as_ref().map(policy_of).transpose()?;
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
        &json!({
            "name": body.name.as_str(),
            "scope": body.scope,
            "sealed": sealed,
            "broker": broker.as_ref().map(Policy::spec),
        }),
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
        broker,
        actor: caller.actor(),
        at: app.now(),
    };
    match app.store.create_secret(secret, audit).await {
        Err(StoreError::Refused(Refused::NameConflict(existing))) => {
            // Another member's personal secret is named only to callers who may list it.
            let shown = if existing.owner.is_some() && existing.owner == caller.user_id() {
                OwnerShown::Caller
            } else if caller.allows(Action::ListAllPersonalSecrets) {
                OwnerShown::Named
            } else {
                OwnerShown::Hidden
            };
            return Err(ApiError::name_conflict(&existing, shown));
        }
        done => done?,
    }
    let row = app
        .store
        .secret(caller.team, body.scope, owner, &body.name)
        .await?
        .ok_or_else(|| ApiError::internal("created secret not found"))?;
    Ok((StatusCode::CREATED, Json(secret_info(&row))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct ListSecretsQuery {
    #[serde(default)]
    all: bool,
}

#[utoipa::path(get, path = "/v1/secrets", tag = "secrets", params(("all" = Option<bool>, Query, description = "add every member's personal secret names (owners and admins)")), responses((status = 200, body = [SecretInfo])))]
pub(in crate::server) async fn list_secrets(
    State(app): Shared,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListSecretsQuery>,
) -> Result<Json<Vec<SecretInfo>>, ApiError> {
    caller.require(Action::ListSecrets).await?;
    if query.all {
        caller.require(Action::ListAllPersonalSecrets).await?;
    }
    let viewer = caller.user.as_ref().map_or(UserId(0), |(id, _)| *id);
    let rows = app.store.secrets(caller.team, viewer, query.all).await?;
    Ok(Json(rows.iter().map(secret_info).collect()))
}

/// The secret a path names, for writing it (`write`: the caller must be allowed to change it)
/// or reading its metadata.
async fn find_secret(
    app: &App,
    caller: &Caller,
    scope: &str,
    name: &str,
    write: bool,
) -> Result<(SecretRow, Option<UserId>), ApiError> {
    let scope = scope_of(scope)?;
    // A name refused since it was stored still names its secret, to update or delete it.
    let name = SecretName::stored(name)
        .map_err(|e| ApiError::bad_request("invalid_name", e.to_string()))?;
    let owner = if write {
        owner_for(caller, scope).await?
    } else {
        caller.require(Action::ListSecrets).await?;
        match scope {
            Scope::Team => None,
            Scope::Personal => Some(caller.own_user().await?),
        }
    };
    let unknown = || ApiError::not_found("unknown_secret", format!("no {scope} secret `{name}`"));
    let row = app
        .store
        .secret(caller.team, scope, owner, &name)
        .await?
        .ok_or_else(unknown)?;
    // Names are exact (the store finds the one spelling its scope may hold).
    if row.name != name {
        return Err(ApiError::not_found(
            "unknown_secret",
            format!("no {scope} secret `{name}`; did you mean `{}`?", row.name),
        ));
    }
    Ok((row, owner))
}

/// One secret's metadata (never its value), with its `ETag`: a team secret, or one's own
/// personal secret (`manage` keys).
#[utoipa::path(get, path = "/v1/secrets/{scope}/{name}", tag = "secrets", params(("scope" = String, Path), ("name" = String, Path)), responses((status = 200, body = SecretInfo), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(in crate::server) async fn get_secret(
    State(app): Shared,
    caller: Caller,
    Path((scope, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (row, _) = find_secret(&app, &caller, &scope, &name, false).await?;
    Ok(with_etag(
        Json(secret_info(&row)).into_response(),
        row.revision,
    ))
}

/// Changes the value and/or the description; with `If-Match`, only if the secret is still at
/// that revision (412 otherwise).
#[utoipa::path(patch, path = "/v1/secrets/{scope}/{name}", tag = "secrets", params(("scope" = String, Path), ("name" = String, Path)), request_body = UpdateSecret, responses((status = 200, body = SecretInfo), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, description = "`If-Match` names another revision", body = Problem)))]
pub(in crate::server) async fn update_secret(
    State(app): Shared,
    caller: Caller,
    Path((scope, name)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdateSecret>,
) -> Result<Response, ApiError> {
    let if_match = IfMatch::of(&headers)?;
    if body.value.is_none()
        && body.sealed_value.is_none()
        && body.description.is_none()
        && body.broker.is_none()
    {
        return Err(ApiError::bad_request(
            "empty_update",
            "give a new value, a new description or a broker policy",
        ));
    }
    let broker = body
        .broker
        .as_ref()
        .map(|b| b.as_ref().map(policy_of).transpose())
        .transpose()?;
    let (row, owner) = find_secret(&app, &caller, &scope, &name, true).await?;
    let if_revision = if_match.expect(async { Ok(Some(row.revision)) }).await?;
    let description = body.description.map(description_of).transpose()?;
    let target = Target {
        team: caller.team,
        scope: row.scope,
        owner: owner.map(|u| u.0),
        name: row.name.as_str(),
    };
    let sealed = body.sealed_value.is_some();
    let value = match written_value(&app, &target, body.value, body.sealed_value.as_ref()).await? {
        None => None,
        Some(value) => {
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
    let mut detail = json!({ "name": row.name.as_str(), "value_changed": value.is_some() });
    if value.is_some() {
        detail["sealed"] = json!(sealed);
    }
    if let Some(policy) = &broker {
        // The policy before and after: where the value may go is what a security lead reads.
        detail["broker_before"] = json!(row.broker.as_ref().map(Policy::spec));
        detail["broker"] = json!(policy.as_ref().map(Policy::spec));
    }
    let audit = event(
        &app,
        &caller,
        "secret.update",
        format!("{}/{}", row.scope, row.name),
        &detail,
    );
    let update = SecretUpdate {
        id: row.id,
        expected_version: row.version,
        value,
        description,
        broker,
        if_revision,
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
    Ok(with_etag(
        Json(secret_info(&row)).into_response(),
        row.revision,
    ))
}

#[utoipa::path(delete, path = "/v1/secrets/{scope}/{name}", tag = "secrets", params(("scope" = String, Path), ("name" = String, Path)), responses((status = 204, description = "deleted"), (status = 404, body = Problem)))]
pub(in crate::server) async fn delete_secret(
    State(app): Shared,
    caller: Caller,
    Path((scope, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (row, _) = find_secret(&app, &caller, &scope, &name, true).await?;
    let audit = event(
        &app,
        &caller,
        "secret.delete",
        format!("{}/{}", row.scope, row.name),
        &json!({ "name": row.name.as_str() }),
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
