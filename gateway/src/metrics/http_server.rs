//! daprd's HTTP server metrics for the app-facing HTTP API:
//! `dapr_http_server_request_count` and the latency histogram
//! `dapr_http_server_latency` (milliseconds), labelled `app_id`, `method`,
//! `path` and `status`. As daprd does by default (low cardinality), `path`
//! is empty except for a few fixed paths, and unknown verbs are `UNKNOWN`.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Requests served by the HTTP API.
pub const REQUEST_COUNT: &str = "dapr_http_server_request_count";
/// End-to-end latency of the HTTP API, in milliseconds.
pub const LATENCY: &str = "dapr_http_server_latency";

/// Paths daprd keeps as labels even in low-cardinality mode.
const STATIC_PATHS: &[&str] = &[
    "/dapr/config",
    "/dapr/metrics",
    "/dapr/subscribe",
    "/healthz",
];
const VERBS: &[&str] = &[
    "GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];
const LABELS: &[&str] = &["app_id", "method", "path", "status"];

struct HttpServer {
    registry: Registry,
    count: IntCounterVec,
    latency: HistogramVec,
}

static HTTP_SERVER: LazyLock<Option<HttpServer>> = LazyLock::new(|| {
    let registry = Registry::new();
    let count = IntCounterVec::new(
        Opts::new(REQUEST_COUNT, "HTTP requests processed by the server"),
        LABELS,
    )
    .ok()?;
    let latency = HistogramVec::new(
        HistogramOpts::new(LATENCY, "HTTP request end-to-end latency in milliseconds").buckets(
            vec![
                1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
                10000.0,
            ],
        ),
        LABELS,
    )
    .ok()?;
    registry.register(Box::new(count.clone())).ok()?;
    registry.register(Box::new(latency.clone())).ok()?;
    Some(HttpServer {
        registry,
        count,
        latency,
    })
});

/// One request of the HTTP API being counted and timed.
#[derive(Debug)]
pub struct Timer {
    method: &'static str,
    path: &'static str,
    started: Instant,
}

impl Timer {
    /// Start timing `request`.
    pub fn start<B>(request: &http::Request<B>) -> Self {
        let method = request.method().as_str();
        Self {
            method: VERBS
                .iter()
                .find(|v| **v == method)
                .copied()
                .unwrap_or("UNKNOWN"),
            path: STATIC_PATHS
                .iter()
                .find(|p| **p == request.uri().path())
                .copied()
                .unwrap_or_default(),
            started: Instant::now(),
        }
    }

    /// Count the request, answered with `status`, for `app_id`.
    pub fn finish(self, app_id: &str, status: http::StatusCode) {
        if let Some(m) = HTTP_SERVER.as_ref() {
            let labels = [app_id, self.method, self.path, status.as_str()];
            m.count.with_label_values(&labels).inc();
            m.latency
                .with_label_values(&labels)
                .observe(self.started.elapsed().as_secs_f64() * 1000.0);
        }
    }
}

/// Every HTTP server metric family, for the exposition.
pub(super) fn gather() -> Vec<MetricFamily> {
    HTTP_SERVER
        .as_ref()
        .map(|m| m.registry.gather())
        .unwrap_or_default()
}
