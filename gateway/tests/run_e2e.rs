//! `outrigger run` end to end: the real `outrigger` binary starts the real
//! `outrigger-local` binary and a Python app using the official SDK, and
//! stops everything when the app exits, leaving no process or socket behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

fn outrigger() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outrigger"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_starts_components_gateway_and_app_then_cleans_up() {
    run_app(None).await;
}

/// With `DAPR_API_TOKEN` set, the gateway requires it and the app (which
/// inherits it) sends it; the script also checks a call without it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_an_api_token() {
    run_app(Some("run-token")).await;
}

/// A subscriber built with the SDK's FastAPI extension receives, retries and
/// dead-letters events published through the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_delivers_events_to_a_python_subscriber() {
    let resources = resources_with_cron();
    let path = resources.path().display().to_string();
    run_script(
        "subscriber_app.py",
        "subscriber app checks passed",
        &["--resources-path", &path],
        None,
    )
    .await;
}

/// statestore and pubsub as the default would have them, plus a cron binding `clock`.
fn resources_with_cron() -> tempfile::TempDir {
    resources_with_pubsub(|db| {
        format!(
            "  type: pubsub.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{db}\"}}\n  - {{name: redeliveryDelay, value: 100ms}}\n"
        )
    })
}

/// The same resources with `pubsub`'s spec (type, version, metadata) from `spec(db)`.
fn resources_with_pubsub(spec: impl Fn(&str) -> String) -> tempfile::TempDir {
    let resources = tempfile::tempdir().unwrap();
    let db = resources.path().join("shared.db");
    let pubsub = spec(&db.display().to_string());
    let yaml = format!(
        "kind: Component\nmetadata: {{name: pubsub}}\nspec:\n{pubsub}---\nkind: Component\nmetadata: {{name: statestore}}\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{db}\"}}\n---\nkind: Component\nmetadata: {{name: clock}}\nspec:\n  type: bindings.cron\n  version: v1\n  metadata:\n  - {{name: schedule, value: \"@every 1s\"}}\n---\nkind: Resiliency\nmetadata: {{name: retries}}\nspec:\n  policies:\n    retries:\n      twice: {{policy: constant, duration: 50ms, maxRetries: 2}}\n  targets:\n    components:\n      pubsub:\n        inbound: {{retry: twice}}\n",
        db = db.display()
    );
    std::fs::write(resources.path().join("components.yaml"), yaml).unwrap();
    resources
}

/// The same subscriber with `pubsub` on NATS JetStream: `outrigger run`
/// starts `outrigger-nats` for the `pubsub.jetstream` type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_delivers_events_to_a_python_subscriber_over_nats() {
    // A server of its own: the app's topics are fixed names, and subjects
    // must not overlap with other tests' streams.
    let Some(server) = std::env::var_os("OUTRIGGER_NATS_SERVER") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "OUTRIGGER_NATS_SERVER is not set under CI"
        );
        eprintln!("SKIPPED: OUTRIGGER_NATS_SERVER is not set; run `bash scripts/test.sh`");
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let _nats = NatsServer(
        std::process::Command::new(server)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("nats://127.0.0.1:{port}");
    let stream = format!("e2e{}", std::process::id());
    let resources = resources_with_pubsub(|_| {
        format!(
            "  type: pubsub.jetstream\n  version: v1\n  metadata:\n  - {{name: natsURL, value: \"{url}\"}}\n  - {{name: streamName, value: {stream}}}\n"
        )
    });
    let path = resources.path().display().to_string();
    run_script(
        "subscriber_app.py",
        "subscriber app checks passed",
        &["--resources-path", &path],
        None,
    )
    .await;
}

