//! The Dapr gRPC API (`dapr.proto.runtime.v1.Dapr`) on tonic.
//!
//! Each rpc decodes, calls the same runtime method as its HTTP twin, and
//! encodes; errors become `tonic::Status` with an `ErrorInfo` carrying the
//! Dapr error code. Rpcs not implemented yet answer `UNIMPLEMENTED` (the
//! generated default). The API token, when set, is checked by an
//! interceptor on every call.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use outrigger_proto::common as common_pb;
use outrigger_proto::runtime as pb;

use super::Runtime;

mod actors;
mod configuration;
mod invoke;
pub mod proxy;
mod pubsub;
pub mod server;
mod state;
mod taskhub;
mod unary;
mod workflows;

pub use invoke::GatewayInvokeService;
pub use taskhub::TaskHubService;

/// The `Dapr` service implementation.
#[derive(Debug, Clone)]
pub struct DaprService {
    rt: Arc<Runtime>,
}

impl DaprService {
    /// Over `rt`.
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }
}

#[tonic::async_trait]
impl pb::dapr_server::Dapr for DaprService {
    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetState"))]
    async fn get_state(
        &self,
        request: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        state::get(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetBulkState"))]
    async fn get_bulk_state(
        &self,
        request: Request<pb::GetBulkStateRequest>,
    ) -> Result<Response<pb::GetBulkStateResponse>, Status> {
        state::bulk_get(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "SaveState"))]
    async fn save_state(
        &self,
        request: Request<pb::SaveStateRequest>,
    ) -> Result<Response<()>, Status> {
        state::save(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "QueryStateAlpha1"))]
    async fn query_state_alpha1(
        &self,
        request: Request<pb::QueryStateRequest>,
    ) -> Result<Response<pb::QueryStateResponse>, Status> {
        state::query(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "DeleteState"))]
    async fn delete_state(
        &self,
        request: Request<pb::DeleteStateRequest>,
    ) -> Result<Response<()>, Status> {
        state::delete(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "DeleteBulkState"))]
    async fn delete_bulk_state(
        &self,
        request: Request<pb::DeleteBulkStateRequest>,
    ) -> Result<Response<()>, Status> {
        state::delete_bulk(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "ExecuteStateTransaction"))]
    async fn execute_state_transaction(
        &self,
        request: Request<pb::ExecuteStateTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        state::transact(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "PublishEvent"))]
    async fn publish_event(
        &self,
        request: Request<pb::PublishEventRequest>,
    ) -> Result<Response<()>, Status> {
        pubsub::publish(&self.rt, request).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "BulkPublishEvent"))]
    async fn bulk_publish_event(
        &self,
        request: Request<pb::BulkPublishRequest>,
    ) -> Result<Response<pb::BulkPublishResponse>, Status> {
        pubsub::bulk_publish(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "BulkPublishEventAlpha1"))]
    async fn bulk_publish_event_alpha1(
        &self,
        request: Request<pb::BulkPublishRequest>,
    ) -> Result<Response<pb::BulkPublishResponse>, Status> {
        pubsub::bulk_publish(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "SubscribeTopicEventsAlpha1"))]
    async fn subscribe_topic_events_alpha1(
        &self,
        request: Request<tonic::Streaming<pb::SubscribeTopicEventsRequestAlpha1>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SubscribeTopicEventsResponseAlpha1>>, Status>
    {
        pubsub::subscribe(&self.rt, request).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetConfiguration"))]
    async fn get_configuration(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Result<Response<pb::GetConfigurationResponse>, Status> {
        configuration::get(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "SubscribeConfiguration"))]
    async fn subscribe_configuration(
        &self,
        request: Request<pb::SubscribeConfigurationRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SubscribeConfigurationResponse>>, Status>
    {
        configuration::subscribe(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "UnsubscribeConfiguration"))]
    async fn unsubscribe_configuration(
        &self,
        request: Request<pb::UnsubscribeConfigurationRequest>,
    ) -> Result<Response<pb::UnsubscribeConfigurationResponse>, Status> {
        configuration::unsubscribe(&self.rt, request.into_inner())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetConfigurationAlpha1"))]
    async fn get_configuration_alpha1(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Result<Response<pb::GetConfigurationResponse>, Status> {
        configuration::get(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "SubscribeConfigurationAlpha1"))]
    async fn subscribe_configuration_alpha1(
        &self,
        request: Request<pb::SubscribeConfigurationRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SubscribeConfigurationResponse>>, Status>
    {
        configuration::subscribe(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "UnsubscribeConfigurationAlpha1"))]
    async fn unsubscribe_configuration_alpha1(
        &self,
        request: Request<pb::UnsubscribeConfigurationRequest>,
    ) -> Result<Response<pb::UnsubscribeConfigurationResponse>, Status> {
        configuration::unsubscribe(&self.rt, request.into_inner())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "InvokeService"))]
    async fn invoke_service(
        &self,
        request: Request<pb::InvokeServiceRequest>,
    ) -> Result<Response<common_pb::InvokeResponse>, Status> {
        invoke::invoke_service(&self.rt, request).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "InvokeActor"))]
    async fn invoke_actor(
        &self,
        request: Request<pb::InvokeActorRequest>,
    ) -> Result<Response<pb::InvokeActorResponse>, Status> {
        actors::invoke(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetActorState"))]
    async fn get_actor_state(
        &self,
        request: Request<pb::GetActorStateRequest>,
    ) -> Result<Response<pb::GetActorStateResponse>, Status> {
        actors::get_state(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "ExecuteActorStateTransaction"))]
    async fn execute_actor_state_transaction(
        &self,
        request: Request<pb::ExecuteActorStateTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        actors::transaction(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "RegisterActorReminder"))]
    async fn register_actor_reminder(
        &self,
        request: Request<pb::RegisterActorReminderRequest>,
    ) -> Result<Response<()>, Status> {
        actors::register_reminder(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "UnregisterActorReminder"))]
    async fn unregister_actor_reminder(
        &self,
        request: Request<pb::UnregisterActorReminderRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        let done = self
            .rt
            .actors
            .delete_reminder(&r.actor_type, &r.actor_id, &r.name);
        Ok(Response::new(done.await?))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetActorReminder"))]
    async fn get_actor_reminder(
        &self,
        request: Request<pb::GetActorReminderRequest>,
    ) -> Result<Response<pb::GetActorReminderResponse>, Status> {
        actors::get_reminder(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "ListActorReminders"))]
    async fn list_actor_reminders(
        &self,
        request: Request<pb::ListActorRemindersRequest>,
    ) -> Result<Response<pb::ListActorRemindersResponse>, Status> {
        actors::list_reminders(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "UnregisterActorRemindersByType"))]
    async fn unregister_actor_reminders_by_type(
        &self,
        request: Request<pb::UnregisterActorRemindersByTypeRequest>,
    ) -> Result<Response<pb::UnregisterActorRemindersByTypeResponse>, Status> {
        let r = request.into_inner();
        let done = self
            .rt
            .actors
            .delete_reminders(&r.actor_type, r.actor_id.as_deref());
        done.await?;
        Ok(Response::new(pb::UnregisterActorRemindersByTypeResponse {}))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "SubscribeActorEventsAlpha1"))]
    async fn subscribe_actor_events_alpha1(
        &self,
        request: Request<tonic::Streaming<pb::SubscribeActorEventsRequestAlpha1>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SubscribeActorEventsResponseAlpha1>>, Status>
    {
        let stream = self.rt.actors.subscribe(request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "RegisterActorTimer"))]
    async fn register_actor_timer(
        &self,
        request: Request<pb::RegisterActorTimerRequest>,
    ) -> Result<Response<()>, Status> {
        actors::register_timer(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "UnregisterActorTimer"))]
    async fn unregister_actor_timer(
        &self,
        request: Request<pb::UnregisterActorTimerRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        let done = self
            .rt
            .actors
            .delete_timer(&r.actor_type, &r.actor_id, &r.name);
        Ok(Response::new(done.await?))
    }

    // === workflows (daprd serves Beta1 and the deprecated Alpha1 alike) ===

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "StartWorkflowBeta1"))]
    async fn start_workflow_beta1(
        &self,
        request: Request<pb::StartWorkflowRequest>,
    ) -> Result<Response<pb::StartWorkflowResponse>, Status> {
        workflows::start(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetWorkflowBeta1"))]
    async fn get_workflow_beta1(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        workflows::get(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "TerminateWorkflowBeta1"))]
    async fn terminate_workflow_beta1(
        &self,
        request: Request<pb::TerminateWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::terminate(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "PauseWorkflowBeta1"))]
    async fn pause_workflow_beta1(
        &self,
        request: Request<pb::PauseWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        workflows::suspend(
            &self.rt,
            &r.workflow_component,
            &r.instance_id,
            r.app_id.as_deref(),
            true,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "ResumeWorkflowBeta1"))]
    async fn resume_workflow_beta1(
        &self,
        request: Request<pb::ResumeWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        workflows::suspend(
            &self.rt,
            &r.workflow_component,
            &r.instance_id,
            r.app_id.as_deref(),
            false,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "RaiseEventWorkflowBeta1"))]
    async fn raise_event_workflow_beta1(
        &self,
        request: Request<pb::RaiseEventWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::raise_event(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "PurgeWorkflowBeta1"))]
    async fn purge_workflow_beta1(
        &self,
        request: Request<pb::PurgeWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::purge(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "StartWorkflowAlpha1"))]
    async fn start_workflow_alpha1(
        &self,
        request: Request<pb::StartWorkflowRequest>,
    ) -> Result<Response<pb::StartWorkflowResponse>, Status> {
        workflows::start(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetWorkflowAlpha1"))]
    async fn get_workflow_alpha1(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        workflows::get(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "TerminateWorkflowAlpha1"))]
    async fn terminate_workflow_alpha1(
        &self,
        request: Request<pb::TerminateWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::terminate(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "PauseWorkflowAlpha1"))]
    async fn pause_workflow_alpha1(
        &self,
        request: Request<pb::PauseWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        workflows::suspend(
            &self.rt,
            &r.workflow_component,
            &r.instance_id,
            r.app_id.as_deref(),
            true,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "ResumeWorkflowAlpha1"))]
    async fn resume_workflow_alpha1(
        &self,
        request: Request<pb::ResumeWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        workflows::suspend(
            &self.rt,
            &r.workflow_component,
            &r.instance_id,
            r.app_id.as_deref(),
            false,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "RaiseEventWorkflowAlpha1"))]
    async fn raise_event_workflow_alpha1(
        &self,
        request: Request<pb::RaiseEventWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::raise_event(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "PurgeWorkflowAlpha1"))]
    async fn purge_workflow_alpha1(
        &self,
        request: Request<pb::PurgeWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::purge(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetSecret"))]
    async fn get_secret(
        &self,
        request: Request<pb::GetSecretRequest>,
    ) -> Result<Response<pb::GetSecretResponse>, Status> {
        let r = request.into_inner();
        let data = self
            .rt
            .secrets
            .get(&r.store_name, &r.key, r.metadata)
            .await?;
        Ok(Response::new(pb::GetSecretResponse { data }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetBulkSecret"))]
    async fn get_bulk_secret(
        &self,
        request: Request<pb::GetBulkSecretRequest>,
    ) -> Result<Response<pb::GetBulkSecretResponse>, Status> {
        let r = request.into_inner();
        let all = self.rt.secrets.bulk_get(&r.store_name, r.metadata).await?;
        Ok(Response::new(pb::GetBulkSecretResponse {
            data: all
                .into_iter()
                .map(|(k, secrets)| (k, pb::SecretResponse { secrets }))
                .collect(),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "InvokeBinding"))]
    async fn invoke_binding(
        &self,
        request: Request<pb::InvokeBindingRequest>,
    ) -> Result<Response<pb::InvokeBindingResponse>, Status> {
        let r = request.into_inner();
        let reply = self
            .rt
            .bindings
            .invoke(&r.name, &r.operation, r.data, r.metadata)
            .await?;
        Ok(Response::new(pb::InvokeBindingResponse {
            data: reply.data,
            metadata: reply.metadata,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetMetadata"))]
    async fn get_metadata(
        &self,
        _request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        let rt = &self.rt;
        Ok(Response::new(pb::GetMetadataResponse {
            id: rt.config.app_id.clone(),
            registered_components: rt
                .components()
                .into_iter()
                .map(|c| pb::RegisteredComponents {
                    name: c.name,
                    r#type: c.component_type,
                    version: c.version,
                    capabilities: c.capabilities,
                })
                .collect(),
            extended_metadata: rt.extended_metadata(),
            app_connection_properties: rt.config.app_port.map(|port| pb::AppConnectionProperties {
                port: i32::from(port),
                protocol: match rt.config.app_protocol {
                    crate::config::AppProtocol::Http => "http".into(),
                    crate::config::AppProtocol::Grpc => "grpc".into(),
                },
                channel_address: "127.0.0.1".into(),
                ..Default::default()
            }),
            runtime_version: crate::RUNTIME_VERSION.into(),
            enabled_features: rt.features(),
            actor_runtime: Some(actors::runtime_info(&rt.actors.info())),
            ..Default::default()
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "SetMetadata"))]
    async fn set_metadata(
        &self,
        request: Request<pb::SetMetadataRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.rt.set_extended(r.key, r.value);
        Ok(Response::new(()))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "Shutdown"))]
    async fn shutdown(
        &self,
        _request: Request<pb::ShutdownRequest>,
    ) -> Result<Response<()>, Status> {
        self.rt.shutdown.cancel();
        Ok(Response::new(()))
    }
}
