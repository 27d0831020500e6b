//! The configuration-store building block: [`ConfigurationStore`].
//!
//! Dapr has no pluggable protocol for configuration stores, so this block is
//! served as Outrigger's own `outrigger.components.v1.ConfigurationStore`
//! service; only the Outrigger gateway calls it (daprd cannot).
//!
//! Reading is a plain call. Subscribing returns an [`UpdateStream`]: the SDK
//! tells the host "listening" as soon as [`ConfigurationStore::subscribe`]
//! returns, then forwards each batch of changed items. Dropping the stream
//! (the host cancelled the subscription) is how a subscription ends, so a
//! store should release its listener when its stream is dropped.

use std::collections::HashMap;
use std::pin::Pin;

use async_trait::async_trait;
use tokio_stream::Stream;

use crate::{ComponentError, Metadata};

pub(crate) mod adaptor;

/// One configuration item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigurationItem {
    /// The value.
    pub value: String,
    /// Its version, as the store defines it.
    pub version: String,
    /// Per-item metadata.
    pub metadata: HashMap<String, String>,
}

/// Items by key.
pub type Items = HashMap<String, ConfigurationItem>;

/// Changed items, as they happen; an `Err` ends the subscription.
pub type UpdateStream = Pin<Box<dyn Stream<Item = Result<Items, ComponentError>> + Send>>;

/// A read or a subscription: which keys (none means all) and request metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigurationRequest {
    /// Keys asked for; empty means every key.
    pub keys: Vec<String>,
    /// Request metadata (e.g. `pgNotifyChannel`).
    pub metadata: HashMap<String, String>,
}

/// A configuration store component.
#[async_trait]
pub trait ConfigurationStore: Send + Sync + 'static {
    /// Configure from component metadata. Called once per instance.
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError>;

    /// Capability names to advertise (none are defined yet).
    fn features(&self) -> Vec<String> {
        Vec::new()
    }

    /// Items for `request.keys` (all items when empty). Keys the store does
    /// not hold are left out of the answer, not errors.
    async fn get(&self, request: ConfigurationRequest) -> Result<Items, ComponentError>;

    /// Changes to `request.keys` (all keys when empty) from now on. Return
    /// only once listening, so no change after the return is missed.
    async fn subscribe(
        &self,
        _request: ConfigurationRequest,
    ) -> Result<UpdateStream, ComponentError> {
        Err(ComponentError::unimplemented("configuration subscriptions"))
    }

    /// Liveness check.
    async fn ping(&self) -> Result<(), ComponentError> {
        Ok(())
    }
}
