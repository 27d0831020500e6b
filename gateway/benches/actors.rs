//! Actors benchmark: actor calls, activations and reminders through the
//! gateway, against the same app called directly, measured in one run.
//!
//! Run with:
//!     cargo bench -p outrigger --bench actors
//! (add `-- --quick` for a short run; set `OUTRIGGER_POSTGRES_URL` for the
//! PostgreSQL rows). It starts an actor app (axum, answers at once; a
//! process of its own), the state components (`outrigger-local`,
//! `outrigger-postgres`; a process of their own) and, per actor state store,
//! the real `outrigger` binary in front of the app. Per store it measures:
//!
//! - calls to one actor id (every call waits for that actor's turn) and
//!   spread over 10 000 ids activated beforehand, over HTTP (1, 16, 64
//!   concurrent clients) and gRPC `InvokeActor`; p50/p99 and calls/s, with
//!   the gateway's CPU per call;
//! - activation: the first call to each of 1 000 ids never seen before;
//! - reminders: 1 000 actors with one fire-once reminder each, due at once
//!   on registration, then all due together at a later instant: fires/s
//!   and lateness as the app sees them.
//!
//! The same calls straight to the app, and one round trip to another
//! process (the machine's floor), give the baselines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support {
    pub(crate) mod actor_app;
    pub(crate) mod pingpong;
    pub(crate) mod proc;
}

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use outrigger_component_sdk::ComponentServer;
use outrigger_proto::runtime as pb;

use support::actor_app::{ACTOR_TYPE, Fire, now_us};

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;
type Grpc = pb::dapr_client::DaprClient<outrigger::components::channel::UdsChannel>;

/// The issue's goal for actor calls through one gateway on this machine.
const GOAL: f64 = 50_000.0;
const BODY: &[u8] = br#"{"n":42}"#;
const REPLY: &[u8] = br#"{"ok":true}"#;
/// Concurrent clients of the throughput rows (16 as the gateway bench; 64
/// where more no longer helps in the invoke bench).
const CONCURRENCY: &[usize] = &[1, 16, 64];

/// Set to a socket folder, the binary serves the state components there.
const COMPONENTS_MODE: &str = "OUTRIGGER_BENCH_COMPONENTS";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[derive(Clone, Copy)]
struct Stats {
    p50: Duration,
    p99: Duration,
    ops: f64,
    /// The gateway's user + system CPU per call (zero without a gateway).
    cpu: Duration,
}

/// `n` calls of `op` (given a distinct index each) over `clients` loops.
async fn measure<F, Fut>(n: usize, clients: usize, gateway: Option<u32>, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per = n / clients;
    let cpu = || gateway.map_or(Duration::ZERO, support::proc::cpu_time);
    let cpu_before = cpu();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::with_capacity(per);
            for i in 0..per {
                let t = Instant::now();
                op(c * per + i).await;
                times.push(t.elapsed());
            }
            times
        }));
    }
    let mut times = Vec::with_capacity(n);
    for task in tasks {
        times.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed();
    times.sort();
    Stats {
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        ops: times.len() as f64 / elapsed.as_secs_f64(),
        cpu: cpu().saturating_sub(cpu_before) / times.len() as u32,
    }
}

