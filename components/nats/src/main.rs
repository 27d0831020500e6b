//! `outrigger-nats`: serve the NATS JetStream component.
//!
//! Run with:
//!     outrigger-nats     # socket nats.sock in $DAPR_COMPONENTS_SOCKETS_FOLDER

use outrigger_component_sdk::{ComponentServer, shutdown_signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    outrigger_nats::services(ComponentServer::from_env())
        .serve(shutdown_signal())
        .await?;
    Ok(())
}
