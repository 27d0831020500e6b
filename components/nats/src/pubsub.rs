//! `pubsub.jetstream`: topics are subjects of one JetStream stream.
//!
//! Publishing waits for the broker's ack, so an accepted publish is stored.
//! Each (consumer group, topic) pair is a durable pull consumer filtered on
//! the topic, with explicit acks: instances of one group share it, two
//! groups each get every message. An ack from the host acks the message; a
//! nack NAKs it (delayed by `backOff` when set); a delivery the host never
//! answered (its stream closed) is NAKed at once. The pull loop re-creates
//! the consumer and its pull stream after any error, so it outlives broker
//! restarts (the client reconnects by itself).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue};
use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures::StreamExt;
use outrigger_component_sdk::pubsub::*;
use outrigger_component_sdk::{ComponentError, Delivery, Metadata, Outcome, async_trait};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::connect::{self, sanitize};

mod settings;

#[cfg(test)]
use settings::backoff;
use settings::{KEYS, Settings, settings};

/// Most messages one pull request asks for.
const BATCH: usize = 256;
/// Header carrying the publish content type.
const CONTENT_TYPE: &str = "Content-Type";
/// Header asking the broker to expire one message (server ≥ 2.11).
const MESSAGE_TTL: &str = "Nats-TTL";

struct Open {
    js: jetstream::Context,
    settings: Settings,
    /// Subjects known to be in the stream.
    subjects: Mutex<HashSet<String>>,
    /// Serialises stream creation / subject updates in this process.
    ensure: tokio::sync::Mutex<()>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

/// The JetStream pub/sub. Configure with `Init`.
#[derive(Default)]
pub struct JetStreamPubSub {
    open: OnceLock<Arc<Open>>,
}

/// A topic must be a literal NATS subject.
fn check_topic(topic: &str) -> Result<(), ComponentError> {
    let ok = !topic.is_empty()
        && !topic.contains(|c: char| c.is_whitespace() || c == '*' || c == '>')
        && topic.split('.').all(|t| !t.is_empty());
    if ok {
        Ok(())
    } else {
        Err(ComponentError::invalid_argument(
            "topic",
            format!("{topic:?} is not a NATS subject (no spaces, wildcards or empty tokens)"),
        ))
    }
}

/// Whether stream subject `pattern` (with `*` and `>` wildcards) covers `subject`.
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(t)) if p == t => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

/// The durable consumer of `group` on `topic`: a valid consumer name, made
/// unique with a hash when sanitising changed it.
fn durable_name(group: &str, topic: &str) -> String {
    let raw = format!("{group}_{topic}");
    let clean = sanitize(&raw);
    if clean == raw {
        clean
    } else {
        // FNV-1a: stable across processes, unlike std's hasher.
        let hash = raw.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{clean}_{hash:016x}")
    }
}

fn headers(
    metadata: &HashMap<String, String>,
    content_type: Option<&str>,
) -> Result<HeaderMap, ComponentError> {
    let mut headers = HeaderMap::new();
    for (key, value) in metadata {
        if key == "ttlInSeconds" {
            continue;
        }
        let name = HeaderName::from_str(key).map_err(|_| {
            ComponentError::invalid_argument(
                format!("metadata.{key}"),
                "not a valid NATS header name",
            )
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            ComponentError::invalid_argument(
                format!("metadata.{key}"),
                "value cannot hold CR or LF",
            )
        })?;
        headers.insert(name, value);
    }
    if let Some(ct) = content_type.filter(|c| !c.is_empty()) {
        let value = HeaderValue::from_str(ct)
            .map_err(|_| ComponentError::invalid_argument("contentType", "cannot hold CR or LF"))?;
        headers.insert(CONTENT_TYPE, value);
    }
    match metadata
        .get("ttlInSeconds")
        .map(|v| v.trim().parse::<i64>())
    {
        None | Some(Ok(-1)) => {}
        Some(Ok(secs)) if secs > 0 => headers.insert(MESSAGE_TTL, HeaderValue::from(secs)),
        Some(_) => {
            return Err(ComponentError::invalid_argument(
                "metadata.ttlInSeconds",
                "must be a positive number of seconds, or -1 for none",
            ));
        }
    }
    Ok(headers)
}