async fn send(client: &Http, method: &str, uri: &str, body: Vec<u8>) -> (u16, Bytes) {
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

/// One actor call: `PUT {prefix}{id}/method/work`, answered 200 `{"ok":true}`.
async fn call(client: &Http, prefix: &str, id: &str) {
    let (status, body) = send(
        client,
        "PUT",
        &format!("{prefix}{id}/method/work"),
        BODY.to_vec(),
    )
    .await;
    assert_eq!(
        (status, &body[..]),
        (200, REPLY),
        "actor call {prefix}{id}: {}",
        String::from_utf8_lossy(&body)
    );
}

/// HTTP calls to `prefix` + an id that `id_of` picks from the call's index.
async fn http_row(
    client: &Http,
    prefix: &str,
    n: usize,
    clients: usize,
    gateway: Option<u32>,
    id_of: fn(usize) -> String,
) -> Stats {
    let (client, prefix) = (client.clone(), prefix.to_owned());
    measure(n, clients, gateway, move |i| {
        let (client, prefix) = (client.clone(), prefix.clone());
        async move { call(&client, &prefix, &id_of(i)).await }
    })
    .await
}

/// The spread rows' ids: `a-0` .. `a-9999`, visited in a scattered order.
fn spread_id(i: usize) -> String {
    format!("a-{}", (i * 7919) % SPREAD)
}
const SPREAD: usize = 10_000;

fn one_id(_: usize) -> String {
    "hot".to_owned()
}

fn row(name: &str, s: &Stats, direct: Option<&Stats>) {
    let vs = direct.map_or(String::from("     –          –"), |d| {
        format!("{:>5.2}x / {:>5.2}x", us(s.p50) / us(d.p50), s.ops / d.ops)
    });
    let cpu = if s.cpu.is_zero() {
        "     –".to_owned()
    } else {
        format!("{:>6.1}", us(s.cpu))
    };
    println!(
        "{name:<44} {:>9.1} {:>9.1} {:>9.0}  {vs}  {cpu}",
        us(s.p50),
        us(s.p99),
        s.ops,
    );
}

fn header() {
    println!(
        "{:<44} {:>9} {:>9} {:>9}  {:>16}  {:>6}",
        "row", "p50 µs", "p99 µs", "calls/s", "p50 / tput vs app", "GW CPU"
    );
}

/// The gateway for one actor state store, and how to reach it.
struct Gateway {
    child: tokio::process::Child,
    pid: Option<u32>,
    /// `http://127.0.0.1:PORT/v1.0/actors/Bench/`.
    actors: String,
    grpc: Grpc,
}

async fn start_gateway(
    client: &Http,
    dir: &std::path::Path,
    store: &str,
    yaml: &str,
    app_port: u16,
    sockets: &std::path::Path,
) -> Gateway {
    let resources = dir.join(format!("resources-{store}"));
    std::fs::create_dir_all(&resources).unwrap();
    std::fs::write(resources.join("actorstore.yaml"), yaml).unwrap();
    let (http_port, grpc_port) = (free_port(), free_port());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args([
            "--app-id",
            "bench",
            "--log-level",
            "warn",
            "--metrics-port",
            "0",
        ])
        .args(["--app-port", &app_port.to_string()])
        .args(["--dapr-http-port", &http_port.to_string()])
        .args(["--dapr-grpc-port", &grpc_port.to_string()])
        .arg("--resources-path")
        .arg(&resources)
        .arg("--components-sockets-folder")
        .arg(sockets)
        .arg("--registry-folder")
        .arg(dir.join("registry"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{http_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = http::Request::get(format!("{base}/v1.0/metadata"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        if let Ok(response) = client.request(request).await {
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let meta: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if meta["actorRuntime"]["hostReady"] == true {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the {store} gateway never hosted actors"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Gateway {
        pid: child.id(),
        child,
        actors: format!("{base}/v1.0/actors/{ACTOR_TYPE}/"),
        grpc: pb::dapr_client::DaprClient::new(outrigger::components::channel::lazy_tcp(
            std::net::SocketAddr::from(([127, 0, 0, 1], grpc_port)),
        )),
    }
}

/// What the benchmark keeps of each store for the closing summary.
struct Summary {
    store: &'static str,
    best: f64,
    warm_p50: Duration,
    fresh_p50: Duration,
    fires: f64,
}

/// Every row for one actor state store.
#[allow(clippy::too_many_arguments)]
async fn store_rows(
    store: &'static str,
    yaml: String,
    n: usize,
    fresh: usize,
    reminders: usize,
    client: &Http,
    app_port: u16,
    direct: &HashMap<usize, Stats>,
    dir: &std::path::Path,
    sockets: &std::path::Path,
) -> Summary {
    let mut gw = start_gateway(client, dir, store, &yaml, app_port, sockets).await;
    println!("\n{store}: gateway HTTP API unless marked gRPC");
    header();
    // One actor: every call waits for the one before it (the turn lock).
    call(client, &gw.actors, "hot").await;
    for &clients in &CONCURRENCY[..2] {
        let s = http_row(client, &gw.actors, n, clients, gw.pid, one_id).await;
        let name = format!("{store}: one id, {clients} client(s)");
        row(&name, &s, direct.get(&clients));
    }
    // Activate every spread id first (16 clients), timed as a bonus.
    let warm = http_row(client, &gw.actors, SPREAD, 16, gw.pid, |i| format!("a-{i}")).await;
    row(
        &format!("{store}: activating {SPREAD} ids, 16 clients"),
        &warm,
        None,
    );
    let mut best = 0f64;
    let mut warm_p50 = Duration::ZERO;
    for &clients in CONCURRENCY {
        let s = http_row(client, &gw.actors, n, clients, gw.pid, spread_id).await;
        let name = format!("{store}: {SPREAD} ids (warm), {clients} client(s)");
        row(&name, &s, direct.get(&clients));
        best = best.max(s.ops);
        if clients == 1 {
            warm_p50 = s.p50;
        }
    }
    for &clients in &CONCURRENCY[..2] {
        let grpc = gw.grpc.clone();
        let s = measure(n, clients, gw.pid, move |i| {
            let mut grpc = grpc.clone();
            async move {
                let reply = grpc
                    .invoke_actor(pb::InvokeActorRequest {
                        actor_type: ACTOR_TYPE.into(),
                        actor_id: spread_id(i),
                        method: "work".into(),
                        data: BODY.to_vec(),
                        metadata: HashMap::new(),
                    })
                    .await
                    .unwrap();
                assert_eq!(reply.into_inner().data, REPLY);
            }
        })
        .await;
        let name = format!("{store}: {SPREAD} ids (warm), gRPC, {clients} client(s)");
        row(&name, &s, direct.get(&clients));
        best = best.max(s.ops);
    }
    // Activation: the first call to ids never seen, one at a time.
    let fresh_ids = move |i: usize| format!("fresh-{store}-{i}");
    let (c, prefix) = (client.clone(), gw.actors.clone());
    let first = measure(fresh, 1, gw.pid, move |i| {
        let (c, prefix) = (c.clone(), prefix.clone());
        async move { call(&c, &prefix, &fresh_ids(i)).await }
    })
    .await;
    row(
        &format!("{store}: first call to a fresh id, 1 client"),
        &first,
        direct.get(&1),
    );
    println!(
        "{store}: activation adds {:.1} µs at p50 ({:.2}x a warm call's {:.1} µs)",
        us(first.p50) - us(warm_p50),
        us(first.p50) / us(warm_p50),
        us(warm_p50)
    );
    let fires = reminder_rows(store, client, &gw, reminders).await;
    let _ = gw.child.kill().await;
    Summary {
        store,
        best,
        warm_p50,
        fresh_p50: first.p50,
        fires,
    }
}

/// Register one fire-once reminder on each of `ids` warm actors, due at
/// `due` (a duration or RFC 3339 time; `None`: "0s", due on registration),
/// over 16 clients; returns how long the registrations took.
async fn register(
    client: &Http,
    gw: &Gateway,
    ids: usize,
    name: &'static str,
    due: Option<(String, i64)>,
) -> (Duration, usize) {
    let start = Instant::now();
    let clients = 16;
    let per = ids.div_ceil(clients);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, base, due) = (client.clone(), gw.actors.clone(), due.clone());
        tasks.push(tokio::spawn(async move {
            let mut failed = 0;
            for i in (c * per)..((c + 1) * per).min(ids) {
                let (due_time, due_us) = due.clone().unwrap_or(("0s".into(), now_us()));
                let body = serde_json::json!({"dueTime": due_time, "data": {"due": due_us}});
                let uri = format!("{base}a-{i}/reminders/{name}");
                let (status, reply) = send(&client, "POST", &uri, body.to_string().into()).await;
                if status != 204 {
                    failed += 1;
                    if failed == 1 {
                        println!(
                            "  reminder registration failed: {status} {}",
                            String::from_utf8_lossy(&reply)
                        );
                    }
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for task in tasks {
        failed += task.await.unwrap();
    }
    (start.elapsed(), failed)
}

/// Read the app's firings until `expected` distinct ones arrived (or the
/// patience ran out), then a little longer to catch repeats.
async fn collect_fires(client: &Http, app: &str, name: &str, expected: usize) -> Vec<Fire> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut fires: Vec<Fire> = Vec::new();
    let mut extra = None;
    loop {
        let (_, body) = send(client, "GET", &format!("{app}/bench/fires"), Vec::new()).await;
        let got: Vec<Fire> = serde_json::from_slice(&body).unwrap();
        fires.extend(got.into_iter().filter(|f| f.key.ends_with(name)));
        let distinct = fires
            .iter()
            .map(|f| &f.key)
            .collect::<std::collections::HashSet<_>>()
            .len();
        if distinct >= expected && extra.is_none() {
            extra = Some(Instant::now() + Duration::from_millis(500));
        }
        if extra.is_some_and(|at| Instant::now() >= at) || Instant::now() >= deadline {
            return fires;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fires/s (from `from_us` to the last fire), lateness p50/p99, repeats.
fn fire_stats(fires: &[Fire], from_us: i64) -> (f64, Duration, Duration, usize) {
    let last = fires.iter().map(|f| f.at_us).max().unwrap_or(from_us);
    let distinct = fires
        .iter()
        .map(|f| &f.key)
        .collect::<std::collections::HashSet<_>>()
        .len();
    let mut late: Vec<Duration> = fires
        .iter()
        .map(|f| Duration::from_micros(u64::try_from(f.at_us - f.due_us).unwrap_or(0)))
        .collect();
    late.sort();
    let rate = distinct as f64 / ((last - from_us).max(1) as f64 / 1e6);
    if late.is_empty() {
        return (0.0, Duration::ZERO, Duration::ZERO, 0);
    }
    (
        rate,
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        fires.len() - distinct,
    )
}

/// Reminder firing on `ids` warm actors: due on registration, then all
/// due together. Returns the second phase's fires/s.
async fn reminder_rows(store: &str, client: &Http, gw: &Gateway, ids: usize) -> f64 {
    let app = APP_URL.get().unwrap().clone();
    // Phase 1: due as soon as registered ("0s"), 16 clients registering.
    let from = now_us();
    let (took, failed) = register(client, gw, ids, "now", None).await;
    let fires = collect_fires(client, &app, "/now", ids - failed).await;
    let (rate, p50, p99, repeats) = fire_stats(&fires, from);
    println!(
        "{store}: {ids} reminders due on registration: registered in {:.2} s ({:.0}/s, {failed} failed); {} fired, {rate:.0} fires/s from the first registration; lateness after registration p50 {:.1} ms, p99 {:.1} ms; {repeats} repeated",
        took.as_secs_f64(),
        ids as f64 / took.as_secs_f64(),
        fires.len() - repeats,
        us(p50) / 1e3,
        us(p99) / 1e3,
    );
    // Phase 2: all due at one instant after the registrations are done.
    let lead = (took * 3 / 2 + Duration::from_millis(500)).max(Duration::from_secs(1));
    let due_us = now_us() + i64::try_from(lead.as_micros()).unwrap();
    let due_time = chrono::DateTime::from_timestamp_micros(due_us)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // The gateway keeps millisecond precision.
    let due_us = due_us / 1000 * 1000;
    let (took, failed) = register(client, gw, ids, "later", Some((due_time, due_us))).await;
    let early = now_us() < due_us;
    let fires = collect_fires(client, &app, "/later", ids - failed).await;
    let (rate, p50, p99, repeats) = fire_stats(&fires, due_us);
    println!(
        "{store}: {ids} reminders due together: registered in {:.2} s ({failed} failed{}); {} fired, {rate:.0} fires/s from the due time; lateness p50 {:.1} ms, p99 {:.1} ms; {repeats} repeated",
        took.as_secs_f64(),
        if early {
            ""
        } else {
            ", NOT done by the due time"
        },
        fires.len() - repeats,
        us(p50) / 1e3,
        us(p99) / 1e3,
    );
    rate
}

static APP_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// outrigger-local and outrigger-postgres, until killed.
async fn serve_components(sockets: &std::path::Path) {
    let server =
        outrigger_postgres::services(outrigger_local::services(ComponentServer::new(sockets)));
    let _ = server.serve(std::future::pending::<()>()).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if support::pingpong::serve_if_child() {
        return;
    }
    if let Some(sockets) = std::env::var_os(COMPONENTS_MODE) {
        serve_components(std::path::Path::new(&sockets)).await;
        return;
    }
    if let Some(port) = std::env::var(support::actor_app::APP_MODE)
        .ok()
        .and_then(|p| p.parse().ok())
    {
        support::actor_app::serve(port).await;
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, fresh, reminders) = if quick {
        (2_000, 200, 200)
    } else {
        (10_000, 1_000, 1_000)
    };
    let started = Instant::now();
    // The floor first, while nothing else of the benchmark runs.
    let floor = tokio::task::spawn_blocking(move || support::pingpong::round_trip_p50(n))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    let pg_url = std::env::var("OUTRIGGER_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());

    // The app and the components are processes of their own (this binary
    // again), as in production: the direct rows cross one process boundary,
    // the gateway rows two (and the component a third, when the store is hit).
    let app_port = free_port();
    let mut app = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(support::actor_app::APP_MODE, app_port.to_string())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut components = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(COMPONENTS_MODE, &sockets)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for name in [outrigger_local::SOCKET, outrigger_postgres::SOCKET] {
        while tokio::net::UnixStream::connect(sockets.join(format!("{name}.sock")))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    while tokio::net::TcpStream::connect(("127.0.0.1", app_port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let app_url = format!("http://127.0.0.1:{app_port}");
    let _ = APP_URL.set(app_url.clone());
    let client: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http();

    println!(
        "actors benchmark: {n} calls per row; {SPREAD} warm ids; {fresh} fresh ids; {reminders} reminders; the app answers every call at once"
    );
    println!(
        "machine floor: one round trip to another process over a Unix socket, p50 {:.1} µs",
        us(floor)
    );
    // The app directly, as an actor call would reach it from the gateway.
    let direct_prefix = format!("{app_url}/actors/{ACTOR_TYPE}/");
    let mut direct = HashMap::new();
    println!("\napp directly (no gateway): PUT /actors/{ACTOR_TYPE}/{{id}}/method/work");
    header();
    http_row(&client, &direct_prefix, n / 10, 1, None, spread_id).await;
    for &clients in CONCURRENCY {
        let s = http_row(&client, &direct_prefix, n, clients, None, spread_id).await;
        row(&format!("app directly, {clients} client(s)"), &s, None);
        direct.insert(clients, s);
    }

    let mut summaries = Vec::new();
    let sqlite = format!(
        "kind: Component\nmetadata: {{name: actorstore}}\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{}\"}}\n  - {{name: actorStateStore, value: \"true\"}}\n",
        dir.path().join("actors.db").display()
    );
    summaries.push(
        store_rows(
            "sqlite",
            sqlite,
            n,
            fresh,
            reminders,
            &client,
            app_port,
            &direct,
            dir.path(),
            &sockets,
        )
        .await,
    );
    let pg_table = format!("bench_actors_{}", std::process::id());
    if let Some(url) = &pg_url {
        let yaml = format!(
            "kind: Component\nmetadata: {{name: actorstore}}\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n  - {{name: connectionString, value: \"{url}\"}}\n  - {{name: tableName, value: {pg_table}}}\n  - {{name: actorStateStore, value: \"true\"}}\n"
        );
        summaries.push(
            store_rows(
                "postgres",
                yaml,
                n,
                fresh,
                reminders,
                &client,
                app_port,
                &direct,
                dir.path(),
                &sockets,
            )
            .await,
        );
    } else {
        println!("\n(PostgreSQL rows skipped: set OUTRIGGER_POSTGRES_URL=postgres://... for them)");
    }

    let floor_after = tokio::task::spawn_blocking(move || support::pingpong::round_trip_p50(n))
        .await
        .unwrap();
    println!(
        "\nmachine floor after the rows: p50 {:.1} µs (before: {:.1} µs)",
        us(floor_after),
        us(floor)
    );
    let app_best = direct.values().map(|s| s.ops).fold(0f64, f64::max);
    for s in &summaries {
        println!(
            "{}: best actor-call throughput {:.0} calls/s against the goal of {GOAL:.0} calls/s on 2 cores ({:.0} % of it; the app alone {:.0} calls/s); warm call p50 {:.1} µs, first call {:.1} µs; reminders due together {:.0} fires/s",
            s.store,
            s.best,
            s.best / GOAL * 100.0,
            app_best,
            us(s.warm_p50),
            us(s.fresh_p50),
            s.fires
        );
    }
    println!("whole run: {:.0} s", started.elapsed().as_secs_f64());
    let _ = components.kill().await;
    let _ = app.kill().await;
    if let Some(url) = &pg_url
        && let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
    {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {pg_table}"
        )))
        .execute(&pool)
        .await;
    }
}
