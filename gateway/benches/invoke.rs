//! Service-invocation benchmark: app → gateway → gateway → app against
//! app → app directly, measured in one run.
//!
//! Run with:
//!     cargo bench -p outrigger --bench invoke
//! (add `-- --quick` for a short run). It starts an HTTP app (axum, answers
//! `/echo` with the request body at once; a process of its own) and two real `outrigger`
//! binaries sharing one registry folder: `callee` in front of the app and
//! `caller` with no app. Each row sends the same POST, sequentially and at
//! several concurrencies, either straight to the app over loopback HTTP or
//! to `caller`'s `/v1.0/invoke/callee/method/echo`. It prints p50/p99
//! latency and throughput per concurrency, and the p50 added by the two
//! gateways; then, one client at a time, one gateway in front of its own
//! app and two bare proxies in a row, joined by HTTP/1.1 or by HTTP/2 as
//! the gateways are (`support/bare_proxy.rs`: the least two more hops add on
//! this machine). Then it runs again with every
//! process on one vCPU (`support/one_cpu.rs` says why).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support {
    pub(crate) mod bare_proxy;
    pub(crate) mod gateway_cmd;
    pub(crate) mod one_cpu;
    pub(crate) mod pingpong;
    pub(crate) mod proc;
}

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<axum::body::Bytes>>;

const BODY: &[u8] = br#"{"order":42,"items":["a","b","c"]}"#;
const CONCURRENCY: &[usize] = &[1, 4, 16, 64];

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

async fn post(client: &Http, uri: &str) -> u16 {
    let request = http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .body(Full::new(axum::body::Bytes::from_static(BODY)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], BODY, "the echo came back changed");
    status
}

struct Stats {
    p50: Duration,
    p99: Duration,
    ops: f64,
}

/// `n` calls to `uri` spread over `clients` concurrent loops.
async fn measure(client: &Http, uri: &str, n: usize, clients: usize) -> Stats {
    let uri: Arc<str> = uri.into();
    for _ in 0..(n / 20).max(50) {
        assert_eq!(post(client, &uri).await, 200);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, uri) = (client.clone(), Arc::clone(&uri));
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::with_capacity(n / clients);
            for _ in 0..n / clients {
                let t = Instant::now();
                assert_eq!(post(&client, &uri).await, 200);
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
    }
}

