//! Every route and layer in one place (DESIGN §9).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use tower_http::catch_panic::CatchPanicLayer;

use super::App;
use super::auth::KeySlot;
use super::error::{ApiError, DatabaseFailed};
use super::handlers as h;

/// Largest request body: a 64 KiB value JSON-escaped, with room to spare.
const BODY_LIMIT: usize = 512 * 1024;

/// The router over `app`: the API, and the web app at `/ui` (which calls the API's handlers
/// in-process, through the same router without the request log and metrics of the outside).
pub fn router(app: Arc<App>) -> Router {
    let api = api(Arc::clone(&app));
    Router::new()
        .merge(api.clone())
        .merge(super::ui::routes(Arc::clone(&app), api))
        .layer(middleware::from_fn_with_state(app, observe))
}

/// The HTTP API and the health routes.
fn api(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(h::healthz))
        .route("/readyz", get(h::readyz))
        .route("/metrics", get(h::metrics))
        .route("/v1/whoami", get(h::whoami))
        .route("/v1/team", patch(h::update_team))
        .route("/v1/api-keys", post(h::create_key).get(h::list_keys))
        .route("/v1/api-keys/{id}", delete(h::revoke_key))
        .route("/v1/seal-key", get(h::seal_key))
        .route("/v1/secrets", post(h::create_secret).get(h::list_secrets))
        .route(
            "/v1/secrets/{scope}/{name}",
            get(h::get_secret)
                .patch(h::update_secret)
                .delete(h::delete_secret),
        )
        .route("/v1/environments", get(h::list_environments))
        .route(
            "/v1/environments/{name}",
            put(h::put_environment)
                .get(h::get_environment)
                .delete(h::delete_environment),
        )
        .route("/v1/identities", get(h::list_identities))
        .route(
            "/v1/identities/{name}",
            put(h::put_identity)
                .get(h::get_identity)
                .delete(h::delete_identity),
        )
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/members", post(h::add_member).get(h::list_members))
        .route(
            "/v1/members/{user}",
            patch(h::set_role).delete(h::remove_member),
        )
        .route("/v1/runs", post(h::resolve).get(h::list_runs))
        .route("/v1/runs/{id}", get(h::show_run))
        .route("/v1/runs/{id}/finish", post(h::finish_run))
        .route("/v1/audit", get(h::audit))
        .fallback(h::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // A bug must not drop the connection: answer 500 (problem+json) and log it.
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                ApiError::internal("a handler panicked").into_response()
            },
        ))
        .with_state(app)
}

/// The OpenAPI document, generated from the handlers' annotations and the wire types.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "health", responses((status = 200, description = "this document")))]
async fn openapi() -> Json<&'static serde_json::Value> {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(super::openapi::document))
}

/// Counts and times every request, and at `-v` logs one line for it: method, route, status,
/// duration, key id, client address. Never a key or a value: only the key id, which the
/// extractor puts in the request's [`KeySlot`].
async fn observe(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let slot = KeySlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    if response.extensions().get::<DatabaseFailed>().is_some() {
        app.metrics.database_errors.inc();
    }
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    app.metrics
        .answered(method.as_str(), &route, status, elapsed.as_secs_f64());
    tracing::info!(
        target: "latch::request",
        "{method} {route} {status} {:.1}ms key={} client={}",
        elapsed.as_secs_f64() * 1000.0,
        slot.0.get().map_or("-", String::as_str),
        client.map_or_else(|| "-".to_owned(), |c| c.to_string()),
    );
    response
}
