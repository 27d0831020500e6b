//! Dapr's workflow API, `/{v}/workflows/{component}/...` under `v1.0`,
//! `v1.0-beta1` and `v1.0-alpha1`, and Outrigger's list API
//! `GET /v1.0-alpha1/workflows/{component}?status=...`.
//!
//! Status codes and error codes follow daprd (`pkg/api/http/workflow.go`,
//! `pkg/api/universal/workflow.go`): every command answers 202 with the
//! JSON encoding of its (empty) reply, `{}`; a missing instance is 404
//! `ERR_INSTANCE_ID_NOT_FOUND`. The helpers marked `pub(crate)` are shared
//! with the gRPC twins (`api::grpc::workflows`), so both protocols decide
//! the same way.

use std::collections::BTreeMap;
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
use crate::workflows::{Instance, ListFilter, Status};

/// The only workflow component: Dapr's built-in engine.
pub(crate) const COMPONENT: &str = "dapr";

/// Every status, in the order the list API's error message names them.
const STATUSES: [Status; 9] = [
    Status::Pending,
    Status::Running,
    Status::Completed,
    Status::ContinuedAsNew,
    Status::Failed,
    Status::Canceled,
    Status::Terminated,
    Status::Suspended,
    Status::Stalled,
];

// === shared with the gRPC twins ===

/// The workflow component must be `dapr` (as daprd up to 1.14 checked).
pub(crate) fn check_component(component: &str) -> Result<(), ApiError> {
    if component.is_empty() {
        return Err(ApiError::new(
            codes::ERR_WORKFLOW_COMPONENT_MISSING,
            "no workflow component was provided; use \"dapr\"",
        ));
    }
    if component != COMPONENT {
        return Err(ApiError::new(
            codes::ERR_WORKFLOW_COMPONENT_NOT_FOUND,
            format!("workflow component '{component}' does not exist; use \"dapr\""),
        ));
    }
    Ok(())
}

/// The optional target app id: this app (or none) is served; calls to
/// other apps' workflows are not supported here.
pub(crate) fn check_app_id(rt: &Runtime, app_id: Option<&str>) -> Result<(), ApiError> {
    match app_id {
        None | Some("") => Ok(()),
        Some(id) if id == rt.config.app_id => Ok(()),
        Some(id) => Err(ApiError::new(
            codes::ERR_API_UNIMPLEMENTED,
            format!(
                "appID {id:?}: workflows of other apps cannot be reached from this gateway; \
                 call the gateway of app {id:?}"
            ),
        )),
    }
}

/// Commands other than start name an existing instance: any non-empty id
/// (child workflows get ids such as `parent:0001`, which start refuses).
pub(crate) fn check_existing_id(instance_id: &str) -> Result<(), ApiError> {
    if instance_id.is_empty() {
        return Err(ApiError::new(
            codes::ERR_INSTANCE_ID_PROVIDED_MISSING,
            "no instance ID was provided",
        ));
    }
    Ok(())
}

/// A payload as the JSON text the workflow SDKs decode: none when empty,
/// a body that is JSON as it is, anything else as a JSON string.
pub(crate) fn json_text(raw: &[u8]) -> Option<String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(raw).is_ok()
        && let Ok(text) = std::str::from_utf8(raw)
    {
        return Some(text.to_owned());
    }
    let text = String::from_utf8_lossy(raw);
    Some(serde_json::Value::String(text.into_owned()).to_string())
}

/// The `properties` of a workflow as daprd reports them: only those with a
/// value, and no output when the workflow failed.
pub(crate) fn properties(instance: &Instance) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(input) = &instance.input {
        out.insert("dapr.workflow.input".to_owned(), input.clone());
    }
    if let Some(custom) = &instance.custom_status {
        out.insert("dapr.workflow.custom_status".to_owned(), custom.clone());
    }
    match &instance.failure {
        Some(failure) => {
            out.insert(
                "dapr.workflow.failure.error_type".to_owned(),
                failure.error_type.clone(),
            );
            out.insert(
                "dapr.workflow.failure.error_message".to_owned(),
                failure.message.clone(),
            );
            if let Some(trace) = &failure.stack_trace {
                out.insert(
                    "dapr.workflow.failure.stack_trace".to_owned(),
                    trace.clone(),
                );
            }
        }
        None => {
            if let Some(output) = &instance.output {
                out.insert("dapr.workflow.output".to_owned(), output.clone());
            }
        }
    }
    out
}

