//! `Resiliency` resources: retry policies and the components they target.
//!
//! Only what delivery to the app uses so far: `spec.policies.retries` and
//! `spec.targets.components.<name>.inbound.retry`. Timeouts, circuit
//! breakers and app/actor targets arrive with issue 10.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::resources::ResourceError;

/// A retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `exponential` (doubling from `duration`) rather than `constant`.
    pub exponential: bool,
    /// Wait between attempts (the first wait, when exponential).
    pub duration: Duration,
    /// Longest wait when exponential.
    pub max_interval: Duration,
    /// Retries after the first attempt; `None` retries forever (`-1`).
    pub max_retries: Option<u32>,
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based).
    pub fn wait(&self, attempt: u32) -> Duration {
        if !self.exponential {
            return self.duration;
        }
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.duration.saturating_mul(factor).min(self.max_interval)
    }
}

/// Retry policies for components' inbound traffic (delivery to the app), by component name.
#[derive(Debug, Clone, Default)]
pub struct Resiliency {
    /// Component name → inbound retry policy.
    pub inbound: HashMap<String, RetryPolicy>,
}

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
struct Policies {
    #[serde(default)]
    retries: HashMap<String, RawRetry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRetry {
    #[serde(default)]
    policy: String,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    max_interval: Option<String>,
    #[serde(default)]
    max_retries: Option<i64>,
}

#[derive(Deserialize, Default)]
struct Targets {
    #[serde(default)]
    components: HashMap<String, ComponentTarget>,
}

#[derive(Deserialize, Default)]
struct ComponentTarget {
    #[serde(default)]
    inbound: Option<Direction>,
}

#[derive(Deserialize, Default)]
struct Direction {
    #[serde(default)]
    retry: Option<String>,
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
    match raw {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text.trim())
            .map_err(|e| invalid(path, format!("{at}: {text:?} is not a duration: {e}"))),
    }
}

/// Add the `Resiliency` documents of `text` (file `path`) that apply to `app_id`.
///
/// # Errors
/// Malformed YAML or policies, or a target naming an undefined policy, naming the file.
pub fn add_file(
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
        let mut policies = HashMap::new();
        for (name, raw) in doc.spec.policies.retries {
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
            let policy = RetryPolicy {
                exponential,
                duration: duration(
                    path,
                    &format!("{at}.duration"),
                    raw.duration.as_deref(),
                    Duration::from_millis(500),
                )?,
                max_interval: duration(
                    path,
                    &format!("{at}.maxInterval"),
                    raw.max_interval.as_deref(),
                    Duration::from_secs(60),
                )?,
                max_retries,
            };
            policies.insert(name, policy);
        }
        for (component, target) in doc.spec.targets.components {
            if let Some(name) = target.inbound.and_then(|d| d.retry) {
                let policy = policies.get(&name).cloned().ok_or_else(|| {
                    invalid(path, format!("spec.targets.components.{component}.inbound.retry: no retry policy named {name:?}"))
                })?;
                into.inbound.insert(component, policy);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: r}
spec:
  policies:
    retries:
      three: {policy: constant, duration: 10ms, maxRetries: 3}
      growing: {policy: exponential, duration: 100ms, maxInterval: 1s, maxRetries: -1}
  targets:
    components:
      pubsub:
        inbound: {retry: three}
      other:
        inbound: {retry: growing}
"#;

    #[test]
    fn policies_and_targets() {
        let mut r = Resiliency::default();
        add_file(&mut r, Path::new("r.yaml"), YAML, "app").unwrap();
        let three = &r.inbound["pubsub"];
        assert_eq!(
            (three.max_retries, three.wait(2)),
            (Some(3), Duration::from_millis(10))
        );
        let growing = &r.inbound["other"];
        assert_eq!(growing.max_retries, None);
        assert_eq!(growing.wait(1), Duration::from_millis(100));
        assert_eq!(growing.wait(3), Duration::from_millis(400));
        assert_eq!(growing.wait(10), Duration::from_secs(1));
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let bad = YAML.replace("retry: three", "retry: four");
        let err = add_file(&mut Resiliency::default(), Path::new("r.yaml"), &bad, "app")
            .unwrap_err()
            .to_string();
        assert!(err.contains("r.yaml") && err.contains("four"), "{err}");
        let bad = YAML.replace("duration: 10ms", "duration: soon");
        let err = add_file(&mut Resiliency::default(), Path::new("r.yaml"), &bad, "app")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spec.policies.retries.three.duration"),
            "{err}"
        );
    }
}
