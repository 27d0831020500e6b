//! Gateway benchmark: what the gateway hop costs, measured in one run.
//!
//! Run with:
//!     cargo bench -p outrigger --bench gateway
//! (add `-- --quick` for a short run). It starts the real `outrigger` binary
//! against an in-memory state component (the SDK example) on a temp socket
//! (served by a child process, as components are separate processes),
//! then measures state set/get through the gateway's HTTP and gRPC APIs and
//! straight to the component socket, sequentially (latency) and with 16
//! concurrent clients (throughput). It also reports the gateway's idle RSS
//! and the time from exec to a healthy `/v1.0/healthz/outbound`. Then it
//! runs again with every process on one vCPU (`support/one_cpu.rs` says
//! why).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support {
    pub(crate) mod gateway_cmd;
    pub(crate) mod one_cpu;
    pub(crate) mod pingpong;
    pub(crate) mod proc;
    pub(crate) mod sql;
}

#[path = "../../component-sdk/examples/memory.rs"]
#[allow(dead_code)]
mod memory;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use outrigger_component_sdk::ComponentServer;
use outrigger_proto::common as common_pb;
use outrigger_proto::components as comp_pb;
use outrigger_proto::runtime as pb;

type Direct =
    comp_pb::state_store_client::StateStoreClient<outrigger::components::channel::UdsChannel>;
type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<axum::body::Bytes>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

struct Stats {
    p50: Duration,
    p99: Duration,
    seq_ops: f64,
    par_ops: f64,
    /// CPU time the gateway process spent per sequential op.
    gateway_cpu: Duration,
}

/// The gateway process, whose CPU time each row reports.
static GATEWAY_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// CPU time of the gateway so far.
fn gateway_cpu() -> Duration {
    GATEWAY_PID
        .get()
        .map_or(Duration::ZERO, |pid| support::proc::cpu_time(*pid))
}

async fn measure<F, Fut>(n: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    for i in 0..n / 10 {
        op(i).await;
    }
    let mut times = Vec::with_capacity(n);
    let cpu = gateway_cpu();
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        op(i).await;
        times.push(t.elapsed());
    }
    let seq = start.elapsed();
    let gateway_cpu = gateway_cpu().saturating_sub(cpu) / n as u32;
    times.sort();
    let clients = 16;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n / clients {
                op(c * n + i).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let par = start.elapsed();
    Stats {
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        seq_ops: n as f64 / seq.as_secs_f64(),
        par_ops: (n / clients * clients) as f64 / par.as_secs_f64(),
        gateway_cpu,
    }
}

fn row(name: &str, s: &Stats, base: &Stats) {
    println!(
        "{name:<28} p50 {:>8.1} µs  p99 {:>8.1} µs  seq {:>8.0} op/s  16 clients {:>8.0} op/s  vs direct {:>5.2}x  gateway CPU {:>6.1} µs/op",
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.seq_ops,
        s.par_ops,
        s.p50.as_secs_f64() / base.p50.as_secs_f64(),
        s.gateway_cpu.as_secs_f64() * 1e6,
    );
}

fn with_instance<T>(mut r: tonic::Request<T>) -> tonic::Request<T> {
    r.metadata_mut().insert(
        "x-component-instance",
        tonic::metadata::MetadataValue::from_static("bench-direct"),
    );
    r
}

async fn http_status(client: &Http, method: &str, uri: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(axum::body::Bytes::from(body)))
        .unwrap();
    match client.request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            (status, body)
        }
        Err(_) => (0, Vec::new()),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The gRPC client for one component socket, initialised as `instance`: on
/// the gateway's own channel, so "direct" and the gateway's component call
/// write to the socket the same way.
async fn direct_client(socket: &std::path::Path, metadata: HashMap<String, String>) -> Direct {
    let channel = outrigger::components::channel::lazy(socket);
    let mut direct = comp_pb::state_store_client::StateStoreClient::new(channel);
    let init = comp_pb::InitRequest {
        metadata: Some(comp_pb::MetadataRequest {
            properties: metadata,
        }),
    };
    direct
        .init(with_instance(tonic::Request::new(init)))
        .await
        .unwrap();
    direct
}

struct Rows {
    set: Vec<(String, Stats)>,
    get: Vec<(String, Stats)>,
}

