//! The datacenter's one error type; JSON `{error, message}` at the HTTP edge.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("missing or wrong datacenter token")]
    Unauthorized,
    /// A caller that proved nothing (a webhook with a wrong signature).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("{0}")]
    Conflict(String),
    /// A request body over its route's limit.
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Internal(format!("database: {e}"))
    }
}

impl From<crate::queue::QueueError> for Error {
    fn from(e: crate::queue::QueueError) -> Self {
        Error::Unavailable(format!("task queue: {e}"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = match &self {
            Error::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "An internal error occurred; it has been logged.".to_string()
            }
            other => other.to_string(),
        };
        (
            status,
            axum::Json(crate::api::ApiError {
                error: code.into(),
                message,
            }),
        )
            .into_response()
    }
}