fn pulled(message: &async_nats::Message, topic: &str) -> PulledMessage {
    let mut metadata = HashMap::new();
    let mut content_type = None;
    if let Some(headers) = &message.headers {
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            let Some(value) = values.last() else { continue };
            if name.eq_ignore_ascii_case(CONTENT_TYPE) {
                content_type = Some(value.as_str().to_owned());
            } else if !name.starts_with("Nats-") {
                metadata.insert(name.to_owned(), value.as_str().to_owned());
            }
        }
    }
    PulledMessage {
        data: message.payload.to_vec(),
        topic: topic.to_owned(),
        metadata,
        content_type,
    }
}

// === impl Open ===

impl Open {
    /// Make sure the stream exists and holds `topic` as a subject.
    async fn ensure_subject(&self, topic: &str) -> Result<(), ComponentError> {
        if self.known(topic) {
            return Ok(());
        }
        let _guard = self.ensure.lock().await;
        // Another process may create or update the stream at the same time:
        // a lost race shows up as an error, and the next look-up sees its result.
        let mut attempt = 0;
        loop {
            if self.known(topic) {
                return Ok(());
            }
            attempt += 1;
            match self.try_ensure(topic).await {
                Ok(()) => return Ok(()),
                Err(err) if attempt >= 3 => return Err(err),
                Err(err) => {
                    tracing::debug!(error = %err, %topic, "stream set-up raced; looking again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn try_ensure(&self, topic: &str) -> Result<(), ComponentError> {
        let name = &self.settings.stream;
        match self.js.get_stream(name).await {
            Ok(mut existing) => {
                let info = existing
                    .info()
                    .await
                    .map_err(|e| ComponentError::unavailable(format!("stream {name}: {e}")))?;
                let mut config = info.config.clone();
                if !config.subjects.iter().any(|s| subject_matches(s, topic)) {
                    config.subjects.push(topic.to_owned());
                    self.js.update_stream(config.clone()).await.map_err(|e| {
                        ComponentError::unavailable(format!(
                            "adding subject {topic} to stream {name}: {e}"
                        ))
                    })?;
                }
                self.remember(config.subjects);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(ref js)
                        if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                self.create(topic).await
            }
            Err(e) => Err(ComponentError::unavailable(format!(
                "looking up stream {name}: {e}"
            ))),
        }
    }

    async fn create(&self, topic: &str) -> Result<(), ComponentError> {
        let name = &self.settings.stream;
        tracing::info!(stream = %name, "creating the stream");
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![topic.to_owned()],
            num_replicas: self.settings.replicas,
            allow_message_ttl: true,
            ..Default::default()
        };
        match self.js.create_stream(config).await {
            Ok(_) => {
                self.remember(vec![topic.to_owned()]);
                Ok(())
            }
            Err(e) => Err(ComponentError::unavailable(format!(
                "creating stream {name}: {e}"
            ))),
        }
    }

    fn known(&self, topic: &str) -> bool {
        self.subjects
            .lock()
            .map(|known| known.iter().any(|s| subject_matches(s, topic)))
            .unwrap_or(false)
    }

    fn remember(&self, subjects: Vec<String>) {
        if let Ok(mut known) = self.subjects.lock() {
            known.extend(subjects);
        }
    }

    fn forget(&self, topic: &str) {
        if let Ok(mut known) = self.subjects.lock() {
            known.remove(topic);
        }
    }

    async fn publish_one(
        &self,
        topic: &str,
        data: Vec<u8>,
        metadata: &HashMap<String, String>,
        content_type: Option<&str>,
    ) -> Result<(), ComponentError> {
        check_topic(topic)?;
        let headers = headers(metadata, content_type)?;
        self.ensure_subject(topic).await?;
        let ack = self
            .js
            .publish_with_headers(topic.to_owned(), headers, data.into())
            .await
            .map_err(|e| ComponentError::unavailable(format!("publishing to {topic}: {e}")))?;
        if let Err(e) = ack.await {
            // A stream changed behind our back: look it up again next time.
            self.forget(topic);
            return Err(ComponentError::unavailable(format!(
                "publishing to {topic}: no broker ack: {e}"
            )));
        }
        Ok(())
    }

    /// Create (or update) the durable consumer of `durable` on `topic`.
    async fn consumer(
        &self,
        durable: &str,
        topic: &str,
    ) -> Result<consumer::PullConsumer, ComponentError> {
        self.ensure_subject(topic).await?;
        let stream = self
            .js
            .get_stream(&self.settings.stream)
            .await
            .map_err(|e| ComponentError::unavailable(format!("looking up the stream: {e}")))?;
        stream
            .create_consumer(self.consumer_config(durable, topic))
            .await
            .map_err(|e| ComponentError::unavailable(format!("creating consumer {durable}: {e}")))
    }

    fn consumer_config(&self, durable: &str, topic: &str) -> consumer::pull::Config {
        let s = &self.settings;
        consumer::pull::Config {
            durable_name: Some(durable.to_owned()),
            filter_subject: topic.to_owned(),
            deliver_policy: s.deliver_policy,
            ack_policy: s.ack_policy,
            ack_wait: s.ack_wait,
            max_deliver: s.max_deliver,
            backoff: s.backoff.clone(),
            max_ack_pending: s.max_ack_pending,
            num_replicas: s.replicas,
            memory_storage: s.memory_storage,
            ..Default::default()
        }
    }
}

/// Pull `topic` for `durable` into `tx` until the host closes the stream or
/// the component stops.
///
/// Messages come in batches: one pull request at a time, each living at most
/// `hearbeat`. When the host's stream closes mid-batch, the rest of that
/// batch is still read and NAKed, so nothing the broker hands to a pull
/// request nobody reads waits out `ackWait`. Every error re-creates the
/// consumer (the client reconnects by itself), so the loop outlives broker
/// restarts.
async fn pull_loop(
    open: Arc<Open>,
    durable: String,
    topic: String,
    tx: mpsc::Sender<Result<Delivery<PulledMessage, ()>, ComponentError>>,
) {
    let settings = open.settings.clone();
    let mut retry = Duration::from_millis(100);
    let mut pull: Option<consumer::PullConsumer> = None;
    loop {
        if tx.is_closed() || open.stop.is_cancelled() {
            return;
        }
        let consumer = match pull.take() {
            Some(consumer) => consumer,
            None => match open.consumer(&durable, &topic).await {
                Ok(consumer) => consumer,
                Err(err) => {
                    open.forget(&topic);
                    tracing::warn!(error = %err, %topic, %durable, ?retry, "subscription not ready; retrying");
                    tokio::select! {
                        () = open.stop.cancelled() => return,
                        () = tx.closed() => return,
                        () = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        let batch = consumer
            .batch()
            .max_messages(BATCH)
            .expires(settings.heartbeat)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!(error = %err, %topic, %durable, "pull request failed; re-creating the consumer");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        retry = Duration::from_millis(100);
        let mut healthy = true;
        while let Some(next) = batch.next().await {
            let message = match next {
                Ok(message) => message,
                Err(err) => {
                    tracing::warn!(error = %err, %topic, %durable, "pull failed; re-creating the consumer");
                    healthy = false;
                    break;
                }
            };
            if tx.is_closed() || open.stop.is_cancelled() {
                // Nobody will answer: hand it back at once.
                let _ = message.ack_with(AckKind::Nak(None)).await;
                continue;
            }
            let size = message.payload.len();
            let (delivery, outcome) = Delivery::new(pulled(&message, &topic));
            if tx.send(Ok(delivery)).await.is_err() {
                let _ = message.ack_with(AckKind::Nak(None)).await;
                continue;
            }
            let (backoff, ack_policy) = (settings.backoff.clone(), settings.ack_policy);
            tokio::spawn(async move {
                let kind = match outcome.await {
                    Outcome::Acked(()) => AckKind::Ack,
                    Outcome::Nacked(_) => {
                        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
                        let step = usize::try_from(delivered.saturating_sub(1)).unwrap_or(0);
                        AckKind::Nak(backoff.get(step).or(backoff.last()).copied())
                    }
                    Outcome::Abandoned => AckKind::Nak(None),
                };
                if ack_policy == consumer::AckPolicy::None {
                    return;
                }
                if let Err(err) = message.ack_with(kind).await {
                    // Not answered means redelivered after ackWait: at-least-once holds.
                    tracing::warn!(error = %err, "answering the broker failed");
                }
            });
            if settings.rate_limit > 0 {
                let bits = (size as f64) * 8.0;
                let pause = Duration::from_secs_f64(bits / settings.rate_limit as f64);
                tokio::time::sleep(pause).await;
            }
        }
        if healthy {
            pull = Some(consumer);
        } else {
            tokio::time::sleep(retry).await;
        }
    }
}

impl JetStreamPubSub {
    fn open(&self) -> Result<&Arc<Open>, ComponentError> {
        self.open
            .get()
            .ok_or_else(|| ComponentError::failed_precondition("Init has not been called"))
    }
}

#[async_trait]
impl PubSub for JetStreamPubSub {
    #[tracing::instrument(skip_all, fields(component = "pubsub.jetstream"))]
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        connect::check_keys(&metadata, KEYS)?;
        let settings = settings(&metadata)?;
        let js = connect::connect(&metadata).await?;
        let stop = CancellationToken::new();
        self.open
            .set(Arc::new(Open {
                js,
                settings,
                subjects: Mutex::new(HashSet::new()),
                ensure: tokio::sync::Mutex::new(()),
                stop: stop.clone(),
                _stop_on_drop: stop.drop_guard(),
            }))
            .map_err(|_| {
                ComponentError::failed_precondition("Init was already called on this instance")
            })
    }

    fn features(&self) -> Vec<PubSubFeature> {
        vec![PubSubFeature::MessageTtl]
    }

    #[tracing::instrument(skip_all, fields(topic = %req.topic))]
    async fn publish(&self, req: PublishRequest) -> Result<(), ComponentError> {
        self.open()?
            .publish_one(
                &req.topic,
                req.data,
                &req.metadata,
                req.content_type.as_deref(),
            )
            .await
    }

    /// Publishes every entry, then waits for all broker acks together.
    #[tracing::instrument(skip_all, fields(topic = %req.topic, entries = req.entries.len()))]
    async fn bulk_publish(
        &self,
        req: BulkPublishRequest,
    ) -> Result<Vec<FailedEntry>, ComponentError> {
        let open = self.open()?;
        let topic = req.topic.as_str();
        let results = futures::future::join_all(req.entries.into_iter().map(|entry| {
            let mut metadata = req.metadata.clone();
            metadata.extend(entry.metadata);
            async move {
                open.publish_one(topic, entry.event, &metadata, entry.content_type.as_deref())
                    .await
                    .map_err(|err| FailedEntry {
                        entry_id: entry.entry_id,
                        error: err.to_string(),
                    })
            }
        }))
        .await;
        Ok(results.into_iter().filter_map(Result::err).collect())
    }

    #[tracing::instrument(skip_all, fields(topic = %topic.name))]
    async fn subscribe(&self, topic: Topic) -> Result<MessageStream, ComponentError> {
        let open = Arc::clone(self.open()?);
        check_topic(&topic.name)?;
        let group = open
            .settings
            .durable
            .clone()
            .or_else(|| topic.metadata.get("consumerID").cloned())
            .or_else(|| open.settings.consumer_id.clone())
            .or_else(|| std::env::var("APP_ID").ok())
            .unwrap_or_else(|| "outrigger".into());
        let durable = durable_name(&group, &topic.name);
        // Create the consumer now, so a group is registered (and its
        // messages kept) from the moment the subscription is accepted.
        open.consumer(&durable, &topic.name).await?;
        let (tx, rx) = mpsc::channel(64);
        let span = tracing::info_span!("pull", topic = %topic.name, %durable);
        tokio::spawn(pull_loop(open, durable, topic.name, tx).instrument(span));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn ping(&self) -> Result<(), ComponentError> {
        let open = self.open()?;
        open.js
            .query_account()
            .await
            .map(drop)
            .map_err(|e| ComponentError::unavailable(format!("JetStream: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_names_are_valid_and_distinct() {
        assert_eq!(durable_name("app", "orders"), "app_orders");
        let a = durable_name("app", "a.b");
        let b = durable_name("app", "a_b");
        assert_ne!(a, b);
        assert!(!a.contains('.'));
    }

    #[test]
    fn stream_subjects_with_wildcards_cover_topics() {
        assert!(subject_matches("orders", "orders"));
        assert!(subject_matches("orders.*", "orders.eu"));
        assert!(subject_matches("orders.>", "orders.eu.north"));
        assert!(subject_matches(">", "anything.at.all"));
        assert!(!subject_matches("orders.*", "orders.eu.north"));
        assert!(!subject_matches("orders.*", "orders"));
        assert!(!subject_matches("orders", "orders.eu"));
        assert!(!subject_matches("orders.>", "orders"));
    }

    #[test]
    fn topics_must_be_literal_subjects() {
        assert!(check_topic("orders.eu").is_ok());
        for bad in ["", "a b", "a.*", "a.>", "a..b"] {
            assert!(check_topic(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backoff_parses_a_list() {
        let m = Metadata::new([("backOff".to_owned(), "1s, 5s,1m".to_owned())].into());
        assert_eq!(
            backoff(&m).unwrap(),
            vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(60)
            ]
        );
        let m = Metadata::new([("backOff".to_owned(), "soon".to_owned())].into());
        assert!(backoff(&m).unwrap_err().message().contains("backOff"));
    }
}