/// The same subscriber with `pubsub` on Azure Service Bus topics: only the
/// YAML changes. `outrigger run` starts `outrigger-servicebus`, which talks
/// to the loopback Service Bus (the servicebus crate's example; no Azure here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_delivers_events_to_a_python_subscriber_over_service_bus() {
    let loopback = outrigger()
        .with_file_name("examples")
        .join("loopback_servicebus");
    if !loopback.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing under CI: `cargo nextest run --workspace` builds it",
            loopback.display()
        );
        eprintln!(
            "SKIPPED: {} is missing; build it with `cargo build -p outrigger-servicebus --example loopback_servicebus`",
            loopback.display()
        );
        return;
    }
    let mut child = std::process::Command::new(&loopback)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let url = lines.next().unwrap().unwrap();
    let connection = lines.next().unwrap().unwrap();
    let _bus = Killed(child);
    // The connection string comes through a secretKeyRef, as in production.
    let resources = resources_with_pubsub(|_| {
        "  type: pubsub.azure.servicebus.topics\n  version: v1\n  metadata:\n  - name: connectionString\n    secretKeyRef: {name: E2E_SERVICEBUS_CONNECTION, key: E2E_SERVICEBUS_CONNECTION}\n  - {name: lockRenewalInSec, value: \"5\"}\nauth:\n  secretStore: envsecrets\n---\nkind: Component\nmetadata: {name: envsecrets}\nspec:\n  type: secretstores.local.env\n  version: v1\n".to_owned()
    });
    let path = resources.path().display().to_string();
    run_script_with_env(
        "subscriber_app.py",
        "subscriber app checks passed",
        &["--resources-path", &path],
        None,
        &[
            ("OUTRIGGER_SERVICEBUS_ENDPOINT", url.as_str()),
            ("E2E_SERVICEBUS_CONNECTION", connection.as_str()),
        ],
    )
    .await;
}

/// A child process, killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A nats-server process, killed when dropped.
struct NatsServer(std::process::Child);

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The same with a gRPC subscriber built with `dapr.ext.grpc`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_delivers_events_to_a_python_grpc_subscriber() {
    let resources = resources_with_cron();
    let path = resources.path().display().to_string();
    let args = ["--app-protocol", "grpc", "--resources-path", &path];
    run_script(
        "grpc_subscriber_app.py",
        "grpc subscriber checks passed",
        &args,
        None,
    )
    .await;
}

/// A streaming subscription held by the app (`DaprClient.subscribe`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_a_streaming_subscription() {
    run_script(
        "streaming_app.py",
        "streaming subscription checks passed",
        &[],
        None,
    )
    .await;
}

/// The same app with `statestore` on PostgreSQL: `outrigger run` starts
/// `outrigger-postgres` for the `state.postgresql` type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_statestore_on_postgresql() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let resources = tempfile::tempdir().unwrap();
    let db = resources.path().join("bus.db");
    let table = format!("e2e_{}", std::process::id());
    let yaml = format!(
        "kind: Component\nmetadata: {{name: statestore}}\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n  - {{name: connectionString, value: \"{url}\"}}\n  - {{name: tableName, value: {table}}}\n---\nkind: Component\nmetadata: {{name: pubsub}}\nspec:\n  type: pubsub.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{db}\"}}\n",
        db = db.display()
    );
    std::fs::write(resources.path().join("components.yaml"), yaml).unwrap();
    let path = resources.path().display().to_string();
    run_script_with_env(
        "run_app.py",
        "outrigger run app checks passed",
        &["--resources-path", &path],
        None,
        &[("EXPECT_STATE_TYPE", "state.postgresql")],
    )
    .await;
}

/// Configuration on PostgreSQL under `outrigger run`: the app writes the
/// table through `bindings.postgresql`, reads it with the SDK and gets the
/// changes over gRPC and HTTP subscriptions (LISTEN/NOTIFY behind them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_configuration_on_postgresql() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let resources = tempfile::tempdir().unwrap();
    let table = format!("cfg_e2e_{}", std::process::id());
    let yaml = format!(
        "kind: Component\nmetadata: {{name: configstore}}\nspec:\n  type: configuration.postgresql\n  version: v1\n  metadata:\n  - {{name: connectionString, value: \"{url}\"}}\n  - {{name: table, value: {table}}}\n---\nkind: Component\nmetadata: {{name: pgdb}}\nspec:\n  type: bindings.postgresql\n  version: v1\n  metadata:\n  - {{name: connectionString, value: \"{url}\"}}\n",
    );
    std::fs::write(resources.path().join("components.yaml"), yaml).unwrap();
    let path = resources.path().display().to_string();
    run_script_with_env(
        "config_app.py",
        "configuration app checks passed",
        &["--resources-path", &path],
        None,
        &[("CONFIG_TABLE", &table)],
    )
    .await;
}

/// The official SDK's `invoke_method` through the gateway to the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_service_invocation_to_the_app() {
    let registry = tempfile::tempdir().unwrap();
    let folder = registry.path().display().to_string();
    run_script_with_env(
        "invoke_app.py",
        "invoke app checks passed",
        &["--registry-folder", &folder],
        None,
        &[],
    )
    .await;
}

