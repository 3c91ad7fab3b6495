//! The audit log (DESIGN §10): owners and admins page through it, newest first, filtered.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::{ApiQuery, Shared, audit_position, cursor, one_of, page_limit};
use crate::api::{AuditInfo, AuditPage, Problem};
use crate::core::perm::Action;
use crate::server::auth::Caller;
use crate::server::error::ApiError;
use crate::store::{AuditQuery, AuditRow};

/// `GET /v1/audit` query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct AuditParams {
    limit: Option<u32>,
    cursor: Option<String>,
    /// An action prefix (`secret.`).
    action: Option<String>,
    /// A user name: events by them, or by team keys acting on their behalf.
    actor: Option<String>,
    outcome: Option<String>,
    /// Unix ms, inclusive.
    since: Option<i64>,
    /// Unix ms, exclusive.
    until: Option<i64>,
}

/// Owners and admins (`manage` keys).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(
    ("limit" = Option<u32>, Query, description = "1 to 500 (default 50)"),
    ("cursor" = Option<String>, Query, description = "the `next_cursor` of the previous page"),
    ("action" = Option<String>, Query, description = "an action prefix, e.g. `secret.`"),
    ("actor" = Option<String>, Query, description = "a user name"),
    ("outcome" = Option<String>, Query, description = "ok, denied, refused or failed"),
    ("since" = Option<i64>, Query, description = "Unix ms, inclusive"),
    ("until" = Option<i64>, Query, description = "Unix ms, exclusive")),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub(in crate::server) async fn audit(
    State(app): Shared,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Action::ReadAudit).await?;
    let limit = page_limit(q.limit)?;
    let before = q.cursor.as_deref().map(audit_position).transpose()?;
    let query = AuditQuery {
        limit,
        before,
        action: q.action.filter(|a| !a.is_empty()),
        actor: q.actor.filter(|a| !a.is_empty()),
        outcome: one_of(q.outcome, &["ok", "denied", "refused", "failed"], "outcome")?,
        since: q.since,
        until: q.until,
    };
    let rows = app.store.audit(caller.team, &query).await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| cursor(&r.id.to_string())))
        .flatten();
    let events = rows.into_iter().map(info).collect::<Result<_, _>>()?;
    Ok(Json(AuditPage {
        events,
        next_cursor,
    }))
}

fn info(r: AuditRow) -> Result<AuditInfo, ApiError> {
    let detail: serde_json::Value = serde_json::from_str(&r.event.detail)
        .map_err(|_| ApiError::internal("an audit event's detail is not JSON"))?;
    let actor = r.event.actor;
    Ok(AuditInfo {
        id: r.id,
        at: r.event.at,
        actor: actor.name,
        key_id: actor.key,
        on_behalf_of: actor.on_behalf_of,
        capability: actor.capability,
        client_address: actor.client,
        user_agent: actor.user_agent,
        action: r.event.action,
        target: r.event.target,
        outcome: r.event.outcome,
        detail,
    })
}
