//! A loopback Azure Service Bus: the REST operations `outrigger-servicebus`
//! uses, written from Microsoft's REST API reference, so the component's real
//! code path (crate, signing, HTTP) runs end to end without Azure.
//!
//! What it models, as the service documents it:
//! - SAS authorization on every request (`SharedAccessSignature sr=&sig=&se=&skn=`,
//!   HMAC-SHA256 of `"{encoded sr}\n{se}"`); 401 when the key, name or expiry is wrong.
//! - Entities (Atom management API): `PUT` creates a queue / topic /
//!   subscription from its description (`LockDuration`, `MaxDeliveryCount`,
//!   `DefaultMessageTimeToLive`, `DeadLetteringOnMessageExpiration`), 409 if
//!   it exists; `GET` returns the entry, or an empty feed for an entity that
//!   does not exist; `DELETE` removes it.
//! - Send (`POST {entity}/messages`, 201): `BrokerProperties` JSON header,
//!   custom properties as headers, a topic copies to every subscription, 410
//!   for a missing entity, 413 above 256 KiB (standard tier).
//! - Peek-lock (`POST .../messages/head?timeout=`, 201 / 204 after the long
//!   poll / 410), receive-and-delete (`DELETE .../messages/head`), complete
//!   (`DELETE .../messages/{id}/{lock}`), unlock (`PUT`), renew lock (`POST`),
//!   404 for a lost lock.
//! - Lock expiry, delivery counts, dead-lettering to `{entity}/$DeadLetterQueue`
//!   once a message was delivered `MaxDeliveryCount` times (reason
//!   `MaxDeliveryCountExceeded`), per-message and default TTL, scheduled
//!   enqueue time, FIFO by sequence number.
#![allow(dead_code)]

#[path = "fake_model.rs"]
mod model;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use model::{DLQ, Message, Namespace, Queue, http_date, parse_description};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// Largest message body the standard tier accepts.
const MAX_MESSAGE: usize = 256 * 1024;
/// Broker properties a sender may set.
const SETTABLE: &[&str] = &[
    "MessageId",
    "CorrelationId",
    "SessionId",
    "Label",
    "ReplyTo",
    "To",
    "PartitionKey",
    "ReplyToSessionId",
    "ScheduledEnqueueTimeUtc",
];
/// Request headers that are not custom properties.
const NOT_PROPERTIES: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "host",
    "brokerproperties",
    "accept",
    "accept-encoding",
    "user-agent",
    "connection",
    "transfer-encoding",
];

/// A running loopback Service Bus.
pub struct FakeServiceBus {
    /// Base URL to redirect `https://{namespace}.servicebus.windows.net` to.
    pub url: String,
    bus: Arc<Bus>,
}

struct Bus {
    namespace: String,
    key_name: String,
    key: String,
    state: Mutex<Namespace>,
}

fn entry(title: &str) -> String {
    format!(
        r#"<entry xmlns="http://www.w3.org/2005/Atom"><title type="text">{title}</title><content type="application/xml"/></entry>"#
    )
}

fn empty_feed() -> String {
    r#"<feed xmlns="http://www.w3.org/2005/Atom"><title type="text">Publicly Listed Services</title></feed>"#.into()
}

fn status(code: StatusCode, detail: &str) -> Response {
    let body = format!(
        "<Error><Code>{}</Code><Detail>{detail}</Detail></Error>",
        code.as_u16()
    );
    (code, body).into_response()
}

