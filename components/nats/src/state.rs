//! `state.jetstream`: a state store on one JetStream key/value bucket.
//!
//! The ETag of a value is its KV revision (the stream sequence, as a decimal
//! string). Every conditional write is one publish with an expected last
//! revision checked by the broker, so racing writers (in any number of
//! processes) get exactly one winner: an ETag write is `update(revision)`,
//! first-write without an ETag is `create`, a delete with an ETag is a
//! delete marker with an expected revision.
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

/// The KV state store. Configure with `Init`.
#[derive(Default)]
pub struct KvState {
    store: OnceLock<kv::Store>,
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

fn no_ttl(metadata: &HashMap<String, String>) -> Result<(), ComponentError> {
    match metadata.get("ttlInSeconds").map(|v| v.trim()) {
        None | Some("") | Some("-1") => Ok(()),
        Some(_) => Err(ComponentError::invalid_argument(
            "metadata.ttlInSeconds",
            "this store does not support per-key TTL",
        )),
    }
}

impl KvState {
    fn store(&self) -> Result<&kv::Store, ComponentError> {
        self.store
            .get()
            .ok_or_else(|| ComponentError::failed_precondition("Init has not been called"))
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
        self.store.set(store).map_err(|_| {
            ComponentError::failed_precondition("Init was already called on this instance")
        })
    }

    fn features(&self) -> Vec<StateFeature> {
        vec![StateFeature::Etag]
    }

    #[tracing::instrument(skip_all)]
    async fn get(&self, req: GetRequest) -> Result<Option<StateItem>, ComponentError> {
        let key = check_key(&req.key)?;
        let entry = self
            .store()?
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
        let store = self.store()?;
        let key = check_key(&req.key)?;
        no_ttl(&req.metadata)?;
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
        let store = self.store()?;
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
        self.store()?
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
