//! Gateway benchmark: what the gateway hop costs, measured in one run.
//!
//! Run with:
//!     cargo bench -p outrigger --bench gateway
//! (add `-- --quick` for a short run). It starts the real `outrigger` binary
//! against an in-memory state component (the SDK example) on a temp socket,
//! then measures state set/get through the gateway's HTTP and gRPC APIs and
//! straight to the component socket, sequentially (latency) and with 16
//! concurrent clients (throughput). It also reports the gateway's idle RSS
//! and the time from exec to a healthy `/v1.0/healthz/outbound`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../../component-sdk/examples/memory.rs"]
#[allow(dead_code)]
mod memory;

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use outrigger_component_sdk::ComponentServer;
use outrigger_proto::common as common_pb;
use outrigger_proto::components as comp_pb;
use outrigger_proto::runtime as pb;
use tokio_util::sync::CancellationToken;

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
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        op(i).await;
        times.push(t.elapsed());
    }
    let seq = start.elapsed();
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
    }
}

fn row(name: &str, s: &Stats, base: &Stats) {
    println!(
        "{name:<28} p50 {:>8.1} µs  p99 {:>8.1} µs  seq {:>8.0} op/s  16 clients {:>8.0} op/s  p50 vs direct {:>5.2}x",
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.seq_ops,
        s.par_ops,
        s.p50.as_secs_f64() / base.p50.as_secs_f64()
    );
}

fn with_instance<T>(mut r: tonic::Request<T>) -> tonic::Request<T> {
    r.metadata_mut().insert(
        "x-component-instance",
        tonic::metadata::MetadataValue::from_static("bench-direct"),
    );
    r
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 2_000 } else { 20_000 };
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    let resources = dir.path().join("resources");
    std::fs::create_dir_all(&resources).unwrap();
    std::fs::write(
        resources.join("state.yaml"),
        "kind: Component\nmetadata: {name: statestore}\nspec: {type: state.memory, version: v1}\n",
    )
    .unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(
        ComponentServer::new(&sockets)
            .service("memory", |s| s.state_store(memory::MemoryStore::default))
            .serve(async move { token.cancelled().await }),
    );
    let socket = sockets.join("memory.sock");
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Exec → healthy, and idle RSS, of the real binary.
    let http_port = free_port();
    let grpc_port = free_port();
    let started = Instant::now();
    let mut gateway = tokio::process::Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args([
            "--app-id",
            "bench",
            "--log-level",
            "warn",
            "--metrics-port",
            "0",
        ])
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
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://127.0.0.1:{http_port}");
    loop {
        if http_status(
            &http,
            "GET",
            &format!("{base}/v1.0/healthz/outbound"),
            Vec::new(),
        )
        .await
        .0 == 204
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = gateway.id().and_then(rss_kib).unwrap_or(0);

    // Direct to the component socket.
    let channel = tonic::transport::Endpoint::from_static("http://component.invalid")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap();
    let mut direct = comp_pb::state_store_client::StateStoreClient::new(channel);
    let mut init = tonic::Request::new(comp_pb::InitRequest::default());
    init.metadata_mut()
        .insert("x-component-instance", "bench-direct".parse().unwrap());
    direct.init(init).await.unwrap();

    let grpc = pb::dapr_client::DaprClient::connect(format!("http://127.0.0.1:{grpc_port}"))
        .await
        .unwrap();

    let value = br#"{"name":"outrigger","n":42}"#.to_vec();
    println!(
        "gateway benchmark: {n} sequential ops per row, then {n} ops over 16 concurrent clients"
    );
    println!(
        "gateway ready in {:.1} ms after exec; idle RSS {:.1} MiB",
        ready.as_secs_f64() * 1e3,
        rss as f64 / 1024.0
    );

    let d = direct.clone();
    let v = value.clone();
    let direct_set = measure(n, move |i| {
        let mut d = d.clone();
        let v = v.clone();
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
    .await;
    let d = direct.clone();
    let direct_get = measure(n, move |i| {
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
    .await;

    let g = grpc.clone();
    let v = value.clone();
    let grpc_set = measure(n, move |i| {
        let mut g = g.clone();
        let v = v.clone();
        async move {
            let item = common_pb::StateItem {
                key: format!("k{}", i % 1000),
                value: v,
                ..Default::default()
            };
            g.save_state(pb::SaveStateRequest {
                store_name: "statestore".into(),
                states: vec![item],
            })
            .await
            .unwrap();
        }
    })
    .await;
    let g = grpc.clone();
    let grpc_get = measure(n, move |i| {
        let mut g = g.clone();
        async move {
            g.get_state(pb::GetStateRequest {
                store_name: "statestore".into(),
                key: format!("k{}", i % 1000),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    })
    .await;

    let h = http.clone();
    let b = base.clone();
    let http_set = measure(n, move |i| {
        let h = h.clone();
        let uri = format!("{b}/v1.0/state/statestore");
        async move {
            let body = format!(
                r#"[{{"key":"k{}","value":{{"name":"outrigger","n":42}}}}]"#,
                i % 1000
            )
            .into_bytes();
            let (status, _) = http_status(&h, "POST", &uri, body).await;
            assert_eq!(status, 204);
        }
    })
    .await;
    let h = http.clone();
    let b = base.clone();
    let http_get = measure(n, move |i| {
        let h = h.clone();
        let uri = format!("{b}/v1.0/state/statestore/k{}", i % 1000);
        async move {
            let (status, _) = http_status(&h, "GET", &uri, Vec::new()).await;
            assert_eq!(status, 200);
        }
    })
    .await;

    println!();
    row("set: direct to component", &direct_set, &direct_set);
    row("set: gateway gRPC", &grpc_set, &direct_set);
    row("set: gateway HTTP", &http_set, &direct_set);
    row("get: direct to component", &direct_get, &direct_get);
    row("get: gateway gRPC", &grpc_get, &direct_get);
    row("get: gateway HTTP", &http_get, &direct_get);
    println!(
        "\ngateway hop (p50, gRPC get - direct get): {:.1} µs",
        (grpc_get.p50.as_secs_f64() - direct_get.p50.as_secs_f64()) * 1e6
    );
    let _ = gateway.kill().await;
    stop.cancel();
}
