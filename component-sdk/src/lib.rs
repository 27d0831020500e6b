//! Write Dapr-compatible pluggable components in Rust.
//!
//! A component is a process that serves one or more building blocks (state,
//! pub/sub, input and output bindings, secrets) over gRPC on a Unix socket.
//! The Outrigger gateway and Dapr's own daprd both discover it there, through
//! gRPC reflection, and talk to it with Dapr's `dapr.proto.components.v1`
//! protocol. This crate hides that protocol: implement one trait per block
//! with plain Rust types and hand a factory to [`ComponentServer`].
//!
//! ```no_run
//! use outrigger_component_sdk::{ComponentServer, shutdown_signal};
//! # use outrigger_component_sdk::state::*;
//! # use outrigger_component_sdk::{ComponentError, Metadata};
//! # #[derive(Default)] struct MyStore;
//! # #[async_trait::async_trait]
//! # impl StateStore for MyStore {
//! #     async fn init(&self, _: Metadata) -> Result<(), ComponentError> { Ok(()) }
//! #     async fn get(&self, _: GetRequest) -> Result<Option<StateItem>, ComponentError> { Ok(None) }
//! #     async fn set(&self, _: SetRequest) -> Result<(), ComponentError> { Ok(()) }
//! #     async fn delete(&self, _: DeleteRequest) -> Result<(), ComponentError> { Ok(()) }
//! # }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // <DAPR_COMPONENTS_SOCKETS_FOLDER>/my-store.sock, serving type `state.my-store`.
//! ComponentServer::from_env()
//!     .service("my-store", |s| s.state_store(MyStore::default))
//!     .serve(shutdown_signal())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`state`], [`pubsub`], [`bindings`], [`secrets`], [`configuration`]: one trait per block
//!   with its request and response types; optional capabilities are default
//!   methods, advertised through `features()`.
//! - [`ComponentServer`] / [`Service`]: sockets, reflection (v1alpha and v1),
//!   health, per-`x-component-instance` objects, stale-socket cleanup, and
//!   graceful shutdown ([`shutdown_signal`]).
//! - [`ComponentError`]: errors with the exact gRPC status and details daprd
//!   reads (ETag mismatch → 409, invalid ETag → 400, ...).
//! - [`Metadata`]: typed access to component metadata.
//! - [`Delivery`] / [`Outcome`]: messages handed to the host and the ack,
//!   nack or abandonment that comes back.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bindings;
pub mod configuration;
mod delivery;
mod error;
mod instance;
mod metadata;
pub mod pubsub;
pub mod secrets;
mod server;
pub mod state;
mod stream;
mod uds;

pub use async_trait::async_trait;
pub use delivery::{Delivery, DeliveryStream, Outcome, OutcomeReceiver, Responder};
pub use error::{ComponentError, ERROR_DOMAIN, ErrorKind};
pub use instance::INSTANCE_HEADER;
pub use metadata::{Metadata, parse_duration};
pub use server::healthcheck::{
    DEFAULT_HEALTHCHECK_TIMEOUT, HEALTHCHECK_ARG, HealthcheckError, healthcheck_requested,
};
pub use server::{
    ComponentServer, DEFAULT_GRACE_PERIOD, DEFAULT_SOCKETS_FOLDER, SOCKETS_FOLDER_ENV, ServeError,
    Service, shutdown_signal,
};
pub use uds::UnixConn;
