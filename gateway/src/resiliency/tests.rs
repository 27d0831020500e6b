//! Reading `Resiliency` documents: values, defaults, and errors that name
//! the file and the field.

use std::path::Path;
use std::time::Duration;

use super::*;

const YAML: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: r}
spec:
  policies:
    timeouts:
      fast: 200ms
      general: 5s
    retries:
      three: {policy: constant, duration: 10ms, maxRetries: 3}
      growing: {policy: exponential, duration: 100ms, maxInterval: 1s, maxRetries: -1}
      plain: {}
      fiveHundreds:
        policy: exponential
        maxRetries: 2
        matching: {httpStatusCodes: "500,502-504", gRPCStatusCodes: "14,4"}
    circuitBreakers:
      cb: {maxRequests: 2, interval: 8s, timeout: 45s, trip: consecutiveFailures >= 3}
      defaults: {}
  targets:
    apps:
      app-b: {timeout: fast, retry: fiveHundreds, circuitBreaker: cb}
      app-c: {retry: plain, circuitBreaker: defaults}
    components:
      pubsub:
        inbound: {retry: three}
      other:
        inbound: {retry: growing}
      statestore:
        outbound: {timeout: general, retry: three, circuitBreaker: cb}
"#;

fn load(text: &str) -> Result<Resiliency, String> {
    let mut r = Resiliency::default();
    add_file(&mut r, Path::new("res/r.yaml"), text, "app").map_err(|e| e.to_string())?;
    Ok(r)
}

#[test]
fn policies_and_targets() {
    let r = load(YAML).unwrap();
    let three = &r.inbound["pubsub"];
    assert_eq!(
        (three.max_retries, three.wait(2)),
        (Some(3), Duration::from_millis(10))
    );
    let growing = &r.inbound["other"];
    assert_eq!(growing.max_retries, None);
    assert_eq!(growing.wait(1), Duration::from_millis(100));
    assert_eq!(growing.wait(3), Duration::from_millis(225));
    assert_eq!(growing.wait(10), Duration::from_secs(1));

    let b = r.app("app-b").unwrap();
    assert_eq!(b.timeout, Some(Duration::from_millis(200)));
    let retry = b.retry.as_ref().unwrap();
    assert!(retry.exponential && retry.max_retries == Some(2));
    assert!(retry.retries_http(503) && !retry.retries_http(501));
    assert!(retry.grpc_status_codes.matches(14) && !retry.grpc_status_codes.matches(2));
    let cb = b.circuit_breaker.as_ref().unwrap();
    assert_eq!((cb.name(), cb.target()), ("cb", "app app-b"));
    assert!(r.app("app-b.default").is_some(), "namespace form");
    assert!(r.app("app-z").is_none());
    let outbound = &r.outbound["statestore"];
    assert_eq!(outbound.timeout, Some(Duration::from_secs(5)));
    // Each target has its own breaker, even with the same policy.
    let other = outbound.circuit_breaker.as_ref().unwrap();
    assert!(!std::sync::Arc::ptr_eq(cb, other));
}

#[test]
fn dapr_defaults() {
    let r = load(YAML).unwrap();
    let c = r.app("app-c").unwrap();
    let retry = c.retry.as_ref().unwrap();
    // Constant, 5 s, forever, every error status.
    assert!(!retry.exponential);
    assert_eq!(retry.duration, Duration::from_secs(5));
    assert_eq!(retry.max_retries, None);
    assert!(retry.retries_http(404) && retry.retries_http(500));
    let b = r.app("app-b").unwrap().retry.clone().unwrap();
    // Exponential: 500 ms first, up to 60 s.
    assert_eq!(b.duration, Duration::from_millis(500));
    assert_eq!(b.max_interval, Duration::from_secs(60));
    assert!(c.timeout.is_none());
}

#[test]
fn breaker_defaults() {
    let r = load(YAML).unwrap();
    let cb = r.app("app-c").unwrap().circuit_breaker.clone().unwrap();
    // Trips on the sixth consecutive failure (consecutiveFailures > 5).
    let now = std::time::Instant::now();
    for _ in 0..5 {
        let t = cb.allow_at(now).unwrap();
        cb.record_at(t, false, now);
    }
    assert_eq!(cb.state_at(now), BreakerState::Closed);
    let t = cb.allow_at(now).unwrap();
    cb.record_at(t, false, now);
    assert_eq!(cb.state_at(now), BreakerState::Open);
    // Open for 60 s, then one trial call.
    assert_eq!(
        cb.state_at(now + Duration::from_secs(59)),
        BreakerState::Open
    );
    let later = now + Duration::from_secs(60);
    assert!(cb.allow_at(later).is_ok());
    assert!(cb.allow_at(later).is_err());
}

#[test]
fn errors_name_the_file_and_field() {
    for (from, to, field, why) in [
        (
            "retry: three}",
            "retry: four}",
            "spec.targets.components.pubsub.inbound.retry",
            "four",
        ),
        (
            "duration: 10ms",
            "duration: soon",
            "spec.policies.retries.three.duration",
            "soon",
        ),
        (
            "fast: 200ms",
            "fast: quick",
            "spec.policies.timeouts.fast",
            "quick",
        ),
        (
            "timeout: fast,",
            "timeout: slow,",
            "spec.targets.apps.app-b.timeout",
            "slow",
        ),
        (
            "circuitBreaker: cb}",
            "circuitBreaker: nope}",
            "spec.targets.apps.app-b.circuitBreaker",
            "nope",
        ),
        (
            "consecutiveFailures >= 3",
            "consecutiveFailures ~ 3",
            "spec.policies.circuitBreakers.cb.trip",
            "comparison",
        ),
        (
            "consecutiveFailures >= 3",
            "failures >= 3",
            "spec.policies.circuitBreakers.cb.trip",
            "failures",
        ),
        (
            "\"500,502-504\"",
            "\"500,5xx\"",
            "spec.policies.retries.fiveHundreds.matching.httpStatusCodes",
            "5xx",
        ),
        (
            "\"14,4\"",
            "\"14,40\"",
            "spec.policies.retries.fiveHundreds.matching.gRPCStatusCodes",
            "40",
        ),
        (
            "interval: 8s",
            "interval: often",
            "spec.policies.circuitBreakers.cb.interval",
            "often",
        ),
        (
            "maxRequests: 2",
            "maxRequests: -2",
            "spec.policies.circuitBreakers.cb.maxRequests",
            "-2",
        ),
    ] {
        assert!(YAML.contains(from), "{from}");
        let err = load(&YAML.replace(from, to)).unwrap_err();
        assert!(
            err.contains("res/r.yaml") && err.contains(field) && err.contains(why),
            "{to}: {err}"
        );
    }
    let err = load("kind: Resiliency\nspec: [").unwrap_err();
    assert!(err.contains("res/r.yaml"), "{err}");
}

#[test]
fn scopes_select_the_app() {
    let scoped = format!("{YAML}scopes: [someone-else]\n");
    assert!(load(&scoped).unwrap().apps.is_empty());
    let scoped = format!("{YAML}scopes: [app]\n");
    assert_eq!(load(&scoped).unwrap().apps.len(), 2);
}
