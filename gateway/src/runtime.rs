//! Transport-agnostic building-block logic. The HTTP and gRPC adapters both
//! call these, so the two APIs share one behaviour and one error mapping.

pub mod bindings;
pub mod bulk;
pub mod configuration;
pub mod input;
pub mod invoke;
pub mod pubsub;
pub mod secrets;
pub mod state;
pub mod streaming;
pub mod subscribe;

use std::sync::Arc;

use crate::components::{Component, Registry};
use crate::error::{ApiError, codes};
use crate::resources::Block;

/// A component of `block` called `name`, ready to serve, or the Dapr error
/// for a missing / unconfigured / not-ready one.
pub(crate) fn component(
    registry: &Registry,
    block: Block,
    name: &str,
    not_configured: codes::Entry,
    not_found: codes::Entry,
) -> Result<Arc<Component>, ApiError> {
    if registry.of_block(block).next().is_none() {
        return Err(ApiError::new(
            not_configured,
            format!("no {} component is configured", block.prefix()),
        ));
    }
    let found = registry
        .get(name)
        .filter(|c| c.spec.block == block)
        .ok_or_else(|| {
            ApiError::new(
                not_found,
                format!("{} {name} is not found", describe(block)),
            )
        })?;
    found
        .ensure_ready()
        .map_err(|reason| ApiError::new(codes::ERR_COMPONENT_NOT_READY, reason))?;
    Ok(found)
}

fn describe(block: Block) -> &'static str {
    match block {
        Block::State => "state store",
        Block::PubSub => "pubsub",
        Block::Bindings => "binding",
        Block::SecretStores => "secret store",
        Block::Configuration => "configuration store",
    }
}

/// A component call that failed at the transport level names the component.
pub(crate) fn unreachable(component: &Component, status: &tonic::Status) -> String {
    format!(
        "component {} ({}) failed: {}",
        component.spec.name,
        component.spec.component_type,
        status.message()
    )
}
