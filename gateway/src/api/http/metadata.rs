//! Health, metadata and shutdown routes.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{body, query_value};
use crate::api::Runtime;
use crate::error::{ApiError, codes};

/// `GET /v1.0/healthz`: 204 when ready.
pub(super) async fn healthz(
    State(rt): State<Arc<Runtime>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<StatusCode, ApiError> {
    if let Some(app_id) = query_value(&params, "appid")
        && app_id != rt.config.app_id
    {
        return Err(ApiError::new(
            codes::ERR_HEALTH_APPID_NOT_MATCH,
            format!("app id {app_id} does not match {}", rt.config.app_id),
        ));
    }
    if !rt.is_outbound_ready() {
        return Err(ApiError::new(
            codes::ERR_HEALTH_NOT_READY,
            "gateway is not ready",
        ));
    }
    if let Err(waiting) = rt.registry.all_ready() {
        return Err(ApiError::new(codes::ERR_HEALTH_NOT_READY, waiting));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1.0/healthz/outbound`: 204 once the APIs can serve calls (the
/// Python SDK waits on this before its first gRPC call).
pub(super) async fn healthz_outbound(
    State(rt): State<Arc<Runtime>>,
) -> Result<StatusCode, ApiError> {
    if rt.is_outbound_ready() {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            codes::ERR_OUTBOUND_HEALTH_NOT_READY,
            "gateway outbound is not ready",
        ))
    }
}

/// `GET /v1.0/metadata`.
pub(super) async fn get_metadata(State(rt): State<Arc<Runtime>>) -> Response {
    let components: Vec<serde_json::Value> = rt
        .components()
        .into_iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "type": c.component_type,
                "version": c.version,
                "capabilities": c.capabilities,
            })
        })
        .collect();
    let mut app = serde_json::json!({ "channelAddress": "127.0.0.1" });
    if let Some(port) = rt.config.app_port {
        app["port"] = port.into();
        app["protocol"] = match rt.config.app_protocol {
            crate::config::AppProtocol::Http => "http",
            crate::config::AppProtocol::Grpc => "grpc",
        }
        .into();
    }
    let actors = rt.actors.info();
    let active: Vec<_> = actors
        .active
        .iter()
        .map(|(t, n)| serde_json::json!({"type": t, "count": n}))
        .collect();
    Json(serde_json::json!({
        "id": rt.config.app_id,
        "runtimeVersion": crate::RUNTIME_VERSION,
        "enabledFeatures": rt.features(),
        "actors": active,
        "actorRuntime": {
            "runtimeStatus": actors.status,
            "activeActors": active,
            "hostReady": actors.host_ready,
            "placement": actors.placement,
        },
        "components": components,
        "extended": rt.extended_metadata(),
        "subscriptions": [],
        "httpEndpoints": [],
        "appConnectionProperties": app,
    }))
    .into_response()
}

/// `PUT /v1.0/metadata/{key}` with a raw body.
pub(super) async fn put_metadata(
    State(rt): State<Arc<Runtime>>,
    Path(key): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let bytes = body(raw)?;
    let value = String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::new(
            codes::ERR_METADATA_SET,
            format!("metadata {key}: value is not UTF-8"),
        )
    })?;
    rt.set_extended(key, value);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1.0/shutdown`.
pub(super) async fn shutdown(State(rt): State<Arc<Runtime>>) -> StatusCode {
    tracing::info!("shutdown requested through the API");
    rt.shutdown.cancel();
    StatusCode::NO_CONTENT
}
