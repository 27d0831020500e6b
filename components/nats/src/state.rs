//! `state.jetstream`: a state store on one JetStream key/value bucket.
//!
//! The ETag of a value is its KV revision (the stream sequence, as a decimal
//! string). Every conditional write is one publish with an expected last
//! revision checked by the broker, so racing writers (in any number of
//! processes) get exactly one winner: an ETag write is `update(revision)`,
//! first-write without an ETag is `create`, a delete with an ETag is a
//! delete marker with an expected revision.
//!
//! `ttlInSeconds` is a per-message TTL (`Nats-TTL`, nats-server >= 2.11) on
//! buckets with history 1: the expired revision disappears and the key reads
//! as missing. An overwrite without a TTL is a new revision without one.
//!
//! Dapr keys (`app||key`, unicode, spaces) are not valid KV keys, so each key
//! is stored base64url-encoded without padding; the encoding is reversible
//! and only ever used inside the bucket.

use std::collections::HashMap;
use std::sync::OnceLock;

use async_nats::jetstream::{self, kv};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use outrigger_component_sdk::state::*;
use outrigger_component_sdk::{ComponentError, Metadata, async_trait};

use crate::connect::{self, sanitize};

const KEYS: &[&str] = &["bucket", "replicas", "history", "memoryStorage"];

struct Open {
    js: jetstream::Context,
    store: kv::Store,
    /// Per-key TTL works: the bucket's stream allows message TTLs, keeps one
    /// revision per key, and is addressed without a JetStream API prefix.
    ttl: bool,
}

/// The KV state store. Configure with `Init`.
#[derive(Default)]
pub struct KvState {
    open: OnceLock<Open>,
}

/// The bucket key of a Dapr key.
pub fn encode_key(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// The Dapr key of a bucket key, `None` when it is not one this store wrote.
pub fn decode_key(encoded: &str) -> Option<String> {
    URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

fn check_key(key: &str) -> Result<String, ComponentError> {
    if key.is_empty() {
        return Err(ComponentError::invalid_argument("key", "must not be empty"));
    }
    Ok(encode_key(key))
}

/// An ETag as a revision. Revisions start at 1: `0` is never current.
fn revision(etag: &str) -> Result<u64, ComponentError> {
    etag.trim().parse::<u64>().map_err(|_| {
        ComponentError::etag_invalid(format!("{etag:?} is not an ETag issued by this store"))
    })
}

fn stale(key: &str, etag: &str) -> ComponentError {
    ComponentError::etag_mismatch(format!("key {key:?}: ETag {etag} is not the current one"))
}

/// `ttlInSeconds` → seconds; `None` for no expiry.
fn ttl(metadata: &HashMap<String, String>) -> Result<Option<u64>, ComponentError> {
    match metadata.get("ttlInSeconds").map(|v| v.trim()) {
        None | Some("") | Some("-1") => Ok(None),
        Some(raw) => match raw.parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(Some(secs)),
            _ => Err(ComponentError::invalid_argument(
                "metadata.ttlInSeconds",
                "must be a positive number of seconds, or -1 for none",
            )),
        },
    }
}

impl KvState {
    fn open(&self) -> Result<&Open, ComponentError> {
        self.open
            .get()
            .ok_or_else(|| ComponentError::failed_precondition("Init has not been called"))
    }
}

impl Open {
    /// Write `value` expiring after `secs`, optionally only over revision
    /// `expected` (0: only when the key has never been written).
    async fn put_with_ttl(
        &self,
        key: &str,
        value: bytes::Bytes,
        secs: u64,
        expected: Option<u64>,
    ) -> Result<(), jetstream::context::PublishError> {
        let subject = format!(
            "{}{key}",
            self.store.put_prefix.as_ref().unwrap_or(&self.store.prefix)
        );
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_TTL,
            secs.to_string().as_str(),
        );
        if let Some(expected) = expected {
            headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                expected.to_string().as_str(),
            );
        }
        self.js
            .publish_with_headers(subject, headers, value)
            .await?
            .await
            .map(drop)
    }

    async fn set_with_ttl(
        &self,
        req: &SetRequest,
        key: &str,
        secs: u64,
    ) -> Result<(), ComponentError> {
        use jetstream::context::PublishErrorKind::WrongLastSequence;
        if !self.ttl {
            return Err(ComponentError::invalid_argument(
                "metadata.ttlInSeconds",
                "this bucket does not support per-key TTL (needs history 1, no domain/apiPrefix, nats-server >= 2.11)",
            ));
        }
        let value = bytes::Bytes::from(req.value.clone());
        let unavailable = |e: jetstream::context::PublishError| {
            ComponentError::unavailable(format!("writing {:?}: {e}", req.key))
        };
        match (&req.etag, req.concurrency) {
            (Some(etag), _) => {
                let expected = revision(etag)?;
                if expected == 0 {
                    return Err(stale(&req.key, etag));
                }
                match self.put_with_ttl(key, value, secs, Some(expected)).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == WrongLastSequence => Err(stale(&req.key, etag)),
                    Err(e) => Err(unavailable(e)),
                }
            }
            (None, Concurrency::FirstWrite) => {
                match self.put_with_ttl(key, value.clone(), secs, Some(0)).await {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == WrongLastSequence => {}
                    Err(e) => return Err(unavailable(e)),
                }
                // Written before: allowed only over a delete marker.
                let entry = self.store.entry(key).await.map_err(|e| {
                    ComponentError::unavailable(format!("reading {:?}: {e}", req.key))
                })?;
                let exists = || {
                    ComponentError::etag_mismatch(format!(
                        "key {:?} exists; first-write concurrency needs its ETag",
                        req.key
                    ))
                };
                match entry {
                    Some(e) if e.operation != kv::Operation::Put => {
                        match self.put_with_ttl(key, value, secs, Some(e.revision)).await {
                            Ok(()) => Ok(()),
                            Err(e) if e.kind() == WrongLastSequence => Err(exists()),
                            Err(e) => Err(unavailable(e)),
                        }
                    }
                    _ => Err(exists()),
                }
            }
            (None, _) => self
                .put_with_ttl(key, value, secs, None)
                .await
                .map_err(unavailable),
        }
    }
}