/// Set and get through the gateway (gRPC, HTTP) and straight to the socket.
async fn paths(
    n: usize,
    store: &'static str,
    direct: Direct,
    grpc: pb::dapr_client::DaprClient<outrigger::components::channel::UdsChannel>,
    http: Http,
    base: String,
    rows: &mut Rows,
) {
    let value = br#"{"name":"outrigger","n":42}"#.to_vec();
    let (d, v) = (direct.clone(), value.clone());
    rows.set.push((
        format!("{store}: direct to component"),
        measure(n, move |i| {
            let (mut d, v) = (d.clone(), v.clone());
            async move {
                let req = comp_pb::SetRequest {
                    key: format!("bench||k{}", i % 1000),
                    value: v,
                    ..Default::default()
                };
                d.set(with_instance(tonic::Request::new(req)))
                    .await
                    .unwrap();
            }
        })
        .await,
    ));
    let d = direct.clone();
    rows.get.push((
        format!("{store}: direct to component"),
        measure(n, move |i| {
            let mut d = d.clone();
            async move {
                let req = comp_pb::GetRequest {
                    key: format!("bench||k{}", i % 1000),
                    ..Default::default()
                };
                d.get(with_instance(tonic::Request::new(req)))
                    .await
                    .unwrap();
            }
        })
        .await,
    ));
    let (g, v) = (grpc.clone(), value.clone());
    rows.set.push((
        format!("{store}: gateway gRPC"),
        measure(n, move |i| {
            let (mut g, v) = (g.clone(), v.clone());
            async move {
                let item = common_pb::StateItem {
                    key: format!("k{}", i % 1000),
                    value: v,
                    ..Default::default()
                };
                g.save_state(pb::SaveStateRequest {
                    store_name: store.into(),
                    states: vec![item],
                })
                .await
                .unwrap();
            }
        })
        .await,
    ));
    let g = grpc.clone();
    rows.get.push((
        format!("{store}: gateway gRPC"),
        measure(n, move |i| {
            let mut g = g.clone();
            async move {
                g.get_state(pb::GetStateRequest {
                    store_name: store.into(),
                    key: format!("k{}", i % 1000),
                    ..Default::default()
                })
                .await
                .unwrap();
            }
        })
        .await,
    ));
    let (h, b) = (http.clone(), base.clone());
    rows.set.push((
        format!("{store}: gateway HTTP"),
        measure(n, move |i| {
            let h = h.clone();
            let uri = format!("{b}/v1.0/state/{store}");
            async move {
                let body = format!(
                    r#"[{{"key":"k{}","value":{{"name":"outrigger","n":42}}}}]"#,
                    i % 1000
                )
                .into_bytes();
                assert_eq!(http_status(&h, "POST", &uri, body).await.0, 204);
            }
        })
        .await,
    ));
    let (h, b) = (http.clone(), base.clone());
    rows.get.push((
        format!("{store}: gateway HTTP"),
        measure(n, move |i| {
            let h = h.clone();
            let uri = format!("{b}/v1.0/state/{store}/k{}", i % 1000);
            async move {
                assert_eq!(http_status(&h, "GET", &uri, Vec::new()).await.0, 200);
            }
        })
        .await,
    ));
}

/// Set to a socket folder, the binary serves the benchmark's components there.
const COMPONENTS_MODE: &str = "OUTRIGGER_BENCH_COMPONENTS";

