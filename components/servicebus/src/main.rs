//! `outrigger-servicebus`: serve the Azure Service Bus component.
//!
//! Run with:
//!     outrigger-servicebus     # socket servicebus.sock in $DAPR_COMPONENTS_SOCKETS_FOLDER
//!     outrigger-servicebus healthcheck   # exit 0 when every socket answers SERVING
//!
//! `OUTRIGGER_SERVICEBUS_ENDPOINT=http://127.0.0.1:PORT` sends every Service
//! Bus request to that base URL instead of Azure (a loopback Service Bus).

/// mimalloc, as in the gateway: small buffers allocated and freed across
/// tasks and threads on every call cost less than with glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use outrigger_component_sdk::{ComponentServer, healthcheck_requested, shutdown_signal};
use outrigger_servicebus::Transport;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let transport = Transport::from_env()?;
    let server = outrigger_servicebus::services(ComponentServer::from_env(), transport);
    if healthcheck_requested() {
        // `outrigger-servicebus healthcheck`: the container image's HEALTHCHECK.
        return Ok(server.healthcheck().await?);
    }
    server.serve(shutdown_signal()).await?;
    Ok(())
}
