//! Prometheus metrics: names, labels and the `/metrics` endpoint.
//!
//! Recorded in the runtime layer (not the API adapters) so HTTP and gRPC
//! calls count the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Instant;

pub mod http_server;
pub mod invocation;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Requests per building block, operation and outcome (`ok` / error code).
pub const REQUESTS_TOTAL: &str = "dapr_runtime_requests_total";
/// Request latency per building block and operation, in seconds.
pub const REQUEST_DURATION_SECONDS: &str = "dapr_runtime_request_duration_seconds";

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            REQUESTS_TOTAL,
            "API requests by building block, operation and outcome",
        ),
        &["block", "op", "outcome"],
    )
    .ok()?;
    let duration = HistogramVec::new(
        HistogramOpts::new(
            REQUEST_DURATION_SECONDS,
            "API request latency by building block and operation",
        )
        .buckets(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ]),
        &["block", "op"],
    )
    .ok()?;
    registry.register(Box::new(requests.clone())).ok()?;
    registry.register(Box::new(duration.clone())).ok()?;
    Some(Metrics {
        registry,
        requests,
        duration,
    })
});

/// Run `call`, counting it under `block`/`op` with its outcome and latency.
pub async fn timed<T>(
    block: &'static str,
    op: &'static str,
    call: impl Future<Output = Result<T, crate::error::ApiError>>,
) -> Result<T, crate::error::ApiError> {
    let start = Instant::now();
    let result = call.await;
    if let Some(m) = METRICS.as_ref() {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code,
        };
        m.requests.with_label_values(&[block, op, outcome]).inc();
        m.duration
            .with_label_values(&[block, op])
            .observe(start.elapsed().as_secs_f64());
    }
    result
}

/// The text exposition of every metric.
pub fn render() -> String {
    let Some(m) = METRICS.as_ref() else {
        return String::new();
    };
    let mut out = Vec::new();
    let mut families = m.registry.gather();
    families.extend(invocation::gather());
    families.extend(http_server::gather());
    if TextEncoder::new().encode(&families, &mut out).is_err() {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Serve `GET /metrics` on `addr` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                render(),
            )
        }),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// For log lines.
pub fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}
