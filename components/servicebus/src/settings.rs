//! Component metadata: every key Dapr documents for
//! `pubsub.azure.servicebus.topics` and `bindings.azure.servicebusqueues`,
//! parsed and checked once at `Init` into [`Settings`].

use std::time::Duration;

use outrigger_component_sdk::{ComponentError, Metadata};

use crate::namespace::Namespace;

/// Keys both blocks accept.
const COMMON_KEYS: &[&str] = &[
    "connectionString",
    "namespaceName",
    "timeoutInSec",
    "handlerTimeoutInSec",
    "lockRenewalInSec",
    "maxActiveMessages",
    "maxConcurrentHandlers",
    "disableEntityManagement",
    "defaultMessageTimeToLiveInSec",
    "autoDeleteOnIdleInSec",
    "maxDeliveryCount",
    "lockDurationInSec",
    "minConnectionRecoveryInSec",
    "maxConnectionRecoveryInSec",
    "maxRetriableErrorsPerSec",
    "publishMaxRetries",
    "publishInitialRetryIntervalInMs",
    // Microsoft Entra ID keys: recognised so the error can say why they do not work.
    "azureTenantId",
    "azureClientId",
    "azureClientSecret",
    "azureCertificate",
    "azureCertificateFile",
    "azureCertificatePassword",
    "azureEnvironment",
];

/// Keys only the topics pub/sub accepts.
pub(crate) const TOPIC_KEYS: &[&str] = &["consumerID"];
/// Keys only the queue binding accepts.
pub(crate) const QUEUE_KEYS: &[&str] = &["queueName", "direction", "route"];

/// Everything `Init` learned.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) namespace: Namespace,
    /// Sends and management calls give up after this.
    pub(crate) timeout: Duration,
    /// How long the host may take to answer a delivery before it is abandoned.
    pub(crate) handler_timeout: Duration,
    /// How often the lock of a message being handled is renewed.
    pub(crate) lock_renewal: Duration,
    /// Most messages handed out and not yet answered, per subscription.
    pub(crate) max_active: usize,
    pub(crate) manage_entities: bool,
    pub(crate) entity: EntityOptions,
    pub(crate) min_recovery: Duration,
    pub(crate) max_recovery: Duration,
    /// Pause after a failed delivery so a poison message does not spin: 1 / rate.
    pub(crate) retriable_error_pause: Duration,
    pub(crate) publish_max_retries: u32,
    pub(crate) publish_initial_retry: Duration,
}

/// Properties of the entities we create (ignored for existing ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EntityOptions {
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) auto_delete_on_idle: Option<Duration>,
    pub(crate) max_delivery_count: Option<u32>,
    pub(crate) lock_duration: Option<Duration>,
}

/// Refuse keys neither Dapr nor we know, naming them.
pub(crate) fn check_keys(metadata: &Metadata, own: &[&str]) -> Result<(), ComponentError> {
    metadata.check_keys(&[COMMON_KEYS, own].concat())
}

fn seconds(metadata: &Metadata, key: &str) -> Result<Option<Duration>, ComponentError> {
    match metadata.parse::<u64>(key)? {
        Some(0) => Err(ComponentError::invalid_argument(
            key,
            "must be a whole number of seconds above 0",
        )),
        other => Ok(other.map(Duration::from_secs)),
    }
}

fn seconds_or(metadata: &Metadata, key: &str, default: u64) -> Result<Duration, ComponentError> {
    Ok(seconds(metadata, key)?.unwrap_or(Duration::from_secs(default)))
}

/// Parse and check every key.
pub(crate) fn settings(metadata: &Metadata) -> Result<Settings, ComponentError> {
    let namespace = match (
        metadata.get("connectionString"),
        metadata.get("namespaceName"),
    ) {
        (Some(raw), _) => Namespace::parse(raw)?,
        (None, Some(_)) => {
            return Err(ComponentError::invalid_argument(
                "namespaceName",
                "Microsoft Entra ID authentication is not supported: the REST-based azure_messaging_servicebus 0.21 signs with shared access keys only; set connectionString",
            ));
        }
        (None, None) => {
            return Err(ComponentError::invalid_argument(
                "connectionString",
                "required metadata is missing (Endpoint=sb://{namespace}.servicebus.windows.net/;SharedAccessKeyName=...;SharedAccessKey=...)",
            ));
        }
    };
    let max_active = metadata
        .parse::<usize>("maxActiveMessages")?
        .unwrap_or(1000);
    if max_active == 0 {
        return Err(ComponentError::invalid_argument(
            "maxActiveMessages",
            "must be at least 1",
        ));
    }
    // 0 means unlimited handlers: then only maxActiveMessages bounds them.
    let handlers = metadata
        .parse::<usize>("maxConcurrentHandlers")?
        .filter(|h| *h > 0);
    let max_active = handlers.map_or(max_active, |h| h.min(max_active));
    let max_delivery_count = metadata.parse::<u32>("maxDeliveryCount")?;
    if max_delivery_count == Some(0) {
        return Err(ComponentError::invalid_argument(
            "maxDeliveryCount",
            "must be at least 1",
        ));
    }
    let min_recovery = seconds_or(metadata, "minConnectionRecoveryInSec", 2)?;
    let max_recovery = seconds_or(metadata, "maxConnectionRecoveryInSec", 300)?;
    if max_recovery < min_recovery {
        return Err(ComponentError::invalid_argument(
            "maxConnectionRecoveryInSec",
            "must not be below minConnectionRecoveryInSec",
        ));
    }
    let errors_per_sec = metadata
        .parse::<u32>("maxRetriableErrorsPerSec")?
        .unwrap_or(10);
    let retriable_error_pause = if errors_per_sec == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs(1) / errors_per_sec
    };
    Ok(Settings {
        namespace,
        timeout: seconds_or(metadata, "timeoutInSec", 60)?,
        handler_timeout: seconds_or(metadata, "handlerTimeoutInSec", 60)?,
        lock_renewal: seconds_or(metadata, "lockRenewalInSec", 20)?,
        max_active,
        manage_entities: !metadata.bool_or("disableEntityManagement", false)?,
        entity: EntityOptions {
            default_ttl: seconds(metadata, "defaultMessageTimeToLiveInSec")?,
            auto_delete_on_idle: seconds(metadata, "autoDeleteOnIdleInSec")?,
            max_delivery_count,
            lock_duration: seconds(metadata, "lockDurationInSec")?,
        },
        min_recovery,
        max_recovery,
        retriable_error_pause,
        publish_max_retries: metadata.parse::<u32>("publishMaxRetries")?.unwrap_or(5),
        publish_initial_retry: Duration::from_millis(
            metadata
                .parse::<u64>("publishInitialRetryIntervalInMs")?
                .unwrap_or(500),
        ),
    })
}