impl Bus {
    /// Check the SAS token against `resource` (`https://{ns}.servicebus.windows.net/{path}`).
    fn authorize(&self, headers: &HeaderMap, resource: &str) -> Result<(), String> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("SharedAccessSignature "))
            .ok_or("no SharedAccessSignature authorization header")?;
        let mut parts = HashMap::new();
        for pair in token.split('&') {
            let (k, v) = pair.split_once('=').ok_or("malformed token")?;
            parts.insert(k, v);
        }
        let raw_sr = *parts.get("sr").ok_or("token has no sr")?;
        let decode = |v: &str| {
            url::form_urlencoded::parse(format!("x={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let sr = decode(raw_sr);
        let se: i64 = parts
            .get("se")
            .and_then(|s| s.parse().ok())
            .ok_or("token has no se")?;
        let skn = decode(parts.get("skn").ok_or("token has no skn")?);
        let sig = decode(parts.get("sig").ok_or("token has no sig")?);
        if skn != self.key_name {
            return Err(format!("unknown key name {skn:?}"));
        }
        if se < OffsetDateTime::now_utc().unix_timestamp() {
            return Err("token expired".into());
        }
        let scope = sr
            .split('?')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !resource
            .to_ascii_lowercase()
            .starts_with(scope.trim_end_matches('/'))
        {
            return Err(format!("token for {sr:?} does not cover {resource:?}"));
        }
        let key = azure_core::auth::Secret::new(azure_core::base64::encode(&self.key));
        let expected = azure_core::hmac::hmac_sha256(&format!("{raw_sr}\n{se}"), &key)
            .map_err(|e| e.to_string())?;
        if expected != sig {
            return Err("signature does not match".into());
        }
        Ok(())
    }
}

/// Where a request goes.
enum Route {
    Entity(String),
    Send(String),
    Head(String),
    Locked(String, String),
}

fn route(path: &str) -> Route {
    let path = path.trim_start_matches('/').replace("%24", "$");
    if let Some(entity) = path.strip_suffix("/messages/head") {
        return Route::Head(entity.to_owned());
    }
    if let Some(entity) = path.strip_suffix("/messages") {
        return Route::Send(entity.to_owned());
    }
    let parts: Vec<&str> = path.rsplitn(4, '/').collect();
    if let [token, _id, "messages", entity] = parts.as_slice() {
        return Route::Locked((*entity).to_owned(), (*token).to_owned());
    }
    Route::Entity(path)
}

fn peeked(message: &Message, path: &str, namespace: &str, locked: bool) -> Response {
    let mut broker = message.broker.clone();
    broker.insert("DeliveryCount".into(), message.delivery_count.into());
    broker.insert("EnqueuedSequenceNumber".into(), message.sequence.into());
    broker.insert("EnqueuedTimeUtc".into(), http_date(message.enqueued).into());
    broker.insert("MessageId".into(), message.message_id.clone().into());
    broker.insert("SequenceNumber".into(), message.sequence.into());
    broker.insert("State".into(), "Active".into());
    broker.insert("TimeToLive".into(), message.ttl.as_secs_f64().into());
    let (token, until) = match &message.lock {
        Some((token, _, until)) if locked => (token.clone(), *until),
        _ => (String::new(), SystemTime::now()),
    };
    broker.insert("LockToken".into(), token.clone().into());
    broker.insert("LockedUntilUtc".into(), http_date(until).into());
    let mut headers = HeaderMap::new();
    let mut put = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    };
    put("brokerproperties", &Value::Object(broker).to_string());
    if let Some(content_type) = &message.content_type {
        put("content-type", content_type);
    }
    if locked {
        put(
            "location",
            &format!(
                "https://{namespace}.servicebus.windows.net/{path}/messages/{}/{token}",
                message.sequence
            ),
        );
    }
    for (name, value) in &message.properties {
        put(name, value);
    }
    let code = if locked {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (code, headers, message.body.clone()).into_response()
}

async fn handle(
    State(bus): State<Arc<Bus>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let resource = format!(
        "https://{}.servicebus.windows.net{}",
        bus.namespace,
        uri.path()
    );
    if let Err(why) = bus.authorize(&headers, &resource) {
        return status(StatusCode::UNAUTHORIZED, &why);
    }
    let timeout = uri
        .query()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "timeout"))
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs);
    match (route(uri.path()), method.clone()) {
        (Route::Entity(path), Method::PUT) => create(&bus, &path, &headers, &body),
        (Route::Entity(path), Method::GET) => {
            let ns = bus.state.lock().unwrap();
            let exists = ns.queues.contains_key(&path) || ns.topics.contains_key(&path);
            let body = if exists { entry(&path) } else { empty_feed() };
            (StatusCode::OK, body).into_response()
        }
        (Route::Entity(path), Method::DELETE) => {
            let mut ns = bus.state.lock().unwrap();
            let removed = ns.topics.remove(&path).is_some() | ns.queues.remove(&path).is_some();
            let prefix = format!("{path}/");
            ns.queues.retain(|k, _| !k.starts_with(&prefix));
            if removed {
                StatusCode::OK.into_response()
            } else {
                status(StatusCode::NOT_FOUND, "no such entity")
            }
        }
        (Route::Send(path), Method::POST) => send(&bus, &path, &headers, body),
        (Route::Head(path), Method::POST | Method::DELETE) => {
            let lock = method == Method::POST;
            let deadline = Instant::now() + timeout;
            loop {
                {
                    let mut ns = bus.state.lock().unwrap();
                    if !ns.queues.contains_key(&path) {
                        return status(StatusCode::GONE, "no such queue or subscription");
                    }
                    let next = if lock {
                        ns.lock_next(&path)
                    } else {
                        ns.take_next(&path)
                    };
                    if let Some(message) = next {
                        return peeked(&message, &path, &bus.namespace, lock);
                    }
                }
                if Instant::now() >= deadline {
                    return StatusCode::NO_CONTENT.into_response();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        (Route::Locked(path, token), method) => {
            let mut ns = bus.state.lock().unwrap();
            let lock_duration = ns
                .queues
                .get(&path)
                .map(|q| (q.lock_duration, q.max_delivery));
            let message = match ns.locked(&path, &token) {
                Ok(message) => message,
                Err(code) => return status(code, "no message with this lock token"),
            };
            let Some((lock_duration, max_delivery)) = lock_duration else {
                return status(StatusCode::GONE, "no such queue or subscription");
            };
            match method {
                Method::DELETE => {
                    let sequence = message.sequence;
                    if let Some(q) = ns.queues.get_mut(&path) {
                        q.messages.remove(&sequence);
                    }
                    StatusCode::OK.into_response()
                }
                Method::PUT => {
                    message.lock = None;
                    let (sequence, count) = (message.sequence, message.delivery_count);
                    if count >= max_delivery {
                        ns.move_to_dlq(&path, sequence);
                    }
                    StatusCode::OK.into_response()
                }
                Method::POST => {
                    if let Some((_, until, wall)) = message.lock.as_mut() {
                        *until = Instant::now() + lock_duration;
                        *wall = SystemTime::now() + lock_duration;
                    }
                    StatusCode::OK.into_response()
                }
                _ => status(StatusCode::METHOD_NOT_ALLOWED, "unsupported"),
            }
        }
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "unsupported operation"),
    }
}

fn create(bus: &Bus, path: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let atom = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/atom+xml"));
    if !atom {
        return status(
            StatusCode::BAD_REQUEST,
            "Content-Type must be application/atom+xml",
        );
    }
    let description = match parse_description(body) {
        Ok(d) => d,
        Err(why) => return status(StatusCode::BAD_REQUEST, &why),
    };
    let mut ns = bus.state.lock().unwrap();
    if ns.queues.contains_key(path) || ns.topics.contains_key(path) {
        return status(StatusCode::CONFLICT, "the entity already exists");
    }
    match (
        description.element.as_str(),
        path.split_once("/subscriptions/"),
    ) {
        ("SubscriptionDescription", Some((topic, name))) if !name.contains('/') => {
            if !ns.topics.contains_key(topic) {
                return status(StatusCode::NOT_FOUND, "the topic does not exist");
            }
            ns.queues.insert(path.to_owned(), Queue::new(&description));
        }
        ("QueueDescription", None) => {
            ns.queues.insert(path.to_owned(), Queue::new(&description));
        }
        ("TopicDescription", None) => {
            ns.topics.insert(path.to_owned(), description.default_ttl);
        }
        (element, _) => {
            return status(
                StatusCode::BAD_REQUEST,
                &format!("{element} cannot be created at {path}"),
            );
        }
    }
    (StatusCode::CREATED, entry(path)).into_response()
}

fn send(bus: &Bus, path: &str, headers: &HeaderMap, body: Bytes) -> Response {
    if body.len() > MAX_MESSAGE {
        return status(StatusCode::PAYLOAD_TOO_LARGE, "the message is too large");
    }
    let broker: Map<String, Value> = match headers.get("brokerproperties") {
        None => Map::new(),
        Some(raw) => match raw.to_str().ok().and_then(|s| serde_json::from_str(s).ok()) {
            Some(Value::Object(map)) => map,
            _ => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BrokerProperties is not a JSON object",
                );
            }
        },
    };
    let mut properties = Vec::new();
    for (name, value) in headers {
        let name = name.as_str();
        if NOT_PROPERTIES.contains(&name) || name.starts_with("x-ms-") {
            continue;
        }
        properties.push((
            name.to_owned(),
            value.to_str().unwrap_or_default().to_owned(),
        ));
    }
    let ttl = match broker.get("TimeToLive") {
        None => None,
        Some(v) => match v.as_f64().filter(|s| *s > 0.0) {
            Some(secs) => Some(Duration::from_secs_f64(secs)),
            None => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "TimeToLive must be a positive number",
                );
            }
        },
    };
    let scheduled = match broker
        .get("ScheduledEnqueueTimeUtc")
        .and_then(Value::as_str)
    {
        None => None,
        Some(raw) => match OffsetDateTime::parse(&raw.replace(" GMT", " +0000"), &Rfc2822) {
            Ok(t) => Some(t),
            Err(_) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "ScheduledEnqueueTimeUtc is not a date",
                );
            }
        },
    };
    let settable: Map<String, Value> = broker
        .into_iter()
        .filter(|(k, _)| SETTABLE.contains(&k.as_str()) && k != "MessageId")
        .collect();
    let message_id = headers
        .get("brokerproperties")
        .and_then(|raw| raw.to_str().ok())
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| {
            v.get("MessageId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut ns = bus.state.lock().unwrap();
    let targets: Vec<String> = if ns.queues.contains_key(path) && !path.contains("/subscriptions/")
    {
        vec![path.to_owned()]
    } else if ns.topics.contains_key(path) {
        let prefix = format!("{path}/subscriptions/");
        ns.queues
            .keys()
            .filter(|k| k.starts_with(&prefix) && !k.ends_with(DLQ))
            .cloned()
            .collect()
    } else {
        return status(StatusCode::GONE, "the queue or topic does not exist");
    };
    let now = Instant::now();
    let visible_at = scheduled.map_or(now, |at| {
        let wait = (at - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        now + Duration::try_from(wait).unwrap_or_default()
    });
    let topic_ttl = ns.topics.get(path).copied().flatten();
    for target in targets {
        ns.next_sequence += 1;
        let sequence = ns.next_sequence;
        let Some(queue) = ns.queues.get_mut(&target) else {
            continue;
        };
        let limit = [ttl, queue.default_ttl, topic_ttl]
            .into_iter()
            .flatten()
            .min();
        let message = Message {
            sequence,
            body: body.clone(),
            content_type: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            properties: properties.clone(),
            broker: settable.clone(),
            message_id: message_id.clone(),
            enqueued: SystemTime::now(),
            visible_at,
            expires_at: limit.map(|l| visible_at + l),
            ttl: limit.unwrap_or(Duration::from_secs(922_337_203_685)),
            delivery_count: 0,
            lock: None,
        };
        queue.messages.insert(sequence, message);
    }
    StatusCode::CREATED.into_response()
}

impl FakeServiceBus {
    /// Serve namespace `namespace` with one shared access key on a free loopback port.
    pub async fn start(namespace: &str, key_name: &str, key: &str) -> Self {
        let bus = Arc::new(Bus {
            namespace: namespace.into(),
            key_name: key_name.into(),
            key: key.into(),
            state: Mutex::new(Namespace::default()),
        });
        let app = axum::Router::new().fallback(handle).with_state(bus.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, bus }
    }

    /// The connection string of this namespace.
    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=sb://{}.servicebus.windows.net/;SharedAccessKeyName={};SharedAccessKey={}",
            self.bus.namespace, self.bus.key_name, self.bus.key
        )
    }

    /// Whether a queue, topic or subscription exists.
    pub fn exists(&self, path: &str) -> bool {
        let ns = self.bus.state.lock().unwrap();
        ns.queues.contains_key(path) || ns.topics.contains_key(path)
    }

    /// Messages waiting (locked or not) in a queue or subscription.
    pub fn depth(&self, path: &str) -> usize {
        let mut ns = self.bus.state.lock().unwrap();
        ns.sweep(path);
        ns.queues.get(path).map_or(0, |q| q.messages.len())
    }

    /// The lock duration and max delivery count a queue or subscription was created with.
    pub fn settings(&self, path: &str) -> Option<(Duration, u32, Option<Duration>)> {
        let ns = self.bus.state.lock().unwrap();
        ns.queues
            .get(path)
            .map(|q| (q.lock_duration, q.max_delivery, q.default_ttl))
    }
}
