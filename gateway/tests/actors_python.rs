//! Virtual actors with the official Python SDK, end to end: an actor host
//! (`tests/python/actor_host.py`: FastAPI + `dapr.ext.fastapi.DaprActor`)
//! under one `outrigger run --app-port`, and a client
//! (`tests/python/actor_client.py`: `dapr.actor.ActorProxy`) under another
//! `outrigger run` without an app port. The two gateways share only the
//! SQLite actor state store of their common `--data-dir`; that is how the
//! client's gateway finds the host. The host appends what its actors see to
//! an events file (JSON lines) that the client and these tests read.
//!
//! The third test hosts the same actor in a gRPC app instead
//! (`tests/python/actor_grpc_host.py`: the SDK's `ActorGrpcHost` under
//! `outrigger run --app-protocol grpc`), which serves no HTTP: its actors
//! are driven over `SubscribeActorEventsAlpha1` and call back through the
//! gateway's gRPC actor rpcs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

/// The client checks methods with arguments and results, state through the
/// SDK's state manager and `GET .../state/{key}`, a timer firing on its
/// period and stopping when unregistered, idle deactivation reaching the
/// SDK's `_on_deactivate` (and state surviving it), and a self-call through
/// an `ActorProxy` that completes with reentrancy on and waits with it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_actors_methods_state_timer_idle_deactivation_and_reentrancy() {
    let setup = Setup::new();
    let host = setup.start("host-1", Role::Host { boot: 1 }, &[]);
    let client = setup.start("client", Role::Client, &[("CLIENT_MODE", "main")]);
    setup
        .finish(client, "main actor client checks passed")
        .await;

    // Every call reached one activation of its actor (idle-1 two: before
    // and after its idle deactivation).
    for (id, activations) in [
        ("calc-1", 1),
        ("state-1", 1),
        ("timer-1", 1),
        ("idle-1", 2),
        ("re-1", 1),
        ("plain-1", 1),
    ] {
        let seen = setup.events_where(|e| e["event"] == "activate" && e["id"] == id);
        assert_eq!(
            seen.len(),
            activations,
            "activations of {id}: {seen:?}\n{}",
            setup.logs()
        );
    }
    // The reentrant type's nested call ran inside the outer call's turn,
    // with the chain id the gateway generated.
    let inner = setup.events_where(|e| e["event"] == "inner" && e["id"] == "re-1");
    assert!(
        inner.len() == 1 && inner[0]["reentrancyId"].is_string(),
        "{inner:?}"
    );
    // All from the one host process.
    let pids: std::collections::BTreeSet<_> =
        setup.events().iter().map(|e| e["pid"].as_i64()).collect();
    assert_eq!(pids.len(), 1, "{pids:?}");
    setup.stop(host).await;
}

/// Reminders fire (one-shot and periodic, with their data), and a reminder
/// registered before the host's `outrigger run` is stopped with SIGTERM
/// fires once after a new `outrigger run` on the same data folder starts:
/// never before its due time, never in the first host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_actor_reminder_fires_after_the_host_restarts() {
    const LATER_DUE: Duration = Duration::from_secs(5);
    let setup = Setup::new();
    let host = setup.start("host-1", Role::Host { boot: 1 }, &[]);
    let due_ms = LATER_DUE.as_millis().to_string();
    let client = setup.start(
        "client",
        Role::Client,
        &[("CLIENT_MODE", "reminders"), ("LATER_DUE_MS", &due_ms)],
    );
    setup
        .finish(client, "reminders actor client checks passed")
        .await;
    setup.stop(host).await;

    let later = |e: &Value| e["event"] == "reminder" && e["name"] == "later";
    assert!(
        setup.events_where(later).is_empty(),
        "the durable reminder fired before the host was stopped (LATER_DUE too short?)\n{}",
        setup.logs()
    );
    let [registered] = setup
        .events_where(|e| e["event"] == "reminder-registered" && e["name"] == "later")
        .try_into()
        .unwrap();

    let host = setup.start("host-2", Role::Host { boot: 2 }, &[]);
    let fired = setup
        .wait_for(Duration::from_secs(30), |events| {
            events.iter().find(|e| later(e)).cloned()
        })
        .await;
    assert_eq!(fired["boot"], "2", "{fired}");
    assert_eq!(fired["id"], "rem-1", "{fired}");
    assert_eq!(fired["payload"]["k"], "durable", "{fired}");
    // `asked` was taken before the registration was sent: due no earlier
    // than `asked + LATER_DUE`.
    let early = registered["asked"].as_f64().unwrap() + LATER_DUE.as_secs_f64()
        - fired["t"].as_f64().unwrap();
    assert!(
        early <= 0.01,
        "fired {early:.3} s before it was due: {fired}"
    );
    assert_eq!(setup.events_where(later).len(), 1, "{}", setup.logs());
    setup.stop(host).await;
}

