//! [`ApiError`]: the one error the API layer returns, encoded once for HTTP
//! (`{"errorCode","message"}` + status) and once for gRPC (`tonic::Status`
//! with a `google.rpc.ErrorInfo` whose reason is the error code).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

pub mod codes;

/// A Dapr API error: the same code on both protocols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// gRPC status code.
    pub grpc: Code,
    /// HTTP status.
    pub http: StatusCode,
    /// Dapr error code, e.g. `ERR_STATE_STORE_NOT_FOUND`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// Build from a catalogue entry and a message.
    pub fn new(entry: codes::Entry, message: impl Into<String>) -> Self {
        Self {
            grpc: entry.grpc,
            http: entry.http,
            code: entry.code,
            message: message.into(),
        }
    }

    /// Same error with another HTTP/gRPC pair (e.g. ETag mismatch → 409/Aborted).
    pub fn with_status(mut self, http: StatusCode, grpc: Code) -> Self {
        self.http = http;
        self.grpc = grpc;
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "errorCode": self.code, "message": self.message });
        (self.http, Json(body)).into_response()
    }
}

impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        tonic::Status::with_error_details(
            err.grpc,
            err.message,
            ErrorDetails::with_error_info(err.code, "dapr.io", std::collections::HashMap::new()),
        )
    }
}
