//! `outrigger-conformance`: run the conformance suite against a component socket.
//!
//! Run with:
//!     outrigger-conformance --socket /tmp/dapr-components-sockets/local.sock --block state \
//!         --metadata databaseFile=/tmp/c.db --operations etag,transaction,ttl,query
//!     outrigger-conformance --config conformance/config/state/local.yaml --socket PATH

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use outrigger_conformance::config::FileConfig;
use outrigger_conformance::{Block, SuiteConfig, Target, run};

#[derive(Parser)]
#[command(
    name = "outrigger-conformance",
    version,
    about = "Test any Dapr pluggable component over its Unix socket"
)]
struct Cli {
    /// The component's Unix socket.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Block to test: state, pubsub, bindings, secrets, configuration.
    #[arg(long)]
    block: Option<String>,
    /// Component instance name (x-component-instance); random by default.
    #[arg(long)]
    instance: Option<String>,
    /// Init metadata, `key=value`; repeatable.
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Declared capabilities, comma separated (e.g. etag,transaction,ttl,query).
    #[arg(long, value_delimiter = ',')]
    operations: Vec<String>,
    /// Only cases whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Per-case timeout in seconds.
    #[arg(long = "case-timeout")]
    case_timeout: Option<u64>,
    /// Configuration stores: a shell command that sets item
    /// `$CONFIGURATION_KEY` to `$CONFIGURATION_VALUE` in the backend.
    #[arg(long)]
    writer: Option<String>,
    /// A YAML file with the same settings (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn setup(cli: Cli) -> Result<(Target, SuiteConfig, bool), String> {
    let (mut target, mut config) = match &cli.config {
        Some(path) => FileConfig::load(path)
            .map_err(|e| e.to_string())?
            .into_parts(cli.socket.clone())
            .ok_or("no socket: give --socket or `socket:` in the config")?,
        None => {
            let socket = cli.socket.clone().ok_or("--socket is required")?;
            let block = cli
                .block
                .as_deref()
                .ok_or("--block is required (state, pubsub, bindings, secrets, configuration)")?;
            let block = Block::parse(block).ok_or_else(|| {
                format!(
                    "--block {block:?} is not state, pubsub, bindings, secrets or configuration"
                )
            })?;
            (Target::new(socket, block), SuiteConfig::default())
        }
    };
    if let Some(block) = &cli.block {
        target.block = Block::parse(block).ok_or_else(|| {
            format!("--block {block:?} is not state, pubsub, bindings, secrets or configuration")
        })?;
    }
    if let Some(instance) = cli.instance {
        target.instance = instance;
    }
    for pair in cli.metadata {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("--metadata {pair:?} must be key=value"))?;
        target.metadata.insert(k.to_owned(), v.to_owned());
    }
    config
        .operations
        .extend(cli.operations.into_iter().filter(|o| !o.is_empty()));
    if cli.filter.is_some() {
        config.filter = cli.filter;
    }
    if cli.writer.is_some() {
        config.writer = cli.writer;
    }
    if let Some(secs) = cli.case_timeout {
        config.case_timeout = Duration::from_secs(secs);
    }
    Ok((target, config, cli.json))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (target, config, json) = match setup(Cli::parse()) {
        Ok(parts) => parts,
        Err(why) => {
            eprintln!("outrigger-conformance: {why}");
            return ExitCode::from(64);
        }
    };
    let report = run(&target, &config).await;
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    if report.failed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
