//! The binding building blocks: [`InputBinding`] (events from outside into
//! the app) and [`OutputBinding`] (operations the app invokes).

use std::collections::HashMap;

use async_trait::async_trait;

use crate::{ComponentError, DeliveryStream, Metadata};

pub(crate) mod adaptor;

/// An event an input binding hands to the app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputEvent {
    /// The payload.
    pub data: Vec<u8>,
    /// Event metadata (sent to the app as headers).
    pub metadata: HashMap<String, String>,
    /// Its content type, when known.
    pub content_type: Option<String>,
}

/// Input-binding events; the ack carries the app's response bytes.
pub type EventStream = DeliveryStream<InputEvent, Vec<u8>>;

/// An input binding component.
#[async_trait]
pub trait InputBinding: Send + Sync + 'static {
    /// Configure from component metadata. Called once per instance.
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError>;

    /// Start producing events. The stream lives as long as the host reads.
    async fn read(&self) -> Result<EventStream, ComponentError>;

    /// Liveness check.
    async fn ping(&self) -> Result<(), ComponentError> {
        Ok(())
    }
}

/// An operation invoked on an output binding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeRequest {
    /// Operation name (e.g. `create`, `get`, `exec`); one of [`OutputBinding::operations`].
    pub operation: String,
    /// The payload.
    pub data: Vec<u8>,
    /// Request metadata.
    pub metadata: HashMap<String, String>,
}

/// The result of an output-binding operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeResponse {
    /// Response payload (may be empty).
    pub data: Vec<u8>,
    /// Response metadata (returned to the app as `metadata.*` headers).
    pub metadata: HashMap<String, String>,
    /// Content type of `data`.
    pub content_type: Option<String>,
}

/// An output binding component.
#[async_trait]
pub trait OutputBinding: Send + Sync + 'static {
    /// Configure from component metadata. Called once per instance.
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError>;

    /// Operations this binding supports. The SDK refuses any other with
    /// `InvalidArgument` before [`OutputBinding::invoke`] is called.
    fn operations(&self) -> Vec<String>;

    /// Perform one operation.
    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, ComponentError>;

    /// Liveness check.
    async fn ping(&self) -> Result<(), ComponentError> {
        Ok(())
    }
}
