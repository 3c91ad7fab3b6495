//! Signing in and out (DESIGN §12): a personal `manage` key exchanged for a session, failures
//! counted and audited as every failed authentication is, sign-out of one session or of every
//! session of the key, and renewal while the key is valid.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use getrandom::SysRng;
use maud::{Markup, html};
use rand_core::TryRng as _;
use serde::Deserialize;
use serde_json::json;

use super::layout::{self, Section};
use super::{ABSOLUTE_MS, COOKIE, IDLE_MS, Routes, Shared, Signed, digest_of, field, form_pairs};
use crate::core::apikey::{ApiKey, KeyKind};
use crate::core::perm::Capability;
use crate::server::auth::{self, Caller};
use crate::server::client::ClientInfo;
use crate::server::failures::{Failure, Reason};
use crate::store::{AuditEvent, SessionRow};

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/session/renew", post(renew))
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
    reason: Option<String>,
}

/// Where to go after signing in: a page of the web app, never elsewhere.
fn next_of(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with("/ui/")
                && !path.starts_with("/ui/login")
                && !path.contains("//")
                && !path.contains('\\') =>
        {
            path.to_owned()
        }
        _ => "/ui/secrets".to_owned(),
    }
}

async fn login_page(signed: Option<Signed>, Query(query): Query<LoginQuery>) -> Response {
    let next = next_of(query.next.as_deref());
    if signed.is_some() {
        return Redirect::to(&next).into_response();
    }
    let notice = match query.reason.as_deref() {
        Some("expired") => Some("Your session ended. Sign in again to go on."),
        Some("key") => Some(
            "Your session ended: the key it was opened with was revoked or expired, or you \
             are no longer a member of the team.",
        ),
        Some("signed_out") => Some("You are signed out."),
        _ => None,
    };
    login_form(StatusCode::OK, &next, notice, None)
}

fn login_form(
    status: StatusCode,
    next: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let body: Markup = html! {
        h1 { "Sign in" }
        @if let Some(notice) = notice {
            div.notice role="status" { p { (notice) } }
        }
        p.lead {
            "Sign in with a personal API key that can manage (" code { "latch api-key create --personal" }
            " makes one). The key is checked once and never kept by your browser: the platform "
            "keeps a session that ends after 30 minutes without use, or after 12 hours."
        }
        div.notice.warn #insecure hidden role="alert" {
            p { "This page is not a secure context: use HTTPS, or a loopback address such as 127.0.0.1. "
                "The browser would neither keep the session nor encrypt values here." }
        }
        form.stack method="post" action="/ui/login" {
            input type="hidden" name="next" value=(next);
            div.field {
                label for="key" { "API key" }
                input #key type="password" name="key" required autocomplete="off" spellcheck="false"
                    autocapitalize="off" data-1p-ignore data-lpignore="true"
                    aria-describedby=[error.map(|_| "form-error")]
                    placeholder="latch_p_…";
                span.hint { "A team key cannot sign in: it has no user." }
            }
            (layout::form_error(error))
            div.actions { button type="submit" { "Sign in" } }
        }
    };
    layout::html_page(status, &layout::page("Sign in", None, Section::None, &body))
}

