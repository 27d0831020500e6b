//! Talking to pluggable components over their Unix sockets: discovery by
//! gRPC reflection, one lazily connected channel per component with the
//! `x-component-instance` header on every call, and the registry that
//! initialises, health-checks and re-initialises them.

pub mod channel;
pub mod discovery;
pub mod registry;
pub mod unary;

pub use registry::{Component, Readiness, Registry, RegistryError};

/// Our shipped components' sockets for Dapr's built-in type names, so Dapr
/// resource folders load unchanged: `(type, socket name)`.
pub const BUILTIN_TYPES: &[(&str, &str)] = &[
    ("state.sqlite", "local"),
    ("pubsub.sqlite", "local"),
    ("state.local", "local"),
    ("pubsub.local", "local"),
    ("secretstores.local.file", "local"),
    ("bindings.cron", "local"),
    ("secretstores.local.env", "local-env"),
    ("state.postgresql", "postgres"),
    ("configuration.postgresql", "postgres"),
    ("bindings.postgresql", "postgres"),
    ("pubsub.jetstream", "nats"),
    ("state.jetstream", "nats"),
    ("pubsub.azure.servicebus.topics", "servicebus"),
    ("bindings.azure.servicebusqueues", "servicebus"),
];
