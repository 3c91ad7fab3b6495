//! The web app at `/ui` (DESIGN §12): server-rendered HTML (maud), a few ES modules, htmx for
//! live filtering; every page works without JavaScript except sealing a value, which says so.
//!
//! **One path for every rule.** A page never decides what a role may do or re-implements a
//! check: it calls the `/v1` handlers in-process ([`Ui::api`]), with the session's [`Caller`]
//! in the request's extensions ([`SessionCaller`]). Permission checks, validation, audit
//! events and `If-Match` are therefore exactly the API's; the page renders the answer, a
//! refusal included (its reason on a 403, the problem inline on the field it concerns).
//!
//! **Sessions.** `POST /ui/login` takes a *personal* `manage` key and opens a server-side
//! session (the `Store`, both engines); the cookie `__Host-latch_session` (Secure, HttpOnly,
//! SameSite=Strict, Path=/) holds a random 256-bit id of which only the SHA-256 is kept. Every
//! request re-checks the key the session stands for (`auth::check_key`), so a revoked key or a
//! removed member ends the session at once and a demotion shows at the next page. The cookie is
//! read only here, under `/ui`: `/v1/*` stays bearer-only. Every non-GET request must come from
//! this origin (`Sec-Fetch-Site: same-origin`, else a matching `Origin`).

// Pages answer a rendered page on their error path too: boxing each would only add noise.
#![allow(clippy::result_large_err)]

mod activity;
mod assets;
mod layout;
mod lists;
mod secrets;
mod session;
mod settings;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower_service::Service as _;

use super::App;
use super::auth::{Caller, SessionCaller};
use super::client::ClientInfo;
use crate::core::apikey::{KeyDigest, KeyId, KeyKind};
use crate::store::{Millis, SessionRow};

/// A session ends after this long without a request.
pub(super) const IDLE_MS: Millis = 30 * 60 * 1000;
/// A session ends this long after sign-in whatever happens (never past its key's expiry).
pub(super) const ABSOLUTE_MS: Millis = 12 * 60 * 60 * 1000;
/// Last-seen times are written at most this often per session.
const TOUCH_EVERY_MS: Millis = 60 * 1000;
/// The session cookie. `__Host-`: Secure, Path=/, no Domain, so no other host can set it.
const COOKIE: &str = "__Host-latch_session";

/// The strict policy of DESIGN §12: only this origin's files, nothing inline, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The web app's state: the platform, and its API router to call in-process.
pub(super) struct Ui {
    app: Arc<App>,
    api: Router,
}

type Shared = State<Arc<Ui>>;