/// Turn on `allow_msg_ttl` for `stream`; `false` when the server refuses.
async fn allow_message_ttl(js: &jetstream::Context, stream: &str) -> bool {
    let mut handle = match js.get_stream(stream).await {
        Ok(handle) => handle,
        Err(e) => {
            tracing::warn!(error = %e, %stream, "no per-key TTL: cannot read the bucket's stream");
            return false;
        }
    };
    let mut config = match handle.info().await {
        Ok(info) => info.config.clone(),
        Err(e) => {
            tracing::warn!(error = %e, %stream, "no per-key TTL: cannot read the bucket's stream");
            return false;
        }
    };
    if config.allow_message_ttl {
        return true;
    }
    config.allow_message_ttl = true;
    match js.update_stream(config).await {
        Ok(info) => info.config.allow_message_ttl,
        Err(e) => {
            tracing::warn!(error = %e, %stream, "no per-key TTL: the server refused allow_msg_ttl");
            false
        }
    }
}

#[async_trait]
impl StateStore for KvState {
    #[tracing::instrument(skip_all, fields(component = "state.jetstream"))]
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        connect::check_keys(&metadata, KEYS)?;
        let bucket = metadata.get("bucket").unwrap_or("outrigger").to_owned();
        if sanitize(&bucket) != bucket {
            return Err(ComponentError::invalid_argument(
                "bucket",
                format!("{bucket:?}: use letters, digits, '-' and '_'"),
            ));
        }
        let replicas = metadata.parse::<usize>("replicas")?.unwrap_or(1);
        let history = metadata.parse::<i64>("history")?.unwrap_or(1);
        if !(1..=64).contains(&history) {
            return Err(ComponentError::invalid_argument(
                "history",
                "must be between 1 and 64",
            ));
        }
        let storage = if metadata.bool_or("memoryStorage", false)? {
            jetstream::stream::StorageType::Memory
        } else {
            jetstream::stream::StorageType::File
        };
        let js = connect::connect(&metadata).await?;
        let store = match js.get_key_value(&bucket).await {
            Ok(store) => store,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    history,
                    num_replicas: replicas,
                    storage,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    ComponentError::unavailable(format!("creating KV bucket {bucket}: {e}"))
                })?,
        };
        // Per-key TTL: allow message TTLs on the bucket's stream (servers
        // >= 2.11 can turn it on for an existing stream). With more history
        // an expired revision would uncover an older one, so only history 1.
        let mut ttl = history == 1 && !store.use_jetstream_prefix;
        if ttl {
            ttl = allow_message_ttl(&js, &store.stream_name).await;
        }
        self.open.set(Open { js, store, ttl }).map_err(|_| {
            ComponentError::failed_precondition("Init was already called on this instance")
        })
    }

    fn features(&self) -> Vec<StateFeature> {
        match self.open.get() {
            Some(open) if open.ttl => vec![StateFeature::Etag, StateFeature::Ttl],
            _ => vec![StateFeature::Etag],
        }
    }

    #[tracing::instrument(skip_all)]
    async fn get(&self, req: GetRequest) -> Result<Option<StateItem>, ComponentError> {
        let key = check_key(&req.key)?;
        let entry = self
            .open()?
            .store
            .entry(key)
            .await
            .map_err(|e| ComponentError::unavailable(format!("reading {:?}: {e}", req.key)))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| StateItem {
                data: e.value.to_vec(),
                etag: Some(e.revision.to_string()),
                metadata: HashMap::new(),
                content_type: None,
            }))
    }

    #[tracing::instrument(skip_all)]
    async fn set(&self, req: SetRequest) -> Result<(), ComponentError> {
        let open = self.open()?;
        let store = &open.store;
        let key = check_key(&req.key)?;
        if let Some(secs) = ttl(&req.metadata)? {
            return open.set_with_ttl(&req, &key, secs).await;
        }
        let value = bytes::Bytes::from(req.value);
        match (&req.etag, req.concurrency) {
            (Some(etag), _) => {
                let expected = revision(etag)?;
                if expected == 0 {
                    return Err(stale(&req.key, etag));
                }
                match store.update(&key, value, expected).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        Err(stale(&req.key, etag))
                    }
                    Err(e) => Err(ComponentError::unavailable(format!(
                        "writing {:?}: {e}",
                        req.key
                    ))),
                }
            }
            (None, Concurrency::FirstWrite) => match store.create(&key, value).await {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    Err(ComponentError::etag_mismatch(format!(
                        "key {:?} exists; first-write concurrency needs its ETag",
                        req.key
                    )))
                }
                Err(e) => Err(ComponentError::unavailable(format!(
                    "writing {:?}: {e}",
                    req.key
                ))),
            },
            (None, _) => store
                .put(&key, value)
                .await
                .map(drop)
                .map_err(|e| ComponentError::unavailable(format!("writing {:?}: {e}", req.key))),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn delete(&self, req: DeleteRequest) -> Result<(), ComponentError> {
        let store = &self.open()?.store;
        let key = check_key(&req.key)?;
        let expected = match &req.etag {
            Some(etag) => {
                let expected = revision(etag)?;
                if expected == 0 {
                    return Err(stale(&req.key, etag));
                }
                Some(expected)
            }
            None => None,
        };
        match store.delete_expect_revision(&key, expected).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(stale(&req.key, req.etag.as_deref().unwrap_or_default()))
            }
            Err(e) => Err(ComponentError::unavailable(format!(
                "deleting {:?}: {e}",
                req.key
            ))),
        }
    }

    /// Reads all keys concurrently.
    async fn bulk_get(
        &self,
        requests: Vec<GetRequest>,
    ) -> Result<Vec<BulkGetItem>, ComponentError> {
        let reads = requests.into_iter().map(|request| async move {
            let key = request.key.clone();
            match self.get(request).await {
                Ok(item) => BulkGetItem {
                    key,
                    item,
                    error: None,
                },
                Err(err) => BulkGetItem {
                    key,
                    item: None,
                    error: Some(err.to_string()),
                },
            }
        });
        Ok(futures::future::join_all(reads).await)
    }

    async fn ping(&self) -> Result<(), ComponentError> {
        self.open()?
            .store
            .status()
            .await
            .map(drop)
            .map_err(|e| ComponentError::unavailable(format!("KV bucket status: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_valid_kv_keys() {
        for key in ["app||key", "ünïcode key", "a.b", "..", "x/y=z"] {
            let encoded = encode_key(key);
            assert!(
                encoded
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{encoded}"
            );
            assert_eq!(decode_key(&encoded).as_deref(), Some(key));
        }
    }

    #[test]
    fn etags_are_revisions() {
        assert_eq!(revision("42").unwrap(), 42);
        assert!(revision("not-a-number").is_err());
    }
}
