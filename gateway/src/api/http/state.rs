//! `/v1.0/state/...` and `/v1.0-alpha1/state/{store}/query`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{body, json, metadata_headers, query_metadata, query_value};
use crate::api::Runtime;
use crate::error::{ApiError, codes};
use crate::runtime::state::{Operation, SaveItem};

#[derive(Deserialize, Default)]
struct Options {
    concurrency: Option<String>,
    consistency: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    key: Option<String>,
    #[serde(default)]
    value: serde_json::Value,
    etag: Option<serde_json::Value>,
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    options: Options,
}

fn etag_string(v: Option<serde_json::Value>) -> Result<Option<String>, ApiError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(ApiError::new(
            codes::ERR_MALFORMED_REQUEST,
            format!("etag: {other} is not a string"),
        )),
    }
}

fn save_item(item: Item, at: &str, query: &HashMap<String, String>) -> Result<SaveItem, ApiError> {
    let key = item.key.filter(|k| !k.is_empty()).ok_or_else(|| {
        ApiError::new(
            codes::ERR_MALFORMED_REQUEST,
            format!("{at}key: is required"),
        )
    })?;
    let mut metadata = item.metadata;
    for (k, v) in query {
        metadata.entry(k.clone()).or_insert_with(|| v.clone());
    }
    // The HTTP API stores a value's JSON encoding: a JSON string keeps its quotes.
    let value = serde_json::to_vec(&item.value)
        .map_err(|e| ApiError::new(codes::ERR_MALFORMED_REQUEST, format!("{at}value: {e}")))?;
    Ok(SaveItem {
        key,
        value,
        etag: etag_string(item.etag)?,
        metadata,
        concurrency: item.options.concurrency,
        consistency: item.options.consistency,
    })
}

/// `POST /v1.0/state/{store}`: save a JSON array of items.
pub(super) async fn save(
    State(rt): State<Arc<Runtime>>,
    Path(store): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let bytes = body(raw)?;
    let items: Vec<Item> = json(&bytes)?;
    let query = query_metadata(&params);
    let items = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| save_item(item, &format!("[{i}]."), &query))
        .collect::<Result<Vec<_>, _>>()?;
    rt.state.save(&store, items).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1.0/state/{store}/{key}`: raw stored bytes, or 204 when missing.
pub(super) async fn get(
    State(rt): State<Arc<Runtime>>,
    Path((store, key)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let found = rt
        .state
        .get(
            &store,
            &key,
            query_value(&params, "consistency"),
            query_metadata(&params),
        )
        .await?;
    let Some(item) = found else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let mut headers = HeaderMap::new();
    if let Some(etag) = item
        .etag
        .as_deref()
        .and_then(|e| header::HeaderValue::try_from(e).ok())
    {
        headers.insert(header::ETAG, etag);
    }
    let content_type = item
        .metadata
        .get("contentType")
        .cloned()
        .unwrap_or_else(|| "application/json".to_owned());
    if let Ok(value) = header::HeaderValue::try_from(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    metadata_headers(&mut headers, &item.metadata);
    Ok((StatusCode::OK, headers, item.data).into_response())
}

/// `DELETE /v1.0/state/{store}/{key}` with optional `If-Match`.
pub(super) async fn delete(
    State(rt): State<Arc<Runtime>>,
    Path((store, key)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let etag = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::new(codes::ERR_MALFORMED_REQUEST, "If-Match: is not valid text")
                })?
                .to_owned(),
        ),
    };
    let item = SaveItem {
        key,
        etag,
        metadata: query_metadata(&params),
        concurrency: query_value(&params, "concurrency").map(str::to_owned),
        consistency: query_value(&params, "consistency").map(str::to_owned),
        ..Default::default()
    };
    rt.state.delete(&store, item).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct BulkRequest {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

/// Stored bytes as JSON: embedded as JSON when they are JSON, else a string.
fn as_json(data: Vec<u8>) -> serde_json::Value {
    serde_json::from_slice(&data)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&data).into_owned()))
}

/// `POST /v1.0/state/{store}/bulk`.
pub(super) async fn bulk_get(
    State(rt): State<Arc<Runtime>>,
    Path(store): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(raw)?;
    let request: BulkRequest = json(&bytes)?;
    let mut metadata = request.metadata;
    metadata.extend(query_metadata(&params));
    let items = rt.state.bulk_get(&store, request.keys, metadata).await?;
    let out: Vec<serde_json::Value> = items
        .into_iter()
        .map(|i| {
            let mut entry = serde_json::Map::new();
            entry.insert("key".into(), i.key.into());
            if let Some(item) = i.item {
                entry.insert("data".into(), as_json(item.data));
                if let Some(etag) = item.etag {
                    entry.insert("etag".into(), etag.into());
                }
                if !item.metadata.is_empty() {
                    entry.insert("metadata".into(), serde_json::json!(item.metadata));
                }
            }
            if let Some(error) = i.error {
                entry.insert("error".into(), error.into());
            }
            serde_json::Value::Object(entry)
        })
        .collect();
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
struct TransactionRequest {
    #[serde(default)]
    operations: Vec<TransactionOp>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

#[derive(Deserialize)]
struct TransactionOp {
    operation: String,
    request: Item,
}

/// `POST /v1.0/state/{store}/transaction`.
pub(super) async fn transaction(
    State(rt): State<Arc<Runtime>>,
    Path(store): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let bytes = body(raw)?;
    let request: TransactionRequest = json(&bytes)?;
    let query = query_metadata(&params);
    let mut operations = Vec::with_capacity(request.operations.len());
    for (i, op) in request.operations.into_iter().enumerate() {
        let at = format!("operations[{i}].request.");
        let item = save_item(op.request, &at, &query)?;
        operations.push(match op.operation.as_str() {
            "upsert" => Operation::Upsert(item),
            "delete" => Operation::Delete(item),
            other => {
                return Err(ApiError::new(
                    codes::ERR_NOT_SUPPORTED_STATE_OPERATION,
                    format!("operation type {other} not supported"),
                ));
            }
        });
    }
    let mut metadata = request.metadata;
    metadata.extend(query);
    rt.state.transact(&store, operations, metadata).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1.0-alpha1/state/{store}/query`.
pub(super) async fn query(
    State(rt): State<Arc<Runtime>>,
    Path(store): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(raw)?;
    let query: serde_json::Value = json(&bytes)?;
    let (results, token) = rt
        .state
        .query(&store, &query, query_metadata(&params))
        .await?;
    let results: Vec<serde_json::Value> = results
        .into_iter()
        .map(|r| {
            let mut entry = serde_json::Map::new();
            entry.insert("key".into(), r.key.into());
            entry.insert("data".into(), as_json(r.data));
            if let Some(etag) = r.etag {
                entry.insert("etag".into(), etag.into());
            }
            if let Some(error) = r.error {
                entry.insert("error".into(), error.into());
            }
            serde_json::Value::Object(entry)
        })
        .collect();
    let mut out = serde_json::json!({ "results": results });
    if let Some(token) = token {
        out["token"] = token.into();
    }
    Ok(Json(out).into_response())
}