/// The routes under `/ui`, with the web app's headers and origin check.
pub(super) fn routes(app: Arc<App>, api: Router) -> Router {
    let ui = Arc::new(Ui { app, api });
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/secrets") }))
        .route("/ui", get(|| async { Redirect::to("/ui/secrets") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/secrets") }))
        .route("/ui/assets/{file}", get(assets::serve))
        .route(
            "/favicon.ico",
            get(|| async { Redirect::permanent(&assets::url("favicon.svg")) }),
        )
        .merge(session::routes())
        .merge(secrets::routes())
        .merge(lists::routes())
        .merge(activity::routes())
        .merge(settings::routes())
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::from_fn(headers))
        .with_state(ui)
}

async fn not_found(signed: Option<Signed>) -> Response {
    layout::problem_page(
        signed.as_ref(),
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page.",
    )
}

/// The headers of DESIGN §12 on every answer under `/ui`; `no-store` on everything but the
/// hashed assets, which say `immutable` themselves.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Every request that may change something must come from a page of this origin: the browser
/// says so in `Sec-Fetch-Site`, or (older browsers) in an `Origin` naming this host. Neither
/// means no (a form posted from elsewhere always carries one of them).
async fn same_origin(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let h = request.headers();
    let allowed = match h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin",
        None => match (
            h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
            h.get(header::HOST).and_then(|v| v.to_str().ok()),
        ) {
            (Some(origin), Some(host)) => origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
            _ => false,
        },
    };
    if allowed {
        next.run(request).await
    } else {
        layout::problem_page(
            None,
            StatusCode::FORBIDDEN,
            "Refused",
            "This request did not come from a page of this site, so it was refused. Reload \
             the page and try again.",
        )
    }
}

/// A signed-in request: the caller the session stands for, and the session's times.
#[derive(Clone)]
pub(super) struct Signed {
    /// The caller, as the API's handlers see it.
    pub(super) caller: Caller,
    /// The session's id digest.
    digest: Vec<u8>,
    /// When the session ends if idle from now.
    pub(super) idle_ends: Millis,
    /// When it ends whatever happens.
    pub(super) absolute_ends: Millis,
    /// The path asked for, to come back to after signing in again.
    pub(super) path: String,
    /// Now.
    pub(super) now: Millis,
}

impl Signed {
    /// The user's name.
    pub(super) fn name(&self) -> &str {
        self.caller.user.as_ref().map_or("", |(_, n)| n.as_str())
    }
}

/// The session id in the request's cookie, if any.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

/// SHA-256 of a session id.
fn digest_of(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

/// Why a request has no session: said on the sign-in page it is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gone {
    /// No cookie.
    None,
    /// Idle too long, or past its end.
    Expired,
    /// The key was revoked or expired, or its user removed.
    KeyEnded,
}

impl Gone {
    fn code(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Expired => "expired",
            Self::KeyEnded => "key",
        }
    }
}

impl FromRequestParts<Arc<Ui>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Arc<Ui>) -> Result<Self, Response> {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/ui/secrets", |p| p.as_str())
            .to_owned();
        match signed(parts, ui, &path).await {
            Ok(signed) => Ok(signed),
            Err(Ok(gone)) => {
                let mut to = format!("/ui/login?next={}", urlencode(&path));
                if gone != Gone::None {
                    to.push_str("&reason=");
                    to.push_str(gone.code());
                }
                Err(Redirect::to(&to).into_response())
            }
            Err(Err(response)) => Err(response),
        }
    }
}

impl axum::extract::OptionalFromRequestParts<Arc<Ui>> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        ui: &Arc<Ui>,
    ) -> Result<Option<Self>, std::convert::Infallible> {
        Ok(signed(parts, ui, "/ui/secrets").await.ok())
    }
}

/// The session of a request, checked now; or why there is none (or the page for a store that
/// failed).
async fn signed(parts: &Parts, ui: &Arc<Ui>, path: &str) -> Result<Signed, Result<Gone, Response>> {
    let app = &ui.app;
    let Some(id) = cookie(&parts.headers) else {
        return Err(Ok(Gone::None));
    };
    let digest = digest_of(id);
    let now = app.now();
    let store_failed = |_| Err(layout::unavailable());
    let Some(row) = app.store.session(&digest).await.map_err(store_failed)? else {
        return Err(Ok(Gone::Expired));
    };
    if row.last_seen_at + IDLE_MS <= now || row.expires_at <= now {
        end_quietly(app, &row).await;
        return Err(Ok(Gone::Expired));
    }
    let Ok(key_id) = KeyId::try_from(row.key_id.clone()) else {
        return Err(Ok(Gone::KeyEnded));
    };
    let key_digest = KeyDigest::from_bytes(row.key_digest.as_slice().try_into().unwrap_or([0; 32]));
    let checked = super::auth::check_key(app, &key_id, KeyKind::Personal, &key_digest, now)
        .await
        .map_err(|_| Err(layout::unavailable()))?;
    let Ok(caller) = checked else {
        end_quietly(app, &row).await;
        return Err(Ok(Gone::KeyEnded));
    };
    let force = parts.uri.path() == "/ui/session/renew";
    let mut last_seen = row.last_seen_at;
    if force || now - row.last_seen_at >= TOUCH_EVERY_MS {
        match app.store.touch_session(&digest, now).await {
            Ok(()) => last_seen = now,
            Err(e) => tracing::warn!(error = %e, "cannot note a session's use"),
        }
    }
    let client = ClientInfo::of(parts, &app.trusted_proxies);
    let route = format!("{} {}", parts.method, parts.uri.path());
    Ok(Signed {
        caller: caller.with_client(client, route),
        digest,
        idle_ends: (last_seen + IDLE_MS).min(row.expires_at),
        absolute_ends: row.expires_at,
        path: path.to_owned(),
        now,
    })
}