/// daprd's answer to a get of a missing instance.
pub(crate) fn not_found(instance_id: &str) -> ApiError {
    ApiError::new(
        codes::ERR_INSTANCE_ID_NOT_FOUND,
        format!("unable to find workflow with the provided instance ID: {instance_id}"),
    )
}

// === routes ===

/// RFC 3339 in UTC, with 0 or 3 fractional digits (as protojson writes a
/// millisecond timestamp).
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// 202 with `{}`: daprd's JSON encoding of `google.protobuf.Empty`.
fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(serde_json::json!({}))).into_response()
}

/// `POST /{v}/workflows/{component}/{name}/start?instanceID=<id>`: the raw
/// body is the input → 202 `{"instanceID"}`.
pub(super) async fn start(
    State(rt): State<Arc<Runtime>>,
    Path((component, name)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
    payload: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_component(&component)?;
    check_app_id(&rt, query_value(&params, "appID"))?;
    let input = json_text(&body(payload)?);
    let instance_id = query_value(&params, "instanceID").map(str::to_owned);
    let id = rt
        .workflows
        .start_instance(&name, instance_id, input)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "instanceID": id })),
    )
        .into_response())
}

/// `GET /{v}/workflows/{component}/{instanceID}` → 200 with the instance.
pub(super) async fn get(
    State(rt): State<Arc<Runtime>>,
    Path((component, instance_id)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_component(&component)?;
    check_app_id(&rt, query_value(&params, "appID"))?;
    check_existing_id(&instance_id)?;
    let instance = rt
        .workflows
        .get(&instance_id)
        .await?
        .ok_or_else(|| not_found(&instance_id))?;
    Ok(Json(serde_json::json!({
        "instanceID": instance.instance_id,
        "workflowName": instance.name,
        "createdAt": rfc3339(instance.created_ms),
        "lastUpdatedAt": rfc3339(instance.updated_ms),
        "runtimeStatus": instance.status.name(),
        "properties": properties(&instance),
    }))
    .into_response())
}

/// `POST .../{instanceID}/terminate` (children too, as daprd) → 202.
pub(super) async fn terminate(
    State(rt): State<Arc<Runtime>>,
    Path((component, instance_id)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_component(&component)?;
    check_app_id(&rt, query_value(&params, "appID"))?;
    check_existing_id(&instance_id)?;
    rt.workflows.terminate(&instance_id, None, true).await?;
    Ok(accepted())
}

/// `POST .../{instanceID}/pause` → 202.
pub(super) async fn pause(
    State(rt): State<Arc<Runtime>>,
    Path((component, instance_id)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_component(&component)?;
    check_app_id(&rt, query_value(&params, "appID"))?;
    check_existing_id(&instance_id)?;
    rt.workflows.suspend(&instance_id, true, None).await?;
    Ok(accepted())
}

/// `POST .../{instanceID}/resume` → 202.
pub(super) async fn resume(
    State(rt): State<Arc<Runtime>>,
    Path((component, instance_id)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_component(&component)?;
    check_app_id(&rt, query_value(&params, "appID"))?;
    check_existing_id(&instance_id)?;
    rt.workflows.suspend(&instance_id, false, None).await?;
    Ok(accepted())
}

/// `POST .../{instanceID}/purge` (children too, as daprd) → 202; only a
/// finished instance can be purged.
pub(super) async fn purge(
    State(rt): State<Arc<Runtime>>,
    Path((component, instance_id)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_component(&component)?;
    check_app_id(&rt, query_value(&params, "appID"))?;
    check_existing_id(&instance_id)?;
    rt.workflows.purge(&instance_id, true).await?;
    Ok(accepted())
}

/// `POST .../{instanceID}/raiseEvent/{eventName}`: the raw body is the
/// event data → 202.
pub(super) async fn raise_event(
    State(rt): State<Arc<Runtime>>,
    Path((component, instance_id, event)): Path<(String, String, String)>,
    Query(params): Query<Vec<(String, String)>>,
    payload: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_component(&component)?;
    check_app_id(&rt, query_value(&params, "appID"))?;
    check_existing_id(&instance_id)?;
    let data = json_text(&body(payload)?);
    rt.workflows.raise_event(&instance_id, &event, data).await?;
    Ok(accepted())
}

/// `POST .../{instanceID}/raiseEvent` with no event name → 400.
pub(super) async fn raise_event_unnamed(
    Path((component, _instance_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_component(&component)?;
    Err(ApiError::new(
        codes::ERR_WORKFLOW_EVENT_NAME_MISSING,
        "missing workflow event name: POST .../raiseEvent/{eventName}",
    ))
}

/// Outrigger's `GET /v1.0-alpha1/workflows/{component}?status=A,B` →
/// `{"instances":[{"instanceID","runtimeStatus"}]}`, sorted by id; no
/// `status` lists every instance.
pub(super) async fn list(
    State(rt): State<Arc<Runtime>>,
    Path(component): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_component(&component)?;
    let filter = ListFilter {
        statuses: status_filter(&params)?,
    };
    let instances: Vec<_> = rt
        .workflows
        .list(&filter)
        .await?
        .into_iter()
        .map(|(id, status)| serde_json::json!({ "instanceID": id, "runtimeStatus": status.name() }))
        .collect();
    Ok(Json(serde_json::json!({ "instances": instances })).into_response())
}

/// Every `status` parameter, comma-separated (case-insensitive).
fn status_filter(params: &[(String, String)]) -> Result<Vec<Status>, ApiError> {
    let mut statuses = Vec::new();
    for raw in params
        .iter()
        .filter(|(k, _)| k == "status")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let status = Status::parse(raw).ok_or_else(|| {
            let known: Vec<_> = STATUSES.iter().map(|s| s.name()).collect();
            ApiError::new(
                codes::ERR_MALFORMED_REQUEST,
                format!(
                    "status: {raw:?} is not a workflow status (one of {})",
                    known.join(", ")
                ),
            )
        })?;
        if !statuses.contains(&status) {
            statuses.push(status);
        }
    }
    Ok(statuses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_json_text() {
        assert_eq!(json_text(b""), None);
        assert_eq!(json_text(b" \n"), None);
        assert_eq!(json_text(br#"{"a":1}"#).as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(json_text(b"42").as_deref(), Some("42"));
        assert_eq!(json_text(br#""s""#).as_deref(), Some(r#""s""#));
        assert_eq!(json_text(b"hello").as_deref(), Some(r#""hello""#));
        assert_eq!(json_text(b"{oops").as_deref(), Some(r#""{oops""#));
    }

    #[test]
    fn properties_hold_only_values_and_no_output_on_failure() {
        let mut instance = Instance {
            instance_id: "i".into(),
            name: "W".into(),
            status: Status::Completed,
            created_ms: 0,
            updated_ms: 0,
            input: None,
            output: Some("\"done\"".into()),
            custom_status: Some("\"half\"".into()),
            failure: None,
            execution_id: String::new(),
            parent_instance_id: None,
            history_events: 0,
        };
        let keys = |i: &Instance| properties(i).into_keys().collect::<Vec<_>>();
        assert_eq!(
            keys(&instance),
            ["dapr.workflow.custom_status", "dapr.workflow.output"]
        );
        instance.status = Status::Failed;
        instance.failure = Some(crate::workflows::Failure {
            error_type: "ValueError".into(),
            message: "bad".into(),
            stack_trace: Some("at line 1".into()),
        });
        let failed = properties(&instance);
        assert_eq!(failed["dapr.workflow.failure.error_type"], "ValueError");
        assert_eq!(failed["dapr.workflow.failure.error_message"], "bad");
        assert_eq!(failed["dapr.workflow.failure.stack_trace"], "at line 1");
        assert!(!failed.contains_key("dapr.workflow.output"), "{failed:?}");
        instance.input = Some("1".into());
        assert_eq!(properties(&instance)["dapr.workflow.input"], "1");
    }

    #[test]
    fn times_are_rfc3339_like_protojson() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn components_and_statuses_are_checked() {
        assert!(check_component("dapr").is_ok());
        assert_eq!(
            check_component("").unwrap_err().code,
            "ERR_WORKFLOW_COMPONENT_MISSING"
        );
        assert_eq!(
            check_component("temporal").unwrap_err().code,
            "ERR_WORKFLOW_COMPONENT_NOT_FOUND"
        );
        let params = |v: &str| vec![("status".to_owned(), v.to_owned())];
        assert_eq!(
            status_filter(&params("running, COMPLETED,running")).unwrap(),
            [Status::Running, Status::Completed]
        );
        let bad = status_filter(&params("RUNNING,DONE")).unwrap_err();
        assert_eq!(bad.code, "ERR_MALFORMED_REQUEST");
        assert!(bad.message.contains("\"DONE\""), "{}", bad.message);
    }
}
