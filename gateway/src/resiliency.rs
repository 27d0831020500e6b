//! `Resiliency` resources: timeouts, retries and circuit breakers, and the
//! targets they apply to.
//!
//! Applied so far: `spec.targets.apps.<appId>` (timeout, retry, circuit
//! breaker) to service invocation on the caller's gateway,
//! `spec.targets.components.<name>.outbound` to state get, save and
//! delete, publish and output-binding invocations (each component carries
//! its own, [`crate::components::Component::outbound_policy`]), and
//! `spec.targets.components.<name>.inbound.retry` to pub/sub delivery.
//! Other component calls, inbound timeouts and breakers, `targets.actors`
//! and Dapr's `Default*Policy` names are not applied yet.
//!
//! # Layout
//! - [`policy`]: the policy values, code ranges and trip conditions.
//! - [`breaker`]: the circuit breaker and its tower layer.
//! - [`layers`]: timeout and retry tower layers, and [`layers::stack`].
//! - [`outbound`]: a component's policies around one call to it.
//! - `spec`: the YAML shape and its checks.

pub mod breaker;
pub mod layers;
pub mod outbound;
pub mod policy;
mod spec;

use std::collections::HashMap;
use std::path::Path;

pub use breaker::{BreakerState, CircuitBreaker};
pub use layers::{Attempt, ResiliencyError};
pub use policy::{CircuitBreakerPolicy, CodeRanges, RetryPolicy, TargetPolicy, Trip};

use crate::resources::ResourceError;

/// The policies that apply to this app, by target.
#[derive(Debug, Clone, Default)]
pub struct Resiliency {
    /// Component name → inbound retry policy (delivery to the app).
    pub inbound: HashMap<String, RetryPolicy>,
    /// Component name → policies for calls to the component.
    pub outbound: HashMap<String, TargetPolicy>,
    /// Target app id → policies for invoking it.
    pub apps: HashMap<String, TargetPolicy>,
}

impl Resiliency {
    /// The policies for invoking `target` (`id`, or `id.namespace` when
    /// only `id` is listed).
    pub fn app(&self, target: &str) -> Option<&TargetPolicy> {
        self.apps
            .get(target)
            .or_else(|| target.split_once('.').and_then(|(id, _)| self.apps.get(id)))
    }
}

/// Add the `Resiliency` documents of `text` (file `path`) that apply to `app_id`.
///
/// # Errors
/// Malformed YAML or policies, or a target naming an undefined policy,
/// naming the file and the field.
pub fn add_file(
    into: &mut Resiliency,
    path: &Path,
    text: &str,
    app_id: &str,
) -> Result<(), ResourceError> {
    spec::add_file(into, path, text, app_id)
}

#[cfg(test)]
mod tests;
