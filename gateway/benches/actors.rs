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
//!   the CPU per call of the gateway and of all the benchmark's processes;
//! - activation: the first call to each of 1 000 ids never seen before;
//! - reminders: 1 000 actors with one fire-once reminder each, due at once
//!   on registration, then 200 all due together at a later instant:
//!   fires/s and lateness as the app sees them, repeated calls, failures.
//!
//! The same calls straight to the app, through a bare hyper proxy (the
//! least any HTTP sidecar does: the ceiling of a gateway's rows on this
//! machine), and one round trip to another process (the machine's floor)
//! give the baselines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support {
    pub(crate) mod actor_app;
    pub(crate) mod actor_gateway;
    pub(crate) mod actor_reminders;
    pub(crate) mod bare_proxy;
    pub(crate) mod gateway_cmd;
    pub(crate) mod gateway_log;
    pub(crate) mod pg;
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

use support::actor_app::ACTOR_TYPE;
use support::actor_gateway::{Gateway, start_gateway};

pub(crate) type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;
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

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
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
    /// The CPU per call of every process of the benchmark: the client (this
    /// process), the gateway, the app and the components.
    all_cpu: Duration,
}

/// This process, the app and the components (the gateway is per row).
static PROCESSES: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();

/// `n` calls of `op` (given a distinct index each) over `clients` loops.
async fn measure<F, Fut>(n: usize, clients: usize, gateway: Option<u32>, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per = n / clients;
    let cpu = || gateway.map_or(Duration::ZERO, support::proc::cpu_time);
    let others = || -> Duration {
        PROCESSES
            .get()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|pid| support::proc::cpu_time(*pid))
            .sum()
    };
    let (cpu_before, others_before) = (cpu(), others());
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
        all_cpu: (cpu() + others()).saturating_sub(cpu_before + others_before) / times.len() as u32,
    }
}

pub(crate) async fn send(client: &Http, method: &str, uri: &str, body: Vec<u8>) -> (u16, Bytes) {
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

/// A client of its own for each row, so every row starts with as many
/// connections as it has clients, whatever ran before it.
fn new_client() -> Http {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http()
}

/// HTTP calls to `prefix` + an id that `id_of` picks from the call's index,
/// on a new client whose connections are opened first (calls to `hot`).
async fn http_row(
    prefix: &str,
    n: usize,
    clients: usize,
    gateway: Option<u32>,
    id_of: fn(usize) -> String,
) -> Stats {
    let (client, prefix) = (new_client(), prefix.to_owned());
    let opening = (0..clients).map(|_| call(&client, &prefix, "hot"));
    futures::future::join_all(opening).await;
    measure(n, clients, gateway, move |i| {
        let (client, prefix) = (client.clone(), prefix.clone());
        async move { call(&client, &prefix, &id_of(i)).await }
    })
    .await
}

/// One actor call over gRPC `InvokeActor`.
async fn grpc_call(mut grpc: Grpc, id: String) {
    let reply = grpc
        .invoke_actor(pb::InvokeActorRequest {
            actor_type: ACTOR_TYPE.into(),
            actor_id: id,
            method: "work".into(),
            data: BODY.to_vec(),
            metadata: HashMap::new(),
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().data, REPLY);
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
        "{name:<44} {:>9.1} {:>9.1} {:>9.0}  {vs}  {cpu}  {:>7.1}",
        us(s.p50),
        us(s.p99),
        s.ops,
        us(s.all_cpu),
    );
}

fn header() {
    println!(
        "{:<44} {:>9} {:>9} {:>9}  {:>16}  {:>6}  {:>7}",
        "row", "p50 µs", "p99 µs", "calls/s", "p50 / tput vs app", "GW CPU", "all CPU"
    );
}

/// What the benchmark keeps of each store for the closing summary.
struct Summary {
    store: &'static str,
    best: f64,
    warm_p50: Duration,
    fresh_p50: Duration,
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
        let s = http_row(&gw.actors, n, clients, gw.pid, one_id).await;
        let name = format!("{store}: one id, {clients} client(s)");
        row(&name, &s, direct.get(&clients));
    }
    // Activate every spread id first (16 clients), timed as a bonus.
    let warm = http_row(&gw.actors, SPREAD, 16, gw.pid, |i| format!("a-{i}")).await;
    row(
        &format!("{store}: activating {SPREAD} ids, 16 clients"),
        &warm,
        None,
    );
    let mut best = 0f64;
    let mut warm_p50 = Duration::ZERO;
    for &clients in CONCURRENCY {
        let s = http_row(&gw.actors, n, clients, gw.pid, spread_id).await;
        let name = format!("{store}: {SPREAD} ids (warm), {clients} client(s)");
        row(&name, &s, direct.get(&clients));
        best = best.max(s.ops);
        if clients == 1 {
            warm_p50 = s.p50;
        }
    }
    for &clients in &CONCURRENCY[..2] {
        let grpc = Grpc::new(outrigger::components::channel::lazy_tcp(gw.grpc));
        grpc_call(grpc.clone(), "hot".into()).await;
        let s = measure(n, clients, gw.pid, move |i| {
            grpc_call(grpc.clone(), spread_id(i))
        })
        .await;
        let name = format!("{store}: {SPREAD} ids (warm), gRPC, {clients} client(s)");
        row(&name, &s, direct.get(&clients));
        best = best.max(s.ops);
    }
    // Activation: the first call to ids never seen, one at a time.
    let fresh_ids = move |i: usize| format!("fresh-{store}-{i}");
    let (c, prefix) = (new_client(), gw.actors.clone());
    call(&c, &prefix, "hot").await;
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
    support::actor_reminders::reminder_rows(store, client, &gw, reminders, reminders / 5).await;
    let _ = gw.child.kill().await;
    support::gateway_log::print_warnings(store, &dir.join(format!("gateway-{store}.log")));
    Summary {
        store,
        best,
        warm_p50,
        fresh_p50: first.p50,
    }
}