/// Removes an ended session's row (idle, past its end, or its key no longer valid), noted in
/// the audit log as `ui.session_ended` with no actor: nobody acted.
async fn end_quietly(app: &App, row: &SessionRow) {
    let event = crate::store::AuditEvent {
        team: Some(row.team),
        at: app.now(),
        actor: crate::store::Actor::default(),
        action: "ui.session_ended".to_owned(),
        target: row.key_id.clone(),
        outcome: "ok".to_owned(),
        detail: "{}".to_owned(),
    };
    if let Err(e) = app
        .store
        .end_sessions(Some(&row.digest), &row.key_id, event)
        .await
    {
        tracing::warn!(error = %e, "cannot remove an ended session");
    }
}

/// Percent-encodes a path for a query parameter.
pub(super) fn urlencode(text: &str) -> String {
    /// RFC 3986's unreserved characters stay as they are (`STRIPE_KEY` reads as itself).
    const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, ESCAPED).to_string()
}

/// An API answer: its status, `ETag`, and JSON body.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) etag: Option<String>,
    pub(super) body: Value,
}

impl Answer {
    /// Whether the API said yes.
    pub(super) fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The body as `T`, or a page saying the answer could not be read.
    pub(super) fn into<T: DeserializeOwned>(self) -> Result<T, Response> {
        serde_json::from_value(self.body).map_err(|e| {
            // The category only: serde's message may quote what it could not read.
            tracing::error!(category = ?e.classify(), "the web app cannot read an API answer");
            layout::problem_page(
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The platform's answer could not be read; the server log says more.",
            )
        })
    }

    /// The problem's `code` (a refusal's).
    pub(super) fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// The problem's `detail`, in words.
    pub(super) fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or("")
    }
}

impl Ui {
    /// Calls the API in-process as the session's caller: the same handlers, checks and audit
    /// events as a request with the key itself.
    pub(super) async fn api(
        &self,
        signed: &Signed,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Answer, Response> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(revision) = if_match {
            request = request.header(header::IF_MATCH, revision);
        }
        let body = match body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).map_err(|_| layout::unavailable())?;
        request
            .extensions_mut()
            .insert(SessionCaller(signed.caller.clone()));
        let mut api = self.api.clone();
        let response = api
            .call(request)
            .await
            .unwrap_or_else(|never| match never {});
        let status = response.status();
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), 4 * 1024 * 1024)
            .await
            .map_err(|_| layout::unavailable())?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status.is_server_error() {
            return Err(layout::problem_page(
                Some(signed),
                status,
                "Something went wrong",
                body["detail"]
                    .as_str()
                    .unwrap_or("The platform could not answer."),
            ));
        }
        Ok(Answer { status, etag, body })
    }
}

/// What a page handler answers: the page, or (through `?`) the page of a problem on the way.
pub(super) type Page = Result<Response, Response>;

/// Routes of one page family, with the web app's state.
pub(super) type Routes = Router<Arc<Ui>>;

/// The form body of a request, as pairs (repeated names kept: checklists).
pub(super) async fn form_pairs(body: axum::body::Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&body).into_owned().collect()
}

/// Whether a confirmation form (`layout::confirm_by_name`) carries `name`, typed exactly.
pub(super) fn typed(pairs: &[(String, String)], name: &str) -> bool {
    field(pairs, "confirm").map(str::trim) == Some(name)
}

/// The first value of `name` in `pairs`.
pub(super) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
