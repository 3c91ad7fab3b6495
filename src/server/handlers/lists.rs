//! Environments and agent identities: named lists of secret names.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;

use super::secrets::description_of;
use super::{ApiJson, Shared, event, label};
use crate::api::{ListInfo, Problem, PutList};
use crate::core::perm::{Action, check};
use crate::server::App;
use crate::server::auth::Caller;
use crate::server::error::ApiError;
use crate::store::{ListKind, NamedList};

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
        pub(in crate::server) async fn $put(State(app): Shared, caller: Caller, Path(name): Path<String>, ApiJson(body): ApiJson<PutList>) -> Result<Json<ListInfo>, ApiError> {
            put_list($kind, app, caller, name, body).await
        }
        #[utoipa::path(get, path = concat!($base, "/{name}"), tag = $tag, params(("name" = String, Path)),
            responses((status = 200, body = ListInfo), (status = 404, body = Problem)))]
        pub(in crate::server) async fn $get(State(app): Shared, caller: Caller, Path(name): Path<String>) -> Result<Json<ListInfo>, ApiError> {
            get_list($kind, app, caller, name).await
        }
        #[utoipa::path(get, path = $base, tag = $tag, responses((status = 200, body = [ListInfo])))]
        pub(in crate::server) async fn $all(State(app): Shared, caller: Caller) -> Result<Json<Vec<ListInfo>>, ApiError> {
            get_lists($kind, app, caller).await
        }
        #[utoipa::path(delete, path = concat!($base, "/{name}"), tag = $tag, params(("name" = String, Path)),
            responses((status = 204, description = "deleted"), (status = 404, body = Problem)))]
        pub(in crate::server) async fn $delete(State(app): Shared, caller: Caller, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
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