/// `POST /ui/login`: the key checked as the API checks one (and failures counted toward the
/// same limit, and audited), then a session.
async fn login(State(ui): Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let app = &ui.app;
    let client = ClientInfo::of(&parts, &app.trusted_proxies);
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024).await else {
        return login_form(
            StatusCode::PAYLOAD_TOO_LARGE,
            "/ui/secrets",
            None,
            Some("the form is too large"),
        );
    };
    let pairs = form_pairs(bytes).await;
    let next = next_of(field(&pairs, "next"));
    let text = field(&pairs, "key").unwrap_or("").trim().to_owned();
    let now = app.now();
    let checked = match ApiKey::parse(&text) {
        Ok(key) => match auth::check_key(app, &key.id(), key.kind(), &key.digest(), now).await {
            Ok(result) => result.map(|caller| (caller, key)),
            Err(_) => return layout::unavailable(),
        },
        Err(e) => Err(Failure {
            reason: Reason::UnknownKey,
            key_id: None,
            team: None,
            message: e.to_string(),
        }),
    };
    let (caller, key) = match checked {
        Ok(found) => found,
        Err(failure) => return refused_sign_in(app, &failure, &client, now, &next).await,
    };
    let route = "POST /ui/login".to_owned();
    let caller = caller.with_client(client, route);
    let refusal = if caller.kind == KeyKind::Team {
        Some("a team key cannot sign in: it acts for no user. Use a personal key")
    } else if caller.capability() == Capability::Run {
        Some(
            "a run-only key cannot sign in: it may only start runs. Use a personal key that can manage",
        )
    } else {
        None
    };
    if let Some(reason) = refusal {
        record(
            app,
            &caller,
            "ui.login",
            "refused",
            &json!({ "reason": reason }),
            now,
        )
        .await;
        return login_form(StatusCode::FORBIDDEN, &next, None, Some(reason));
    }
    let mut id = [0u8; 32];
    if SysRng.try_fill_bytes(&mut id).is_err() {
        return layout::unavailable();
    }
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);
    let key_expires = caller.key_expires_at().await.ok().flatten();
    let expires_at = (now + ABSOLUTE_MS).min(key_expires.unwrap_or(i64::MAX));
    let session = SessionRow {
        digest: digest_of(&id),
        team: caller.team,
        key_id: caller.key_id.to_string(),
        key_digest: key.digest().as_bytes().to_vec(),
        created_at: now,
        last_seen_at: now,
        expires_at,
    };
    let event = event_of(
        &caller,
        "ui.login",
        "ok",
        &json!({ "expires_at": expires_at }),
        now,
    );
    if app
        .store
        .create_session(session, now - IDLE_MS, event)
        .await
        .is_err()
    {
        return layout::unavailable();
    }
    let mut response = Redirect::to(&next).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// A failed sign-in: counted toward the address's budget like any failed authentication (so
/// the answer may be 429), audited as `auth.failed`, and said on the form.
async fn refused_sign_in(
    app: &Arc<crate::server::App>,
    failure: &Failure,
    client: &ClientInfo,
    now: i64,
    next: &str,
) -> Response {
    let error = auth::failed(app, failure, client, now).await;
    let status = error.status();
    let answer = error.into_response();
    let retry = answer.headers().get(header::RETRY_AFTER).cloned();
    let message = if status == StatusCode::TOO_MANY_REQUESTS {
        format!(
            "too many failed sign-ins from this address; wait {} seconds and try again",
            retry
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("a few")
        )
    } else {
        failure.message.clone()
    };
    let mut response = login_form(status, next, None, Some(&message));
    if let Some(retry) = retry {
        response.headers_mut().insert(header::RETRY_AFTER, retry);
    }
    response
}

fn event_of(
    caller: &Caller,
    action: &str,
    outcome: &str,
    detail: &serde_json::Value,
    now: i64,
) -> AuditEvent {
    AuditEvent {
        team: Some(caller.team),
        at: now,
        actor: caller.actor_record(),
        action: action.to_owned(),
        target: caller.key_id.to_string(),
        outcome: outcome.to_owned(),
        detail: detail.to_string(),
    }
}

async fn record(
    app: &crate::server::App,
    caller: &Caller,
    action: &str,
    outcome: &str,
    detail: &serde_json::Value,
    now: i64,
) {
    let event = event_of(caller, action, outcome, detail, now);
    if let Err(e) = app.store.record_events(&[event]).await {
        tracing::warn!(error = %e, "cannot record a sign-in");
    }
}

/// Clears the cookie.
fn cleared(mut response: Response) -> Response {
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /ui/logout`: this session, or with `everywhere` every session of the key.
async fn logout(State(ui): Shared, signed: Signed, body: axum::body::Bytes) -> Response {
    let pairs = form_pairs(body).await;
    let everywhere = field(&pairs, "everywhere").is_some();
    let now = ui.app.now();
    let (action, digest) = if everywhere {
        ("ui.logout_all", None)
    } else {
        ("ui.logout", Some(signed.digest.as_slice()))
    };
    let event = event_of(&signed.caller, action, "ok", &json!({}), now);
    if ui
        .app
        .store
        .end_sessions(digest, signed.caller.key_id.as_str(), event)
        .await
        .is_err()
    {
        return layout::unavailable();
    }
    cleared(Redirect::to("/ui/login?reason=signed_out").into_response())
}

/// `POST /ui/session/renew`: the session goes on (it was just used); its new idle end.
async fn renew(signed: Signed) -> Response {
    Json(json!({ "idle_ends": signed.idle_ends, "absolute_ends": signed.absolute_ends }))
        .into_response()
}
