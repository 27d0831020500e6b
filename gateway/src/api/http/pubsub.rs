//! `POST /v1.0/publish/{pubsub}/{topic}` and bulk publish.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{body, json, query_metadata};
use crate::api::Runtime;
use crate::error::ApiError;
use crate::runtime::pubsub::{BulkEntry, Message};

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Publish the body to `topic` (which may contain `/`).
pub(super) async fn publish(
    State(rt): State<Arc<Runtime>>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let data = body(raw)?.to_vec();
    let message = Message {
        data,
        content_type: header(&headers, header::CONTENT_TYPE.as_str()),
        metadata: query_metadata(&params),
        traceparent: header(&headers, "traceparent"),
        tracestate: header(&headers, "tracestate"),
    };
    rt.pubsub.publish(&pubsub, &topic, message).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "entryId", default)]
    entry_id: String,
    #[serde(default)]
    event: serde_json::Value,
    #[serde(rename = "contentType", default)]
    content_type: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

/// Publish a JSON array of entries; 204, or 500 listing the failed entries.
pub(super) async fn bulk_publish(
    State(rt): State<Arc<Runtime>>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(raw)?;
    let entries: Vec<Entry> = json(&bytes)?;
    let traceparent = header(&headers, "traceparent");
    let entries = entries
        .into_iter()
        .map(|e| {
            let content_type = e.content_type.unwrap_or_else(|| match &e.event {
                serde_json::Value::String(_) => "text/plain".to_owned(),
                _ => "application/json".to_owned(),
            });
            // A string event is its text; any other JSON value its encoding.
            let data = match e.event {
                serde_json::Value::String(s) if !content_type.contains("json") => s.into_bytes(),
                other => serde_json::to_vec(&other).unwrap_or_default(),
            };
            BulkEntry {
                entry_id: e.entry_id,
                message: Message {
                    data,
                    content_type: Some(content_type),
                    metadata: e.metadata,
                    traceparent: traceparent.clone(),
                    tracestate: None,
                },
            }
        })
        .collect();
    let failed = rt
        .pubsub
        .bulk_publish(&pubsub, &topic, entries, query_metadata(&params))
        .await?;
    if failed.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let failed: Vec<serde_json::Value> = failed
        .into_iter()
        .map(|f| serde_json::json!({ "entryId": f.entry_id, "error": f.error }))
        .collect();
    Ok((
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(serde_json::json!({ "failedEntries": failed, "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE" })),
    )
        .into_response())
}
