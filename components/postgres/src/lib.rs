//! `outrigger-postgres`: Dapr's `state.postgresql` on a real PostgreSQL.
//!
//! # Layout
//! - [`binding`]: the `bindings.postgresql` output binding (`exec`, `query`, `close`).
//! - [`state`]: the state store (ETags from a per-write random version,
//!   first-write, TTL with background cleanup, atomic transactions, bulk
//!   operations in one transaction, the query API, versioned migrations).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod binding;
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
    })
}
