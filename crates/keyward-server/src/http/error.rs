//! The one error type at the HTTP edge. Every refusal becomes
//! `{"error":{"code":"…","message":"…"}}` with a stable code and a status.
//! Messages are written for the operator and never carry a secret value, a
//! key or a signature.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::CoreError;
use keyward_store::StoreError;

/// An error answer: status, stable code, message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// 400 with `code`.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 `key_invalid`.
    pub fn key_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "key_invalid", message)
    }

    /// 403 `scope_missing`.
    pub fn scope_missing(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "scope_missing", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 `sealed`.
    pub fn sealed() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sealed",
            "keyward is sealed: no secret can be read and no key verified until `keyward operator unseal`",
        )
    }

    /// 500 `internal`, logged with a reference the operator can find.
    pub fn internal(what: &str) -> Self {
        tracing::error!(error = what, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    }
}

/// The error code of an answer, for the audit entry of its request.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// Every refusal's body: `{"error": {"code", "message"}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The code and the message.
    pub error: ErrorDetail,
}

/// A refusal's stable code and message.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable (`scope_missing`, `key_revoked`, …; see docs/http-api.md).
    pub code: &'static str,
    /// For the operator; never a secret value, key or signature.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        let mut resp = (self.status, Json(body)).into_response();
        resp.extensions_mut().insert(ErrorCode(self.code));
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { current } => Self::new(
                StatusCode::CONFLICT,
                "cas_mismatch",
                format!("check-and-set failed: the secret is at version {current}"),
            ),
            StoreError::NotFound => Self::not_found("no such item"),
            StoreError::AlreadyInitialized => {
                Self::new(StatusCode::CONFLICT, "already_initialized", "keyward is already initialised")
            }
            StoreError::Unavailable(why) => {
                tracing::error!(error = %why, "store unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the store is unavailable; try again")
            }
            StoreError::Corrupt(why) => Self::internal(&format!("corrupt stored data: {why}")),
            other => Self::internal(&other.to_string()),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let msg = e.to_string();
        match e {
            CoreError::InvalidPath(_) => Self::bad("invalid_path", msg),
            CoreError::InvalidScope { .. } => Self::bad("invalid_scope", msg),
            CoreError::InvalidField(_) => Self::bad("invalid_field", msg),
            CoreError::ShareMalformed(_) => Self::bad("share_malformed", msg),
            CoreError::ShareWrongSet { .. } => Self::bad("share_wrong_set", msg),
            CoreError::ShareDuplicate(_) => Self::bad("share_duplicate", msg),
            CoreError::ShareMismatch => Self::bad("share_mismatch", format!("{msg}; progress was reset, start over")),
            CoreError::Decrypt | CoreError::Envelope(_) | CoreError::UnknownTerm(_) => {
                tracing::error!(error = %msg, "a stored ciphertext failed to decrypt");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "decrypt_failed",
                    "the stored ciphertext failed authentication (altered or moved row); nothing was returned",
                )
            }
            _ => Self::internal(&msg),
        }
    }
}

/// Result at the HTTP edge.
pub type ApiResult<T> = Result<T, ApiError>;
