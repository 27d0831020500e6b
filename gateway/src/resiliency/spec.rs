//! Reading `Resiliency` documents: the raw YAML shape, defaults, and
//! checks that name the file and the field.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::Resiliency;
use super::breaker::CircuitBreaker;
use super::policy::{
    CircuitBreakerPolicy, CodeRanges, DEFAULT_INITIAL_INTERVAL, DEFAULT_MAX_INTERVAL,
    DEFAULT_RETRY_DURATION, RetryPolicy, TargetPolicy, Trip,
};
use crate::resources::ResourceError;

#[derive(Deserialize)]
struct Doc {
    kind: Option<String>,
    #[serde(default)]
    spec: Spec,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(default)]
    policies: Policies,
    #[serde(default)]
    targets: Targets,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Policies {
    #[serde(default)]
    timeouts: HashMap<String, String>,
    #[serde(default)]
    retries: HashMap<String, RawRetry>,
    #[serde(default)]
    circuit_breakers: HashMap<String, RawBreaker>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRetry {
    #[serde(default)]
    policy: String,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    initial_interval: Option<String>,
    #[serde(default)]
    max_interval: Option<String>,
    #[serde(default)]
    max_retries: Option<i64>,
    #[serde(default)]
    matching: Matching,
}

#[derive(Deserialize, Default)]
struct Matching {
    #[serde(default, rename = "httpStatusCodes")]
    http: Option<String>,
    #[serde(default, rename = "gRPCStatusCodes")]
    grpc: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBreaker {
    #[serde(default)]
    max_requests: Option<i64>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    trip: Option<String>,
}

#[derive(Deserialize, Default)]
struct Targets {
    #[serde(default)]
    apps: HashMap<String, Direction>,
    #[serde(default)]
    components: HashMap<String, ComponentTarget>,
}

#[derive(Deserialize, Default)]
struct ComponentTarget {
    #[serde(default)]
    inbound: Option<Direction>,
    #[serde(default)]
    outbound: Option<Direction>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Direction {
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retry: Option<String>,
    #[serde(default)]
    circuit_breaker: Option<String>,
}

fn invalid(path: &Path, reason: String) -> ResourceError {
    ResourceError::Invalid {
        path: path.to_path_buf(),
        reason,
    }
}

fn duration(
    path: &Path,
    at: &str,
    raw: Option<&str>,
    default: Duration,
) -> Result<Duration, ResourceError> {
    match raw.map(str::trim) {
        None => Ok(default),
        Some("0") => Ok(Duration::ZERO),
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| invalid(path, format!("{at}: {text:?} is not a duration: {e}"))),
    }
}

/// The named policies of one document, parsed.
struct Named {
    timeouts: HashMap<String, Duration>,
    retries: HashMap<String, RetryPolicy>,
    breakers: HashMap<String, CircuitBreakerPolicy>,
}

fn retry(path: &Path, name: &str, raw: RawRetry) -> Result<RetryPolicy, ResourceError> {
    let at = format!("spec.policies.retries.{name}");
    let exponential = match raw.policy.as_str() {
        "" | "constant" => false,
        "exponential" => true,
        other => {
            return Err(invalid(
                path,
                format!("{at}.policy: {other:?} is not constant or exponential"),
            ));
        }
    };
    let max_retries = match raw.max_retries {
        None | Some(-1) => None,
        Some(n) if n >= 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        Some(n) => {
            return Err(invalid(
                path,
                format!("{at}.maxRetries: {n} (use -1 for forever)"),
            ));
        }
    };
    // Exponential back-off starts at `initialInterval` (Dapr); `duration` is
    // accepted there too, as Outrigger always has.
    let (field, first, default) = match (exponential, raw.initial_interval) {
        (true, Some(initial)) => ("initialInterval", Some(initial), DEFAULT_INITIAL_INTERVAL),
        (true, None) => ("duration", raw.duration, DEFAULT_INITIAL_INTERVAL),
        (false, _) => ("duration", raw.duration, DEFAULT_RETRY_DURATION),
    };
    let codes = |field: &str, text: Option<&str>, valid| {
        CodeRanges::parse(text.unwrap_or_default(), valid)
            .map_err(|e| invalid(path, format!("{at}.matching.{field}: {e}")))
    };
    Ok(RetryPolicy {
        exponential,
        duration: duration(path, &format!("{at}.{field}"), first.as_deref(), default)?,
        max_interval: duration(
            path,
            &format!("{at}.maxInterval"),
            raw.max_interval.as_deref(),
            DEFAULT_MAX_INTERVAL,
        )?,
        max_retries,
        http_status_codes: codes("httpStatusCodes", raw.matching.http.as_deref(), (100, 599))?,
        grpc_status_codes: codes("gRPCStatusCodes", raw.matching.grpc.as_deref(), (0, 16))?,
    })
}

fn breaker(
    path: &Path,
    name: &str,
    raw: RawBreaker,
) -> Result<CircuitBreakerPolicy, ResourceError> {
    let at = format!("spec.policies.circuitBreakers.{name}");
    let trip = match raw.trip.as_deref() {
        None => Trip::default(),
        Some(text) => Trip::parse(text).map_err(|e| invalid(path, format!("{at}.trip: {e}")))?,
    };
    let timeout = duration(
        path,
        &format!("{at}.timeout"),
        raw.timeout.as_deref(),
        Duration::from_secs(60),
    )?;
    Ok(CircuitBreakerPolicy {
        name: name.to_owned(),
        // gobreaker (under Dapr) treats 0 as 1 and a 0 timeout as 60 s.
        max_requests: match raw.max_requests {
            None => 1,
            Some(n) => u32::try_from(n).map(|n| n.max(1)).map_err(|_| {
                invalid(
                    path,
                    format!("{at}.maxRequests: {n} is not a count of calls"),
                )
            })?,
        },
        interval: duration(
            path,
            &format!("{at}.interval"),
            raw.interval.as_deref(),
            Duration::ZERO,
        )?,
        timeout: if timeout.is_zero() {
            Duration::from_secs(60)
        } else {
            timeout
        },
        trip,
    })
}

fn named(path: &Path, policies: Policies) -> Result<Named, ResourceError> {
    let mut timeouts = HashMap::new();
    for (name, text) in policies.timeouts {
        let at = format!("spec.policies.timeouts.{name}");
        timeouts.insert(name, duration(path, &at, Some(&text), Duration::ZERO)?);
    }
    let mut retries = HashMap::new();
    for (name, raw) in policies.retries {
        let policy = retry(path, &name, raw)?;
        retries.insert(name, policy);
    }
    let mut breakers = HashMap::new();
    for (name, raw) in policies.circuit_breakers {
        let policy = breaker(path, &name, raw)?;
        breakers.insert(name, policy);
    }
    Ok(Named {
        timeouts,
        retries,
        breakers,
    })
}

/// Resolve a target's policy names; `at` is the target's field path and
/// `guarded` what its breaker guards (named in errors).
fn target(
    path: &Path,
    named: &Named,
    at: &str,
    direction: Direction,
    guarded: &str,
) -> Result<TargetPolicy, ResourceError> {
    fn lookup<T: Clone>(
        path: &Path,
        map: &HashMap<String, T>,
        at: &str,
        kind: &str,
        name: Option<String>,
    ) -> Result<Option<T>, ResourceError> {
        name.map(|name| {
            map.get(&name)
                .cloned()
                .ok_or_else(|| invalid(path, format!("{at}: no {kind} policy named {name:?}")))
        })
        .transpose()
    }
    let timeout = lookup(
        path,
        &named.timeouts,
        &format!("{at}.timeout"),
        "timeout",
        direction.timeout,
    )?;
    let retry = lookup(
        path,
        &named.retries,
        &format!("{at}.retry"),
        "retry",
        direction.retry,
    )?;
    let breaker = lookup(
        path,
        &named.breakers,
        &format!("{at}.circuitBreaker"),
        "circuit breaker",
        direction.circuit_breaker,
    )?;
    Ok(TargetPolicy {
        timeout: timeout.filter(|t| !t.is_zero()),
        retry,
        circuit_breaker: breaker.map(|p| Arc::new(CircuitBreaker::new(p, guarded))),
    })
}

/// Add the `Resiliency` documents of `text` (file `path`) that apply to `app_id`.
///
/// # Errors
/// Malformed YAML or policies, or a target naming an undefined policy, naming the file.
pub(super) fn add_file(
    into: &mut Resiliency,
    path: &Path,
    text: &str,
    app_id: &str,
) -> Result<(), ResourceError> {
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(document)
            .map_err(|e| invalid(path, e.to_string()))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some("Resiliency") {
            continue;
        }
        let doc: Doc =
            serde_yaml_ng::from_value(value).map_err(|e| invalid(path, e.to_string()))?;
        if doc.kind.as_deref() != Some("Resiliency")
            || (!doc.scopes.is_empty() && !doc.scopes.iter().any(|s| s == app_id))
        {
            continue;
        }
        let named = named(path, doc.spec.policies)?;
        for (app, direction) in doc.spec.targets.apps {
            let at = format!("spec.targets.apps.{app}");
            let policy = target(path, &named, &at, direction, &format!("app {app}"))?;
            into.apps.insert(app, policy);
        }
        for (component, t) in doc.spec.targets.components {
            let at = format!("spec.targets.components.{component}");
            if let Some(direction) = t.inbound {
                let guarded = format!("component {component} (inbound)");
                let policy = target(path, &named, &format!("{at}.inbound"), direction, &guarded)?;
                if let Some(retry) = policy.retry {
                    into.inbound.insert(component.clone(), retry);
                }
            }
            if let Some(direction) = t.outbound {
                let guarded = format!("component {component}");
                let policy = target(path, &named, &format!("{at}.outbound"), direction, &guarded)?;
                into.outbound.insert(component, policy);
            }
        }
    }
    Ok(())
}
