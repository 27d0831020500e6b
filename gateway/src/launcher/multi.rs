//! `outrigger run -f <template>`: Dapr's multi-app run template.
//!
//! Every app of the template runs as its own `outrigger run` (components,
//! gateway and app, see [`super`]) started from this binary in the app's
//! folder, each in a process group of its own so that the whole tree of an
//! app can be stopped together. Their output lines are prefixed with
//! `== APP - <appID> ==`. As with `dapr run -f`, an app that exits stops
//! only its own gateway; everything stops on Ctrl-C (SIGINT/SIGTERM): each
//! `outrigger run` gets SIGTERM and stops its app and components, and after
//! a grace period every process left in its group gets SIGKILL. The run also
//! ends when every app has exited.
//!
//! Template (Dapr's keys): `version: 1`, `common` (settings shared by every
//! app, its paths relative to the template's folder) and `apps` (each with
//! `appDirPath`, required, relative to the template's folder; its other
//! paths relative to `appDirPath`; `appID` defaults to the folder's name).
//! Resources: the app's `resourcesPath(s)`, else `<appDirPath>/.dapr/resources`,
//! else `common`'s, else the embedded default; the same order for
//! `configFilePath` with `.dapr/config.yaml`. `env`: the app's over
//! `common`'s. A key Dapr does not know is an error naming the file and key;
//! Dapr keys with no meaning here (profiling, placement, containers, log
//! files, ...) are accepted and reported as ignored.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long every app's `outrigger run` gets to stop before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

mod template;

pub use template::{AppPlan, DEFAULT_TEMPLATE, TemplateError, load};

/// Copy `from` line by line to our stdout (or stderr), each line prefixed
/// with the app id (whole lines, so apps' lines do not interleave).
async fn prefix_lines(app_id: String, from: impl tokio::io::AsyncRead + Unpin, to_stderr: bool) {
    use std::io::Write;
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let text = format!("== APP - {app_id} == {line}\n");
        let _ = if to_stderr {
            std::io::stderr().lock().write_all(text.as_bytes())
        } else {
            std::io::stdout().lock().write_all(text.as_bytes())
        };
    }
}

fn pid_of(id: Option<u32>) -> Option<Pid> {
    id.and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw)
}

/// Start every app's `outrigger run`; stop them all on `shutdown` (or
/// return when every one has exited).
///
/// # Errors
/// An `outrigger run` that cannot be started (those already started are stopped).
#[tracing::instrument(level = "debug", skip_all, fields(apps = plans.len()))]
pub async fn run(plans: Vec<AppPlan>, shutdown: CancellationToken) -> Result<(), TemplateError> {
    let exe = std::env::current_exe().map_err(|source| TemplateError::Spawn {
        app_id: String::new(),
        source,
    })?;
    let mut waiting = JoinSet::new();
    let mut output = JoinSet::new();
    // Every app's process group (its `outrigger run` leads it), still running or not.
    let mut groups: HashMap<String, Pid> = HashMap::new();
    let mut started = Ok(());
    for plan in plans {
        let mut command = Command::new(&exe);
        command.arg("run").args(&plan.args);
        if !plan.command.is_empty() {
            command.arg("--").args(&plan.command);
        }
        command
            .current_dir(&plan.dir)
            .envs(&plan.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(source) => {
                started = Err(TemplateError::Spawn {
                    app_id: plan.app_id,
                    source,
                });
                break;
            }
        };
        tracing::info!(app_id = %plan.app_id, dir = %plan.dir.display(), command = %plan.command.join(" "), "starting");
        if let Some(out) = child.stdout.take() {
            output.spawn(prefix_lines(plan.app_id.clone(), out, false));
        }
        if let Some(err) = child.stderr.take() {
            output.spawn(prefix_lines(plan.app_id.clone(), err, true));
        }
        if let Some(pid) = pid_of(child.id()) {
            groups.insert(plan.app_id.clone(), pid);
        }
        let app_id = plan.app_id;
        waiting.spawn(async move { (app_id, child.wait().await) });
    }
    let mut running: HashMap<String, Pid> = groups.clone();
    if started.is_ok() {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                done = waiting.join_next() => match done {
                    None => break,
                    Some(Ok((app_id, status))) => {
                        running.remove(&app_id);
                        tracing::info!(%app_id, ?status, "app's outrigger run exited; the others keep running");
                    }
                    Some(Err(err)) => tracing::warn!(error = %err, "waiting for an app failed"),
                },
            }
        }
    }
    if !running.is_empty() {
        tracing::info!(apps = running.len(), "stopping every app");
    }
    for pid in running.values() {
        let _ = kill(*pid, Signal::SIGTERM);
    }
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while let Some(done) = waiting.join_next().await {
            if let Ok((app_id, _)) = done {
                running.remove(&app_id);
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(apps = ?running.keys().collect::<Vec<_>>(), "did not stop in time; killing them");
    }
    // Whatever is left in an app's group (its app, components) goes too.
    for pid in groups.values() {
        let _ = killpg(*pid, Signal::SIGKILL);
    }
    waiting.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while output.join_next().await.is_some() {}
    })
    .await;
    started
}

#[cfg(test)]
#[path = "multi/tests.rs"]
mod tests;