async fn run_app(token: Option<&str>) {
    run_script("run_app.py", "outrigger run app checks passed", &[], token).await;
}

async fn run_script(name: &str, success: &str, extra: &[&str], token: Option<&str>) {
    run_script_with_env(name, success, extra, token, &[]).await;
}

async fn run_script_with_env(
    name: &str,
    success: &str,
    extra: &[&str],
    token: Option<&str>,
    env: &[(&str, &str)],
) {
    let data = tempfile::tempdir().unwrap();
    let runtime_dir = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        run_command("e2e-app", name, extra, data.path(), runtime_dir.path())
            .envs(token.map(|t| ("DAPR_API_TOKEN", t)))
            .envs(env.iter().copied())
            .output(),
    )
    .await
    .expect("outrigger run finishes within 120 s")
    .unwrap();
    check_run(&output, success);
    // The shared SQLite file is in the data folder.
    assert!(extra.contains(&"--resources-path") || data.path().join("outrigger.db").is_file());
    check_cleaned_up(runtime_dir.path());
}

/// `outrigger run --app-id <app_id> <extra> -- python <script>` with its own
/// data folder and run folder, on a free app port.
fn run_command(
    app_id: &str,
    script: &str,
    extra: &[&str],
    data: &std::path::Path,
    runtime_dir: &std::path::Path,
) -> tokio::process::Command {
    let local = outrigger().with_file_name("outrigger-local");
    assert!(
        local.is_file(),
        "{} is missing: build the workspace (`bash scripts/test.sh` or `cargo build -p outrigger-local`)",
        local.display()
    );
    let python = std::env::var("OUTRIGGER_PYTHON")
        .expect("OUTRIGGER_PYTHON is not set: run `bash scripts/test.sh`, which installs the Dapr SDK venv and sets it");
    let script = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let app_port = support::free_port().to_string();
    let mut command = tokio::process::Command::new(outrigger());
    command
        .args([
            "run",
            "--app-id",
            app_id,
            "--log-level",
            "warn",
            "--app-port",
            &app_port,
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .arg("--")
        .arg(&python)
        .arg(&script)
        .env("XDG_RUNTIME_DIR", runtime_dir)
        .env_remove("DAPR_HTTP_PORT")
        .env_remove("DAPR_GRPC_PORT")
        .env_remove("DAPR_API_TOKEN")
        .kill_on_drop(true);
    command
}

/// The run succeeded and the app printed `success`.
fn check_run(output: &std::process::Output, success: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "outrigger run failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(stdout.contains(success), "{stdout}\n{stderr}");
}

/// The run folder is gone and no process started by the run outlived it.
fn check_cleaned_up(runtime_dir: &std::path::Path) {
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

/// Two Python apps, each under its own `outrigger run` (own gateway, own
/// component process), call each other by app id through both gateways:
/// with the SDK's `invoke_method` and with plain HTTP to `/v1.0/invoke`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_python_apps_invoke_each_other_through_two_gateways() {
    let registry = tempfile::tempdir().unwrap();
    let folder = registry.path().display().to_string();
    let extra = ["--registry-folder", folder.as_str()];
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (run_a, run_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = run_command(
        "py-front",
        "peer_app.py",
        &extra,
        data_a.path(),
        run_a.path(),
    )
    .env("PEER_APP_ID", "py-back")
    .output();
    let b = run_command(
        "py-back",
        "peer_app.py",
        &extra,
        data_b.path(),
        run_b.path(),
    )
    .env("PEER_APP_ID", "py-front")
    .output();
    let (a, b) = tokio::time::timeout(Duration::from_secs(120), async { tokio::join!(a, b) })
        .await
        .expect("both runs finish within 120 s");
    check_run(&a.unwrap(), "peer app py-front checks passed");
    check_run(&b.unwrap(), "peer app py-back checks passed");
    check_cleaned_up(run_a.path());
    check_cleaned_up(run_b.path());
}

#[tokio::test]
async fn invalid_flags_exit_64_naming_the_flag() {
    let output = tokio::process::Command::new(outrigger())
        .args(["run", "--app-id", "no spaces allowed"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--app-id"));
    let output = tokio::process::Command::new(outrigger())
        .args(["--app-max-concurrency", "0"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--app-max-concurrency"));
    let output = tokio::process::Command::new(outrigger())
        .args(["--resources-path", "/definitely/not/here"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--resources-path /definitely/not/here")
    );
}
