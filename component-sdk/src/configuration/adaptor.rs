//! The tonic `outrigger.components.v1.ConfigurationStore` service.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use outrigger_proto::common::ConfigurationItem as WireItem;
use outrigger_proto::components as dapr_pb;
use outrigger_proto::outrigger::components::v1 as pb;

use crate::configuration::{ConfigurationRequest, ConfigurationStore, Items};
use crate::instance::Instances;

/// How many update batches may wait for the host to read them.
const OUTBOUND_BUFFER: usize = 16;

/// Serves one socket's configuration store instances.
#[derive(Clone)]
pub(crate) struct ConfigurationAdaptor {
    instances: Arc<Instances<dyn ConfigurationStore>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl ConfigurationAdaptor {
    pub(crate) fn new(
        instances: Instances<dyn ConfigurationStore>,
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

fn to_wire(items: Items) -> HashMap<String, WireItem> {
    items
        .into_iter()
        .map(|(key, item)| {
            (
                key,
                WireItem {
                    value: item.value,
                    version: item.version,
                    metadata: item.metadata,
                },
            )
        })
        .collect()
}

/// Keys must be non-empty: an empty key is a caller mistake, not "all keys".
fn request(
    keys: Vec<String>,
    metadata: HashMap<String, String>,
) -> Result<ConfigurationRequest, Status> {
    if keys.iter().any(String::is_empty) {
        return Err(
            crate::ComponentError::invalid_argument("keys", "a key must not be empty").into(),
        );
    }
    Ok(ConfigurationRequest { keys, metadata })
}

#[tonic::async_trait]
impl pb::configuration_store_server::ConfigurationStore for ConfigurationAdaptor {
    #[tracing::instrument(skip_all, fields(block = "configuration", op = "init", instance))]
    async fn init(
        &self,
        request: Request<pb::ConfigurationStoreInitRequest>,
    ) -> Result<Response<pb::ConfigurationStoreInitResponse>, Status> {
        let (headers, _, body) = request.into_parts();
        self.instances
            .init_call(
                &headers,
                body.metadata,
                |c, m| async move { c.init(m).await },
            )
            .await?;
        Ok(Response::new(pb::ConfigurationStoreInitResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "configuration", op = "features"))]
    async fn features(
        &self,
        request: Request<dapr_pb::FeaturesRequest>,
    ) -> Result<Response<dapr_pb::FeaturesResponse>, Status> {
        let c = self.instances.get(request.metadata())?;
        Ok(Response::new(dapr_pb::FeaturesResponse {
            features: c.features(),
        }))
    }

    #[tracing::instrument(skip_all, fields(block = "configuration", op = "get"))]
    async fn get(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Result<Response<pb::GetConfigurationResponse>, Status> {
        let c = self.instances.get(request.metadata())?;
        let body = request.into_inner();
        let items = c.get(self::request(body.keys, body.metadata)?).await?;
        Ok(Response::new(pb::GetConfigurationResponse {
            items: to_wire(items),
        }))
    }

    #[tracing::instrument(skip_all, fields(block = "configuration", op = "subscribe"))]
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeConfigurationRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::ConfigurationUpdate>>, Status> {
        let c = self.instances.get(request.metadata())?;
        let body = request.into_inner();
        let mut updates = c
            .subscribe(self::request(body.keys, body.metadata)?)
            .await?;
        let (tx, rx) = mpsc::channel(OUTBOUND_BUFFER);
        // The "listening" marker: the store returned, so it hears every later change.
        if tx
            .send(Ok(pb::ConfigurationUpdate::default()))
            .await
            .is_err()
        {
            return Err(Status::cancelled("the host closed the subscription"));
        }
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tx.closed() => break,
                    update = updates.next() => match update {
                        Some(Ok(items)) => {
                            let update = pb::ConfigurationUpdate { items: to_wire(items) };
                            if tx.send(Ok(update)).await.is_err() {
                                break;
                            }
                        }
                        Some(Err(err)) => {
                            tracing::warn!(error = %err, "configuration subscription ended with an error");
                            let _ = tx.send(Err(Status::from(err))).await;
                            break;
                        }
                        None => break,
                    },
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[tracing::instrument(skip_all, fields(block = "configuration", op = "ping"))]
    async fn ping(
        &self,
        request: Request<dapr_pb::PingRequest>,
    ) -> Result<Response<dapr_pb::PingResponse>, Status> {
        self.instances.get(request.metadata())?.ping().await?;
        Ok(Response::new(dapr_pb::PingResponse {}))
    }
}