pub(crate) static APP_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The same calls through the bare proxy (`support::bare_proxy`), in
/// front of the app, at the throughput rows' concurrencies: what any HTTP
/// sidecar reaches on this machine. Its best calls/s.
async fn bare_proxy_rows(n: usize, app_port: u16, direct: &HashMap<usize, Stats>) -> f64 {
    let port = free_port();
    let mut proxy = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(
            support::bare_proxy::PROXY_MODE,
            format!("{port}:{app_port}"),
        )
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let prefix = format!("http://127.0.0.1:{port}/actors/{ACTOR_TYPE}/");
    println!(
        "\nbare proxy (hyper HTTP/1.1 server and client, one worker thread, no gateway logic) in front of the app; GW CPU = the proxy's"
    );
    header();
    let mut best = 0f64;
    for &clients in CONCURRENCY {
        let s = http_row(&prefix, n, clients, proxy.id(), spread_id).await;
        row(
            &format!("bare proxy, {clients} client(s)"),
            &s,
            direct.get(&clients),
        );
        best = best.max(s.ops);
    }
    let _ = proxy.kill().await;
    best
}

/// outrigger-local and outrigger-postgres, until killed.
async fn serve_components(sockets: &std::path::Path) {
    let server =
        outrigger_postgres::services(outrigger_local::services(ComponentServer::new(sockets)));
    let _ = server.serve(std::future::pending::<()>()).await;
}

fn main() {
    // Its own runtime, with the gateway's one worker thread.
    if !support::bare_proxy::serve_if_asked() {
        run();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn run() {
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
    let floor = tokio::task::spawn_blocking(move || support::pingpong::Floors::measure(n))
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
    let _ = PROCESSES.set(
        [Some(std::process::id()), app.id(), components.id()]
            .into_iter()
            .flatten()
            .collect(),
    );
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
        "actors benchmark: {n} calls per row; {SPREAD} warm ids; {fresh} fresh ids; {reminders} reminders due on registration, {} due together; the app answers every call at once",
        reminders / 5
    );
    println!(
        "machine floor: one round trip to another process over a Unix socket, p50 {}",
        floor.describe()
    );
    println!(
        "CPU columns: µs per call, user + system from /proc; GW = the gateway, all = client + gateway + app + components (not the PostgreSQL server)"
    );
    // The app directly, as an actor call would reach it from the gateway.
    let direct_prefix = format!("{app_url}/actors/{ACTOR_TYPE}/");
    let mut direct = HashMap::new();
    println!("\napp directly (no gateway): PUT /actors/{ACTOR_TYPE}/{{id}}/method/work");
    header();
    http_row(&direct_prefix, n / 10, 1, None, spread_id).await;
    for &clients in CONCURRENCY {
        let s = http_row(&direct_prefix, n, clients, None, spread_id).await;
        row(&format!("app directly, {clients} client(s)"), &s, None);
        direct.insert(clients, s);
    }
    let bare_best = bare_proxy_rows(n, app_port, &direct).await;

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

    let floor_after = tokio::task::spawn_blocking(move || support::pingpong::Floors::measure(n))
        .await
        .unwrap();
    println!(
        "\nmachine floor after the rows: p50 {} (before: {})",
        floor_after.describe(),
        floor.describe()
    );
    let app_best = direct.values().map(|s| s.ops).fold(0f64, f64::max);
    for s in &summaries {
        println!(
            "{}: best actor-call throughput {:.0} calls/s against the goal of {GOAL:.0} calls/s on 2 cores ({:.0} % of it; {:.0} % of the bare proxy's {bare_best:.0}; the app alone {:.0} calls/s); warm call p50 {:.1} µs, first call {:.1} µs",
            s.store,
            s.best,
            s.best / GOAL * 100.0,
            s.best / bare_best * 100.0,
            app_best,
            us(s.warm_p50),
            us(s.fresh_p50),
        );
    }
    println!("whole run: {:.0} s", started.elapsed().as_secs_f64());
    let _ = components.kill().await;
    let _ = app.kill().await;
    if let Some(url) = &pg_url {
        support::pg::drop_table(url, &pg_table).await;
    }
}
