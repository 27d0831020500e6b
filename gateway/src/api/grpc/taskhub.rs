//! `TaskHubSidecarService`: the Durable Task protocol the workflow SDKs
//! speak (`/TaskHubSidecarService/<Rpc>`, no proto package), on the same
//! gRPC port as the Dapr API. Clients start and manage instances; workers
//! take work items from `GetWorkItems` and answer them with
//! `CompleteOrchestratorTask` / `CompleteWorkflowTask` /
//! `CompleteActivityTask`, echoing the completion token.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use outrigger_proto::durabletask as dt;

use crate::api::Runtime;

/// How long a `Complete*` call waits for its result to be recorded.
const RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

use crate::workflows::{Completion, Instance};

/// The service over one gateway's runtime.
#[derive(Debug, Clone)]
pub struct TaskHubService {
    rt: Arc<Runtime>,
}

impl TaskHubService {
    /// Over `rt`.
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }

    /// Hand a worker's completion to the engine and answer once it is
    /// recorded (or the engine gave up on it: then the work item is sent
    /// again later, so the worker need not retry).
    async fn complete(
        &self,
        token: &str,
        completion: Completion,
    ) -> Result<Response<dt::CompleteTaskResponse>, Status> {
        let recorded = self.rt.workflows.workers().complete(token, completion)?;
        let _ = tokio::time::timeout(RECORD_WAIT, recorded).await;
        Ok(Response::new(dt::CompleteTaskResponse {}))
    }
}

fn state(instance: Instance, with_payloads: bool) -> dt::WorkflowState {
    let ts = crate::workflows::timestamp;
    dt::WorkflowState {
        instance_id: instance.instance_id,
        name: instance.name,
        workflow_status: instance.status.proto(),
        created_timestamp: Some(ts(instance.created_ms)),
        last_updated_timestamp: Some(ts(instance.updated_ms)),
        completed_timestamp: instance
            .status
            .is_terminal()
            .then(|| ts(instance.updated_ms)),
        input: instance.input.filter(|_| with_payloads),
        output: instance.output.filter(|_| with_payloads),
        custom_status: instance.custom_status,
        failure_details: instance.failure.map(|f| dt::TaskFailureDetails {
            error_type: f.error_type,
            error_message: f.message,
            stack_trace: f.stack_trace,
            ..Default::default()
        }),
        execution_id: Some(instance.execution_id),
        parent_instance_id: instance.parent_instance_id,
        ..Default::default()
    }
}

fn answer(found: Option<Instance>, with_payloads: bool) -> dt::GetInstanceResponse {
    match found {
        Some(instance) => dt::GetInstanceResponse {
            exists: true,
            workflow_state: Some(state(instance, with_payloads)),
        },
        None => dt::GetInstanceResponse {
            exists: false,
            workflow_state: None,
        },
    }
}

