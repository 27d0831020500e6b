//! The Dapr gRPC API (`dapr.proto.runtime.v1.Dapr`) on tonic.
//!
//! Each rpc decodes, calls the same runtime method as its HTTP twin, and
//! encodes; errors become `tonic::Status` with an `ErrorInfo` carrying the
//! Dapr error code. Rpcs not implemented yet answer `UNIMPLEMENTED` (the
//! generated default). The API token, when set, is checked by an
//! interceptor on every call.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use outrigger_proto::common as common_pb;
use outrigger_proto::runtime as pb;

use super::Runtime;
use crate::runtime::state::{Operation, SaveItem};

mod actors;
mod configuration;
mod invoke;
pub mod proxy;
mod taskhub;
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

/// Rejects calls without the right `dapr-api-token` metadata.
#[derive(Debug, Clone)]
pub struct TokenCheck(pub Option<String>);

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            let given = request
                .metadata()
                .get(super::http::TOKEN_HEADER)
                .and_then(|v| v.to_str().ok());
            if given != Some(token.as_str()) {
                return Err(Status::unauthenticated("missing or invalid dapr-api-token"));
            }
        }
        Ok(request)
    }
}

fn concurrency_name(raw: i32) -> Option<String> {
    match common_pb::state_options::StateConcurrency::try_from(raw) {
        Ok(common_pb::state_options::StateConcurrency::ConcurrencyUnspecified) => None,
        Ok(common_pb::state_options::StateConcurrency::ConcurrencyFirstWrite) => {
            Some("first-write".into())
        }
        Ok(common_pb::state_options::StateConcurrency::ConcurrencyLastWrite) => {
            Some("last-write".into())
        }
        Err(_) => Some(format!("<{raw}>")),
    }
}

fn consistency_name(raw: i32) -> Option<String> {
    match common_pb::state_options::StateConsistency::try_from(raw) {
        Ok(common_pb::state_options::StateConsistency::ConsistencyUnspecified) => None,
        Ok(common_pb::state_options::StateConsistency::ConsistencyEventual) => {
            Some("eventual".into())
        }
        Ok(common_pb::state_options::StateConsistency::ConsistencyStrong) => Some("strong".into()),
        Err(_) => Some(format!("<{raw}>")),
    }
}

/// The gRPC API stores raw bytes (the HTTP API stores JSON encodings).
fn save_item(item: common_pb::StateItem) -> SaveItem {
    let options = item.options.unwrap_or_default();
    SaveItem {
        key: item.key,
        value: item.value,
        etag: item.etag.map(|e| e.value),
        metadata: item.metadata,
        concurrency: concurrency_name(options.concurrency),
        consistency: consistency_name(options.consistency),
    }
}

async fn bulk_publish(
    rt: &Runtime,
    r: pb::BulkPublishRequest,
) -> Result<Response<pb::BulkPublishResponse>, Status> {
    let entries = r
        .entries
        .into_iter()
        .map(|e| crate::runtime::pubsub::BulkEntry {
            entry_id: e.entry_id,
            message: crate::runtime::pubsub::Message {
                data: e.event,
                content_type: (!e.content_type.is_empty()).then_some(e.content_type),
                metadata: e.metadata,
                traceparent: None,
                tracestate: None,
            },
        })
        .collect();
    let failed = rt
        .pubsub
        .bulk_publish(&r.pubsub_name, &r.topic, entries, r.metadata)
        .await?;
    Ok(Response::new(pb::BulkPublishResponse {
        failed_entries: failed
            .into_iter()
            .map(|f| pb::BulkPublishResponseFailedEntry {
                entry_id: f.entry_id,
                error: f.error,
            })
            .collect(),
    }))
}

