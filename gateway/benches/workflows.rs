//! Workflows benchmark: the Durable Task engine behind
//! `TaskHubSidecarService`, driven by a worker that speaks the protocol as
//! an SDK worker does, on SQLite and PostgreSQL, measured in one run.
//!
//! Run with:
//!     cargo bench -p outrigger --bench workflows
//! (add `-- --quick` for a short run; set `OUTRIGGER_POSTGRES_URL` for the
//! PostgreSQL rows; `OUTRIGGER_WORKER_THREADS` sets the gateway runtime's
//! threads, 1 by default as in the binary). The gateway runs in this
//! process (`outrigger::Gateway::start`, on a runtime of its own whose
//! threads are named [`GATEWAY_THREAD`], so its CPU can be told apart); its
//! actor state store (`state.sqlite` of `outrigger-local`, or
//! `state.postgresql` of `outrigger-postgres`) is served by a child
//! process, through a wrapper that counts every store call
//! (`support/counted_store.rs`). The worker (`support/wf_worker.rs`) holds
//! one `GetWorkItems` stream; the workflow is a chain of [`CHAIN`]
//! activities. Per store:
//!
//! - one workflow at a time, `StartInstance` → `WaitForInstanceCompletion`
//!   (end-to-end latency), and the latency of each hand-off in it;
//! - throughput in a closed loop (each of N clients starts its next
//!   workflow when its last one is done): [`LOW_CONCURRENCY`] and
//!   [`CONCURRENT`] in flight with completion seen by the worker (its
//!   `CompleteWorkflow` recorded), and [`CONCURRENT`] with each client
//!   waiting in `WaitForInstanceCompletion`, as an SDK client does:
//!   workflows/s, activities/s, store calls and CPU per activity. Failures
//!   are counted and reported, not fatal; a `StartInstance` that failed is
//!   checked for an instance left behind.
//!
//! The goal of the issue (2 000 activities/s on SQLite on 2 cores) is
//! printed next to the measured figure. The gateway's warnings go to a file,
//! summarised at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support {
    pub(crate) mod counted_store;
    pub(crate) mod gateway_log;
    pub(crate) mod pg;
    pub(crate) mod pingpong;
    pub(crate) mod wf_driver;
    pub(crate) mod wf_report;
    pub(crate) mod wf_worker;
}

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use outrigger::config::{AppProtocol, Config};
use outrigger_component_sdk::ComponentServer;
use tokio_util::sync::CancellationToken;

use support::counted_store::{Counted, CountsReader, Shared, delta};
use support::wf_driver::*;
use support::wf_report::{cpu, print_cpu, print_hops, print_store_calls};
use support::wf_worker::{Client, Worker};

/// The goal: activities per second on SQLite, on 2 cores.
const GOAL: f64 = 2_000.0;
/// Activities per workflow.
pub(crate) const CHAIN: usize = 5;
/// Workflows in flight in the throughput rows.
const CONCURRENT: usize = 200;
/// How long a throughput client waits for its workflow to complete.
const PATIENCE: Duration = Duration::from_secs(15);
/// Workflows in flight in the low-contention throughput row.
const LOW_CONCURRENCY: usize = 20;
/// The gateway runtime's thread name (`/proc/self/task/*/comm`).
pub(crate) const GATEWAY_THREAD: &str = "outrigger-gw";
/// Set to a socket folder, the binary serves the (counted) state stores there.
const COMPONENTS_MODE: &str = "OUTRIGGER_BENCH_COMPONENTS";

/// How much to run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Sequential workflows of the latency rows.
    single: usize,
    /// Workflows per throughput row.
    total: usize,
    /// No new workflow starts after this long in a throughput row.
    cap: Duration,
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// === the components process ===

