//! The HTTP handlers, one file per resource: parse, check the permission, call the store,
//! answer. Values are sealed and opened here, and leave only in the answer to `POST /v1/runs`.
//! This file holds what they share: the JSON and query extractors with problem+json rejections,
//! name parsing, audit events.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::App;
use super::auth::Caller;
use super::error::ApiError;
use crate::core::crypto::DataKey;
use crate::core::name::{Label, SecretName};
use crate::core::resolve::Scope;
use crate::store::AuditEvent;

mod audit;
mod health;
mod keys;
mod lists;
mod members;
mod runs;
mod secrets;

pub(super) use self::audit::*;
pub(super) use self::health::*;
pub(super) use self::keys::*;
pub(super) use self::lists::*;
pub(super) use self::members::*;
pub(super) use self::runs::*;
pub(super) use self::secrets::*;

type Shared = State<Arc<App>>;

/// A JSON object body; every rejection is problem+json: 415 without a JSON content type, 413
/// over the size limit, 400 `invalid_json` for malformed JSON, 400 `invalid_body` for anything
/// else that is not the expected object (including an array where an object is expected, which
/// serde would otherwise accept for a struct).
pub(super) struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as `content-type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the request body is too large",
                    )
                } else {
                    ApiError::bad_request("invalid_body", r.body_text())
                }
            })?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the body must be a JSON object",
            ));
        }
        serde_json::from_slice(&bytes).map(Self).map_err(|e| {
            let code = match e.classify() {
                serde_json::error::Category::Data => "invalid_body",
                _ => "invalid_json",
            };
            ApiError::bad_request(code, e.to_string())
        })
    }
}

/// Query string whose rejections are problem+json too.
pub(super) struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))
    }
}

fn label(text: &str, what: &str) -> Result<Label, ApiError> {
    Label::new(text).map_err(|e| ApiError::bad_request("invalid_name", format!("{what}: {e}")))
}

fn secret_name(text: &str) -> Result<SecretName, ApiError> {
    SecretName::new(text).map_err(|e| ApiError::bad_request("invalid_name", e.to_string()))
}

fn scope_of(text: &str) -> Result<Scope, ApiError> {
    match text {
        "team" => Ok(Scope::Team),
        "personal" => Ok(Scope::Personal),
        _ => Err(ApiError::bad_request(
            "invalid_scope",
            "scope must be `team` or `personal`",
        )),
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn event(
    app: &App,
    caller: &Caller,
    action: &str,
    target: String,
    detail: &serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        detail: detail.to_string(),
        ..event_without_detail(app, caller, action, target)
    }
}

/// An event whose detail the caller writes itself (a run's, from its decision).
fn event_without_detail(app: &App, caller: &Caller, action: &str, target: String) -> AuditEvent {
    AuditEvent {
        team: Some(caller.team),
        at: app.now(),
        actor: caller.actor_record(),
        action: action.to_owned(),
        target,
        outcome: "ok".to_owned(),
        detail: String::new(),
    }
}

async fn data_key(app: &App, team: i64) -> Result<(DataKey, u32), ApiError> {
    let row = app.team(team).await?;
    Ok((app.root.unwrap(team, &row.data_key)?, row.key_version))
}

/// The page size of a listing: 1 to 500, 50 when absent (DESIGN §9).
fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(50) {
        n @ 1..=500 => Ok(n),
        n => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit is 1 to 500, not {n}"),
        )),
    }
}

/// A filter that must be one of `allowed` when given (`invalid_query` otherwise).
fn one_of(value: Option<String>, allowed: &[&str], what: &str) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::bad_request(
            "invalid_query",
            format!("`{what}` is one of {}", allowed.join(", ")),
        )),
        v => Ok(v),
    }
}

/// A cursor: where the next page starts, opaque to clients but of a documented shape so that a
/// client generated from the API document sends only cursors the server reads: `{start}.{run
/// id}` for runs, `{event id}` for audit events (a number too large for its field reads as
/// the largest, which starts from the newest).
fn cursor(position: &str) -> String {
    position.to_owned()
}

/// The number in a cursor, at most `i64::MAX`.
fn cursor_number(text: &str) -> Option<i64> {
    (!text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse::<u64>().ok())
        .flatten()
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn invalid_cursor() -> ApiError {
    ApiError::bad_request("invalid_cursor", "this cursor is not one this listing gave")
}

/// The position in a runs cursor: start and run id.
fn runs_position(cursor: &str) -> Result<(i64, String), ApiError> {
    let (at, id) = cursor.split_once('.').ok_or_else(invalid_cursor)?;
    let hex = id.strip_prefix("run_").ok_or_else(invalid_cursor)?;
    if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid_cursor());
    }
    Ok((cursor_number(at).ok_or_else(invalid_cursor)?, id.to_owned()))
}

/// The position in an audit cursor: the event id.
fn audit_position(cursor: &str) -> Result<i64, ApiError> {
    cursor_number(cursor).ok_or_else(invalid_cursor)
}

/// What `If-Match` asks for (RFC 9110): nothing, the object at a revision, or any revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IfMatch {
    Absent,
    Any,
    Revision(u64),
}

impl IfMatch {
    /// Reads `If-Match: "N"` (weak `W/"N"` too), or `*`.
    fn of(headers: &axum::http::HeaderMap) -> Result<Self, ApiError> {
        let Some(value) = headers.get(header::IF_MATCH) else {
            return Ok(Self::Absent);
        };
        let text = value.to_str().unwrap_or_default().trim();
        if text == "*" {
            return Ok(Self::Any);
        }
        let tag = text.strip_prefix("W/").unwrap_or(text);
        tag.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .and_then(|t| t.parse().ok())
            .map(Self::Revision)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_if_match",
                    "If-Match takes an ETag this API gave (\"3\") or *",
                )
            })
    }

    /// The revision the store must find, `current` being read only for `*` (which needs the
    /// object to exist).
    async fn expect<F>(self, current: F) -> Result<Option<u64>, ApiError>
    where
        F: Future<Output = Result<Option<u64>, ApiError>>,
    {
        match self {
            Self::Absent => Ok(None),
            Self::Revision(n) => Ok(Some(n)),
            Self::Any => match current.await? {
                Some(now) => Ok(Some(now)),
                None => Err(crate::store::StoreError::Stale.into()),
            },
        }
    }
}

/// Adds `ETag: "revision"` to `response`.
fn with_etag(mut response: Response, revision: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{revision}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
