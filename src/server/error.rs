//! The server's one error type: every failure becomes `application/problem+json` with a stable
//! `code`. Bad input is a 4xx; only the server's own failures are 5xx. Messages never hold a
//! value or a key.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::Problem;
use crate::core::crypto::CryptoError;
use crate::core::perm::Denied;
use crate::core::resolve::Missing;
use crate::store::StoreError;

/// An HTTP error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    missing: Vec<Missing>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, stable `code` and a message.
    #[must_use]
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            missing: Vec::new(),
            retry_after: None,
        }
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
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
        e.missing = missing;
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
        Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::new(StatusCode::CONFLICT, "conflict", what),
            StoreError::Database(e) => {
                tracing::error!(error = %e, "database error");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable",
                )
            }
            StoreError::Migrate(e) => Self::internal(&e.to_string()),
            StoreError::Corrupt(what) => Self::internal(&what),
            StoreError::InUse(_) => Self::internal("the database is in use by another server"),
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
        let body = Problem {
            kind: "about:blank".to_owned(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            code: self.code.to_owned(),
            detail: self.detail,
            missing: self.missing,
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
        response
    }
}
