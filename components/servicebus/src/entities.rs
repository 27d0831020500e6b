//! Entity management over Service Bus's Atom REST API: does a queue, topic
//! or subscription exist, and create it when it does not (unless
//! `disableEntityManagement`). The crate has no management calls, so these
//! requests are built here and sent through the same [`crate::namespace::Transport`].

use std::sync::Arc;
use std::time::Duration;

use azure_core::{HttpClient, Method, Request, StatusCode, Url};
use outrigger_component_sdk::ComponentError;
use quick_xml::events::Event;

use crate::namespace::{Namespace, describe};
use crate::settings::EntityOptions;

const API_VERSION: &str = "2021-05";
const ATOM_ENTRY: &str = "application/atom+xml;type=entry;charset=utf-8";

/// What an entity is, for its description element and for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Queue,
    Topic,
    Subscription,
}

impl Kind {
    fn element(self) -> &'static str {
        match self {
            Self::Queue => "QueueDescription",
            Self::Topic => "TopicDescription",
            Self::Subscription => "SubscriptionDescription",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Topic => "topic",
            Self::Subscription => "subscription",
        }
    }
}

/// Management calls against one namespace.
#[derive(Clone)]
pub(crate) struct Entities {
    http: Arc<dyn HttpClient>,
    namespace: Namespace,
    timeout: Duration,
}

/// `PT{n}S`: the XML Schema duration Service Bus reads.
fn xml_duration(d: Duration) -> String {
    format!("PT{}S", d.as_secs())
}

/// The Atom entry that creates an entity of `kind` with `options`. Elements
/// follow the order of the description's schema (the service requires it).
fn description(kind: Kind, options: &EntityOptions) -> String {
    let mut body = String::new();
    let mut push = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            body.push_str(&format!("<{name}>{value}</{name}>"));
        }
    };
    if kind == Kind::Topic {
        push(
            "DefaultMessageTimeToLive",
            options.default_ttl.map(xml_duration),
        );
    } else {
        push("LockDuration", options.lock_duration.map(xml_duration));
        push(
            "DefaultMessageTimeToLive",
            options.default_ttl.map(xml_duration),
        );
        push(
            "MaxDeliveryCount",
            options.max_delivery_count.map(|n| n.to_string()),
        );
    }
    push(
        "AutoDeleteOnIdle",
        options.auto_delete_on_idle.map(xml_duration),
    );
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml"><{el} xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">{body}</{el}></content></entry>"#,
        el = kind.element()
    )
}

/// Whether an Atom document is an entry (the entity) rather than a feed (the
/// service's answer for an entity that does not exist).
fn is_entry(body: &[u8]) -> bool {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e)) => return e.local_name().as_ref() == b"entry",
            Ok(Event::Eof) | Err(_) => return false,
            Ok(_) => buf.clear(),
        }
    }
}

impl Entities {
    pub(crate) fn new(http: Arc<dyn HttpClient>, namespace: Namespace, timeout: Duration) -> Self {
        Self {
            http,
            namespace,
            timeout,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, bytes::Bytes), ComponentError> {
        let url = self.namespace.url(path);
        let parsed = Url::parse(&format!("{url}?api-version={API_VERSION}"))
            .map_err(|e| ComponentError::internal(format!("entity URL {url}: {e}")))?;
        let mut request = Request::new(parsed, method);
        request.insert_header("authorization", self.namespace.sas_token(&url)?);
        match body {
            Some(body) => {
                request.insert_header("content-type", ATOM_ENTRY);
                request.set_body(body);
            }
            None => {
                request.insert_header("content-length", "0");
                request.set_body(azure_core::EMPTY_BODY);
            }
        }
        let call = async {
            let response = self.http.execute_request(&request).await?;
            let (status, _, body) = response.deconstruct();
            Ok::<_, azure_core::Error>((status, body.collect().await?))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(ComponentError::unavailable(format!(
                "{method} {path}: no answer within timeoutInSec ({:?})",
                self.timeout
            ))),
            Ok(Err(e)) => Err(ComponentError::unavailable(format!(
                "{method} {path}: {}",
                describe(&e)
            ))),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// Whether the entity at `path` exists.
    pub(crate) async fn exists(&self, kind: Kind, path: &str) -> Result<bool, ComponentError> {
        let (status, body) = self.call(Method::Get, path, None).await?;
        match status {
            StatusCode::Ok => Ok(is_entry(&body)),
            StatusCode::NotFound => Ok(false),
            StatusCode::Unauthorized | StatusCode::Forbidden => Err(denied(kind, path, status)),
            other => Err(ComponentError::unavailable(format!(
                "looking up {} {path}: HTTP {other}: {}",
                kind.noun(),
                String::from_utf8_lossy(&body)
            ))),
        }
    }

    /// Create the entity at `path` unless it exists. A concurrent creation
    /// by another instance (409) counts as success.
    pub(crate) async fn ensure(
        &self,
        kind: Kind,
        path: &str,
        options: &EntityOptions,
    ) -> Result<(), ComponentError> {
        if self.exists(kind, path).await? {
            return Ok(());
        }
        let (status, body) = self
            .call(Method::Put, path, Some(description(kind, options)))
            .await?;
        match status {
            StatusCode::Created | StatusCode::Ok | StatusCode::Conflict => {
                tracing::info!(entity = %path, kind = kind.noun(), "created");
                Ok(())
            }
            StatusCode::Unauthorized | StatusCode::Forbidden => Err(denied(kind, path, status)),
            StatusCode::NotFound => Err(ComponentError::not_found(format!(
                "creating {} {path}: its parent does not exist",
                kind.noun()
            ))),
            other => Err(ComponentError::unavailable(format!(
                "creating {} {path}: HTTP {other}: {}",
                kind.noun(),
                String::from_utf8_lossy(&body)
            ))),
        }
    }
}

fn denied(kind: Kind, path: &str, status: StatusCode) -> ComponentError {
    let why = if status == StatusCode::Unauthorized {
        "the namespace refused the shared access key in connectionString"
    } else {
        "the shared access policy in connectionString needs Manage rights, or set disableEntityManagement: \"true\" and create entities yourself"
    };
    ComponentError::failed_precondition(format!(
        "managing {} {path}: HTTP {status}: {why}",
        kind.noun()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_keep_schema_order() {
        let options = EntityOptions {
            default_ttl: Some(Duration::from_secs(10)),
            auto_delete_on_idle: Some(Duration::from_secs(3600)),
            max_delivery_count: Some(3),
            lock_duration: Some(Duration::from_secs(30)),
        };
        let xml = description(Kind::Subscription, &options);
        let at = |tag: &str| xml.find(tag).unwrap();
        assert!(at("<LockDuration>PT30S<") < at("<DefaultMessageTimeToLive>PT10S<"));
        assert!(at("<DefaultMessageTimeToLive>") < at("<MaxDeliveryCount>3<"));
        assert!(at("<MaxDeliveryCount>") < at("<AutoDeleteOnIdle>PT3600S<"));
        assert!(xml.contains("<SubscriptionDescription xmlns="));
        let topic = description(Kind::Topic, &options);
        assert!(!topic.contains("LockDuration") && !topic.contains("MaxDeliveryCount"));
        assert!(description(Kind::Queue, &EntityOptions::default()).contains("<QueueDescription"));
    }

    #[test]
    fn entries_and_feeds() {
        assert!(is_entry(b"<?xml version=\"1.0\"?><entry xmlns=\"http://www.w3.org/2005/Atom\"><title>q</title></entry>"));
        assert!(!is_entry(b"<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>Publicly Listed Services</title></feed>"));
        assert!(!is_entry(b""));
    }
}
