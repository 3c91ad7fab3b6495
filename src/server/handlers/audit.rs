//! The audit log.

use axum::Json;
use axum::extract::State;

use super::{ApiQuery, Limit, Shared};
use crate::api::{AuditInfo, Problem};
use crate::core::perm::Action;
use crate::server::auth::Caller;
use crate::server::error::ApiError;

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(("limit" = Option<u32>, Query)), responses((status = 200, body = [AuditInfo]), (status = 403, body = Problem)))]
pub(in crate::server) async fn audit(
    State(app): Shared,
    caller: Caller,
    ApiQuery(q): ApiQuery<Limit>,
) -> Result<Json<Vec<AuditInfo>>, ApiError> {
    caller.check(Action::ReadAudit)?;
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
