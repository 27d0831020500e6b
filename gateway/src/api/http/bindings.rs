//! `POST /v1.0/bindings/{name}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{body, json, metadata_headers};
use crate::api::Runtime;
use crate::error::ApiError;

#[derive(Deserialize)]
struct InvokeBody {
    #[serde(default)]
    data: serde_json::Value,
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    operation: String,
}

/// Invoke an output binding; 200 with its data, or 204 when it returned none.
pub(super) async fn invoke(
    State(rt): State<Arc<Runtime>>,
    Path(name): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(raw)?;
    let request: InvokeBody = json(&bytes)?;
    // A JSON string is passed as its text; any other JSON value as its encoding.
    let data = match request.data {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::String(s) => s.into_bytes(),
        other => serde_json::to_vec(&other).unwrap_or_default(),
    };
    let reply = rt
        .bindings
        .invoke(&name, &request.operation, data, request.metadata)
        .await?;
    let mut headers = HeaderMap::new();
    metadata_headers(&mut headers, &reply.metadata);
    if reply.data.is_empty() {
        return Ok((StatusCode::NO_CONTENT, headers).into_response());
    }
    Ok((StatusCode::OK, headers, reply.data).into_response())
}
