//! `/v1.0/secrets/...`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use super::query_metadata;
use crate::api::Runtime;
use crate::error::ApiError;

/// `GET /v1.0/secrets/{store}/{key}`.
pub(super) async fn get(
    State(rt): State<Arc<Runtime>>,
    Path((store, key)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let secret = rt
        .secrets
        .get(&store, &key, query_metadata(&params))
        .await?;
    Ok(Json(secret).into_response())
}

/// `GET /v1.0/secrets/{store}/bulk`.
pub(super) async fn bulk_get(
    State(rt): State<Arc<Runtime>>,
    Path(store): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let all = rt.secrets.bulk_get(&store, query_metadata(&params)).await?;
    Ok(Json(all).into_response())
}
