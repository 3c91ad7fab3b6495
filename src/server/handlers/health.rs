//! Health, readiness, metrics and the fallback for unknown routes: no key needed.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::Shared;
use crate::api::Problem;
use crate::server::error::ApiError;

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "the process is up", body = String)))]
pub(in crate::server) async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "the database answers", body = String), (status = 503, description = "database unavailable", body = Problem)))]
pub(in crate::server) async fn readyz(State(app): Shared) -> Result<&'static str, ApiError> {
    app.store.ping().await?;
    Ok("ready\n")
}

#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format", body = String)))]
pub(in crate::server) async fn metrics(State(app): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

pub(in crate::server) async fn not_found() -> ApiError {
    ApiError::not_found("no_such_route", "no such route; see DESIGN §9 for the API")
}
