//! `outrigger-postgres`: Dapr's `state.postgresql`, `configuration.postgresql` and
//! `bindings.postgresql` on a real PostgreSQL.
//!
//! # Layout
//! - [`binding`]: the `bindings.postgresql` output binding (`exec`, `query`, `close`).
//! - [`configuration`]: `configuration.postgresql`, items in a table with
//!   changes pushed by a trigger through `LISTEN/NOTIFY`.
//! - [`state`]: the state store (ETags from a per-write random version,
//!   first-write, TTL with background cleanup, atomic transactions, bulk
//!   operations in one transaction, the query API, versioned migrations).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod binding;
pub mod configuration;
mod query;
pub mod state;

use outrigger_component_sdk::ComponentServer;

/// Socket name (`state.postgresql` maps to it).
pub const SOCKET: &str = "postgres";

/// This component's socket on `server`.
pub fn services(server: ComponentServer) -> ComponentServer {
    server.service(SOCKET, |s| {
        s.state_store(state::PgState::default)
            .output_binding(binding::PgBinding::default)
            .configuration_store(configuration::PgConfiguration::default)
    })
}
