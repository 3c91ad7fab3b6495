//! Members and roles.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::keys::{draw_key, key_info, parse_expiry, user_names};
use super::{ApiJson, Shared, event, label, no_store};
use crate::api::{AddMember, AddedMember, CreatedKey, MemberInfo, Problem, RemovedMember, SetRole};
use crate::core::apikey::KeyKind;
use crate::core::perm::{Action, Capability};
use crate::server::App;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, key_ref_info};
use crate::store::{MemberRow, Removed};

fn member_info(m: &MemberRow) -> MemberInfo {
    MemberInfo {
        name: m.name.to_string(),
        role: m.role,
        created_at: m.created_at,
    }
}

#[utoipa::path(post, path = "/v1/members", tag = "members", request_body = AddMember, responses((status = 201, description = "the member and their first key, shown once", body = AddedMember), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(in crate::server) async fn add_member(
    State(app): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<Response, ApiError> {
    caller
        .require(Action::AddMember { role: body.role })
        .await?;
    let now = app.now();
    let expires = parse_expiry(body.expires.as_deref(), "7d")?;
    let (key, new) = draw_key(
        KeyKind::Personal,
        Capability::Manage,
        "first key".to_owned(),
        now,
        expires,
    )?;
    let key_id = new.key_id.clone();
    let audit = event(
        &app,
        &caller,
        "member.add",
        body.name.to_string(),
        &json!({
            "role": body.role,
            "key_id": new.key_id.as_str(),
            "expires_at": new.expires_at,
        }),
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
pub(in crate::server) async fn list_members(
    State(app): Shared,
    caller: Caller,
) -> Result<Json<Vec<MemberInfo>>, ApiError> {
    caller.require(Action::ListMembers).await?;
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
pub(in crate::server) async fn set_role(
    State(app): Shared,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<crate::api::SetRole>,
) -> Result<Json<MemberInfo>, ApiError> {
    let SetRole { role } = body;
    let member = find_member(&app, &caller, &name).await?;
    caller
        .require(Action::ChangeRole {
            from: member.role,
            to: role,
        })
        .await?;
    let audit = event(
        &app,
        &caller,
        "member.role",
        member.name.to_string(),
        &json!({ "from": member.role, "to": role }),
    );
    app.store
        .set_role(caller.team, member.user, role, audit)
        .await?;
    Ok(Json(MemberInfo {
        role,
        ..member_info(&member)
    }))
}

/// Removal is final (DESIGN §3): the member's personal keys are revoked for good, their personal
/// secrets deleted (each deletion audited by name), their runs and audit events kept. Team keys
/// they made act as `run` from now on.
#[utoipa::path(delete, path = "/v1/members/{user}", tag = "members", params(("user" = String, Path)), responses((status = 200, description = "removed: what was revoked and deleted", body = RemovedMember), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(in crate::server) async fn remove_member(
    State(app): Shared,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<RemovedMember>, ApiError> {
    let member = find_member(&app, &caller, &name).await?;
    caller
        .require(Action::RemoveMember { role: member.role })
        .await?;
    let events = |removed: &Removed| {
        let revoked: Vec<&str> = removed.revoked.iter().map(|k| k.key_id.as_str()).collect();
        let mut events = vec![event(
            &app,
            &caller,
            "member.remove",
            member.name.to_string(),
            &json!({
                "role": member.role,
                "revoked_keys": revoked,
                "deleted_secrets": removed.deleted,
            }),
        )];
        for name in &removed.deleted {
            events.push(event(
                &app,
                &caller,
                "secret.delete",
                format!("personal/{name}"),
                &json!({ "name": name, "owner": member.name.as_str(), "reason": "member removed" }),
            ));
        }
        events
    };
    let removed = app
        .store
        .remove_member(caller.team, member.user, app.now(), &events)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("unknown_member", format!("`{name}` is not a member"))
        })?;
    Ok(Json(RemovedMember {
        name: member.name.to_string(),
        revoked_keys: removed.revoked.iter().map(key_ref_info).collect(),
        deleted_secrets: removed.deleted.iter().map(ToString::to_string).collect(),
    }))
}
