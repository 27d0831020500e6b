//! `outrigger run`: everything a laptop needs, then the app.
//!
//! 1. A private run folder (`<runtime dir>/outrigger/<app-id>-<pid>`) holds
//!    this run's component sockets, so concurrent runs never clash.
//! 2. Without `--resources-path`, a generated resources folder declares
//!    `statestore` (also the actor state store) and `pubsub`, both on the
//!    shared SQLite file of the data folder, served by `outrigger-local`.
//!    With one, the component processes that its types need among those we
//!    ship are started, unless their sockets are already served.
//! 3. The gateway starts in this process.
//! 4. The app command (if any) starts with `DAPR_HTTP_PORT`, `DAPR_GRPC_PORT`
//!    and `APP_ID`; SIGINT/SIGTERM are forwarded to it.
//! 5. When the app exits, or on Ctrl-C without an app, everything started
//!    is stopped (SIGTERM, then SIGKILL after a grace period) and the run
//!    folder is removed.

pub mod multi;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::resources::{self, Block};

/// How long a child gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a component may take to open its socket.
const COMPONENT_START: Duration = Duration::from_secs(15);

/// What `outrigger run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Gateway configuration (its sockets folder is replaced by the run folder's).
    pub config: Config,
    /// Shared data folder for the embedded default.
    pub data_dir: PathBuf,
    /// The app command, if any.
    pub command: Vec<String>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Filesystem trouble with the run or data folder.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A component binary we need is neither beside `outrigger` nor on PATH.
    #[error(
        "{binary} is needed for {types} but was found neither beside outrigger nor on PATH; build it with `cargo build -p {binary}`"
    )]
    MissingBinary {
        /// Binary name.
        binary: String,
        /// Types that need it.
        types: String,
    },
    /// A component process did not open its socket in time.
    #[error("{binary} did not open {socket} within {COMPONENT_START:?}")]
    ComponentStart {
        /// Binary name.
        binary: String,
        /// Socket it should open.
        socket: PathBuf,
    },
    /// Invalid resources.
    #[error(transparent)]
    Resources(#[from] resources::ResourceError),
    /// The gateway failed to start.
    #[error(transparent)]
    Gateway(#[from] crate::GatewayError),
    /// The app command could not start.
    #[error("starting the app {command:?}: {source}")]
    App {
        /// The command.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The default data folder: `$OUTRIGGER_DATA_DIR`, else `~/.outrigger/data`.
pub fn default_data_dir(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = env("OUTRIGGER_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = env("HOME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/tmp".into());
    Path::new(&home).join(".outrigger").join("data")
}

/// Resources for the embedded default: `statestore` and `pubsub` on one SQLite file.
fn default_resources(data_dir: &Path) -> String {
    let db = data_dir.join("outrigger.db");
    let db = db.display();
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - name: databaseFile\n    value: \"{db}\"\n  - name: actorStateStore\n    value: \"true\"\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  type: pubsub.sqlite\n  version: v1\n  metadata:\n  - name: databaseFile\n    value: \"{db}\"\n"
    )
}

/// Our binary serving `socket`, for the sockets of [`crate::components::BUILTIN_TYPES`].
fn binary_for_socket(socket: &str) -> Option<&'static str> {
    match socket {
        "local" | "local-env" => Some("outrigger-local"),
        "postgres" => Some("outrigger-postgres"),
        "nats" => Some("outrigger-nats"),
        "servicebus" => Some("outrigger-servicebus"),
        _ => None,
    }
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    })
}

/// A child we started and must stop.
struct Started {
    name: String,
    child: Child,
}

