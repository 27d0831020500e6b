//! Dapr message metadata to and from Service Bus messages.
//!
//! Outgoing: Dapr's settable keys (`MessageId`, `CorrelationId`, `SessionId`,
//! `Label`, `ReplyTo`, `PartitionKey`, `To`, `ContentType`,
//! `ScheduledEnqueueTimeUtc`, `ReplyToSessionId`, and `ttlInSeconds`) become
//! broker properties; every other key becomes an application property, sent
//! as a header whose string value is quoted as the REST API wants.
//!
//! Incoming: broker properties come back as `metadata.{Name}` keys (as
//! daprd's component names them), application properties under their own
//! names (lower-cased: HTTP header names are case-insensitive, and the REST
//! transport does not keep their case).

use std::collections::HashMap;
use std::time::Duration;

use azure_core::headers::Headers;
use azure_messaging_servicebus::service_bus::{SendMessageOptions, SettableBrokerProperties};
use outrigger_component_sdk::ComponentError;
use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};

/// Headers of a received message that are transport, not application properties.
const TRANSPORT_HEADERS: &[&str] = &[
    "brokerproperties",
    "content-type",
    "content-length",
    "location",
    "date",
    "server",
    "transfer-encoding",
    "strict-transport-security",
    "connection",
    "keep-alive",
    "vary",
    "cache-control",
    "expires",
    "pragma",
];

/// Broker properties copied to incoming metadata, in Dapr's names.
const BROKER_KEYS: &[&str] = &[
    "MessageId",
    "CorrelationId",
    "SessionId",
    "Label",
    "ReplyTo",
    "To",
    "PartitionKey",
    "ReplyToSessionId",
    "ScheduledEnqueueTimeUtc",
    "DeliveryCount",
    "LockedUntilUtc",
    "LockToken",
    "EnqueuedTimeUtc",
    "SequenceNumber",
];

/// A message to send: its body and options.
pub(crate) struct Outgoing {
    pub(crate) body: String,
    pub(crate) options: SendMessageOptions,
}