/// A gRPC app hosts actors over `SubscribeActorEventsAlpha1` (the SDK's
/// `ActorGrpcHost`): the client calls methods with arguments, results and
/// an actor error; the actor saves and reads state through the SDK's gRPC
/// actor client (and the host's gateway serves it over HTTP); a timer and
/// reminders registered by the actor fire with their data intact; idle
/// deactivation reaches `_on_deactivate` and state survives it. Every
/// event comes from the one gRPC host process, which logs no failed
/// callback and closes its stream cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpc_app_hosts_actors_over_the_actor_event_stream() {
    let setup = Setup::new();
    let host = setup.start("grpc-host", Role::GrpcHost, &[]);
    let client = setup.start("client", Role::Client, &[("CLIENT_MODE", "grpc-host")]);
    setup
        .finish(client, "grpc-host actor client checks passed")
        .await;

    let boots = setup.events_where(|e| e["event"] == "boot");
    assert!(
        boots.len() == 1 && boots[0]["transport"] == "grpc-stream",
        "{boots:?}\n{}",
        setup.logs()
    );
    for (id, activations) in [
        ("calc-1", 1),
        ("state-1", 1),
        ("timer-1", 1),
        ("idle-1", 2),
        ("rem-1", 1),
    ] {
        let seen = setup.events_where(|e| e["event"] == "activate" && e["id"] == id);
        assert_eq!(
            seen.len(),
            activations,
            "activations of {id}: {seen:?}\n{}",
            setup.logs()
        );
    }
    // idle-1 was deactivated through the stream between its activations.
    let idle = setup.events_where(|e| e["id"] == "idle-1");
    let kinds: Vec<_> = idle.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.get(..3),
        Some(&["activate", "deactivate", "activate"][..]),
        "{idle:?}"
    );
    // The one-shot reminder fired once, its data (registered through the
    // gateway's gRPC RegisterActorReminder) intact.
    let soon = setup.events_where(|e| e["event"] == "reminder" && e["name"] == "soon");
    assert!(
        soon.len() == 1 && soon[0]["payload"]["text"] == "h\u{e9}llo \u{2603}",
        "{soon:?}\n{}",
        setup.logs()
    );
    let pids: std::collections::BTreeSet<_> =
        setup.events().iter().map(|e| e["pid"].as_i64()).collect();
    assert_eq!(pids.len(), 1, "{pids:?}");

    setup.stop(host).await;
    let stopped = setup.events_where(|e| e["event"] == "stopped");
    assert_eq!(
        stopped.len(),
        1,
        "the host did not close on SIGTERM\n{}",
        setup.logs()
    );
    // The SDK warns of a callback it could not handle (`Actor callback ..
    // failed`, an undecodable payload), an unexpected message on the actor
    // stream, and the stream dropping (`Actor event stream ..`).
    let host_log = std::fs::read_to_string(setup.log_file("grpc-host")).unwrap();
    for bad in [
        "Actor callback",
        "unexpected actor stream message",
        "Actor event stream",
        "Traceback",
    ] {
        assert!(
            !host_log.contains(bad),
            "{bad:?} in the host's log:\n{host_log}"
        );
    }
}

// === harness ===

fn outrigger() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outrigger"))
}

/// What an `outrigger run` starts.
#[derive(Clone, Copy)]
enum Role {
    /// `actor_host.py` on a free app port; `boot` tags its events.
    Host { boot: u32 },
    /// `actor_grpc_host.py`: a gRPC app on a free app port.
    GrpcHost,
    /// `actor_client.py`, no app port.
    Client,
}

/// One test's data folder (the shared SQLite file), registry folder,
/// events file and run logs.
struct Setup {
    dir: tempfile::TempDir,
}

