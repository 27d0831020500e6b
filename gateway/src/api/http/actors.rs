//! `/v1.0/actors/...` and the list APIs under `/v1.0-alpha1/actors/...`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{body, json, metadata_headers};
use crate::actors::{ReminderInfo, ReminderRequest, StateOperation, TimerRequest};
use crate::api::Runtime;
use crate::error::{ApiError, codes};

fn headers_of(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

/// Any verb on `.../method/{method}`: the app's 200 answer, its body and
/// content type; an answer marked with `X-Daprerrorresponseheader` is 500
/// with the app's body.
pub(super) async fn invoke(
    State(rt): State<Arc<Runtime>>,
    Path((actor_type, id, method)): Path<(String, String, String)>,
    headers: HeaderMap,
    payload: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let payload = body(payload)?;
    let reply = rt
        .actors
        .invoke(
            &actor_type,
            &id,
            &method,
            headers_of(&headers),
            payload.to_vec(),
        )
        .await?;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    for name in [
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderName::from_static(crate::actors::ERROR_HEADER),
    ] {
        if let Some(value) = reply.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    Ok(response)
}

/// `GET .../state/{key}`: the stored bytes (200) or 204.
pub(super) async fn get_state(
    State(rt): State<Arc<Runtime>>,
    Path((actor_type, id, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    match rt.actors.get_state(&actor_type, &id, &key).await? {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some((data, metadata)) => {
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                data,
            )
                .into_response();
            metadata_headers(response.headers_mut(), &metadata);
            Ok(response)
        }
    }
}

#[derive(Deserialize)]
struct OperationBody {
    operation: Option<String>,
    request: Option<OperationRequest>,
}

#[derive(Deserialize)]
struct OperationRequest {
    key: Option<String>,
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

fn malformed(message: String) -> ApiError {
    ApiError::new(codes::ERR_MALFORMED_REQUEST, message)
}

/// `POST/PUT .../state`: a transaction of upserts and deletes → 204.
pub(super) async fn transaction(
    State(rt): State<Arc<Runtime>>,
    Path((actor_type, id)): Path<(String, String)>,
    payload: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let payload = body(payload)?;
    let operations: Vec<OperationBody> = json(&payload)?;
    let mut ops = Vec::with_capacity(operations.len());
    for (i, op) in operations.into_iter().enumerate() {
        let request = op
            .request
            .ok_or_else(|| malformed(format!("[{i}].request: is required")))?;
        let key = request
            .key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| malformed(format!("[{i}].request.key: is required")))?;
        match op
            .operation
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("upsert") => ops.push(StateOperation::Upsert {
                key,
                // As the state API: the value's JSON encoding is stored.
                value: serde_json::to_vec(&request.value).unwrap_or_default(),
                metadata: request.metadata,
            }),
            Some("delete") => ops.push(StateOperation::Delete { key }),
            other => {
                return Err(ApiError::new(
                    codes::ERR_NOT_SUPPORTED_STATE_OPERATION,
                    format!("[{i}].operation: {other:?} is not upsert or delete"),
                ));
            }
        }
    }
    rt.actors.transact_state(&actor_type, &id, ops).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `null` or missing: empty (the Python SDK sends `"period": null`).
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ReminderBody {
    #[serde(default, deserialize_with = "null_as_empty")]
    due_time: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    period: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    ttl: String,
    #[serde(default)]
    data: serde_json::Value,
    #[serde(default, deserialize_with = "null_as_empty")]
    misfire_policy: String,
}

/// `POST/PUT .../reminders/{name}` → 204.
pub(super) async fn create_reminder(
    State(rt): State<Arc<Runtime>>,
    Path((actor_type, id, name)): Path<(String, String, String)>,
    payload: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let payload = body(payload)?;
    let reminder: ReminderBody = if payload.is_empty() {
        ReminderBody::default()
    } else {
        json(&payload)?
    };
    rt.actors
        .create_reminder(
            &actor_type,
            &id,
            &name,
            ReminderRequest {
                due_time: reminder.due_time,
                period: reminder.period,
                ttl: reminder.ttl,
                data: reminder.data,
                misfire: reminder.misfire_policy,
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn reminder_json(actor_type: &str, r: ReminderInfo) -> serde_json::Value {
    serde_json::json!({
        "actorType": actor_type,
        "actorID": r.actor_id,
        "name": r.name,
        "dueTime": r.due_time,
        "period": r.period,
        "ttl": r.ttl,
        "data": r.data,
        "nextDue": r.next_due,
    })
}

/// `GET .../reminders/{name}` → 200 JSON, or 404 `ERR_ACTOR_REMINDER_NOT_FOUND`.
pub(super) async fn get_reminder(
    State(rt): State<Arc<Runtime>>,
    Path((actor_type, id, name)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let reminder = rt.actors.get_reminder(&actor_type, &id, &name).await?;
    Ok(Json(reminder_json(&actor_type, reminder)))
}

/// `DELETE .../reminders/{name}` → 204.
pub(super) async fn delete_reminder(
    State(rt): State<Arc<Runtime>>,
    Path((actor_type, id, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    rt.actors.delete_reminder(&actor_type, &id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST/PUT .../timers/{name}` → 204.
pub(super) async fn create_timer(
    State(rt): State<Arc<Runtime>>,
    Path((actor_type, id, name)): Path<(String, String, String)>,
    payload: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let payload = body(payload)?;
    let timer: TimerRequest = if payload.is_empty() {
        TimerRequest::default()
    } else {
        json(&payload)?
    };
    rt.actors
        .create_timer(&actor_type, &id, &name, timer)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../timers/{name}` → 204.
pub(super) async fn delete_timer(
    State(rt): State<Arc<Runtime>>,
    Path((actor_type, id, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    rt.actors.delete_timer(&actor_type, &id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1.0-alpha1/actors/{type}`: the type's active actors on every live host.
pub(super) async fn list_active(
    State(rt): State<Arc<Runtime>>,
    Path(actor_type): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let actors = rt.actors.list_active(&actor_type).await?;
    let actors: Vec<_> = actors
        .into_iter()
        .map(|(id, app_id)| serde_json::json!({"actorId": id, "appId": app_id}))
        .collect();
    Ok(Json(
        serde_json::json!({ "actorType": actor_type, "actors": actors }),
    ))
}

/// `GET /v1.0-alpha1/actors/{type}/reminders` and `.../{type}/{id}/reminders`.
pub(super) async fn list_reminders(
    State(rt): State<Arc<Runtime>>,
    Path(params): Path<Vec<(String, String)>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let find = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let actor_type = find("actor_type").unwrap_or_default();
    let id = find("actor_id");
    let reminders = rt.actors.list_reminders(&actor_type, id.as_deref()).await?;
    let reminders: Vec<_> = reminders
        .into_iter()
        .map(|r| reminder_json(&actor_type, r))
        .collect();
    Ok(Json(serde_json::json!({ "reminders": reminders })))
}