fn text(field: &str, value: &str) -> Result<String, ComponentError> {
    if value.chars().any(char::is_control) {
        return Err(ComponentError::invalid_argument(
            format!("metadata.{field}"),
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// `ScheduledEnqueueTimeUtc` in RFC 1123/2822 (Dapr's form) or RFC 3339.
fn enqueue_time(raw: &str) -> Result<OffsetDateTime, ComponentError> {
    let gmt = raw
        .trim()
        .replace(" GMT", " +0000")
        .replace(" UTC", " +0000");
    OffsetDateTime::parse(&gmt, &Rfc2822)
        .or_else(|_| OffsetDateTime::parse(raw.trim(), &Rfc3339))
        .map_err(|_| {
            ComponentError::invalid_argument(
                "metadata.ScheduledEnqueueTimeUtc",
                format!(
                    "{raw:?} is not a time: use RFC 1123 (Mon, 02 Jan 2006 15:04:05 GMT) or RFC 3339"
                ),
            )
        })
}

/// A header name for an application property, or an error naming the key.
fn property_name(key: &str) -> Result<String, ComponentError> {
    let token = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let lower = key.to_ascii_lowercase();
    if !token || TRANSPORT_HEADERS.contains(&lower.as_str()) || lower == "authorization" {
        return Err(ComponentError::invalid_argument(
            format!("metadata.{key}"),
            "cannot be an application property over the REST API (use letters, digits and -._~; not a standard HTTP header)",
        ));
    }
    Ok(lower)
}

/// A string property value as the REST API wants it: JSON-quoted, ASCII only.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// A received property value: JSON strings unquoted, anything else as sent.
fn unquote(raw: &str) -> String {
    match serde_json::from_str(raw) {
        Ok(serde_json::Value::String(s)) if raw.starts_with('"') => s,
        _ => raw.to_owned(),
    }
}

/// Build the message for `data` with `metadata` and `content_type`.
pub(crate) fn outgoing(
    data: Vec<u8>,
    metadata: &HashMap<String, String>,
    content_type: Option<&str>,
) -> Result<Outgoing, ComponentError> {
    let body = String::from_utf8(data).map_err(|_| {
        ComponentError::invalid_argument(
            "data",
            "is not UTF-8: the REST-based Service Bus client carries message bodies as text; base64-encode binary payloads",
        )
    })?;
    let mut broker = SettableBrokerProperties::default();
    let mut custom = HashMap::new();
    let mut content_type = content_type.filter(|c| !c.is_empty()).map(str::to_owned);
    for (key, value) in metadata {
        match key.to_ascii_lowercase().as_str() {
            "messageid" => broker.message_id = Some(text(key, value)?),
            "correlationid" => broker.correlation_id = Some(text(key, value)?),
            "sessionid" => broker.session_id = Some(text(key, value)?),
            "label" | "subject" => broker.label = Some(text(key, value)?),
            "replyto" => broker.reply_to = Some(text(key, value)?),
            "to" => broker.to = Some(text(key, value)?),
            "partitionkey" => broker.partition_key = Some(text(key, value)?),
            "replytosessionid" => broker.reply_to_session_id = Some(text(key, value)?),
            "contenttype" => content_type = Some(text(key, value)?),
            "scheduledenqueuetimeutc" => {
                broker.scheduled_enqueue_time_utc = Some(enqueue_time(value)?);
            }
            "ttlinseconds" => {
                let secs: u64 = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| {
                        ComponentError::invalid_argument(
                            "metadata.ttlInSeconds",
                            format!("{value:?} is not a whole number of seconds above 0"),
                        )
                    })?;
                broker.time_to_live = Some(Duration::from_secs(secs));
            }
            // Dapr's own switches, not message properties.
            "rawpayload" | "queuename" => {}
            _ => {
                custom.insert(property_name(key)?, quote(value));
            }
        }
    }
    Ok(Outgoing {
        body,
        options: SendMessageOptions {
            content_type,
            broker_properties: Some(broker),
            custom_properties: (!custom.is_empty()).then_some(custom),
        },
    })
}

/// A peek-locked message, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Incoming {
    pub(crate) body: Vec<u8>,
    pub(crate) metadata: HashMap<String, String>,
    pub(crate) content_type: Option<String>,
}

/// Decode a received message's headers and body.
pub(crate) fn incoming(headers: &Headers, body: String) -> Incoming {
    let mut metadata = HashMap::new();
    let mut content_type = None;
    for (name, value) in headers.iter() {
        let name = name.as_str().to_ascii_lowercase();
        let value = value.as_str();
        if name == "brokerproperties" {
            if let Ok(serde_json::Value::Object(props)) = serde_json::from_str(value) {
                for key in BROKER_KEYS {
                    let rendered = match props.get(*key) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(serde_json::Value::Number(n)) => n.to_string(),
                        Some(serde_json::Value::Bool(b)) => b.to_string(),
                        _ => continue,
                    };
                    metadata.insert(format!("metadata.{key}"), rendered);
                }
            }
        } else if name == "content-type" {
            content_type = Some(value.to_owned()).filter(|c| !c.is_empty());
        } else if !TRANSPORT_HEADERS.contains(&name.as_str()) {
            metadata.insert(name, unquote(value));
        }
    }
    Incoming {
        body: body.into_bytes(),
        metadata,
        content_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn broker_and_application_properties_are_split() {
        let out = outgoing(
            b"hi".to_vec(),
            &md(&[
                ("MessageId", "m-1"),
                ("CorrelationId", "c-1"),
                ("SessionId", "s-1"),
                ("ttlInSeconds", "30"),
                ("ScheduledEnqueueTimeUtc", "Mon, 02 Jan 2006 15:04:05 GMT"),
                ("Priority", "high \"quoted\" é"),
            ]),
            Some("text/plain"),
        )
        .unwrap();
        let broker = out.options.broker_properties.unwrap();
        assert_eq!(broker.message_id.as_deref(), Some("m-1"));
        assert_eq!(broker.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(broker.session_id.as_deref(), Some("s-1"));
        assert_eq!(broker.time_to_live, Some(Duration::from_secs(30)));
        assert_eq!(
            broker.scheduled_enqueue_time_utc.unwrap().unix_timestamp(),
            1_136_214_245
        );
        let custom = out.options.custom_properties.unwrap();
        let priority = &custom["priority"];
        assert_eq!(priority, r#""high \"quoted\" \u00e9""#);
        assert_eq!(unquote(priority), "high \"quoted\" é");
        assert_eq!(out.options.content_type.as_deref(), Some("text/plain"));
    }

    #[test]
    fn bad_metadata_names_the_key() {
        for (key, value) in [
            ("ttlInSeconds", "soon"),
            ("ScheduledEnqueueTimeUtc", "tomorrow"),
            ("has space", "x"),
            ("Content-Length", "3"),
        ] {
            let Err(err) = outgoing(Vec::new(), &md(&[(key, value)]), None) else {
                panic!("{key} was accepted");
            };
            assert!(err.message().contains(key), "{}", err.message());
        }
        let Err(err) = outgoing(vec![0xff, 0xfe], &HashMap::new(), None) else {
            panic!("binary data was accepted");
        };
        assert!(err.message().starts_with("data:"), "{}", err.message());
    }

    #[test]
    fn incoming_metadata_uses_daprs_names() {
        let mut headers = Headers::new();
        headers.insert(
            "brokerproperties",
            r#"{"DeliveryCount":2,"LockToken":"t","MessageId":"m","SequenceNumber":7,"State":"Active","TimeToLive":60.0}"#,
        );
        headers.insert("content-type", "application/json");
        headers.insert("conformance-key", "\"conformance value\"");
        headers.insert("date", "Mon, 02 Jan 2006 15:04:05 GMT");
        let msg = incoming(&headers, "{}".into());
        assert_eq!(msg.metadata["metadata.DeliveryCount"], "2");
        assert_eq!(msg.metadata["metadata.SequenceNumber"], "7");
        assert_eq!(msg.metadata["metadata.MessageId"], "m");
        assert_eq!(msg.metadata["conformance-key"], "conformance value");
        assert!(!msg.metadata.contains_key("date") && !msg.metadata.contains_key("metadata.State"));
        assert_eq!(msg.content_type.as_deref(), Some("application/json"));
    }
}
