//! What the app says about the actors it hosts: `GET /dapr/config`.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::duration::parse_duration;

/// Reentrancy settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reentrancy {
    pub(crate) enabled: bool,
    pub(crate) max_stack_depth: u32,
}

impl Default for Reentrancy {
    fn default() -> Self {
        Self {
            enabled: false,
            max_stack_depth: 32,
        }
    }
}

/// Settings one actor type overrides (`entitiesConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TypeConfig {
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) reentrancy: Option<Reentrancy>,
    pub(crate) reminder_partitions: Option<u32>,
}

/// The app's actor configuration, with daprd's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostConfig {
    pub(crate) entities: Vec<String>,
    pub(crate) idle_timeout: Duration,
    pub(crate) scan_interval: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) drain_rebalanced: bool,
    pub(crate) reentrancy: Reentrancy,
    pub(crate) reminder_partitions: u32,
    pub(crate) per_type: HashMap<String, TypeConfig>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            entities: Vec::new(),
            idle_timeout: Duration::from_secs(3600),
            scan_interval: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(60),
            drain_rebalanced: true,
            reentrancy: Reentrancy::default(),
            reminder_partitions: 1,
            per_type: HashMap::new(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawReentrancy {
    #[serde(default)]
    enabled: bool,
    max_stack_depth: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawTypeConfig {
    #[serde(default)]
    entities: Vec<String>,
    actor_idle_timeout: Option<String>,
    reentrancy: Option<RawReentrancy>,
    reminders_storage_partitions: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    entities: Vec<String>,
    actor_idle_timeout: Option<String>,
    actor_scan_interval: Option<String>,
    drain_ongoing_call_timeout: Option<String>,
    drain_rebalanced_actors: Option<bool>,
    reentrancy: Option<RawReentrancy>,
    reminders_storage_partitions: Option<u32>,
    #[serde(default)]
    entities_config: Vec<RawTypeConfig>,
}

fn duration(field: &str, raw: Option<&str>) -> Result<Option<Duration>, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => parse_duration(text)
            .map(Some)
            .map_err(|why| format!("{field}: {why}")),
    }
}

fn reentrancy(raw: RawReentrancy) -> Reentrancy {
    Reentrancy {
        enabled: raw.enabled,
        max_stack_depth: raw.max_stack_depth.filter(|d| *d > 0).unwrap_or(32),
    }
}

impl HostConfig {
    /// Parse the body of `GET /dapr/config`; an error names the field.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, String> {
        let raw: RawConfig = serde_json::from_slice(body)
            .map_err(|e| format!("GET /dapr/config: not the expected JSON: {e}"))?;
        let defaults = Self::default();
        let mut per_type = HashMap::new();
        for (i, entry) in raw.entities_config.into_iter().enumerate() {
            let settings = TypeConfig {
                idle_timeout: duration(
                    &format!("entitiesConfig[{i}].actorIdleTimeout"),
                    entry.actor_idle_timeout.as_deref(),
                )?,
                reentrancy: entry.reentrancy.map(reentrancy),
                reminder_partitions: entry.reminders_storage_partitions,
            };
            for entity in entry.entities {
                per_type.insert(entity, settings.clone());
            }
        }
        let mut entities = raw.entities;
        entities.retain(|e| !e.is_empty());
        entities.dedup();
        Ok(Self {
            entities,
            idle_timeout: duration("actorIdleTimeout", raw.actor_idle_timeout.as_deref())?
                .unwrap_or(defaults.idle_timeout),
            scan_interval: duration("actorScanInterval", raw.actor_scan_interval.as_deref())?
                .unwrap_or(defaults.scan_interval),
            drain_timeout: duration(
                "drainOngoingCallTimeout",
                raw.drain_ongoing_call_timeout.as_deref(),
            )?
            .unwrap_or(defaults.drain_timeout),
            drain_rebalanced: raw
                .drain_rebalanced_actors
                .unwrap_or(defaults.drain_rebalanced),
            reentrancy: raw.reentrancy.map(reentrancy).unwrap_or_default(),
            reminder_partitions: raw.reminders_storage_partitions.unwrap_or(1).max(1),
            per_type,
        })
    }

    /// The idle timeout of `actor_type`.
    pub(crate) fn idle_timeout(&self, actor_type: &str) -> Duration {
        self.per_type
            .get(actor_type)
            .and_then(|t| t.idle_timeout)
            .unwrap_or(self.idle_timeout)
    }

    /// Reentrancy of `actor_type`.
    pub(crate) fn reentrancy(&self, actor_type: &str) -> Reentrancy {
        self.per_type
            .get(actor_type)
            .and_then(|t| t.reentrancy)
            .unwrap_or(self.reentrancy)
    }

    /// Reminder partitions of `actor_type`.
    pub(crate) fn reminder_partitions(&self, actor_type: &str) -> u32 {
        self.per_type
            .get(actor_type)
            .and_then(|t| t.reminder_partitions)
            .unwrap_or(self.reminder_partitions)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_global_and_per_type_settings() {
        let body = br#"{"entities":["Cart","Timer"],"actorIdleTimeout":"1h0m0s",
            "actorScanInterval":"30s","drainOngoingCallTimeout":"1m0s",
            "drainRebalancedActors":true,"reentrancy":{"enabled":true,"maxStackDepth":8},
            "entitiesConfig":[{"entities":["Timer"],"actorIdleTimeout":"4s",
            "reentrancy":{"enabled":false}}]}"#;
        let config = HostConfig::parse(body).unwrap();
        assert_eq!(config.entities, ["Cart", "Timer"]);
        assert_eq!(config.idle_timeout("Cart"), Duration::from_secs(3600));
        assert_eq!(config.idle_timeout("Timer"), Duration::from_secs(4));
        assert!(config.reentrancy("Cart").enabled);
        assert_eq!(config.reentrancy("Cart").max_stack_depth, 8);
        assert!(!config.reentrancy("Timer").enabled);
        assert_eq!(config.drain_timeout, Duration::from_secs(60));
    }

    #[test]
    fn defaults_and_errors() {
        let config = HostConfig::parse(b"{}").unwrap();
        assert!(config.entities.is_empty());
        assert_eq!(config.scan_interval, Duration::from_secs(30));
        assert_eq!(config.reentrancy.max_stack_depth, 32);
        let err = HostConfig::parse(br#"{"actorIdleTimeout":"soon"}"#).unwrap_err();
        assert!(err.contains("actorIdleTimeout"), "{err}");
        assert!(HostConfig::parse(b"[").is_err());
    }
}