async fn stop(children: &mut Vec<Started>) {
    for started in children.iter() {
        if let Some(pid) = started.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    for started in children.iter_mut() {
        if tokio::time::timeout(STOP_GRACE, started.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(process = %started.name, "did not stop after SIGTERM; killing it");
            let _ = started.child.kill().await;
        }
    }
    children.clear();
}

async fn wait_for_socket(path: &Path, child: &mut Child) -> bool {
    let deadline = tokio::time::Instant::now() + COMPONENT_START;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Start the component processes `resources_dir` needs; returns them.
async fn start_components(
    resources_dir: &[PathBuf],
    app_id: &str,
    sockets: &Path,
    children: &mut Vec<Started>,
) -> Result<(), RunError> {
    let loaded = resources::load(resources_dir, app_id, |k| std::env::var(k).ok())?;
    let mut needed: BTreeSet<(&'static str, &'static str)> = BTreeSet::new();
    let mut types_of: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for c in &loaded.components {
        if let Some((_, socket)) = crate::components::BUILTIN_TYPES
            .iter()
            .find(|(t, _)| *t == c.component_type)
            && let Some(binary) = binary_for_socket(socket)
        {
            needed.insert((binary, socket));
            types_of
                .entry(binary)
                .or_default()
                .push(c.component_type.clone());
        }
        let _ = Block::parse_type(&c.component_type);
    }
    let binaries: BTreeSet<&str> = needed.iter().map(|(b, _)| *b).collect();
    for binary in binaries {
        let sockets_of: Vec<&str> = needed
            .iter()
            .filter(|(b, _)| *b == binary)
            .map(|(_, s)| *s)
            .collect();
        let already = sockets_of.iter().all(|s| {
            std::os::unix::net::UnixStream::connect(sockets.join(format!("{s}.sock"))).is_ok()
        });
        if already {
            continue;
        }
        let path = find_binary(binary).ok_or_else(|| RunError::MissingBinary {
            binary: binary.to_owned(),
            types: types_of
                .get(binary)
                .map(|t| t.join(", "))
                .unwrap_or_default(),
        })?;
        let child = Command::new(&path)
            .env("DAPR_COMPONENTS_SOCKETS_FOLDER", sockets)
            .env("APP_ID", app_id)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(&path))?;
        children.push(Started {
            name: binary.to_owned(),
            child,
        });
        for socket in sockets_of {
            let socket_path = sockets.join(format!("{socket}.sock"));
            let Some(started) = children.last_mut() else {
                break;
            };
            if !wait_for_socket(&socket_path, &mut started.child).await {
                return Err(RunError::ComponentStart {
                    binary: binary.to_owned(),
                    socket: socket_path,
                });
            }
        }
    }
    Ok(())
}

/// Run components, gateway and app; returns the app's exit status (or
/// `None` when there was no app and the run ended on a signal).
///
/// # Errors
/// Anything that stops the run from starting; everything started so far is stopped.
pub async fn run(
    options: RunOptions,
    shutdown: CancellationToken,
) -> Result<Option<ExitStatus>, RunError> {
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("outrigger");
    let run_dir = runtime_dir.join(format!("{}-{}", options.config.app_id, std::process::id()));
    let sockets = run_dir.join("sockets");
    std::fs::create_dir_all(&sockets).map_err(io(&sockets))?;
    let mut children = Vec::new();
    let result = run_inner(options, &run_dir, &sockets, &mut children, shutdown).await;
    stop(&mut children).await;
    if let Err(err) = std::fs::remove_dir_all(&run_dir) {
        tracing::warn!(path = %run_dir.display(), error = %err, "could not remove the run folder");
    }
    result
}

async fn run_inner(
    options: RunOptions,
    run_dir: &Path,
    sockets: &Path,
    children: &mut Vec<Started>,
    shutdown: CancellationToken,
) -> Result<Option<ExitStatus>, RunError> {
    let mut config = options.config;
    config.sockets_folder = sockets.to_path_buf();
    if config.resources_paths.is_empty() {
        std::fs::create_dir_all(&options.data_dir).map_err(io(&options.data_dir))?;
        let generated = run_dir.join("resources");
        std::fs::create_dir_all(&generated).map_err(io(&generated))?;
        let file = generated.join("default.yaml");
        std::fs::write(&file, default_resources(&options.data_dir)).map_err(io(&file))?;
        config.resources_paths = vec![generated];
    }
    start_components(&config.resources_paths, &config.app_id, sockets, children).await?;

    let app_id = config.app_id.clone();
    let app_port = config.app_port;
    let gateway = crate::Gateway::start(config, shutdown.clone()).await?;
    let http_port = gateway.http_addr.port();
    let grpc_port = gateway.grpc_addr.port();

    let status = if let Some((program, args)) = options.command.split_first() {
        let mut command = Command::new(program);
        command
            .args(args)
            .env("DAPR_HTTP_PORT", http_port.to_string())
            .env("DAPR_GRPC_PORT", grpc_port.to_string())
            .env("APP_ID", &app_id)
            .kill_on_drop(true);
        if let Some(port) = app_port {
            command.env("APP_PORT", port.to_string());
        }
        let mut app = command.spawn().map_err(|source| RunError::App {
            command: options.command.join(" "),
            source,
        })?;
        tracing::info!(app = %options.command.join(" "), "app started");
        let status = tokio::select! {
            status = app.wait() => status.ok(),
            () = shutdown.cancelled() => {
                if let Some(pid) = app.id().and_then(|id| i32::try_from(id).ok()) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                }
                match tokio::time::timeout(STOP_GRACE, app.wait()).await {
                    Ok(status) => status.ok(),
                    Err(_) => {
                        let _ = app.kill().await;
                        app.wait().await.ok()
                    }
                }
            }
        };
        tracing::info!(?status, "app exited; stopping");
        status
    } else {
        tracing::info!(
            http_port,
            grpc_port,
            "gateway running without an app; Ctrl-C to stop"
        );
        shutdown.cancelled().await;
        None
    };
    shutdown.cancel();
    gateway.wait().await;
    Ok(status)
}
