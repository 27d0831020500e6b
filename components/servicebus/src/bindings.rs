//! `bindings.azure.servicebusqueues`: the output binding sends to a queue
//! (`create`); the input binding peek-locks from it and completes a message
//! only after the app answered with success (abandons it otherwise).

use std::sync::{Arc, OnceLock};

use azure_core::HttpClient;
use azure_messaging_servicebus::service_bus::QueueClient;
use outrigger_component_sdk::bindings::*;
use outrigger_component_sdk::{ComponentError, Metadata, async_trait};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::entities::{Entities, Kind};
use crate::message::outgoing;
use crate::receiver::{Receiver, Recreate, Source};
use crate::send::send_with_retries;
use crate::settings::{QUEUE_KEYS, Settings, check_entity, check_keys, settings};

/// Longest queue path Service Bus accepts.
const MAX_QUEUE: usize = 260;
/// The output operation.
const CREATE: &str = "create";

struct Open {
    settings: Settings,
    queue: String,
    client: QueueClient,
    entities: Entities,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

/// Shared `Init` of both directions: settings, the queue, its client, and
/// the queue itself (created, or checked to exist).
async fn open(http: &Arc<dyn HttpClient>, metadata: &Metadata) -> Result<Open, ComponentError> {
    check_keys(metadata, QUEUE_KEYS)?;
    let settings = settings(metadata)?;
    let queue = metadata
        .get("queueName")
        .map(str::to_owned)
        .or_else(|| settings.namespace.entity_path.clone())
        .ok_or_else(|| {
            ComponentError::invalid_argument(
                "queueName",
                "required metadata is missing (or set EntityPath in connectionString)",
            )
        })?;
    check_entity("queueName", &queue, MAX_QUEUE, true)?;
    let ns = &settings.namespace;
    let client = QueueClient::new(http.clone(), &ns.name, &queue, &ns.key_name, ns.key.clone())
        .map_err(|e| ComponentError::internal(format!("queue client for {queue}: {e}")))?;
    let entities = Entities::new(http.clone(), ns.clone(), settings.timeout);
    if settings.manage_entities {
        entities
            .ensure(Kind::Queue, &queue, &settings.entity)
            .await?;
    } else if !entities.exists(Kind::Queue, &queue).await? {
        return Err(ComponentError::invalid_argument(
            "queueName",
            format!(
                "queue {queue:?} does not exist in namespace {:?}, and disableEntityManagement is true",
                ns.name
            ),
        ));
    }
    let stop = CancellationToken::new();
    Ok(Open {
        settings,
        queue,
        client,
        entities,
        stop: stop.clone(),
        _stop_on_drop: stop.drop_guard(),
    })
}

fn opened(open: &OnceLock<Arc<Open>>) -> Result<&Arc<Open>, ComponentError> {
    open.get()
        .ok_or_else(|| ComponentError::failed_precondition("Init has not been called"))
}

fn set(cell: &OnceLock<Arc<Open>>, open: Open) -> Result<(), ComponentError> {
    cell.set(Arc::new(open)).map_err(|_| {
        ComponentError::failed_precondition("Init was already called on this instance")
    })
}

/// The queue output binding.
pub struct QueueOutput {
    http: Arc<dyn HttpClient>,
    open: OnceLock<Arc<Open>>,
}

impl QueueOutput {
    /// An output binding whose requests go through `http`.
    pub fn new(http: Arc<dyn HttpClient>) -> Self {
        Self {
            http,
            open: OnceLock::new(),
        }
    }
}

#[async_trait]
impl OutputBinding for QueueOutput {
    #[tracing::instrument(skip_all, fields(component = "bindings.azure.servicebusqueues"))]
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        set(&self.open, open(&self.http, &metadata).await?)
    }

    fn operations(&self) -> Vec<String> {
        vec![CREATE.to_owned()]
    }

    #[tracing::instrument(skip_all, fields(operation = %request.operation))]
    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, ComponentError> {
        let open = opened(&self.open)?;
        let content_type = request.metadata.get("contentType").cloned();
        let message = outgoing(request.data, &request.metadata, content_type.as_deref())?;
        let client = open.client.clone();
        send_with_retries(
            &open.settings,
            &open.queue,
            "queue",
            message,
            |body, options| {
                let client = client.clone();
                async move { client.send_message(&body, Some(options)).await }
            },
        )
        .await?;
        Ok(InvokeResponse::default())
    }

    async fn ping(&self) -> Result<(), ComponentError> {
        opened(&self.open).map(drop)
    }
}

/// The queue input binding.
pub struct QueueInput {
    http: Arc<dyn HttpClient>,
    open: OnceLock<Arc<Open>>,
}

impl QueueInput {
    /// An input binding whose requests go through `http`.
    pub fn new(http: Arc<dyn HttpClient>) -> Self {
        Self {
            http,
            open: OnceLock::new(),
        }
    }
}

#[async_trait]
impl InputBinding for QueueInput {
    #[tracing::instrument(skip_all, fields(component = "bindings.azure.servicebusqueues"))]
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        set(&self.open, open(&self.http, &metadata).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn read(&self) -> Result<EventStream, ComponentError> {
        let open = opened(&self.open)?.clone();
        let recreate: Option<Recreate> = open.settings.manage_entities.then(|| {
            let open = open.clone();
            Arc::new(move || {
                let open = open.clone();
                Box::pin(async move {
                    open.entities
                        .ensure(Kind::Queue, &open.queue, &open.settings.entity)
                        .await
                }) as futures::future::BoxFuture<'static, _>
            }) as Recreate
        });
        let (tx, rx) = mpsc::channel(1);
        let receiver = Receiver {
            source: Source::Queue(open.client.clone()),
            entity: open.queue.clone(),
            settings: open.settings.clone(),
            recreate,
            stop: open.stop.child_token(),
            tx,
            wrap: Box::new(|m| InputEvent {
                data: m.body,
                metadata: m.metadata,
                content_type: m.content_type,
            }),
        };
        tokio::spawn(receiver.run());
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn ping(&self) -> Result<(), ComponentError> {
        opened(&self.open).map(drop)
    }
}
