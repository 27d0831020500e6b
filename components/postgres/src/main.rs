//! `outrigger-postgres`: serve the PostgreSQL component.
//!
//! Run with:
//!     outrigger-postgres     # socket postgres.sock in $DAPR_COMPONENTS_SOCKETS_FOLDER
//!     outrigger-postgres healthcheck   # exit 0 when every socket answers SERVING

/// mimalloc, as in the gateway: small buffers allocated and freed across
/// tasks and threads on every call cost less than with glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use outrigger_component_sdk::{ComponentServer, healthcheck_requested, shutdown_signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let server = outrigger_postgres::services(ComponentServer::from_env());
    if healthcheck_requested() {
        // `outrigger-postgres healthcheck`: the container image's HEALTHCHECK.
        return Ok(server.healthcheck().await?);
    }
    server.serve(shutdown_signal()).await?;
    Ok(())
}