/// One `outrigger run` in a process group of its own; if it is dropped
/// still running (a failed test), the whole group (run, components, app)
/// is killed, so nothing outlives the test.
struct Run {
    name: String,
    child: tokio::process::Child,
    runtime_dir: tempfile::TempDir,
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::create_dir_all(dir.path().join("registry")).unwrap();
        Self { dir }
    }

    fn events_file(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    fn log_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// `outrigger run --app-id <id> [--app-protocol grpc] [--app-port <free>] --data-dir .. --registry-folder .. -- python <script>`.
    fn start(&self, name: &str, role: Role, env: &[(&str, &str)]) -> Run {
        let local = outrigger().with_file_name("outrigger-local");
        assert!(
            local.is_file(),
            "{} is missing: build it (`cargo build -p outrigger-local`)",
            local.display()
        );
        let python = std::env::var("OUTRIGGER_PYTHON").expect(
            "OUTRIGGER_PYTHON is not set: run `bash scripts/test.sh`, which installs the Dapr SDK venv and sets it",
        );
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
        let runtime_dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(self.log_file(name)).unwrap();
        let mut command = tokio::process::Command::new(outrigger());
        command.args(["run", "--log-level", "warn"]);
        match role {
            Role::Host { boot } => {
                command
                    .args(["--app-id", "actor-host", "--app-port"])
                    .arg(support::free_port().to_string())
                    .env("ACTOR_BOOT", boot.to_string());
            }
            Role::GrpcHost => {
                command
                    .args([
                        "--app-id",
                        "actor-host",
                        "--app-protocol",
                        "grpc",
                        "--app-port",
                    ])
                    .arg(support::free_port().to_string())
                    .env("ACTOR_BOOT", "1");
            }
            Role::Client => {
                command.args(["--app-id", "actor-client"]);
            }
        }
        let script = match role {
            Role::Host { .. } => "actor_host.py",
            Role::GrpcHost => "actor_grpc_host.py",
            Role::Client => "actor_client.py",
        };
        command
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--registry-folder")
            .arg(self.dir.path().join("registry"))
            .arg("--")
            .arg(python)
            .arg(scripts.join(script))
            .env("XDG_RUNTIME_DIR", runtime_dir.path())
            .env("ACTOR_EVENTS", self.events_file())
            .env("PYTHONUNBUFFERED", "1")
            // The scripts import actor_interfaces.py: no __pycache__ in the tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("DAPR_HTTP_PORT")
            .env_remove("DAPR_GRPC_PORT")
            .env_remove("DAPR_API_TOKEN")
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        Run {
            name: name.to_owned(),
            child: command.spawn().unwrap(),
            runtime_dir,
        }
    }

    /// Waits for a run whose app exits by itself: it succeeded and printed `success`.
    async fn finish(&self, mut run: Run, success: &str) {
        let status = tokio::time::timeout(Duration::from_secs(60), run.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not finish within 60 s\n{}", run.name, self.logs()))
            .unwrap();
        let log = std::fs::read_to_string(self.log_file(&run.name)).unwrap();
        assert!(
            status.success() && log.contains(success),
            "{} failed ({status:?})\n{}",
            run.name,
            self.logs()
        );
        check_cleaned_up(run.runtime_dir.path());
    }

    /// SIGTERM to a long-running `outrigger run`: it stops its app and
    /// components and exits, leaving nothing behind.
    async fn stop(&self, mut run: Run) {
        let pid = run.child.id().expect("the run is still going");
        kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(20), run.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not stop within 20 s of SIGTERM\n{}",
                    run.name,
                    self.logs()
                )
            })
            .unwrap();
        // The app (uvicorn) dies of the SIGTERM passed on to it: still a clean stop.
        assert!(
            status.success(),
            "{} exited {status:?} after SIGTERM\n{}",
            run.name,
            self.logs()
        );
        check_cleaned_up(run.runtime_dir.path());
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.events_file())
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn events_where(&self, pick: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.events().into_iter().filter(|e| pick(e)).collect()
    }

    /// Polls the events until `found` returns something, or fails after `within`.
    async fn wait_for<T>(&self, within: Duration, found: impl Fn(&[Value]) -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(it) = found(&self.events()) {
                return it;
            }
            assert!(
                Instant::now() < deadline,
                "not seen within {within:?}; events:\n{}\n{}",
                std::fs::read_to_string(self.events_file()).unwrap_or_default(),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every run's output, for failure messages.
    fn logs(&self) -> String {
        let mut all = String::new();
        let mut entries: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            all.push_str(&format!("--- {} ---\n{text}\n", path.display()));
        }
        all
    }
}

/// The run folder is gone and no process started by the run outlived it.
fn check_cleaned_up(runtime_dir: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(runtime_dir.join("outrigger"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "run folder left behind: {leftovers:?}"
    );
    let survivors = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read_to_string(p.path().join("environ")).ok())
        .filter(|env| env.contains(&runtime_dir.display().to_string()))
        .count();
    assert_eq!(survivors, 0, "a process started by the run outlived it");
}
