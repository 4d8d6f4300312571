//! The error the UI receives from a server function, and the JSON body of every
//! REST error: a stable machine code plus a message meant for people.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    /// Machine-readable: `unauthorized`, `forbidden`, `not_found`, `invalid`,
    /// `conflict`, `rate_limited`, `internal`, `request`.
    pub error: String,
    pub message: String,
}

impl AppError {
    pub fn new(error: &str, message: impl Into<String>) -> Self {
        Self {
            error: error.to_string(),
            message: message.into(),
        }
    }
    pub fn is_unauthorized(&self) -> bool {
        self.error == "unauthorized"
    }
}

impl leptos::server_fn::error::FromServerFnError for AppError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        AppError::new("request", value.to_string())
    }
}
