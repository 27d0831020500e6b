//! [`Metadata`]: a component's `spec.metadata`, with typed accessors whose
//! errors name the offending key.
//!
//! Keys match case-insensitively, as Dapr's own metadata decoding does, so a
//! YAML `connectionstring` and `connectionString` both work.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use crate::ComponentError;

/// Keys Dapr's hosts may pass to any component (scopes, outbox, actor and
/// binding switches); [`Metadata::check_keys`] accepts them everywhere.
const GENERIC_KEYS: &[&str] = &[
    "actorStateStore",
    "keyPrefix",
    "outboxPublishPubsub",
    "outboxPublishTopic",
    "outboxPubsub",
    "outboxDiscardWhenMissingState",
    "consumerID",
    "allowedTopics",
    "publishingScopes",
    "subscriptionScopes",
    "protectedTopics",
    "route",
    "direction",
];

/// Properties a component receives in `Init` (secret references already resolved by the host).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    properties: HashMap<String, String>,
}

// === impl Metadata ===

impl Metadata {
    /// Wrap a property map.
    pub fn new(properties: HashMap<String, String>) -> Self {
        Self { properties }
    }

    /// All properties, as sent.
    pub fn properties(&self) -> &HashMap<String, String> {
        &self.properties
    }

    /// The value of `key` (case-insensitive), if present and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .get(key)
            .or_else(|| {
                self.properties
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Refuse a key that is neither in `known` nor one of Dapr's generic
    /// keys (scopes, outbox, `consumerID`, `route`, ...), any case.
    ///
    /// # Errors
    /// `InvalidArgument` naming the first unknown key (in sorted order) and
    /// listing the accepted ones.
    pub fn check_keys(&self, known: &[&str]) -> Result<(), ComponentError> {
        let mut keys: Vec<&String> = self.properties.keys().collect();
        keys.sort();
        let accepted = |key: &str| {
            known
                .iter()
                .chain(GENERIC_KEYS)
                .any(|k| k.eq_ignore_ascii_case(key))
        };
        match keys.into_iter().find(|k| !accepted(k)) {
            None => Ok(()),
            Some(unknown) => {
                let mut listed = known.to_vec();
                listed.sort_unstable();
                Err(ComponentError::invalid_argument(
                    unknown.clone(),
                    format!(
                        "unknown metadata key; this component accepts {}",
                        listed.join(", ")
                    ),
                ))
            }
        }
    }

    /// The value of `key`, or an `InvalidArgument` naming it.
    ///
    /// # Errors
    /// When the key is missing or empty.
    pub fn required(&self, key: &str) -> Result<&str, ComponentError> {
        self.get(key)
            .ok_or_else(|| ComponentError::invalid_argument(key, "required metadata is missing"))
    }

    /// `key` parsed as `T`, `None` when absent.
    ///
    /// # Errors
    /// When the value does not parse; the error names the key and the value.
    pub fn parse<T>(&self, key: &str) -> Result<Option<T>, ComponentError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(key)
            .map(|raw| {
                raw.trim().parse::<T>().map_err(|e| {
                    ComponentError::invalid_argument(key, format!("cannot parse {raw:?}: {e}"))
                })
            })
            .transpose()
    }

    /// `key` as a boolean (`true`/`false`/`1`/`0`/`yes`/`no`), `default` when absent.
    ///
    /// # Errors
    /// When the value is not a boolean.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ComponentError> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" | "y" | "on" => Ok(true),
                "false" | "0" | "no" | "n" | "off" => Ok(false),
                _ => Err(ComponentError::invalid_argument(
                    key,
                    format!("{v:?} is not a boolean"),
                )),
            },
        }
    }

    /// `key` as a duration, `None` when absent. Accepts Go-style durations
    /// (`1h30m`, `500ms`, `10s`) and, like Dapr, a bare number of seconds.
    ///
    /// # Errors
    /// When the value is neither.
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, ComponentError> {
        self.get(key)
            .map(|raw| {
                parse_duration(raw).ok_or_else(|| {
                    ComponentError::invalid_argument(
                        key,
                        format!("{raw:?} is not a duration (e.g. 30s, 5m, 1h30m)"),
                    )
                })
            })
            .transpose()
    }
}

impl From<HashMap<String, String>> for Metadata {
    fn from(properties: HashMap<String, String>) -> Self {
        Self::new(properties)
    }
}

/// Parse a Go duration string (`1h2m3.5s`, `250ms`, `10us`) or bare seconds.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if raw == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = raw;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> Metadata {
        Metadata::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn keys_match_case_insensitively() {
        let m = meta(&[("connectionString", "x")]);
        assert_eq!(m.get("connectionstring"), Some("x"));
        assert_eq!(m.get("CONNECTIONSTRING"), Some("x"));
        assert_eq!(m.get("other"), None);
    }

    #[test]
    fn check_keys_accepts_known_and_generic_keys_and_names_the_first_unknown() {
        let m = meta(&[
            ("URL", "x"),
            ("publishingScopes", "a=t"),
            ("consumerid", "g"),
        ]);
        assert!(m.check_keys(&["url"]).is_ok());
        let m = meta(&[("url", "x"), ("zeta", "1"), ("alpha", "2")]);
        let err = m.check_keys(&["url", "timeout"]).unwrap_err();
        assert_eq!(
            err.message(),
            "alpha: unknown metadata key; this component accepts timeout, url"
        );
    }

    #[test]
    fn required_names_the_missing_key() {
        let err = meta(&[]).required("tableName").unwrap_err();
        assert!(err.message().contains("tableName"), "{err}");
    }

    #[test]
    fn parse_errors_name_key_and_value() {
        let err = meta(&[("maxConns", "many")])
            .parse::<u32>("maxConns")
            .unwrap_err();
        assert!(err.message().contains("maxConns") && err.message().contains("many"));
        assert_eq!(
            meta(&[("maxConns", "8")]).parse::<u32>("maxConns").ok(),
            Some(Some(8))
        );
    }

    #[test]
    fn booleans() {
        assert_eq!(meta(&[("a", "TRUE")]).bool_or("a", false).ok(), Some(true));
        assert_eq!(meta(&[]).bool_or("a", true).ok(), Some(true));
        assert!(meta(&[("a", "maybe")]).bool_or("a", true).is_err());
    }

    #[test]
    fn go_durations_and_bare_seconds() {
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration(""), None);
        assert!(meta(&[("timeout", "soon")]).duration("timeout").is_err());
    }
}
