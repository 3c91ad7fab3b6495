//! The server's one error type: every failure becomes `application/problem+json` with a stable
//! `code`. Bad input is a 4xx; only the server's own failures are 5xx. Messages never hold a
//! value or a key.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::{ExistingSecret, KeyRefInfo, Problem};
use crate::core::crypto::CryptoError;
use crate::core::name::SecretName;
use crate::core::perm::Denied;
use crate::core::resolve::{Missing, Scope};
use crate::store::{Existing, KeyRef, Refused, StoreError};

/// An HTTP error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    /// What some problems name besides their message (boxed: most errors have none).
    extra: Option<Box<Extra>>,
    retry_after: Option<u64>,
    /// The database failed (counted by the request middleware in `/metrics`).
    database: bool,
}

/// Marks a response whose error came from the database, for `latch_database_errors_total`.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseFailed;

/// The problem fields beyond `code` and `detail`.
#[derive(Debug, Default)]
struct Extra {
    missing: Vec<Missing>,
    would_release: Vec<String>,
    keys: Vec<KeyRefInfo>,
    existing: Option<ExistingSecret>,
}

/// Whose a conflicting personal secret is, as an answer may say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerShown {
    /// Not said: another member's, to a caller who may not list it.
    Hidden,
    /// The caller's own.
    Caller,
    /// Named: the caller may list every member's names.
    Named,
}

/// How an answer names a key.
#[must_use]
pub fn key_ref_info(k: &KeyRef) -> KeyRefInfo {
    KeyRefInfo {
        id: k.key_id.to_string(),
        name: k.name.clone(),
    }
}

fn joined(names: &[SecretName]) -> String {
    let names: Vec<&str> = names.iter().map(SecretName::as_str).collect();
    names.join(", ")
}

impl ApiError {
    /// An error with `status`, stable `code` and a message.
    #[must_use]
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: None,
            retry_after: None,
            database: false,
        }
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// 409 `name_conflict` naming the existing secret: its owner as `owner` says (DESIGN §5:
    /// another member's personal secret is named only to callers allowed to list it).
    #[must_use]
    pub fn name_conflict(existing: &Existing, owner: OwnerShown) -> Self {
        let named = existing
            .owner_name
            .clone()
            .filter(|_| owner != OwnerShown::Hidden);
        let which = match (existing.scope, owner, &named) {
            (Scope::Team, _, _) => format!("the team secret `{}`", existing.name),
            (Scope::Personal, OwnerShown::Caller, _) => {
                format!("your personal secret `{}`", existing.name)
            }
            (Scope::Personal, _, Some(owner)) => {
                format!("the personal secret `{}` of {owner}", existing.name)
            }
            (Scope::Personal, _, None) => format!("a personal secret `{}`", existing.name),
        };
        let mut e = Self::new(
            StatusCode::CONFLICT,
            "name_conflict",
            format!(
                "the name conflicts with {which}: names are unique ignoring case within a scope, \
                 and a personal name must equal a team name exactly or differ from it ignoring case"
            ),
        );
        e.extra().existing = Some(ExistingSecret {
            scope: existing.scope,
            owner: named,
            name: existing.name.to_string(),
        });
        e
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// 400 with `code`.
    #[must_use]
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401: the key is missing, malformed, unknown, expired or revoked.
    #[must_use]
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 404 with `code`.
    #[must_use]
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// 429 with `Retry-After`.
    #[must_use]
    pub fn too_many(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed authentications; retry later",
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// 422 `required_missing` with the list.
    #[must_use]
    pub fn required_missing(missing: Vec<Missing>) -> Self {
        let names: Vec<String> = missing
            .iter()
            .map(|m| format!("{} ({})", m.name, m.reason))
            .collect();
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "required_missing",
            format!("required secrets are missing: {}", names.join(", ")),
        );
        e.extra().missing = missing;
        e
    }

    /// 500: the server's own failure (details go to the log, not the client).
    #[must_use]
    pub fn internal(what: &str) -> Self {
        tracing::error!("internal error: {what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl From<Denied> for ApiError {
    fn from(e: Denied) -> Self {
        let code = match e {
            Denied::KeyCannotManage => "key_cannot_manage",
            Denied::Role { .. } | Denied::OwnersOnly => "forbidden",
        };
        Self::new(StatusCode::FORBIDDEN, code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::new(StatusCode::CONFLICT, "conflict", what),
            StoreError::Database(e) => {
                tracing::error!(error = %e, "database error");
                Self {
                    database: true,
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database_unavailable",
                        "the database is unavailable",
                    )
                }
            }
            StoreError::Migrate(e) => Self::internal(&e.to_string()),
            StoreError::Corrupt(what) => Self {
                database: true,
                ..Self::internal(&what)
            },
            StoreError::InUse(_) => Self::internal("the database is in use by another server"),
            StoreError::Refused(refused) => Self::from(refused),
            StoreError::Stale => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "it changed since you read it (If-Match): read it again and retry",
            ),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::WouldRelease(names) => {
                let mut e = Self::new(
                    StatusCode::CONFLICT,
                    "would_release",
                    format!(
                        "this change makes {} available to every run (no identity reserves them \
                         any more); name them in `release` to confirm",
                        joined(&names)
                    ),
                );
                e.extra().would_release = names.iter().map(ToString::to_string).collect();
                e
            }
            Refused::IdentityInUse {
                keys,
                would_release,
            } => {
                let listed: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{} ({})", k.name, k.key_id))
                    .collect();
                let mut e = Self::new(
                    StatusCode::CONFLICT,
                    "identity_in_use",
                    format!(
                        "keys are bound to this identity: {}; deleting it revokes them: pass \
                         `force=true` to confirm",
                        listed.join(", ")
                    ),
                );
                e.extra().keys = keys.iter().map(key_ref_info).collect();
                e.extra().would_release = would_release.iter().map(ToString::to_string).collect();
                e
            }
            Refused::NameConflict(existing) => Self::name_conflict(&existing, OwnerShown::Hidden),
            Refused::MemberExists => Self::new(
                StatusCode::CONFLICT,
                "member_exists",
                "a member of the team already has this name",
            ),
        }
    }
}

impl From<CryptoError> for ApiError {
    fn from(e: CryptoError) -> Self {
        tracing::error!(error = %e, "encryption error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "integrity_error",
            e.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let extra = self.extra.map(|e| *e).unwrap_or_default();
        let body = Problem {
            kind: "about:blank".to_owned(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            code: self.code.to_owned(),
            detail: self.detail,
            missing: extra.missing,
            would_release: extra.would_release,
            keys: extra.keys,
            existing: extra.existing,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.database {
            response.extensions_mut().insert(DatabaseFailed);
        }
        response
    }
}
