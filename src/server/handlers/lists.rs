//! Environments and agent identities: named lists of secret names.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::secrets::description_of;
use super::{ApiJson, ApiQuery, IfMatch, Shared, event, label, secret_name, with_etag};
use crate::api::{DeletedList, ListInfo, Problem, PutList};
use crate::core::perm::Action;
use crate::server::App;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, key_ref_info};
use crate::store::{ListChange, ListDeleted, ListKind, NamedList};

fn list_info(list: &NamedList) -> ListInfo {
    ListInfo {
        name: list.name.to_string(),
        description: list.description.clone(),
        secrets: list
            .secrets
            .as_ref()
            .map(|s| s.iter().map(ToString::to_string).collect()),
        updated_at: list.updated_at,
        revision: list.revision,
    }
}

const fn kind_name(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Environment => "environment",
        ListKind::Identity => "identity",
    }
}

fn names_of(list: Option<&NamedList>) -> Option<Vec<String>> {
    list.and_then(|l| l.secrets.as_ref())
        .map(|names| names.iter().map(ToString::to_string).collect())
}

async fn put_list(
    kind: ListKind,
    app: Arc<App>,
    caller: Caller,
    name: String,
    if_match: IfMatch,
    body: PutList,
) -> Result<Response, ApiError> {
    caller.require(Action::ManageEnvironments).await?;
    let name = label(&name, kind_name(kind))?;
    let secrets = match kind {
        ListKind::Environment => body.secrets,
        ListKind::Identity => Some(body.secrets.unwrap_or_default()),
    };
    if kind == ListKind::Environment && !body.release.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "`release` is for identities: an environment reserves nothing",
        ));
    }
    if secrets.as_ref().is_some_and(|s| s.len() > 1000) || body.release.len() > 1000 {
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
        revision: 0,
    };
    let if_revision = if_match
        .expect(async {
            let now = app.store.list(kind, caller.team, &list.name).await?;
            Ok(now.map(|l| l.revision))
        })
        .await?;
    let events = |change: &ListChange| {
        vec![event(
            &app,
            &caller,
            &format!("{}.put", kind_name(kind)),
            list.name.to_string(),
            &json!({
                "created": change.before.is_none(),
                "before": names_of(change.before.as_ref()),
                "secrets": names_of(Some(&list)),
                "released": change.released,
            }),
        )]
    };
    let change = app
        .store
        .put_list(
            kind,
            caller.team,
            list.clone(),
            if_revision,
            &body.release,
            &events,
        )
        .await?;
    let revision = change.before.map_or(1, |b| b.revision + 1);
    let info = list_info(&NamedList { revision, ..list });
    Ok(with_etag(Json(info).into_response(), revision))
}

async fn get_list(
    kind: ListKind,
    app: Arc<App>,
    caller: Caller,
    name: String,
) -> Result<Response, ApiError> {
    caller.require(Action::ReadEnvironments).await?;
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
    Ok(with_etag(
        Json(list_info(&list)).into_response(),
        list.revision,
    ))
}

async fn get_lists(
    kind: ListKind,
    app: Arc<App>,
    caller: Caller,
) -> Result<Json<Vec<ListInfo>>, ApiError> {
    caller.require(Action::ReadEnvironments).await?;
    Ok(Json(
        app.store
            .lists(kind, caller.team)
            .await?
            .iter()
            .map(list_info)
            .collect(),
    ))
}

/// `DELETE` query: identities only (DESIGN §3).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct DeleteQuery {
    /// Comma-separated team secret names the deletion may make available to every run.
    #[serde(default)]
    release: Option<String>,
    /// Revoke the keys bound to the identity with it.
    #[serde(default)]
    force: bool,
}

async fn delete_list(
    kind: ListKind,
    app: Arc<App>,
    caller: Caller,
    name: String,
    query: DeleteQuery,
) -> Result<Json<DeletedList>, ApiError> {
    caller.require(Action::ManageEnvironments).await?;
    let name = label(&name, kind_name(kind))?;
    if kind == ListKind::Environment && (query.release.is_some() || query.force) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`release` and `force` are for identities: an environment reserves nothing",
        ));
    }
    let release = query
        .release
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(secret_name)
        .collect::<Result<Vec<_>, _>>()?;
    let events = |deleted: &ListDeleted| {
        let revoked: Vec<&str> = deleted.revoked.iter().map(|k| k.key_id.as_str()).collect();
        vec![event(
            &app,
            &caller,
            &format!("{}.delete", kind_name(kind)),
            name.to_string(),
            &json!({
                "before": names_of(Some(&deleted.before)),
                "released": deleted.released,
                "revoked_keys": revoked,
            }),
        )]
    };
    let deleted = app
        .store
        .delete_list(
            kind,
            caller.team,
            &name,
            &release,
            query.force,
            app.now(),
            &events,
        )
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_name",
                format!("{} `{name}` does not exist", kind_name(kind)),
            )
        })?;
    Ok(Json(DeletedList {
        name: name.to_string(),
        released: deleted.released.iter().map(ToString::to_string).collect(),
        revoked_keys: deleted.revoked.iter().map(key_ref_info).collect(),
    }))
}

macro_rules! list_routes {
    ($kind:expr, $base:literal, $tag:literal, $put:ident, $get:ident, $all:ident, $delete:ident) => {
        #[utoipa::path(put, path = concat!($base, "/{name}"), tag = $tag, params(("name" = String, Path)),
            request_body = PutList, responses((status = 200, body = ListInfo), (status = 403, body = Problem), (status = 409, description = "`would_release`", body = Problem), (status = 412, description = "`If-Match` names another revision", body = Problem)))]
        pub(in crate::server) async fn $put(State(app): Shared, caller: Caller, Path(name): Path<String>, headers: HeaderMap, ApiJson(body): ApiJson<PutList>) -> Result<Response, ApiError> {
            put_list($kind, app, caller, name, IfMatch::of(&headers)?, body).await
        }
        #[utoipa::path(get, path = concat!($base, "/{name}"), tag = $tag, params(("name" = String, Path)),
            responses((status = 200, body = ListInfo), (status = 404, body = Problem)))]
        pub(in crate::server) async fn $get(State(app): Shared, caller: Caller, Path(name): Path<String>) -> Result<Response, ApiError> {
            get_list($kind, app, caller, name).await
        }
        #[utoipa::path(get, path = $base, tag = $tag, responses((status = 200, body = [ListInfo])))]
        pub(in crate::server) async fn $all(State(app): Shared, caller: Caller) -> Result<Json<Vec<ListInfo>>, ApiError> {
            get_lists($kind, app, caller).await
        }
        #[utoipa::path(delete, path = concat!($base, "/{name}"), tag = $tag, params(("name" = String, Path),
            ("release" = Option<String>, Query, description = "identities: comma-separated names the deletion may release"),
            ("force" = Option<bool>, Query, description = "identities: revoke the keys bound to it")),
            responses((status = 200, description = "deleted", body = DeletedList), (status = 404, body = Problem), (status = 409, description = "`would_release`, `identity_in_use`", body = Problem)))]
        pub(in crate::server) async fn $delete(State(app): Shared, caller: Caller, Path(name): Path<String>, ApiQuery(query): ApiQuery<DeleteQuery>) -> Result<Json<DeletedList>, ApiError> {
            delete_list($kind, app, caller, name, query).await
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
