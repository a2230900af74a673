//! The one error type at the HTTP edge: a service [`Error`] with the status
//! its code answers with, as `{"error":{"code":"…","message":"…"}}`. The
//! typed code also rides on the response, for the request's audit entry.

use crate::error::{Code, Error};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::decision::DenyReason;

/// An error answer.
#[derive(Debug, Clone)]
pub(crate) struct ApiError(pub Error);

/// Result at the HTTP edge.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl From<keyward_store::StoreError> for ApiError {
    fn from(e: keyward_store::StoreError) -> Self {
        Self(e.into())
    }
}

impl From<keyward_core::CoreError> for ApiError {
    fn from(e: keyward_core::CoreError) -> Self {
        Self(e.into())
    }
}

/// The status each code answers with.
pub(super) fn status(code: Code) -> StatusCode {
    use DenyReason as D;
    match code {
        Code::Deny(
            D::KeyInvalid
            | D::KeyDisabled
            | D::KeyRevoked
            | D::KeyCompromised
            | D::KeyExpired
            | D::KeyRolled
            | D::KeyPending
            | D::KeyTampered,
        ) => StatusCode::UNAUTHORIZED,
        Code::Deny(D::RateLimited | D::ExchangeBudget | D::AuthThrottled) => StatusCode::TOO_MANY_REQUESTS,
        Code::Deny(D::RequestNotCanonical) => StatusCode::BAD_REQUEST,
        Code::Deny(_) | Code::NonExportable => StatusCode::FORBIDDEN,
        Code::InvalidRequest
        | Code::InvalidQuery
        | Code::InvalidPath
        | Code::InvalidJson
        | Code::InvalidScope
        | Code::InvalidField
        | Code::InvalidNamespace
        | Code::InvalidType
        | Code::InvalidPrefix
        | Code::InvalidCidr
        | Code::AccountInvalid
        | Code::UpstreamNotAllowed
        | Code::AllowlistRequired
        | Code::ShareMalformed
        | Code::BackupMalformed
        | Code::BackupTruncated
        | Code::BackupTampered
        | Code::BackupForeign
        | Code::ShareWrongSet
        | Code::ShareDuplicate
        | Code::ShareMismatch
        | Code::UnsealKeyMismatch => StatusCode::BAD_REQUEST,
        Code::NotFound | Code::SecretDeleted => StatusCode::NOT_FOUND,
        Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Code::CasMismatch
        | Code::InvalidState
        | Code::RotationPending
        | Code::NoRotation
        | Code::NamespaceExists
        | Code::AlreadyInitialized
        | Code::RowTampered
        | Code::ApprovalRequired
        | Code::ApprovalsUnavailable
        | Code::ApprovalClosed
        | Code::ApprovalExpired => StatusCode::CONFLICT,
        Code::SecretDestroyed => StatusCode::GONE,
        Code::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Code::Sealed | Code::HsmUnavailable | Code::AuditUnavailable | Code::StoreUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Code::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
        Code::CredentialsRefused => StatusCode::UNPROCESSABLE_ENTITY,
        Code::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        Code::DecryptFailed | Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Every refusal's body: `{"error": {"code", "message"}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct ErrorBody {
    /// The code and the message.
    pub error: ErrorDetail,
}

/// A refusal's stable code and message.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct ErrorDetail {
    /// Stable, machine-readable (`scope_missing`, `key_revoked`, …; see docs/http-api.md).
    pub code: &'static str,
    /// For the operator; never a secret value, key or signature.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = ErrorBody { error: ErrorDetail { code: e.code.as_str(), message: e.message } };
        let mut resp = (status(e.code), Json(body)).into_response();
        resp.extensions_mut().insert(e.code);
        if let Some(secs) = e.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
