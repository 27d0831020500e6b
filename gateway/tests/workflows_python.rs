//! Durable workflows with the official Python SDK (`dapr.ext.workflow`),
//! end to end: `outrigger run -- python <script>` starts the gateway (which
//! serves `TaskHubSidecarService` on its gRPC port and keeps workflow
//! history in the default SQLite actor state store) and a script that is
//! both the SDK's worker (`WorkflowRuntime`) and its client
//! (`DaprWorkflowClient`).
//!
//! `tests/python/wf_scenarios.py` holds the workflows, activities and
//! checks; each test runs one group of them (`WF_GROUP`) and asserts that
//! every scenario of the group reported `ok`, in order. The crash test
//! (`tests/python/wf_crash_app.py`) kills the whole `outrigger run` with
//! SIGKILL twice while 200 workflows run, restarts it on the same data
//! folder, and checks every output. `tests/python/wf_stop_worker.py` stops
//! its worker mid-workflow and exits: `outrigger run` must stop with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// Chain, fan-out/fan-in of 100, child workflows (one fails), retry policy
/// (succeeds on the third attempt; exhausted → FAILED with the details),
/// the order saga (happy path and compensation), the monitor pattern, and
/// purge (refused while running; recursive; the id reusable afterwards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_workflow_patterns() {
    run_group(
        "patterns",
        &[
            "chain",
            "fan_out",
            "child_workflows",
            "retry_then_success",
            "retry_exhausted",
            "order_happy",
            "order_compensated",
            "monitor",
            "purge",
        ],
    )
    .await;
}

/// A durable timer waits; an external event with a timeout, once raised
/// and once timing out; events raised before the workflow waits for them;
/// terminate (recursive, and of a suspended instance); suspend and resume (a timer coming due and an
/// event arriving while suspended do not advance it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_workflow_timers_events_and_control() {
    run_group(
        "control",
        &[
            "timer",
            "event_arrives",
            "event_times_out",
            "events_buffered",
            "terminate",
            "suspend_resume",
            "scheduled_start",
        ],
    )
    .await;
}

/// 1 000 iterations of continue-as-new, each running an activity, complete
/// with the right output; the instance's history is the last iteration's
/// only, and every iteration's activity ran exactly once. Events raised
/// while an iteration runs reach the next ones (`save_events`), in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_workflow_continue_as_new_keeps_history_small() {
    run_group(
        "continue-as-new",
        &["continue_as_new", "continue_as_new_keeps_events"],
    )
    .await;
}

/// 200 workflows of 5 activities; the whole `outrigger run` (gateway,
/// `outrigger-local`, the worker app) is killed with SIGKILL twice while
/// they run, and started again on the same data folder. Every instance
/// completes with exactly its output; every activity ran, and none ran
/// twice within one boot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_workflows_survive_two_gateway_kills() {
    const COUNT: u64 = 200;
    const STEPS: u64 = 5;
    /// Activities a boot must run before it is killed (of 1 000).
    const KILL_AFTER: usize = 250;
    let setup = Setup::new();
    let count = COUNT.to_string();
    let mut kills = Vec::new();
    for boot in 1..=2 {
        let started = Instant::now();
        let run = setup.start(
            &format!("crash-{boot}"),
            "wf_crash_app.py",
            &[
                ("WF_BOOT", &boot.to_string()),
                ("WF_SCHEDULE", if boot == 1 { "1" } else { "0" }),
                ("WF_COUNT", &count),
            ],
        );
        setup
            .wait_for(
                &format!("boot {boot} running {KILL_AFTER} activities"),
                || {
                    let ran = setup
                        .activities()
                        .iter()
                        .filter(|a| a["boot"] == boot)
                        .count();
                    (ran >= KILL_AFTER && setup.progress()["boot"] == boot).then_some(())
                },
            )
            .await;
        setup.kill(run).await;
        // Killed mid-run: some activity had not run yet.
        let done: BTreeSet<(u64, u64)> = setup
            .activities()
            .iter()
            .map(|a| (a["i"].as_u64().unwrap(), a["k"].as_u64().unwrap()))
            .collect();
        assert!(
            done.len() < (COUNT * STEPS) as usize,
            "boot {boot} ran every activity before it could be killed"
        );
        kills.push(format!(
            "boot {boot} killed after {:.1} s with {} of {} activities done ({} instances completed at its last report)",
            started.elapsed().as_secs_f64(),
            done.len(),
            COUNT * STEPS,
            setup.progress()["completed"]
        ));
    }
    let started = Instant::now();
    let last = setup.start(
        "crash-3",
        "wf_crash_app.py",
        &[("WF_BOOT", "3"), ("WF_SCHEDULE", "0"), ("WF_COUNT", &count)],
    );
    setup
        .finish(
            last,
            "boot 3: crash checks passed",
            Duration::from_secs(120),
        )
        .await;
    eprintln!(
        "{}; boot 3 finished in {:.1} s",
        kills.join("; "),
        started.elapsed().as_secs_f64()
    );

    // Every output, exactly (checked here as well as by the script).
    let results: BTreeMap<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(setup.dir.path().join("results.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(results.len(), COUNT as usize);
    for i in 0..COUNT {
        let mut value = i;
        for k in 0..STEPS {
            value = value * 3 + k;
        }
        let trail: Vec<String> = (0..STEPS).map(|k| format!("{i}.{k}")).collect();
        let id = format!("crash-{i:03}");
        assert_eq!(
            results.get(&id),
            Some(
                &json!({"status": "COMPLETED", "output": {"i": i, "value": value, "trail": trail}})
            ),
            "{id}"
        );
    }
    // At least once overall; at most once per boot (a boot that was not
    // interrupted has no reason to run an activity twice).
    let activities = setup.activities();
    let mut per_boot: BTreeMap<(u64, u64, u64), usize> = BTreeMap::new();
    for a in &activities {
        let key = (
            a["boot"].as_u64().unwrap(),
            a["i"].as_u64().unwrap(),
            a["k"].as_u64().unwrap(),
        );
        *per_boot.entry(key).or_default() += 1;
    }
    let twice: Vec<_> = per_boot.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "activities run twice in one boot: {twice:?}"
    );
    let ran: BTreeSet<(u64, u64)> = per_boot.keys().map(|(_, i, k)| (*i, *k)).collect();
    assert_eq!(ran.len(), (COUNT * STEPS) as usize, "activities never run");
    eprintln!(
        "{} activity executions for {} activities",
        activities.len(),
        COUNT * STEPS
    );
}