#[tonic::async_trait]
impl pb::dapr_server::Dapr for DaprService {
    #[tracing::instrument(skip_all, fields(rpc.method = "GetState"))]
    async fn get_state(
        &self,
        request: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        let r = request.into_inner();
        let found = self
            .rt
            .state
            .get(
                &r.store_name,
                &r.key,
                consistency_name(r.consistency).as_deref(),
                r.metadata,
            )
            .await?;
        Ok(Response::new(match found {
            None => pb::GetStateResponse::default(),
            Some(item) => pb::GetStateResponse {
                data: item.data,
                etag: item.etag.unwrap_or_default(),
                metadata: item.metadata,
            },
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetBulkState"))]
    async fn get_bulk_state(
        &self,
        request: Request<pb::GetBulkStateRequest>,
    ) -> Result<Response<pb::GetBulkStateResponse>, Status> {
        let r = request.into_inner();
        let items = self
            .rt
            .state
            .bulk_get(&r.store_name, r.keys, r.metadata)
            .await?;
        Ok(Response::new(pb::GetBulkStateResponse {
            items: items
                .into_iter()
                .map(|i| {
                    let item = i.item.unwrap_or_default();
                    pb::BulkStateItem {
                        key: i.key,
                        data: item.data,
                        etag: item.etag.unwrap_or_default(),
                        error: i.error.unwrap_or_default(),
                        metadata: item.metadata,
                    }
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "SaveState"))]
    async fn save_state(
        &self,
        request: Request<pb::SaveStateRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.rt
            .state
            .save(&r.store_name, r.states.into_iter().map(save_item).collect())
            .await?;
        Ok(Response::new(()))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "QueryStateAlpha1"))]
    async fn query_state_alpha1(
        &self,
        request: Request<pb::QueryStateRequest>,
    ) -> Result<Response<pb::QueryStateResponse>, Status> {
        let r = request.into_inner();
        let query: serde_json::Value = serde_json::from_str(&r.query).map_err(|e| {
            Status::from(crate::error::ApiError::new(
                crate::error::codes::ERR_MALFORMED_REQUEST,
                format!("query: is not JSON: {e}"),
            ))
        })?;
        let (results, token) = self
            .rt
            .state
            .query(&r.store_name, &query, r.metadata)
            .await?;
        Ok(Response::new(pb::QueryStateResponse {
            results: results
                .into_iter()
                .map(|q| pb::QueryStateItem {
                    key: q.key,
                    data: q.data,
                    etag: q.etag.unwrap_or_default(),
                    error: q.error.unwrap_or_default(),
                })
                .collect(),
            token: token.unwrap_or_default(),
            metadata: HashMap::new(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "DeleteState"))]
    async fn delete_state(
        &self,
        request: Request<pb::DeleteStateRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        let options = r.options.unwrap_or_default();
        let item = SaveItem {
            key: r.key,
            etag: r.etag.map(|e| e.value),
            metadata: r.metadata,
            concurrency: concurrency_name(options.concurrency),
            consistency: consistency_name(options.consistency),
            ..Default::default()
        };
        self.rt.state.delete(&r.store_name, item).await?;
        Ok(Response::new(()))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "DeleteBulkState"))]
    async fn delete_bulk_state(
        &self,
        request: Request<pb::DeleteBulkStateRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.rt
            .state
            .delete_bulk(&r.store_name, r.states.into_iter().map(save_item).collect())
            .await?;
        Ok(Response::new(()))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ExecuteStateTransaction"))]
    async fn execute_state_transaction(
        &self,
        request: Request<pb::ExecuteStateTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        let mut operations = Vec::with_capacity(r.operations.len());
        for (i, op) in r.operations.into_iter().enumerate() {
            let item = save_item(op.request.unwrap_or_default());
            operations.push(match op.operation_type.as_str() {
                "upsert" => Operation::Upsert(item),
                "delete" => Operation::Delete(item),
                other => {
                    return Err(crate::error::ApiError::new(
                        crate::error::codes::ERR_NOT_SUPPORTED_STATE_OPERATION,
                        format!("operations[{i}].operationType: {other:?} is not upsert or delete"),
                    )
                    .into());
                }
            });
        }
        self.rt
            .state
            .transact(&r.store_name, operations, r.metadata)
            .await?;
        Ok(Response::new(()))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "PublishEvent"))]
    async fn publish_event(
        &self,
        request: Request<pb::PublishEventRequest>,
    ) -> Result<Response<()>, Status> {
        let traceparent = request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let r = request.into_inner();
        let message = crate::runtime::pubsub::Message {
            data: r.data,
            content_type: (!r.data_content_type.is_empty()).then_some(r.data_content_type),
            metadata: r.metadata,
            traceparent,
            tracestate: None,
        };
        self.rt
            .pubsub
            .publish(&r.pubsub_name, &r.topic, message)
            .await?;
        Ok(Response::new(()))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "BulkPublishEvent"))]
    async fn bulk_publish_event(
        &self,
        request: Request<pb::BulkPublishRequest>,
    ) -> Result<Response<pb::BulkPublishResponse>, Status> {
        bulk_publish(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "BulkPublishEventAlpha1"))]
    async fn bulk_publish_event_alpha1(
        &self,
        request: Request<pb::BulkPublishRequest>,
    ) -> Result<Response<pb::BulkPublishResponse>, Status> {
        bulk_publish(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "SubscribeTopicEventsAlpha1"))]
    async fn subscribe_topic_events_alpha1(
        &self,
        request: Request<tonic::Streaming<pb::SubscribeTopicEventsRequestAlpha1>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SubscribeTopicEventsResponseAlpha1>>, Status>
    {
        use pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as In;
        use pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Out;
        let mut inbound = request.into_inner();
        let first = inbound.message().await?.ok_or_else(|| {
            Status::invalid_argument("initial_request: the stream closed before it")
        })?;
        let Some(In::InitialRequest(init)) = first.subscribe_topic_events_request_type else {
            return Err(Status::invalid_argument(
                "initial_request: the first message must be the initial request",
            ));
        };
        let subscription = crate::runtime::subscribe::Subscription {
            pubsub: init.pubsub_name,
            topic: init.topic,
            rules: Vec::new(),
            route: None,
            metadata: init.metadata,
            dead_letter_topic: init.dead_letter_topic.filter(|t| !t.is_empty()),
            bulk: None,
        };
        let (mut events, answers) = crate::runtime::streaming::open_stream(
            std::sync::Arc::clone(&self.rt.registry),
            self.rt.config.app_id.clone(),
            subscription,
        )
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let initial = pb::SubscribeTopicEventsResponseAlpha1 {
            subscribe_topic_events_response_type: Some(Out::InitialResponse(
                pb::SubscribeTopicEventsResponseInitialAlpha1 {},
            )),
        };
        tx.send(Ok(initial))
            .await
            .map_err(|_| Status::cancelled("the subscriber went away"))?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = events.recv() => {
                        let Some(event) = event else { return };
                        let out = pb::SubscribeTopicEventsResponseAlpha1 {
                            subscribe_topic_events_response_type: Some(Out::EventMessage(event)),
                        };
                        if tx.send(Ok(out)).await.is_err() {
                            return;
                        }
                    }
                    message = inbound.message() => {
                        let Ok(Some(message)) = message else { return };
                        let Some(In::EventProcessed(done)) = message.subscribe_topic_events_request_type else {
                            let _ = tx.send(Err(Status::invalid_argument("event_processed: expected after the initial request"))).await;
                            return;
                        };
                        let verdict = match done.status.map(|s| s.status) {
                            Some(0) | None => crate::runtime::subscribe::Verdict::Success,
                            Some(2) => crate::runtime::subscribe::Verdict::Drop,
                            Some(_) => crate::runtime::subscribe::Verdict::Retry,
                        };
                        if answers.send((done.id, verdict)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetConfiguration"))]
    async fn get_configuration(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Result<Response<pb::GetConfigurationResponse>, Status> {
        configuration::get(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "SubscribeConfiguration"))]
    async fn subscribe_configuration(
        &self,
        request: Request<pb::SubscribeConfigurationRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SubscribeConfigurationResponse>>, Status>
    {
        configuration::subscribe(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UnsubscribeConfiguration"))]
    async fn unsubscribe_configuration(
        &self,
        request: Request<pb::UnsubscribeConfigurationRequest>,
    ) -> Result<Response<pb::UnsubscribeConfigurationResponse>, Status> {
        configuration::unsubscribe(&self.rt, request.into_inner())
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetConfigurationAlpha1"))]
    async fn get_configuration_alpha1(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Result<Response<pb::GetConfigurationResponse>, Status> {
        configuration::get(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "SubscribeConfigurationAlpha1"))]
    async fn subscribe_configuration_alpha1(
        &self,
        request: Request<pb::SubscribeConfigurationRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SubscribeConfigurationResponse>>, Status>
    {
        configuration::subscribe(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UnsubscribeConfigurationAlpha1"))]
    async fn unsubscribe_configuration_alpha1(
        &self,
        request: Request<pb::UnsubscribeConfigurationRequest>,
    ) -> Result<Response<pb::UnsubscribeConfigurationResponse>, Status> {
        configuration::unsubscribe(&self.rt, request.into_inner())
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "InvokeService"))]
    async fn invoke_service(
        &self,
        request: Request<pb::InvokeServiceRequest>,
    ) -> Result<Response<common_pb::InvokeResponse>, Status> {
        invoke::invoke_service(&self.rt, request).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "InvokeActor"))]
    async fn invoke_actor(
        &self,
        request: Request<pb::InvokeActorRequest>,
    ) -> Result<Response<pb::InvokeActorResponse>, Status> {
        actors::invoke(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetActorState"))]
    async fn get_actor_state(
        &self,
        request: Request<pb::GetActorStateRequest>,
    ) -> Result<Response<pb::GetActorStateResponse>, Status> {
        actors::get_state(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ExecuteActorStateTransaction"))]
    async fn execute_actor_state_transaction(
        &self,
        request: Request<pb::ExecuteActorStateTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        actors::transaction(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "RegisterActorReminder"))]
    async fn register_actor_reminder(
        &self,
        request: Request<pb::RegisterActorReminderRequest>,
    ) -> Result<Response<()>, Status> {
        actors::register_reminder(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UnregisterActorReminder"))]
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

    #[tracing::instrument(skip_all, fields(rpc.method = "GetActorReminder"))]
    async fn get_actor_reminder(
        &self,
        request: Request<pb::GetActorReminderRequest>,
    ) -> Result<Response<pb::GetActorReminderResponse>, Status> {
        actors::get_reminder(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListActorReminders"))]
    async fn list_actor_reminders(
        &self,
        request: Request<pb::ListActorRemindersRequest>,
    ) -> Result<Response<pb::ListActorRemindersResponse>, Status> {
        actors::list_reminders(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UnregisterActorRemindersByType"))]
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

    #[tracing::instrument(skip_all, fields(rpc.method = "SubscribeActorEventsAlpha1"))]
    async fn subscribe_actor_events_alpha1(
        &self,
        request: Request<tonic::Streaming<pb::SubscribeActorEventsRequestAlpha1>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SubscribeActorEventsResponseAlpha1>>, Status>
    {
        let stream = self.rt.actors.subscribe(request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "RegisterActorTimer"))]
    async fn register_actor_timer(
        &self,
        request: Request<pb::RegisterActorTimerRequest>,
    ) -> Result<Response<()>, Status> {
        actors::register_timer(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UnregisterActorTimer"))]
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

    #[tracing::instrument(skip_all, fields(rpc.method = "StartWorkflowBeta1"))]
    async fn start_workflow_beta1(
        &self,
        request: Request<pb::StartWorkflowRequest>,
    ) -> Result<Response<pb::StartWorkflowResponse>, Status> {
        workflows::start(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetWorkflowBeta1"))]
    async fn get_workflow_beta1(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        workflows::get(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "TerminateWorkflowBeta1"))]
    async fn terminate_workflow_beta1(
        &self,
        request: Request<pb::TerminateWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::terminate(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "PauseWorkflowBeta1"))]
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

    #[tracing::instrument(skip_all, fields(rpc.method = "ResumeWorkflowBeta1"))]
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

    #[tracing::instrument(skip_all, fields(rpc.method = "RaiseEventWorkflowBeta1"))]
    async fn raise_event_workflow_beta1(
        &self,
        request: Request<pb::RaiseEventWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::raise_event(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "PurgeWorkflowBeta1"))]
    async fn purge_workflow_beta1(
        &self,
        request: Request<pb::PurgeWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::purge(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "StartWorkflowAlpha1"))]
    async fn start_workflow_alpha1(
        &self,
        request: Request<pb::StartWorkflowRequest>,
    ) -> Result<Response<pb::StartWorkflowResponse>, Status> {
        workflows::start(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetWorkflowAlpha1"))]
    async fn get_workflow_alpha1(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        workflows::get(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "TerminateWorkflowAlpha1"))]
    async fn terminate_workflow_alpha1(
        &self,
        request: Request<pb::TerminateWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::terminate(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "PauseWorkflowAlpha1"))]
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

    #[tracing::instrument(skip_all, fields(rpc.method = "ResumeWorkflowAlpha1"))]
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

    #[tracing::instrument(skip_all, fields(rpc.method = "RaiseEventWorkflowAlpha1"))]
    async fn raise_event_workflow_alpha1(
        &self,
        request: Request<pb::RaiseEventWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::raise_event(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "PurgeWorkflowAlpha1"))]
    async fn purge_workflow_alpha1(
        &self,
        request: Request<pb::PurgeWorkflowRequest>,
    ) -> Result<Response<()>, Status> {
        workflows::purge(&self.rt, request.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetSecret"))]
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

    #[tracing::instrument(skip_all, fields(rpc.method = "GetBulkSecret"))]
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

    #[tracing::instrument(skip_all, fields(rpc.method = "InvokeBinding"))]
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

    #[tracing::instrument(skip_all, fields(rpc.method = "GetMetadata"))]
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

    #[tracing::instrument(skip_all, fields(rpc.method = "SetMetadata"))]
    async fn set_metadata(
        &self,
        request: Request<pb::SetMetadataRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.rt.set_extended(r.key, r.value);
        Ok(Response::new(()))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "Shutdown"))]
    async fn shutdown(
        &self,
        _request: Request<pb::ShutdownRequest>,
    ) -> Result<Response<()>, Status> {
        self.rt.shutdown.cancel();
        Ok(Response::new(()))
    }
}
