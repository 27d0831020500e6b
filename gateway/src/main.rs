//! `outrigger`: the gateway (sidecar) binary, and `outrigger run`, the local launcher.
//!
//! Run with:
//!     outrigger --app-id myapp --resources-path ./resources     # gateway only
//!     outrigger run --app-id myapp -- python3 app.py              # components + gateway + app
//!     outrigger healthcheck                                       # exit 0 when the gateway is ready
//! (`outrigger --help` and `outrigger run --help` list every flag.)

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use outrigger::config::{Config, GatewayArgs};
use outrigger::healthcheck::HealthcheckArgs;
use outrigger::launcher::{self, RunOptions};

#[derive(Parser)]
#[command(
    name = "outrigger",
    version,
    about = "Dapr-compatible sidecar gateway",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
enum Cmd {
    /// Start the components an app needs, the gateway, and the app; stop all of them together.
    Run(RunArgs),
    /// Exit 0 when the gateway here answers `GET /v1.0/healthz` with 2xx (a container HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Data folder of the embedded default (SQLite); default `$OUTRIGGER_DATA_DIR` or `~/.outrigger/data`.
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Run every app of a Dapr multi-app run template (a file, or a folder with `dapr.yaml`).
    #[arg(short = 'f', long = "run-file")]
    run_file: Option<PathBuf>,
    /// The app command, after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

fn validate(args: GatewayArgs) -> Result<Config, ExitCode> {
    args.validate(|k| std::env::var(k).ok()).map_err(|err| {
        eprintln!("outrigger: invalid configuration: {err}");
        ExitCode::from(64)
    })
}

fn init_logging(level: &str) {
    // Colour codes only for a terminal: written to a pipe or file they are
    // noise, and formatting them was ~5 % of the gateway's instructions per
    // request while request spans were at info level (a span's fields are
    // formatted when it opens).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let threads = match &cli.command {
        Some(Cmd::Run(run)) => run.gateway.worker_threads,
        Some(Cmd::Healthcheck(probe)) => {
            return match probe.run() {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("outrigger healthcheck: {err}");
                    ExitCode::from(1)
                }
            };
        }
        None => cli.gateway.worker_threads,
    };
    // One worker thread (the default): the current-thread scheduler, which
    // runs every task on this thread with no work-stealing bookkeeping (the
    // multi-thread one, even with one worker, times each batch of polls and
    // hands tasks between this thread and its worker).
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(usize::from(threads));
        builder
    };
    let runtime = builder.enable_all().build();
    match runtime {
        Ok(runtime) => runtime.block_on(serve(cli, matches)),
        Err(err) => {
            eprintln!("outrigger: cannot start the async runtime: {err}");
            ExitCode::from(1)
        }
    }
}

async fn serve(cli: Cli, matches: clap::ArgMatches) -> ExitCode {
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(outrigger::app_channel::keep_timer_armed());
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
        // A second signal exits at once.
        wait_for_signal().await;
        eprintln!("outrigger: second signal; exiting now");
        #[allow(clippy::disallowed_methods)] // main owns the process: the user asked twice
        std::process::exit(130);
    });

    match cli.command {
        Some(Cmd::Run(run)) if run.run_file.is_some() => run_template(run, shutdown).await,
        Some(Cmd::Run(mut run)) => {
            // Like `dapr run`, pick free API ports unless the user chose them,
            // so several runs on one machine never clash.
            if let Some((_, sub)) = matches.subcommand() {
                if sub.value_source("http_port") != Some(ValueSource::CommandLine) {
                    run.gateway.http_port = 0;
                }
                if sub.value_source("grpc_port") != Some(ValueSource::CommandLine) {
                    run.gateway.grpc_port = 0;
                }
                if sub.value_source("metrics_port") != Some(ValueSource::CommandLine) {
                    run.gateway.metrics_port = 0;
                }
            }
            let config = match validate(run.gateway) {
                Ok(config) => config,
                Err(code) => return code,
            };
            init_logging(&config.log_level);
            let options = RunOptions {
                config,
                data_dir: run
                    .data_dir
                    .unwrap_or_else(|| launcher::default_data_dir(|k| std::env::var(k).ok())),
                command: run.command,
            };
            let stopping = shutdown.clone();
            match launcher::run(options, shutdown).await {
                Ok(Some(status)) => {
                    use std::os::unix::process::ExitStatusExt;
                    let code = match (status.code(), status.signal()) {
                        (Some(code), _) => code,
                        // The app died of the stop signal it was passed on
                        // (uvicorn re-raises SIGTERM after a clean shutdown).
                        (None, Some(_)) if stopping.is_cancelled() => 0,
                        // Otherwise the shell's convention: 128 + signal.
                        (None, Some(signal)) => 128 + signal,
                        (None, None) => 1,
                    };
                    ExitCode::from(u8::try_from(code).unwrap_or(1))
                }
                Ok(None) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("outrigger run: {err}");
                    match err {
                        launcher::RunError::Resources(_)
                        | launcher::RunError::Gateway(outrigger::GatewayError::Resources(_)) => {
                            ExitCode::from(64)
                        }
                        _ => ExitCode::from(1),
                    }
                }
            }
        }
        // Answered in `main`, before any runtime starts.
        Some(Cmd::Healthcheck(_)) => ExitCode::SUCCESS,
        None => {
            let config = match validate(cli.gateway) {
                Ok(config) => config,
                Err(code) => return code,
            };
            init_logging(&config.log_level);
            match outrigger::Gateway::start(config, shutdown).await {
                Ok(gateway) => {
                    gateway.wait().await;
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("outrigger: {err}");
                    // An invalid resource file is invalid configuration (64), as a bad flag is.
                    match err {
                        outrigger::GatewayError::Resources(_) => ExitCode::from(64),
                        _ => ExitCode::from(1),
                    }
                }
            }
        }
    }
}

/// `outrigger run -f`: every app of the template with its own `outrigger run`.
async fn run_template(run: RunArgs, shutdown: CancellationToken) -> ExitCode {
    init_logging(&run.gateway.log_level);
    if !run.command.is_empty() {
        eprintln!("outrigger run: -f takes the apps' commands from the template, not after --");
        return ExitCode::from(64);
    }
    let Some(file) = run.run_file else {
        return ExitCode::from(64);
    };
    let plans = match launcher::multi::load(&file) {
        Ok(plans) => plans,
        Err(err) => {
            eprintln!("outrigger run: {err}");
            return ExitCode::from(64);
        }
    };
    match launcher::multi::run(plans, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("outrigger run: {err}");
            ExitCode::from(1)
        }
    }
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
