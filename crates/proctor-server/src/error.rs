//! Every HTTP error body is made here: one type, one JSON shape, one `IntoResponse`.
//!
//! The body is always `{"error": {"code": "...", "message": "..."}}`. Codes are stable,
//! snake_case and documented in the OpenAPI description; messages are for people. A 5xx
//! never carries details (they go to the server's log only), so a database or signing failure
//! cannot leak a path, a query or a key.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use proctor_core::DatasetError;
use proctor_sandbox::{ComponentError, SandboxError};
use proctor_store::StoreError;

use crate::log_guard::{GuardError, LogFork};

/// An error as a client sees it.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a status, a stable code and a message for the client.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no credentials, or unknown or revoked ones.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403: the caller's role may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: absent, or not the caller's (the two look the same, so ids do not leak).
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 422: well-formed but refused.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 500: the details go to the log, never to the client.
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(%err, "{context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }

    /// 503 `log_fork`: the database's log does not extend the head this service last signed,
    /// so it signs nothing about the log until an operator recovers. Both sizes go to the
    /// service's log ([`crate::log_guard`]).
    pub fn log_fork() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "log_fork",
            "the database's log does not extend the last checkpoint this service signed \
             (restored or replaced); it signs nothing until an operator recovers \
             (`proctor log rotate`)",
        )
    }

    /// Logs `err` (for the operator) and keeps the client's message as it is.
    pub fn with_log(self, err: &dyn std::fmt::Display) -> ApiError {
        tracing::warn!(%err, code = self.code, "request failed");
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message for the client (a 5xx's says no more than "internal server error").
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match &err {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(what) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            StoreError::InvalidState { .. } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_state", err.to_string())
            }
            StoreError::LeaseLost(_) => {
                ApiError::new(StatusCode::CONFLICT, "lease_lost", err.to_string())
            }
            StoreError::GrantInactive { .. } => {
                ApiError::new(StatusCode::CONFLICT, "grant_inactive", err.to_string())
            }
            StoreError::NoGrant(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "no_grant", err.to_string())
            }
            StoreError::BudgetExhausted(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "budget_exhausted",
                err.to_string(),
            ),
            StoreError::Invalid(what) => {
                ApiError::unprocessable("invalid", format!("invalid {what}"))
            }
            // A signing closure met a log behind the remembered head; nothing was written.
            StoreError::Sign(sign) if sign.is::<LogFork>() => ApiError::log_fork().with_log(&err),
            _ => ApiError::internal("store", &err),
        }
    }
}

impl From<GuardError> for ApiError {
    fn from(err: GuardError) -> ApiError {
        match &err {
            // The guard logged the sizes when it found the fork.
            GuardError::Fork(_) => ApiError::log_fork(),
            _ => ApiError::internal("the remembered log head", &err),
        }
    }
}

impl From<SandboxError> for ApiError {
    fn from(err: SandboxError) -> ApiError {
        // The sandbox writes its refusals for the evaluator and never quotes the guest, so the
        // message may go back as it is. Engine and cache failures are the server's problem.
        let code = match &err {
            SandboxError::Component(refusal) => match refusal {
                ComponentError::Empty => "empty_component",
                ComponentError::NotWasm => "not_wasm",
                ComponentError::CoreModule => "core_module",
                ComponentError::UnknownLayer(_) => "unsupported_wasm_version",
                ComponentError::Invalid(_) => "invalid_component",
                ComponentError::ForbiddenImports(_) => "forbidden_imports",
                ComponentError::WrongWorld(_) => "wrong_world",
            },
            SandboxError::Describe(_) => "describe_failed",
            SandboxError::Declaration(_) => "invalid_declaration",
            SandboxError::TooManyMetrics { .. } => "too_many_metrics",
            SandboxError::NoiseScale(_) => "noise_scale_too_large",
            SandboxError::PolicyBeyondEngine { .. } => "policy_beyond_engine",
            SandboxError::Engine(_) | SandboxError::Cache { .. } => {
                return ApiError::internal("sandbox", &err);
            }
        };
        ApiError::unprocessable(code, err.to_string())
    }
}

impl From<DatasetError> for ApiError {
    fn from(err: DatasetError) -> ApiError {
        ApiError::unprocessable("invalid_dataset", err.to_string())
    }
}

/// A rejection's status decides: 413 for a body over the route's limit, 415 for a missing
/// content type, 400 for syntax, 422 for JSON of the wrong shape.
fn rejection(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "body_too_large",
            "the request body is larger than this route accepts",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(status, "unsupported_media_type", text),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::unprocessable("invalid_body", text),
        s if s.is_server_error() => ApiError::internal("reading the request", &text),
        _ => ApiError::bad_request("malformed_request", text),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        // A syntax error gets its own code; the rest (shape, size, content type) go by status.
        if matches!(r, JsonRejection::JsonSyntaxError(_)) {
            return ApiError::bad_request("malformed_json", r.body_text());
        }
        rejection(r.status(), r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        rejection(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        rejection(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::bad_request("malformed_query", r.body_text())
    }
}