/// `outrigger-local` and `outrigger-postgres` state, counted, until killed.
async fn serve_components(sockets: &Path) {
    let counts = Shared::default();
    let (local, pg) = (counts.clone(), counts.clone());
    let server = ComponentServer::new(sockets)
        .service(outrigger_local::SOCKET, move |s| {
            let counts = local.clone();
            s.state_store(move || {
                Counted::new(
                    outrigger_local::state::SqliteState::default(),
                    counts.clone(),
                )
            })
        })
        .service(outrigger_postgres::SOCKET, move |s| {
            let counts = pg.clone();
            s.state_store(move || {
                Counted::new(
                    outrigger_postgres::state::PgState::default(),
                    counts.clone(),
                )
            })
        });
    support::counted_store::answer_on_stdio(counts);
    let _ = server.serve(std::future::pending::<()>()).await;
}

// === the gateway ===

/// A gateway on a runtime of its own.
struct Node {
    runtime: tokio::runtime::Runtime,
    gateway: outrigger::Gateway,
    stop: CancellationToken,
}

impl Node {
    async fn start(dir: &Path, sockets: &Path, yaml: &str) -> Self {
        let resources = dir.join("resources");
        std::fs::create_dir_all(&resources).unwrap();
        std::fs::write(resources.join("actorstore.yaml"), yaml).unwrap();
        let config = Config {
            app_id: "wfbench".into(),
            app_port: None,
            app_protocol: AppProtocol::Http,
            app_max_concurrency: None,
            app_health: None,
            app_socket: None,
            http_port: 0,
            grpc_port: 0,
            listen_address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            resources_paths: vec![resources],
            config_file: None,
            log_level: "warn".into(),
            metrics_port: None,
            sockets_folder: sockets.to_owned(),
            max_body_bytes: 4 * 1024 * 1024,
            component_init_timeout: Duration::from_secs(10),
            api_token: None,
            app_api_token: None,
            registry_folder: None,
            actor_lease_ttl: Duration::from_secs(5),
            advertise_address: None,
        };
        let threads = std::env::var("OUTRIGGER_WORKER_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(GATEWAY_THREAD)
            .enable_all()
            .build()
            .unwrap();
        let stop = CancellationToken::new();
        let gateway = runtime
            .spawn(outrigger::Gateway::start(config, stop.clone()))
            .await
            .unwrap()
            .expect("the gateway starts");
        Self {
            runtime,
            gateway,
            stop,
        }
    }

    fn grpc(&self) -> SocketAddr {
        self.gateway.grpc_addr
    }

    async fn stop(self) {
        self.stop.cancel();
        let waited = self.runtime.spawn(self.gateway.wait());
        if tokio::time::timeout(Duration::from_secs(5), waited)
            .await
            .is_err()
        {
            println!("  (the gateway did not stop within 5 s; its runtime is dropped)");
        }
        self.runtime.shutdown_background();
    }
}

// === one store ===

/// What the closing summary needs of a store.
struct Summary {
    store: &'static str,
    /// (in flight, how completion was seen, activities/s) per row.
    rates: Vec<(usize, Waiting, f64)>,
    single_p50: Duration,
    /// p50 and p99 of "activity completed → next workflowRequest", one at a time.
    step: (Duration, Duration),
}

#[allow(clippy::too_many_arguments)]
async fn store_rows(
    store: &'static str,
    yaml: String,
    plan: Plan,
    dir: &Path,
    sockets: &Path,
    counts: &mut CountsReader,
    components: Option<u32>,
) -> Summary {
    println!("\n{store}:");
    let node = Node::start(&dir.join(store), sockets, &yaml).await;
    let client = Client::new(outrigger::components::channel::lazy_tcp(node.grpc()));
    let (worker, worker_task) = Worker::start(client.clone()).await;

    // The first workflow also waits for the engine to join placement
    // (once a worker is connected) and pick the instance up.
    let first = one(&client, &worker, "warm-0").await;
    for i in 1..5 {
        one(&client, &worker, &format!("warm-{i}")).await;
    }
    println!(
        "  first workflow after the worker connected: {:.1} ms (joins placement)",
        ms(first)
    );
    let _ = worker.take_hops();

    // One at a time.
    let c0 = counts.read().await;
    let cpu0 = cpu(components);
    let mut e2e = Vec::with_capacity(plan.single);
    for i in 0..plan.single {
        e2e.push(one(&client, &worker, &format!("single-{i}")).await);
    }
    e2e.sort();
    let single_p50 = percentile(&e2e, 0.5);
    println!(
        "  one workflow at a time, chain of {CHAIN}, StartInstance → WaitForInstanceCompletion: p50 {:.2} ms, max {:.2} ms (n={}); {:.2} ms per activity at p50",
        ms(single_p50),
        ms(e2e[e2e.len() - 1]),
        e2e.len(),
        ms(single_p50) / CHAIN as f64
    );
    let cpu1 = cpu(components);
    print_store_calls(&delta(&c0, &counts.read().await), plan.single * CHAIN);
    print_cpu(cpu0, cpu1, plan.single * CHAIN);
    let hops = worker.take_hops();
    let mut step_times = hops.activity_to_step.clone();
    step_times.sort();
    let step = (percentile(&step_times, 0.5), percentile(&step_times, 0.99));
    print_hops("one workflow at a time", hops);

    // Throughput: fewer in flight (little contention), then CONCURRENT,
    // with completion seen by the worker and by waiting clients.
    let mut rates = Vec::new();
    for (concurrency, waiting, prefix) in [
        (LOW_CONCURRENCY, Waiting::Worker, "tpl"),
        (CONCURRENT, Waiting::Worker, "tpw"),
        (CONCURRENT, Waiting::Client, "tpc"),
    ] {
        let what = match waiting {
            Waiting::Worker => "completion seen by the worker (its CompleteWorkflow recorded)",
            Waiting::Client => "each client waiting in WaitForInstanceCompletion",
        };
        let c0 = counts.read().await;
        let cpu0 = cpu(components);
        let row = closed_loop(&client, &worker, prefix, concurrency, plan, waiting).await;
        let cpu1 = cpu(components);
        let c1 = counts.read().await;
        let activities = row.workflows * CHAIN;
        println!(
            "  {concurrency} workflows in flight, {what}: {} workflows in {:.2} s: {:.1} workflows/s, {:.0} activities/s",
            row.workflows,
            row.elapsed.as_secs_f64(),
            row.per_second(),
            row.per_second() * CHAIN as f64,
        );
        if let Some(why) = &row.failure {
            println!(
                "  !! {} started and not seen completed; first: {why}",
                row.failed
            );
        }
        let started: Vec<String> = (0..row.workflows + row.failed + row.start_failed.len())
            .map(|i| format!("{prefix}-{i}"))
            .filter(|id| !row.start_failed.contains(id))
            .collect();
        let completed = count_completed(&client, &started).await;
        if let Some(why) = &row.start_error {
            orphans(&client, &worker, &row.start_failed, why).await;
        }
        if completed != started.len() {
            tokio::time::sleep(Duration::from_secs(3)).await;
            stuck(&client, &worker, &started, completed).await;
        }
        print_store_calls(&delta(&c0, &c1), activities);
        print_cpu(cpu0, cpu1, activities);
        let hops = worker.take_hops();
        if concurrency == CONCURRENT && waiting == Waiting::Worker {
            print_hops(&format!("{concurrency} in flight"), hops);
        }
        rates.push((concurrency, waiting, row.per_second() * CHAIN as f64));
    }
    let problems = worker.problems();
    if !problems.is_empty() {
        println!("  worker problems: {}", problems.len());
        for p in problems.iter().take(5) {
            println!("    {p}");
        }
    }
    worker_task.abort();
    drop(worker);
    drop(client);
    node.stop().await;
    Summary {
        store,
        rates,
        single_p50,
        step,
    }
}

fn main() {
    if support::pingpong::serve_if_child() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    if let Some(sockets) = std::env::var_os(COMPONENTS_MODE) {
        serve_components(Path::new(&sockets)).await;
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            single: 10,
            total: 400,
            cap: Duration::from_secs(15),
        }
    } else {
        Plan {
            single: 30,
            total: 800,
            cap: Duration::from_secs(20),
        }
    };
    let began = Instant::now();
    let floor = tokio::task::spawn_blocking(|| support::pingpong::Floors::measure(5_000))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    // The gateway's warnings and errors go to a file, summarised at the end.
    let log = dir.path().join("gateway.log");
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_ansi(false)
        .without_time()
        .with_writer(std::sync::Mutex::new(std::fs::File::create(&log).unwrap()))
        .init();
    let mut components = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(COMPONENTS_MODE, &sockets)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let components_pid = components.id();
    let mut counts = CountsReader::new(&mut components).expect("the components' stdio");
    for name in [outrigger_local::SOCKET, outrigger_postgres::SOCKET] {
        while tokio::net::UnixStream::connect(sockets.join(format!("{name}.sock")))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    println!(
        "workflows benchmark: chain of {CHAIN} activities; {} sequential workflows; throughput rows: {LOW_CONCURRENCY} and {CONCURRENT} in flight, {} workflows or {} s each",
        plan.single,
        plan.total,
        plan.cap.as_secs()
    );
    println!(
        "machine: {} CPUs; floor (one round trip to another process over a Unix socket) p50 {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        floor.describe()
    );

    let mut summaries = Vec::new();
    let sqlite = format!(
        "kind: Component\nmetadata: {{name: actorstore}}\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{}\"}}\n  - {{name: actorStateStore, value: \"true\"}}\n",
        dir.path().join("workflows.db").display()
    );
    summaries.push(
        store_rows(
            "sqlite",
            sqlite,
            plan,
            dir.path(),
            &sockets,
            &mut counts,
            components_pid,
        )
        .await,
    );
    let pg_url = std::env::var("OUTRIGGER_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let pg_table = format!("bench_wf_{}", std::process::id());
    if let Some(url) = &pg_url {
        let yaml = format!(
            "kind: Component\nmetadata: {{name: actorstore}}\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n  - {{name: connectionString, value: \"{url}\"}}\n  - {{name: tableName, value: {pg_table}}}\n  - {{name: actorStateStore, value: \"true\"}}\n"
        );
        summaries.push(
            store_rows(
                "postgres",
                yaml,
                plan,
                dir.path(),
                &sockets,
                &mut counts,
                components_pid,
            )
            .await,
        );
    } else {
        println!("\npostgres: skipped (set OUTRIGGER_POSTGRES_URL for the PostgreSQL rows)");
    }
    let _ = components.kill().await;
    if let Some(url) = &pg_url {
        support::pg::drop_table(url, &pg_table).await;
    }

    println!();
    support::gateway_log::print_warnings("gateway log", &log);
    println!("\nsummary (chain of {CHAIN} activities):");
    for s in &summaries {
        let rows: Vec<String> = s
            .rates
            .iter()
            .map(|(n, waiting, rate)| {
                let how = match waiting {
                    Waiting::Worker => "worker",
                    Waiting::Client => "WaitForInstanceCompletion",
                };
                format!("{rate:.0}/s ({n} in flight, {how})")
            })
            .collect();
        println!(
            "  {:<8} activities: {}; one workflow end to end p50 {:.2} ms; activity completed → next step p50 {:.2} ms, p99 {:.2} ms",
            s.store,
            rows.join(", "),
            ms(s.single_p50),
            ms(s.step.0),
            ms(s.step.1)
        );
    }
    if let Some(sqlite) = summaries.first() {
        let at = |n: usize| {
            sqlite
                .rates
                .iter()
                .find(|(c, w, _)| *c == n && *w == Waiting::Worker)
                .map_or(0.0, |r| r.2)
        };
        let best = sqlite.rates.iter().map(|r| r.2).fold(0.0, f64::max);
        println!(
            "  goal: {GOAL:.0} activities/s on SQLite on 2 cores; measured {:.0} activities/s with {CONCURRENT} in flight ({:.2}x the goal), best row {best:.0}/s: {}",
            at(CONCURRENT),
            at(CONCURRENT) / GOAL,
            if best >= GOAL { "met" } else { "NOT met" }
        );
    }
    println!("whole run: {:.1} s", began.elapsed().as_secs_f64());
}