/// The in-memory example, outrigger-local and outrigger-postgres, until killed.
async fn serve_components(sockets: &std::path::Path) {
    let server =
        outrigger_postgres::services(outrigger_local::services(ComponentServer::new(sockets)))
            .service("memory", |s| s.state_store(memory::MemoryStore::default));
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
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 2_000 } else { 10_000 };
    // The floor first, while nothing else of the benchmark runs.
    let floor = tokio::task::spawn_blocking(move || support::pingpong::Floors::measure(n))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    let resources = dir.path().join("resources");
    let db = dir.path().join("bench.db");
    std::fs::create_dir_all(&resources).unwrap();
    // PostgreSQL rows when a server is given (scripts/test.sh starts one).
    let pg_url = std::env::var("OUTRIGGER_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let pg_table = format!("bench_{}", std::process::id());
    if let Some(url) = &pg_url {
        std::fs::write(
            resources.join("postgres.yaml"),
            format!(
                "kind: Component\nmetadata: {{name: postgres}}\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n  - {{name: connectionString, value: \"{url}\"}}\n  - {{name: tableName, value: {pg_table}}}\n"
            ),
        )
        .unwrap();
    }
    std::fs::write(
        resources.join("state.yaml"),
        format!(
            "kind: Component\nmetadata: {{name: memory}}\nspec: {{type: state.memory, version: v1}}\n---\n\
             kind: Component\nmetadata: {{name: sqlite}}\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - name: databaseFile\n    value: \"{}\"\n",
            db.display()
        ),
    )
    .unwrap();
    // The components run in a process of their own, as they do in
    // production, so "direct" crosses one process boundary and the
    // gateway rows two: the hop is what the gateway adds, not the cost of
    // leaving the benchmark's process.
    let mut components = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(COMPONENTS_MODE, &sockets)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for name in ["memory", "local", "postgres"] {
        while tokio::net::UnixStream::connect(sockets.join(format!("{name}.sock")))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // Exec → healthy, and idle RSS, of the real binary.
    let (http_port, grpc_port) = (free_port(), free_port());
    let started = Instant::now();
    let mut gateway = support::gateway_cmd::command("bench")
        .args([
            "--dapr-http-port",
            &http_port.to_string(),
            "--dapr-grpc-port",
            &grpc_port.to_string(),
        ])
        .arg("--resources-path")
        .arg(&resources)
        .arg("--components-sockets-folder")
        .arg(&sockets)
        .spawn()
        .unwrap();
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://127.0.0.1:{http_port}");
    while http_status(
        &http,
        "GET",
        &format!("{base}/v1.0/healthz/outbound"),
        Vec::new(),
    )
    .await
    .0 != 204
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready = started.elapsed();
    if let Some(pid) = gateway.id() {
        let _ = GATEWAY_PID.set(pid);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = gateway.id().and_then(support::proc::rss_kib).unwrap_or(0);
    // On the gateway's own HTTP/2 channel: like grpc-python (seen with
    // strace) it writes a call's HEADERS and message together; tonic's
    // stock channel writes them apart, which wakes the gateway twice.
    let grpc = pb::dapr_client::DaprClient::new(outrigger::components::channel::lazy_tcp(
        std::net::SocketAddr::from(([127, 0, 0, 1], grpc_port)),
    ));

    let mut rows = Rows {
        set: Vec::new(),
        get: Vec::new(),
    };
    let memory_direct = direct_client(&sockets.join("memory.sock"), HashMap::new()).await;
    paths(
        n,
        "memory",
        memory_direct,
        grpc.clone(),
        http.clone(),
        base.clone(),
        &mut rows,
    )
    .await;
    let local_direct = direct_client(
        &sockets.join("local.sock"),
        HashMap::from([("databaseFile".to_owned(), db.display().to_string())]),
    )
    .await;
    paths(
        n,
        "sqlite",
        local_direct,
        grpc.clone(),
        http.clone(),
        base.clone(),
        &mut rows,
    )
    .await;
    support::sql::sqlite_direct(n, &dir.path().join("direct.db"), &mut rows).await;
    if let Some(url) = &pg_url {
        let pg_direct = direct_client(
            &sockets.join("postgres.sock"),
            HashMap::from([
                ("connectionString".to_owned(), url.clone()),
                ("tableName".to_owned(), pg_table.clone()),
            ]),
        )
        .await;
        paths(
            n,
            "postgres",
            pg_direct,
            grpc.clone(),
            http.clone(),
            base.clone(),
            &mut rows,
        )
        .await;
        support::sql::postgres_direct(n, url, &mut rows).await;
    }

    let floor_after = tokio::task::spawn_blocking(move || support::pingpong::Floors::measure(n))
        .await
        .unwrap();
    println!(
        "gateway benchmark, {}: {n} sequential ops per row, then {n} ops over 16 concurrent clients",
        support::one_cpu::label()
    );
    println!(
        "machine floor: one round trip to another process over a Unix socket, p50 {} before the rows; {} after",
        floor.describe(),
        floor_after.describe()
    );
    println!(
        "gateway ready in {:.1} ms after exec; idle RSS {:.1} MiB",
        ready.as_secs_f64() * 1e3,
        rss as f64 / 1024.0
    );
    for (what, list) in [("set", &rows.set), ("get", &rows.get)] {
        println!();
        for (name, stats) in list.iter() {
            let store = name.split(':').next().unwrap_or_default();
            let base = list
                .iter()
                .find(|(n, _)| n.starts_with(store) && n.contains("direct to"))
                .map_or(stats, |(_, s)| s);
            row(&format!("{what} {name}"), stats, base);
        }
    }
    let hop =
        |i: usize| (rows.get[i].1.p50.as_secs_f64() - rows.get[i - 1].1.p50.as_secs_f64()) * 1e6;
    println!(
        "\ngateway hop (p50 get through the gateway minus direct): memory gRPC {:.1} µs, HTTP {:.1} µs; sqlite gRPC {:.1} µs, HTTP {:.1} µs",
        hop(1),
        hop(2) + hop(1),
        hop(4),
        hop(5) + hop(4)
    );
    if pg_url.is_some() {
        println!(
            "gateway hop, postgres: gRPC {:.1} µs, HTTP {:.1} µs",
            hop(8),
            hop(9) + hop(8)
        );
    } else {
        println!("(set OUTRIGGER_POSTGRES_URL for the PostgreSQL rows)");
    }
    let _ = gateway.kill().await;
    let _ = components.kill().await;
    support::one_cpu::run_pass().await;
}
