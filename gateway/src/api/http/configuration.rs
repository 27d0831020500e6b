//! `/v1.0/configuration/...` (also served under `v1.0-alpha1`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::query_metadata;
use crate::api::Runtime;
use crate::error::ApiError;

/// Every `key=` query parameter, in order.
fn keys(params: &[(String, String)]) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == "key")
        .map(|(_, v)| v.clone())
        .collect()
}

/// `GET /v1.0/configuration/{store}?key=a&key=b`: 200 with the items, 204 when none.
pub(super) async fn get(
    State(rt): State<Arc<Runtime>>,
    Path(store): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let items = rt
        .configuration
        .get(&store, keys(&params), query_metadata(&params))
        .await?;
    if items.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let body: serde_json::Map<String, serde_json::Value> = items
        .into_iter()
        .map(|(key, item)| {
            (
                key,
                serde_json::json!({
                    "value": item.value,
                    "version": item.version,
                    "metadata": item.metadata,
                }),
            )
        })
        .collect();
    Ok(Json(body).into_response())
}

/// `GET /v1.0/configuration/{store}/subscribe?key=...`: `{"id"}`; changes
/// are POSTed to the app at `/configuration/{store}/{key}`.
pub(super) async fn subscribe(
    State(rt): State<Arc<Runtime>>,
    Path(store): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let id = rt
        .configuration
        .subscribe_app(&store, keys(&params), query_metadata(&params))
        .await?;
    Ok(Json(serde_json::json!({ "id": id })).into_response())
}

/// `GET /v1.0/configuration/{store}/{id}/unsubscribe`: `{"ok":true}`, or
/// 500 `{"ok":false,"message"}` as daprd answers.
pub(super) async fn unsubscribe(
    State(rt): State<Arc<Runtime>>,
    Path((store, id)): Path<(String, String)>,
) -> Response {
    match rt.configuration.unsubscribe(&store, &id) {
        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
        Err(err) if err.code == crate::error::codes::ERR_CONFIGURATION_UNSUBSCRIBE.code => (
            err.http,
            Json(serde_json::json!({ "ok": false, "message": err.message })),
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}

/// The issue-tracker form `/{store}/unsubscribe/{id}`: same as [`unsubscribe`].
pub(super) async fn unsubscribe_by_path(
    rt: State<Arc<Runtime>>,
    Path((store, id)): Path<(String, String)>,
) -> Response {
    unsubscribe(rt, Path((store, id))).await
}