#[tonic::async_trait]
impl dt::task_hub_sidecar_service_server::TaskHubSidecarService for TaskHubService {
    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "Hello"))]
    async fn hello(&self, _request: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "StartInstance"))]
    async fn start_instance(
        &self,
        request: Request<dt::CreateInstanceRequest>,
    ) -> Result<Response<dt::CreateInstanceResponse>, Status> {
        let r = request.into_inner();
        let start_at = r
            .scheduled_start_timestamp
            .as_ref()
            .map(crate::workflows::millis);
        let instance_id = self
            .rt
            .workflows
            .start_instance_at(&r.name, Some(r.instance_id), r.input, start_at)
            .await?;
        Ok(Response::new(dt::CreateInstanceResponse { instance_id }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetInstance"))]
    async fn get_instance(
        &self,
        request: Request<dt::GetInstanceRequest>,
    ) -> Result<Response<dt::GetInstanceResponse>, Status> {
        let r = request.into_inner();
        let found = self.rt.workflows.get(&r.instance_id).await?;
        Ok(Response::new(answer(found, r.get_inputs_and_outputs)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "WaitForInstanceStart"))]
    async fn wait_for_instance_start(
        &self,
        request: Request<dt::GetInstanceRequest>,
    ) -> Result<Response<dt::GetInstanceResponse>, Status> {
        let r = request.into_inner();
        let found = self.rt.workflows.wait(&r.instance_id, false).await?;
        Ok(Response::new(answer(found, r.get_inputs_and_outputs)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "WaitForInstanceCompletion"))]
    async fn wait_for_instance_completion(
        &self,
        request: Request<dt::GetInstanceRequest>,
    ) -> Result<Response<dt::GetInstanceResponse>, Status> {
        let r = request.into_inner();
        let found = self.rt.workflows.wait(&r.instance_id, true).await?;
        Ok(Response::new(answer(found, r.get_inputs_and_outputs)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "RaiseEvent"))]
    async fn raise_event(
        &self,
        request: Request<dt::RaiseEventRequest>,
    ) -> Result<Response<dt::RaiseEventResponse>, Status> {
        let r = request.into_inner();
        self.rt
            .workflows
            .raise_event(&r.instance_id, &r.name, r.input)
            .await?;
        Ok(Response::new(dt::RaiseEventResponse {}))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "TerminateInstance"))]
    async fn terminate_instance(
        &self,
        request: Request<dt::TerminateRequest>,
    ) -> Result<Response<dt::TerminateResponse>, Status> {
        let r = request.into_inner();
        self.rt
            .workflows
            .terminate(&r.instance_id, r.output, r.recursive)
            .await?;
        Ok(Response::new(dt::TerminateResponse {}))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "SuspendInstance"))]
    async fn suspend_instance(
        &self,
        request: Request<dt::SuspendRequest>,
    ) -> Result<Response<dt::SuspendResponse>, Status> {
        let r = request.into_inner();
        self.rt
            .workflows
            .suspend(&r.instance_id, true, r.reason)
            .await?;
        Ok(Response::new(dt::SuspendResponse {}))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "ResumeInstance"))]
    async fn resume_instance(
        &self,
        request: Request<dt::ResumeRequest>,
    ) -> Result<Response<dt::ResumeResponse>, Status> {
        let r = request.into_inner();
        self.rt
            .workflows
            .suspend(&r.instance_id, false, r.reason)
            .await?;
        Ok(Response::new(dt::ResumeResponse {}))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "PurgeInstances"))]
    async fn purge_instances(
        &self,
        request: Request<dt::PurgeInstancesRequest>,
    ) -> Result<Response<dt::PurgeInstancesResponse>, Status> {
        let r = request.into_inner();
        let Some(dt::purge_instances_request::Request::InstanceId(id)) = r.request else {
            return Err(Status::unimplemented(
                "purgeInstanceFilter: purging by filter is not supported yet; name an instanceId",
            ));
        };
        let deleted = self.rt.workflows.purge(&id, r.recursive).await?;
        Ok(Response::new(dt::PurgeInstancesResponse {
            deleted_instance_count: i32::try_from(deleted).unwrap_or(i32::MAX),
            is_complete: Some(true),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetWorkItems"))]
    async fn get_work_items(
        &self,
        request: Request<dt::GetWorkItemsRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<dt::WorkItem>>, Status> {
        let r = request.into_inner();
        let pings = r
            .capabilities
            .contains(&(dt::WorkerCapability::HealthPing as i32));
        let (registration, items) = self.rt.workflows.workers().connect(pings);
        let stream = tokio_stream::wrappers::ReceiverStream::new(items);
        // The registration lives as long as the stream: dropping the stream
        // (the worker went away) disconnects it.
        let stream = futures::StreamExt::map(stream, move |item| {
            let _alive = &registration;
            item
        });
        Ok(Response::new(Box::pin(stream)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "CompleteActivityTask"))]
    async fn complete_activity_task(
        &self,
        request: Request<dt::ActivityResponse>,
    ) -> Result<Response<dt::CompleteTaskResponse>, Status> {
        let r = request.into_inner();
        let token = r.completion_token.clone();
        self.complete(&token, Completion::Activity(r)).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "CompleteOrchestratorTask"))]
    async fn complete_orchestrator_task(
        &self,
        request: Request<dt::WorkflowResponse>,
    ) -> Result<Response<dt::CompleteTaskResponse>, Status> {
        let r = request.into_inner();
        let token = r.completion_token.clone();
        self.complete(&token, Completion::Workflow(r)).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "CompleteWorkflowTask"))]
    async fn complete_workflow_task(
        &self,
        request: Request<dt::WorkflowResponse>,
    ) -> Result<Response<dt::CompleteTaskResponse>, Status> {
        let r = request.into_inner();
        let token = r.completion_token.clone();
        self.complete(&token, Completion::Workflow(r)).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "ListInstanceIDs"))]
    async fn list_instance_i_ds(
        &self,
        request: Request<dt::ListInstanceIDsRequest>,
    ) -> Result<Response<dt::ListInstanceIDsResponse>, Status> {
        let r = request.into_inner();
        let all = self.rt.workflows.list(&Default::default()).await?;
        let start = r
            .continuation_token
            .as_deref()
            .and_then(|t| t.parse::<usize>().ok())
            .unwrap_or(0);
        let size = r.page_size.map_or(100, |n| n.clamp(1, 1000) as usize);
        let page: Vec<String> = all
            .iter()
            .skip(start)
            .take(size)
            .map(|(id, _)| id.clone())
            .collect();
        let next = start + page.len();
        Ok(Response::new(dt::ListInstanceIDsResponse {
            instance_ids: page,
            continuation_token: (next < all.len()).then(|| next.to_string()),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetInstanceHistory"))]
    async fn get_instance_history(
        &self,
        request: Request<dt::GetInstanceHistoryRequest>,
    ) -> Result<Response<dt::GetInstanceHistoryResponse>, Status> {
        let r = request.into_inner();
        let events = self.rt.workflows.history(&r.instance_id).await?;
        Ok(Response::new(dt::GetInstanceHistoryResponse { events }))
    }
}
