//! The tonic `InputBinding` and `OutputBinding` services.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};

use outrigger_proto::components as pb;

use crate::ComponentError;
use crate::bindings::*;
use crate::instance::Instances;
use crate::stream::{Answer, bridge};

/// Serves one socket's input binding instances.
#[derive(Clone)]
pub(crate) struct InputBindingAdaptor {
    instances: Arc<Instances<dyn InputBinding>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl InputBindingAdaptor {
    pub(crate) fn new(
        instances: Instances<dyn InputBinding>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            instances: Arc::new(instances),
            shutdown,
            tracker,
        }
    }
}

/// Serves one socket's output binding instances.
#[derive(Clone)]
pub(crate) struct OutputBindingAdaptor {
    instances: Arc<Instances<dyn OutputBinding>>,
}

impl OutputBindingAdaptor {
    pub(crate) fn new(instances: Instances<dyn OutputBinding>) -> Self {
        Self {
            instances: Arc::new(instances),
        }
    }
}

#[tonic::async_trait]
impl pb::input_binding_server::InputBinding for InputBindingAdaptor {
    #[tracing::instrument(skip_all, fields(block = "bindings.input", op = "init", instance))]
    async fn init(
        &self,
        request: Request<pb::InputBindingInitRequest>,
    ) -> Result<Response<pb::InputBindingInitResponse>, Status> {
        let (headers, _, body) = request.into_parts();
        self.instances
            .init_call(
                &headers,
                body.metadata,
                |c, m| async move { c.init(m).await },
            )
            .await?;
        Ok(Response::new(pb::InputBindingInitResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "bindings.input", op = "read"))]
    async fn read(
        &self,
        request: Request<Streaming<pb::ReadRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::ReadResponse>>, Status> {
        let c = self.instances.get(request.metadata())?;
        // Unlike PullMessages, the host sends nothing before the first event.
        let inbound = request.into_inner();
        let events = c.read().await?;
        let outbound = bridge(
            events,
            inbound,
            |id, e: InputEvent| pb::ReadResponse {
                data: e.data,
                metadata: e.metadata,
                content_type: e.content_type.unwrap_or_default(),
                message_id: id,
            },
            |ack: pb::ReadRequest| Answer {
                id: ack.message_id,
                verdict: match ack.response_error {
                    None => Ok(ack.response_data),
                    Some(e) => Err(e.message),
                },
            },
            self.shutdown.clone(),
            &self.tracker,
        );
        Ok(Response::new(Box::pin(outbound)))
    }

    #[tracing::instrument(skip_all, fields(block = "bindings.input", op = "ping"))]
    async fn ping(
        &self,
        request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        self.instances.get(request.metadata())?.ping().await?;
        Ok(Response::new(pb::PingResponse {}))
    }
}

#[tonic::async_trait]
impl pb::output_binding_server::OutputBinding for OutputBindingAdaptor {
    #[tracing::instrument(skip_all, fields(block = "bindings.output", op = "init", instance))]
    async fn init(
        &self,
        request: Request<pb::OutputBindingInitRequest>,
    ) -> Result<Response<pb::OutputBindingInitResponse>, Status> {
        let (headers, _, body) = request.into_parts();
        self.instances
            .init_call(
                &headers,
                body.metadata,
                |c, m| async move { c.init(m).await },
            )
            .await?;
        Ok(Response::new(pb::OutputBindingInitResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "bindings.output", op = "invoke", operation))]
    async fn invoke(
        &self,
        request: Request<pb::InvokeRequest>,
    ) -> Result<Response<pb::InvokeResponse>, Status> {
        let c = self.instances.get(request.metadata())?;
        let req = request.into_inner();
        tracing::Span::current().record("operation", req.operation.as_str());
        let supported = c.operations();
        if !supported.contains(&req.operation) {
            return Err(ComponentError::invalid_argument(
                "operation",
                format!(
                    "{:?} is not supported; supported operations: {}",
                    req.operation,
                    supported.join(", ")
                ),
            )
            .into());
        }
        let response = c
            .invoke(InvokeRequest {
                operation: req.operation,
                data: req.data,
                metadata: req.metadata,
            })
            .await?;
        Ok(Response::new(pb::InvokeResponse {
            data: response.data,
            metadata: response.metadata,
            content_type: response.content_type.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all, fields(block = "bindings.output", op = "list_operations"))]
    async fn list_operations(
        &self,
        request: Request<pb::ListOperationsRequest>,
    ) -> Result<Response<pb::ListOperationsResponse>, Status> {
        let c = self.instances.get(request.metadata())?;
        Ok(Response::new(pb::ListOperationsResponse {
            operations: c.operations(),
        }))
    }

    #[tracing::instrument(skip_all, fields(block = "bindings.output", op = "ping"))]
    async fn ping(
        &self,
        request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        self.instances.get(request.metadata())?.ping().await?;
        Ok(Response::new(pb::PingResponse {}))
    }
}
