//! `outrigger-local`: the embedded default component. Durable state and
//! pub/sub on one SQLite file, local secret stores and a cron binding, with
//! nothing to install.
//!
//! # Layout
//! - [`state`]: `state.sqlite`: ETags, first/last-write, TTL, transactions,
//!   bulk, the query API (`state/query.rs`).
//! - [`pubsub`]: `pubsub.sqlite`: durable topics, a cursor per consumer
//!   group, at-least-once delivery with leases.
//! - [`secrets`]: `secretstores.local.file` and `secretstores.local.env`.
//! - [`cron`]: the `bindings.cron` input binding.
//! - [`db`]: opening the SQLite file (WAL) and shared metadata checks.
//!
//! Sockets: `local.sock` serves state, pub/sub, the file secret store and
//! the cron binding; `local-env.sock` serves the env secret store (one socket
//! hosts one component per block).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod cron;
pub mod db;
pub mod pubsub;
pub mod secrets;
pub mod state;

use outrigger_component_sdk::ComponentServer;

/// Socket name of the main service (`state.sqlite`, `pubsub.sqlite`, ...).
pub const SOCKET: &str = "local";
/// Socket name of the env secret store.
pub const ENV_SOCKET: &str = "local-env";

/// Both sockets of this component on `server`.
pub fn services(server: ComponentServer) -> ComponentServer {
    server
        .service(SOCKET, |s| {
            s.state_store(state::SqliteState::default)
                .pubsub(pubsub::SqlitePubSub::default)
                .secret_store(secrets::FileSecrets::default)
                .input_binding(cron::Cron::default)
        })
        .service(ENV_SOCKET, |s| s.secret_store(secrets::EnvSecrets::default))
}