async fn wait_healthy(client: &Http, port: u16) {
    let uri = format!("http://127.0.0.1:{port}/v1.0/healthz/outbound");
    loop {
        let request = http::Request::get(&uri)
            .body(Full::new(axum::body::Bytes::new()))
            .unwrap();
        if let Ok(response) = client.request(request).await
            && response.status().as_u16() == 204
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn gateway(
    app_id: &str,
    app_port: Option<u16>,
    http_port: u16,
    dir: &std::path::Path,
) -> tokio::process::Child {
    let resources = dir.join(format!("resources-{app_id}"));
    let sockets = dir.join(format!("sockets-{app_id}"));
    std::fs::create_dir_all(&resources).unwrap();
    std::fs::create_dir_all(&sockets).unwrap();
    let mut command = support::gateway_cmd::command(app_id);
    command
        .args(["--dapr-http-port", &http_port.to_string()])
        .args(["--dapr-grpc-port", &free_port().to_string()])
        .arg("--resources-path")
        .arg(&resources)
        .arg("--components-sockets-folder")
        .arg(&sockets)
        .arg("--registry-folder")
        .arg(dir.join("registry"));
    if let Some(port) = app_port {
        command.args(["--app-port", &port.to_string()]);
    }
    command.spawn().unwrap()
}

/// Set to a port, the binary serves the echo app on it instead.
const APP_MODE: &str = "OUTRIGGER_BENCH_APP_PORT";

async fn serve_app(port: u16) {
    let router = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: axum::body::Bytes| async move { body }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    axum::serve(listener, router).await.unwrap();
}

fn main() {
    // Its own runtime, with the gateway's one worker thread.
    if !support::bare_proxy::serve_if_asked() {
        run();
    }
}

/// A bare proxy (`support::bare_proxy`) on a new port, forwarding to `to`
/// and speaking `sides` (`h1h1`, `h1h2`, `h2h1`).
fn bare_proxy(to: u16, sides: &str) -> (u16, tokio::process::Child) {
    let port = free_port();
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(
            support::bare_proxy::PROXY_MODE,
            format!("{port}:{to}:{sides}"),
        )
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (port, child)
}

/// One client's calls through two bare proxies in a row, the first
/// speaking `first` and the second `second`: their stats and the proxies'
/// CPU per call.
async fn bare_chain(
    client: &Http,
    app_port: u16,
    n: usize,
    (first, second): (&str, &str),
) -> (Stats, Duration) {
    let (second_port, mut second_proxy) = bare_proxy(app_port, second);
    let (first_port, mut first_proxy) = bare_proxy(second_port, first);
    let proxies = [
        first_proxy.id().unwrap_or(0),
        second_proxy.id().unwrap_or(0),
    ];
    for port in [second_port, first_port] {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let cpu = || -> Duration { proxies.iter().map(|p| support::proc::cpu_time(*p)).sum() };
    let before = cpu();
    let stats = measure(client, &format!("http://127.0.0.1:{first_port}/echo"), n, 1).await;
    let used = cpu().saturating_sub(before) / n as u32;
    let _ = first_proxy.kill().await;
    let _ = second_proxy.kill().await;
    (stats, used)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn run() {
    if support::pingpong::serve_if_child() {
        return;
    }
    if let Some(port) = std::env::var(APP_MODE).ok().and_then(|p| p.parse().ok()) {
        serve_app(port).await;
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 2_000 } else { 10_000 };
    let dir = tempfile::tempdir().unwrap();

    // The app is a process of its own (this binary again), so the direct
    // row crosses a process boundary as the gateway rows do.
    let app_port = free_port();
    let mut app = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(APP_MODE, app_port.to_string())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (caller_port, callee_port) = (free_port(), free_port());
    let mut callee = gateway("callee", Some(app_port), callee_port, dir.path());
    let mut caller = gateway("caller", None, caller_port, dir.path());
    let client: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http();
    while tokio::net::TcpStream::connect(("127.0.0.1", app_port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_healthy(&client, callee_port).await;
    wait_healthy(&client, caller_port).await;

    let direct = format!("http://127.0.0.1:{app_port}/echo");
    let through = format!("http://127.0.0.1:{caller_port}/v1.0/invoke/callee/method/echo");
    println!(
        "invoke benchmark, {}: {n} POSTs of {} bytes per row; app → app directly vs app → caller gateway → callee gateway → app",
        support::one_cpu::label(),
        BODY.len()
    );
    println!(
        "{:>7}  {:>22}  {:>22}  {:>12}  {:>10}",
        "clients", "direct p50/p99 µs", "gateways p50/p99 µs", "added p50", "throughput"
    );
    for &clients in CONCURRENCY {
        let d = measure(&client, &direct, n, clients).await;
        let g = measure(&client, &through, n, clients).await;
        println!(
            "{clients:>7}  {:>10.1} / {:>9.1}  {:>10.1} / {:>9.1}  {:>9.1} µs  {:>6.0} vs {:>6.0} op/s ({:.2}x)",
            d.p50.as_secs_f64() * 1e6,
            d.p99.as_secs_f64() * 1e6,
            g.p50.as_secs_f64() * 1e6,
            g.p99.as_secs_f64() * 1e6,
            (g.p50.as_secs_f64() - d.p50.as_secs_f64()) * 1e6,
            g.ops,
            d.ops,
            g.ops / d.ops,
        );
    }
    // Where the time goes: one gateway in front of its own app (HTTP in,
    // HTTP to the app), against the two-gateway path above, with the CPU
    // the gateways spent per call and the machine's cross-process floor.
    let pids = [caller.id().unwrap_or(0), callee.id().unwrap_or(0)];
    let cpu = || -> Duration { pids.iter().map(|p| support::proc::cpu_time(*p)).sum() };
    let own = format!("http://127.0.0.1:{callee_port}/v1.0/invoke/callee/method/echo");
    let d = measure(&client, &direct, n, 1).await;
    let before = cpu();
    let one = measure(&client, &own, n, 1).await;
    let one_gw_cpu = cpu().saturating_sub(before) / n as u32;
    let before = cpu();
    let caller_before = support::proc::cpu_time(pids[0]);
    let two = measure(&client, &through, n, 1).await;
    let two_cpu = cpu().saturating_sub(before) / n as u32;
    let caller_cpu = support::proc::cpu_time(pids[0]).saturating_sub(caller_before) / n as u32;
    // The least any two more hops add: two bare proxies in a row, joined
    // by HTTP/1.1, or by HTTP/2 as the gateways are (by gRPC).
    let (bare, bare_cpu) = bare_chain(&client, app_port, n, ("h1h1", "h1h1")).await;
    let (bare_h2, bare_h2_cpu) = bare_chain(&client, app_port, n, ("h1h2", "h2h1")).await;
    let floor = tokio::task::spawn_blocking(move || support::pingpong::Floors::measure(n))
        .await
        .unwrap();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "\none client, p50: direct {:.1} µs; one gateway (own app) {:.1} µs (+{:.1}, gateway CPU {:.1} µs/call); two gateways {:.1} µs (+{:.1}, gateways' CPU {:.1} µs/call: caller {:.1}, callee {:.1})",
        us(d.p50),
        us(one.p50),
        us(one.p50) - us(d.p50),
        us(one_gw_cpu),
        us(two.p50),
        us(two.p50) - us(d.p50),
        us(two_cpu),
        us(caller_cpu),
        us(two_cpu.saturating_sub(caller_cpu)),
    );
    println!(
        "two bare proxies in a row (hyper, one worker thread each, no gateway logic), the least two more hops add here: joined by HTTP/1.1 {:.1} µs (+{:.1}, proxies' CPU {:.1} µs/call); joined by HTTP/2 as the gateways are {:.1} µs (+{:.1}, {:.1} µs/call)",
        us(bare.p50),
        us(bare.p50) - us(d.p50),
        us(bare_cpu),
        us(bare_h2.p50),
        us(bare_h2.p50) - us(d.p50),
        us(bare_h2_cpu),
    );
    println!(
        "machine floor: one round trip to another process over a Unix socket, p50 {}",
        floor.describe()
    );
    let _ = caller.kill().await;
    let _ = callee.kill().await;
    let _ = app.kill().await;
    support::one_cpu::run_pass().await;
}
