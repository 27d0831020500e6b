//! The workflow rpcs of the `Dapr` service (`…WorkflowBeta1` and the
//! deprecated `…WorkflowAlpha1` twins): the same checks and runtime calls
//! as the HTTP routes (`api::http::workflows`).
//!
//! As daprd (`pkg/api/universal/workflow.go`): `GetWorkflow` of a missing
//! instance answers OK with only `instance_id` set (HTTP answers 404);
//! terminate and purge take the instance's child workflows with it.

use tonic::{Response, Status};

use outrigger_proto::runtime as pb;

use crate::api::Runtime;
use crate::api::http::workflows::{
    check_app_id, check_component, check_existing_id, json_text, properties,
};
use crate::error::{ApiError, codes};
use crate::workflows::timestamp;

/// daprd's option for a delayed start (RFC 3339).
const START_TIME: &str = "dapr.workflow.start_time";

/// A start time in the past or now is a start now; a later one is not
/// supported yet (an error rather than starting early).
fn check_start_time(r: &pb::StartWorkflowRequest) -> Result<(), ApiError> {
    let Some(raw) = r.options.get(START_TIME) else {
        return Ok(());
    };
    let at = chrono::DateTime::parse_from_rfc3339(raw).map_err(|_| {
        ApiError::new(
            codes::ERR_START_WORKFLOW,
            format!(
                "error starting workflow '{}': start times must be in RFC3339 format \
                 (e.g. \"2009-11-10T23:00:00Z\"), not {raw:?}",
                r.workflow_name
            ),
        )
    })?;
    if at > chrono::Utc::now() {
        return Err(ApiError::new(
            codes::ERR_API_UNIMPLEMENTED,
            format!("options[{START_TIME:?}]: a start time in the future is not supported yet"),
        ));
    }
    Ok(())
}

/// `StartWorkflow*`: the input bytes are passed on as JSON text.
pub(super) async fn start(
    rt: &Runtime,
    r: pb::StartWorkflowRequest,
) -> Result<Response<pb::StartWorkflowResponse>, Status> {
    check_component(&r.workflow_component)?;
    check_app_id(rt, r.app_id.as_deref())?;
    check_start_time(&r)?;
    let instance_id = rt
        .workflows
        .start_instance(
            &r.workflow_name,
            Some(r.instance_id).filter(|id| !id.is_empty()),
            json_text(&r.input),
        )
        .await?;
    Ok(Response::new(pb::StartWorkflowResponse { instance_id }))
}

/// `GetWorkflow*`: the instance, or (as daprd) an answer with only the id.
pub(super) async fn get(
    rt: &Runtime,
    r: pb::GetWorkflowRequest,
) -> Result<Response<pb::GetWorkflowResponse>, Status> {
    check_component(&r.workflow_component)?;
    check_app_id(rt, r.app_id.as_deref())?;
    check_existing_id(&r.instance_id)?;
    let Some(instance) = rt.workflows.get(&r.instance_id).await? else {
        return Ok(Response::new(pb::GetWorkflowResponse {
            instance_id: r.instance_id,
            ..Default::default()
        }));
    };
    Ok(Response::new(pb::GetWorkflowResponse {
        properties: properties(&instance).into_iter().collect(),
        instance_id: instance.instance_id,
        workflow_name: instance.name,
        created_at: Some(timestamp(instance.created_ms)),
        last_updated_at: Some(timestamp(instance.updated_ms)),
        runtime_status: instance.status.name().to_owned(),
    }))
}

/// `TerminateWorkflow*` (children too).
pub(super) async fn terminate(
    rt: &Runtime,
    r: pb::TerminateWorkflowRequest,
) -> Result<Response<()>, Status> {
    check_component(&r.workflow_component)?;
    check_app_id(rt, r.app_id.as_deref())?;
    check_existing_id(&r.instance_id)?;
    rt.workflows.terminate(&r.instance_id, None, true).await?;
    Ok(Response::new(()))
}

/// `PauseWorkflow*` (`pause`) and `ResumeWorkflow*`.
pub(super) async fn suspend(
    rt: &Runtime,
    component: &str,
    instance_id: &str,
    app_id: Option<&str>,
    pause: bool,
) -> Result<Response<()>, Status> {
    check_component(component)?;
    check_app_id(rt, app_id)?;
    check_existing_id(instance_id)?;
    rt.workflows.suspend(instance_id, pause, None).await?;
    Ok(Response::new(()))
}

/// `RaiseEventWorkflow*`: the event data bytes are passed on as JSON text.
pub(super) async fn raise_event(
    rt: &Runtime,
    r: pb::RaiseEventWorkflowRequest,
) -> Result<Response<()>, Status> {
    check_component(&r.workflow_component)?;
    check_app_id(rt, r.app_id.as_deref())?;
    check_existing_id(&r.instance_id)?;
    rt.workflows
        .raise_event(&r.instance_id, &r.event_name, json_text(&r.event_data))
        .await?;
    Ok(Response::new(()))
}

/// `PurgeWorkflow*` (children too); only a finished instance.
pub(super) async fn purge(
    rt: &Runtime,
    r: pb::PurgeWorkflowRequest,
) -> Result<Response<()>, Status> {
    check_component(&r.workflow_component)?;
    check_app_id(rt, r.app_id.as_deref())?;
    check_existing_id(&r.instance_id)?;
    rt.workflows.purge(&r.instance_id, true).await?;
    Ok(Response::new(()))
}
