//! Service invocation metrics, under daprd's names and labels, so Dapr's
//! dashboards and alerts read them unchanged.
//!
//! Caller side: [`REQ_SENT`] per target (`dst_app_id`), then, once the
//! callee's gateway answered, [`RES_RECV`] and [`RES_RECV_LATENCY_MS`] with
//! the app's status (an HTTP status, or the gRPC code for gRPC apps' errors);
//! calls that never got an answer (unreachable, refused by access control)
//! have no response metric, as in daprd. Callee side: [`REQ_RECV`] per
//! caller (`src_app_id`) once access control let the call in, then
//! [`RES_SENT`] with the status returned; and the access control counters.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Requests sent to other apps' gateways.
pub const REQ_SENT: &str = "dapr_runtime_service_invocation_req_sent_total";
/// Requests received from other apps' gateways.
pub const REQ_RECV: &str = "dapr_runtime_service_invocation_req_recv_total";
/// Responses sent back to calling gateways.
pub const RES_SENT: &str = "dapr_runtime_service_invocation_res_sent_total";
/// Responses received from called gateways.
pub const RES_RECV: &str = "dapr_runtime_service_invocation_res_recv_total";
/// Round trip latency of calls to other apps, in milliseconds.
pub const RES_RECV_LATENCY_MS: &str = "dapr_runtime_service_invocation_res_recv_latency_ms";
/// Calls let in by an app policy's own action.
pub const ACL_APP_ALLOWED: &str = "dapr_runtime_acl_app_policy_action_allowed_total";
/// Calls let in by the global default action.
pub const ACL_GLOBAL_ALLOWED: &str = "dapr_runtime_acl_global_policy_action_allowed_total";
/// Calls refused by an app policy's own action.
pub const ACL_APP_BLOCKED: &str = "dapr_runtime_acl_app_policy_action_blocked_total";
/// Calls refused by the global default action.
pub const ACL_GLOBAL_BLOCKED: &str = "dapr_runtime_acl_global_policy_action_blocked_total";

/// daprd only has unary calls on this path.
const UNARY: &str = "unary";

struct Invocation {
    registry: Registry,
    req_sent: IntCounterVec,
    req_recv: IntCounterVec,
    res_sent: IntCounterVec,
    res_recv: IntCounterVec,
    latency: HistogramVec,
    /// app allowed, global allowed, app blocked, global blocked.
    acl: [IntCounterVec; 4],
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Option<IntCounterVec> {
    let counter = IntCounterVec::new(Opts::new(name, help), labels).ok()?;
    registry.register(Box::new(counter.clone())).ok()?;
    Some(counter)
}

static INVOCATION: LazyLock<Option<Invocation>> = LazyLock::new(|| {
    let registry = Registry::new();
    let latency = HistogramVec::new(
        HistogramOpts::new(
            RES_RECV_LATENCY_MS,
            "Service invocation round trip latency in milliseconds",
        )
        .buckets(vec![
            1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0, 80.0, 100.0, 200.0, 500.0,
            1000.0, 2000.0, 5000.0, 10000.0, 30000.0,
        ]),
        &["app_id", "src_app_id", "status"],
    )
    .ok()?;
    registry.register(Box::new(latency.clone())).ok()?;
    let acl_labels = &["app_id", "trustDomain", "namespace"];
    Some(Invocation {
        req_sent: counter(
            &registry,
            REQ_SENT,
            "Service invocation requests sent",
            &["app_id", "dst_app_id", "type"],
        )?,
        req_recv: counter(
            &registry,
            REQ_RECV,
            "Service invocation requests received",
            &["app_id", "src_app_id"],
        )?,
        res_sent: counter(
            &registry,
            RES_SENT,
            "Service invocation responses sent",
            &["app_id", "dst_app_id", "status"],
        )?,
        res_recv: counter(
            &registry,
            RES_RECV,
            "Service invocation responses received",
            &["app_id", "src_app_id", "status", "type"],
        )?,
        latency,
        acl: [
            counter(
                &registry,
                ACL_APP_ALLOWED,
                "Calls allowed by an app policy action",
                acl_labels,
            )?,
            counter(
                &registry,
                ACL_GLOBAL_ALLOWED,
                "Calls allowed by the global action",
                acl_labels,
            )?,
            counter(
                &registry,
                ACL_APP_BLOCKED,
                "Calls blocked by an app policy action",
                acl_labels,
            )?,
            counter(
                &registry,
                ACL_GLOBAL_BLOCKED,
                "Calls blocked by the global action",
                acl_labels,
            )?,
        ],
        registry,
    })
});

/// `app_id` sent a call to `target`; returns the start time for
/// [`response_received`].
pub fn request_sent(app_id: &str, target: &str) -> Instant {
    if let Some(m) = INVOCATION.as_ref() {
        m.req_sent.with_label_values(&[app_id, target, UNARY]).inc();
    }
    Instant::now()
}

/// `target` answered `app_id`'s call started at `started` with `status`.
pub fn response_received(app_id: &str, target: &str, status: u16, started: Instant) {
    if let Some(m) = INVOCATION.as_ref() {
        let status = status.to_string();
        m.res_recv
            .with_label_values(&[app_id, target, &status, UNARY])
            .inc();
        m.latency
            .with_label_values(&[app_id, target, &status])
            .observe(started.elapsed().as_secs_f64() * 1000.0);
    }
}

/// `app_id` received a call from `caller` (admitted by access control).
pub fn request_received(app_id: &str, caller: &str) {
    if let Some(m) = INVOCATION.as_ref() {
        m.req_recv.with_label_values(&[app_id, caller]).inc();
    }
}

/// `app_id` answered `caller` with `status`.
pub fn response_sent(app_id: &str, caller: &str, status: u16) {
    if let Some(m) = INVOCATION.as_ref() {
        m.res_sent
            .with_label_values(&[app_id, caller, &status.to_string()])
            .inc();
    }
}

/// Access control let a call of `caller` (app id, trust domain, namespace)
/// in or not, by its app policy (`by_app`) or the global default.
pub fn access_decided(caller: [&str; 3], allowed: bool, by_app: bool) {
    if let Some(m) = INVOCATION.as_ref() {
        let index = match (allowed, by_app) {
            (true, true) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        };
        m.acl[index].with_label_values(&caller).inc();
    }
}

/// Every invocation metric family, for the exposition.
pub(super) fn gather() -> Vec<MetricFamily> {
    INVOCATION
        .as_ref()
        .map(|m| m.registry.gather())
        .unwrap_or_default()
}