/// Entity names Service Bus accepts: letters, digits, `.`, `-`, `_` (and `/`
/// between segments of a queue or topic path), at most `max` characters.
pub(crate) fn check_entity(
    field: &str,
    name: &str,
    max: usize,
    slashes: bool,
) -> Result<(), ComponentError> {
    let ok_char = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || (slashes && c == '/')
    };
    let ok = !name.is_empty()
        && name.len() <= max
        && name.chars().all(ok_char)
        && !name.starts_with(['/', '.', '-', '_'])
        && !name.ends_with(['/', '.', '-', '_'])
        && !name.contains("//");
    if ok {
        Ok(())
    } else {
        Err(ComponentError::invalid_argument(
            field,
            format!(
                "{name:?} is not a Service Bus entity name (1 to {max} letters, digits, '.', '-', '_'{}; starting and ending with a letter or digit)",
                if slashes { ", '/'" } else { "" }
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const CONN: &str =
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=n;SharedAccessKey=k";

    fn md(pairs: &[(&str, &str)]) -> Metadata {
        let mut all: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        all.entry("connectionString".into())
            .or_insert_with(|| CONN.into());
        Metadata::new(all)
    }

    #[test]
    fn defaults_are_daprs() {
        let s = settings(&md(&[])).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(60));
        assert_eq!(s.lock_renewal, Duration::from_secs(20));
        assert_eq!(s.max_active, 1000);
        assert!(s.manage_entities);
        assert_eq!(s.entity, EntityOptions::default());
        assert_eq!(s.publish_max_retries, 5);
        assert_eq!(s.publish_initial_retry, Duration::from_millis(500));
        assert_eq!(s.retriable_error_pause, Duration::from_millis(100));
    }

    #[test]
    fn handlers_bound_active_messages() {
        let s = settings(&md(&[
            ("maxActiveMessages", "50"),
            ("maxConcurrentHandlers", "4"),
        ]))
        .unwrap();
        assert_eq!(s.max_active, 4);
        let s = settings(&md(&[
            ("maxActiveMessages", "3"),
            ("maxConcurrentHandlers", "0"),
        ]))
        .unwrap();
        assert_eq!(s.max_active, 3);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("lockRenewalInSec", "soon"),
            ("lockDurationInSec", "0"),
            ("maxDeliveryCount", "0"),
            ("maxActiveMessages", "0"),
            ("disableEntityManagement", "perhaps"),
            ("maxConnectionRecoveryInSec", "1"),
            ("namespaceName", "ns.servicebus.windows.net"),
        ] {
            let mut pairs = vec![(key, value)];
            if key == "namespaceName" {
                pairs.push(("connectionString", ""));
            }
            let err = settings(&md(&pairs)).unwrap_err();
            assert!(err.message().contains(key), "{key}: {}", err.message());
        }
        let dapr = md(&[("publishingScopes", "app1=t1"), ("consumerID", "g")]);
        assert!(
            check_keys(&dapr, TOPIC_KEYS).is_ok(),
            "Dapr's generic keys are refused"
        );
        let err = check_keys(&md(&[("noSuchKey", "1")]), TOPIC_KEYS).unwrap_err();
        assert!(err.message().starts_with("noSuchKey"), "{}", err.message());
    }

    #[test]
    fn entity_names() {
        assert!(check_entity("topic", "orders", 260, true).is_ok());
        assert!(check_entity("topic", "a/b.c-d_e", 260, true).is_ok());
        for bad in ["", "-x", "x/", "a b", "a//b", "ä"] {
            assert!(check_entity("topic", bad, 260, true).is_err(), "{bad:?}");
        }
        assert!(check_entity("consumerID", "a/b", 50, false).is_err());
        assert!(check_entity("consumerID", &"x".repeat(51), 50, false).is_err());
    }
}
