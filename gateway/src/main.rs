//! `outrigger`: the gateway (sidecar) binary.
//!
//! Run with:
//!     outrigger --app-id myapp --resources-path ./resources
//! (`outrigger --help` lists every flag.)

use clap::Parser;
use tokio_util::sync::CancellationToken;

use outrigger::config::GatewayArgs;

#[derive(Parser)]
#[command(name = "outrigger", version, about = "Dapr-compatible sidecar gateway")]
struct Cli {
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match cli.gateway.validate(|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("outrigger: invalid configuration: {err}");
            return std::process::ExitCode::from(64);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log_level))
        .init();
    let shutdown = CancellationToken::new();
    let gateway = match outrigger::Gateway::start(config, shutdown.clone()).await {
        Ok(gateway) => gateway,
        Err(err) => {
            eprintln!("outrigger: {err}");
            return std::process::ExitCode::from(1);
        }
    };
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        signal.cancel();
    });
    gateway.wait().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
