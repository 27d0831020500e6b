//! The actor rpcs of the `Dapr` service: the same runtime calls as the
//! HTTP API. Reminder `data` bytes are stored as daprd stores them (a base64
//! string, which is what the SDKs expect back when the reminder fires);
//! timer `data` bytes that hold JSON are kept as that JSON, other bytes
//! base64-encoded.

use base64::Engine;
use tonic::{Response, Status};

use outrigger_proto::runtime as pb;

use crate::actors::{ActorsInfo, ReminderInfo, ReminderRequest, StateOperation, TimerRequest};
use crate::api::Runtime;
use crate::error::{ApiError, codes};

fn data_json(bytes: &[u8]) -> serde_json::Value {
    if bytes.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| {
        serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
    })
}

/// Reminder data as daprd stores it: Go's `json.Marshal` of the raw bytes,
/// a base64 string. That is also what the SDKs send as `data` over HTTP
/// (and expect back when the reminder fires), so an SDK's gRPC and HTTP
/// registrations store the same value.
fn data_base64(bytes: &[u8]) -> serde_json::Value {
    if bytes.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn json_any(value: &serde_json::Value) -> Option<prost_types::Any> {
    (!value.is_null()).then(|| prost_types::Any {
        type_url: String::new(),
        value: serde_json::to_vec(value).unwrap_or_default(),
    })
}

fn some(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// The metadata API's `actor_runtime`.
pub(super) fn runtime_info(info: &ActorsInfo) -> pb::ActorRuntime {
    use pb::actor_runtime::ActorRuntimeStatus;
    let status = match info.status.as_str() {
        "RUNNING" => ActorRuntimeStatus::Running,
        "DISABLED" => ActorRuntimeStatus::Disabled,
        _ => ActorRuntimeStatus::Initializing,
    };
    pb::ActorRuntime {
        runtime_status: status as i32,
        active_actors: info
            .active
            .iter()
            .map(|(t, n)| pb::ActiveActorsCount {
                r#type: t.clone(),
                count: i32::try_from(*n).unwrap_or(i32::MAX),
            })
            .collect(),
        host_ready: info.host_ready,
        placement: info.placement.clone(),
    }
}

/// `InvokeActor`: the app's answer; one marked as an actor error is `INTERNAL`
/// carrying the app's body.
pub(super) async fn invoke(
    rt: &Runtime,
    r: pb::InvokeActorRequest,
) -> Result<Response<pb::InvokeActorResponse>, Status> {
    let headers = r.metadata.into_iter().collect();
    let reply = rt
        .actors
        .invoke(&r.actor_type, &r.actor_id, &r.method, headers, r.data)
        .await?;
    if reply.status != 200 {
        return Err(ApiError::new(
            codes::ERR_ACTOR_INVOKE_METHOD,
            String::from_utf8_lossy(&reply.body),
        )
        .into());
    }
    Ok(Response::new(pb::InvokeActorResponse { data: reply.body }))
}

pub(super) async fn get_state(
    rt: &Runtime,
    r: pb::GetActorStateRequest,
) -> Result<Response<pb::GetActorStateResponse>, Status> {
    let found = rt
        .actors
        .get_state(&r.actor_type, &r.actor_id, &r.key)
        .await?;
    let (data, metadata) = found.unwrap_or_default();
    Ok(Response::new(pb::GetActorStateResponse { data, metadata }))
}

pub(super) async fn transaction(
    rt: &Runtime,
    r: pb::ExecuteActorStateTransactionRequest,
) -> Result<Response<()>, Status> {
    let mut ops = Vec::with_capacity(r.operations.len());
    for (i, op) in r.operations.into_iter().enumerate() {
        ops.push(match op.operation_type.to_ascii_lowercase().as_str() {
            "upsert" => StateOperation::Upsert {
                key: op.key,
                value: op.value.map(|v| v.value).unwrap_or_default(),
                metadata: op.metadata,
            },
            "delete" => StateOperation::Delete { key: op.key },
            other => {
                return Err(ApiError::new(
                    codes::ERR_NOT_SUPPORTED_STATE_OPERATION,
                    format!("operations[{i}].operationType: {other:?} is not upsert or delete"),
                )
                .into());
            }
        });
    }
    rt.actors
        .transact_state(&r.actor_type, &r.actor_id, ops)
        .await?;
    Ok(Response::new(()))
}

pub(super) async fn register_reminder(
    rt: &Runtime,
    r: pb::RegisterActorReminderRequest,
) -> Result<Response<()>, Status> {
    let request = ReminderRequest {
        due_time: r.due_time,
        period: r.period,
        ttl: r.ttl,
        data: data_base64(&r.data),
        misfire: String::new(),
    };
    rt.actors
        .create_reminder(&r.actor_type, &r.actor_id, &r.name, request)
        .await?;
    Ok(Response::new(()))
}

pub(super) async fn get_reminder(
    rt: &Runtime,
    r: pb::GetActorReminderRequest,
) -> Result<Response<pb::GetActorReminderResponse>, Status> {
    let found = rt
        .actors
        .get_reminder(&r.actor_type, &r.actor_id, &r.name)
        .await?;
    Ok(Response::new(pb::GetActorReminderResponse {
        actor_type: r.actor_type,
        actor_id: found.actor_id,
        due_time: some(found.due_time),
        period: some(found.period),
        data: json_any(&found.data),
        ttl: some(found.ttl),
    }))
}

pub(super) async fn list_reminders(
    rt: &Runtime,
    r: pb::ListActorRemindersRequest,
) -> Result<Response<pb::ListActorRemindersResponse>, Status> {
    let found = rt
        .actors
        .list_reminders(&r.actor_type, r.actor_id.as_deref())
        .await?;
    let reminders = found
        .into_iter()
        .map(|info: ReminderInfo| pb::NamedActorReminder {
            name: info.name,
            reminder: Some(pb::ActorReminder {
                actor_type: r.actor_type.clone(),
                actor_id: info.actor_id,
                due_time: some(info.due_time),
                period: some(info.period),
                data: json_any(&info.data),
                ttl: some(info.ttl),
            }),
        })
        .collect();
    Ok(Response::new(pb::ListActorRemindersResponse { reminders }))
}

pub(super) async fn register_timer(
    rt: &Runtime,
    r: pb::RegisterActorTimerRequest,
) -> Result<Response<()>, Status> {
    let request = TimerRequest {
        due_time: r.due_time,
        period: r.period,
        ttl: r.ttl,
        callback: r.callback,
        data: data_json(&r.data),
    };
    rt.actors
        .create_timer(&r.actor_type, &r.actor_id, &r.name, request)
        .await?;
    Ok(Response::new(()))
}
