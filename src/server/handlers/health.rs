//! Health, readiness, metrics and the fallback for unknown routes: no key needed.

use std::sync::atomic::Ordering;

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

pub(in crate::server) async fn not_found() -> ApiError {
    ApiError::not_found("no_such_route", "no such route; see DESIGN §9 for the API")
}