/// The app stops its worker while activities are in flight and exits 0:
/// `outrigger run` stops within seconds (nothing is left to run the
/// unfinished instances), and the next run on the same data folder
/// finishes them with their outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_run_stops_when_the_worker_leaves_mid_workflow() {
    let setup = Setup::new();
    let stop = setup.start("stop", "wf_stop_worker.py", &[("WF_MODE", "stop")]);
    setup
        .finish(
            stop,
            "worker stopped mid-run; exiting",
            Duration::from_secs(20),
        )
        .await;
    let resume = setup.start("resume", "wf_stop_worker.py", &[("WF_MODE", "resume")]);
    setup
        .finish(
            resume,
            "resumed workflows completed",
            Duration::from_secs(40),
        )
        .await;
}

// === harness ===

fn outrigger() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outrigger"))
}

/// Runs `wf_scenarios.py` with `WF_GROUP=<group>` under one `outrigger run`
/// and checks that it reported exactly `scenarios`, each `ok`, in order.
async fn run_group(group: &str, scenarios: &[&str]) {
    let setup = Setup::new();
    let started = Instant::now();
    let run = setup.start(group, "wf_scenarios.py", &[("WF_GROUP", group)]);
    setup
        .finish(
            run,
            &format!("workflow checks passed: {group}"),
            Duration::from_secs(90),
        )
        .await;
    let log = std::fs::read_to_string(setup.log_file(group)).unwrap();
    let reported: Vec<(&str, &str)> = log
        .lines()
        .filter_map(|l| l.strip_prefix("scenario "))
        .filter_map(|l| {
            let mut words = l.split(' ');
            let (name, ok, secs) = (words.next()?, words.next()?, words.next()?);
            (ok == "ok").then_some((name, secs))
        })
        .collect();
    let names: Vec<&str> = reported.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, scenarios, "{log}");
    eprintln!(
        "{group}: {reported:?} (s); {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}

/// One test's data folder (the SQLite file), registry folder, run logs and
/// the crash app's progress, results and activity files.
struct Setup {
    dir: tempfile::TempDir,
}

/// One `outrigger run` in a process group of its own; dropped still
/// running (a failed test), the whole group is killed.
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

    fn log_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// `outrigger run --app-id wfapp --data-dir .. --registry-folder .. -- python <script>`,
    /// with its own run folder (`XDG_RUNTIME_DIR`).
    fn start(&self, name: &str, script: &str, env: &[(&str, &str)]) -> Run {
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
        command
            .args(["run", "--log-level", "warn", "--app-id", "wfapp"])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--registry-folder")
            .arg(self.dir.path().join("registry"))
            .arg("--")
            .arg(python)
            .arg(scripts.join(script))
            .env("XDG_RUNTIME_DIR", runtime_dir.path())
            .env("WF_PROGRESS", self.dir.path().join("progress.json"))
            .env("WF_RESULTS", self.dir.path().join("results.json"))
            .env("WF_ACTIVITIES", self.dir.path().join("activities.jsonl"))
            .env("PYTHONUNBUFFERED", "1")
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

    /// Waits (at most `within`) for a run whose app exits by itself: it
    /// succeeded and printed `success`, and left nothing behind.
    async fn finish(&self, mut run: Run, success: &str, within: Duration) {
        let status = tokio::time::timeout(within, run.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not finish within {within:?}\n{}",
                    run.name,
                    self.logs()
                )
            })
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

    /// SIGKILL to the run's whole process group (the launcher, which is the
    /// gateway, its `outrigger-local` and the app), then waits until none
    /// of them is left.
    async fn kill(&self, mut run: Run) {
        let pid = i32::try_from(run.child.id().expect("the run is still going")).unwrap();
        killpg(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        tokio::time::timeout(Duration::from_secs(10), run.child.wait())
            .await
            .expect("a killed run is reaped within 10 s")
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while survivors(run.runtime_dir.path()) > 0 {
            assert!(
                Instant::now() < deadline,
                "processes of {} outlived SIGKILL",
                run.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The crash app's last progress report (`{}` before the first).
    fn progress(&self) -> Value {
        std::fs::read_to_string(self.dir.path().join("progress.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| json!({}))
    }

    /// The crash app's activity executions; a line cut short by a kill is skipped.
    fn activities(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("activities.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Polls `found` every 50 ms; fails after 60 s with every log.
    async fn wait_for<T>(&self, what: &str, found: impl Fn() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(it) = found() {
                return it;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within 60 s; progress {}\n{}",
                self.progress(),
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

/// Live processes started by the run whose run folder is `runtime_dir`.
fn survivors(runtime_dir: &Path) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read_to_string(p.path().join("environ")).ok())
        .filter(|env| env.contains(&runtime_dir.display().to_string()))
        .count()
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
    assert_eq!(
        survivors(runtime_dir),
        0,
        "a process started by the run outlived it"
    );
}
