//! The actor state store, spoken to with raw keys: actor state
//! (`{appId}||{type}||{id}||{key}`, as daprd writes it), and the records
//! placement and reminders keep there (`outrigger||actors||...`).
//!
//! Every record that several gateways update is a JSON value changed by
//! compare-and-set on its ETag ([`Store::update`]), so the store's own
//! atomic conditional write is the only coordination there is.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use outrigger_proto::components as pb;

use crate::components::unary::methods;
use crate::components::{Component, Registry};

mod batch;

use batch::{Batches, Got, Write};

/// Prefix of every record of ours (never a Dapr state key: app ids cannot
/// be `outrigger` and also use this layout).
pub(crate) const PREFIX: &str = "outrigger||actors";

/// How many times a compare-and-set is retried under contention.
const CAS_ATTEMPTS: usize = 64;

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum StoreError {
    /// An ETag (or first-write) condition did not hold.
    #[error("the record changed meanwhile (ETag mismatch)")]
    Conflict,
    /// Anything else; the message names the component.
    #[error("{0}")]
    Failed(String),
}

/// A record as read: value, ETag, metadata.
pub(crate) type Record = (Vec<u8>, Option<String>, HashMap<String, String>);

/// A stored value and its ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Versioned<T> {
    pub(crate) value: T,
    pub(crate) etag: String,
}

/// The actor state store (the one component with `actorStateStore: "true"`).
#[derive(Debug, Clone)]
pub(crate) struct Store {
    registry: Arc<Registry>,
    name: String,
    batches: Arc<Batches>,
}

fn is_conflict(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::FailedPrecondition | tonic::Code::Aborted
    )
}

impl Store {
    pub(crate) fn new(registry: Arc<Registry>, name: String) -> Self {
        Self {
            registry,
            name,
            batches: Arc::default(),
        }
    }

    /// The component's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn component(&self) -> Result<Arc<Component>, StoreError> {
        let component = self.registry.get(&self.name).ok_or_else(|| {
            StoreError::Failed(format!("actor state store {} is not loaded", self.name))
        })?;
        component
            .ensure_ready()
            .map_err(|why| StoreError::Failed(format!("actor state store {}: {why}", self.name)))?;
        Ok(component)
    }

    fn failed(&self, status: &tonic::Status) -> StoreError {
        if is_conflict(status) {
            StoreError::Conflict
        } else {
            StoreError::Failed(format!(
                "actor state store {} failed: {}",
                self.name,
                status.message()
            ))
        }
    }

    /// Raw bytes and ETag of `key`, `None` when missing.
    pub(crate) async fn get_raw(&self, key: &str) -> Result<Got, StoreError> {
        self.queued_get(key).await
    }

    async fn get_now(&self, key: &str) -> Result<Got, StoreError> {
        let reply = self
            .component()?
            .call(
                &methods::STATE_GET,
                pb::GetRequest {
                    key: key.to_owned(),
                    metadata: HashMap::new(),
                    consistency: pb::state_options::StateConsistency::ConsistencyStrong as i32,
                },
            )
            .await
            .map_err(|s| self.failed(&s))?
            .into_inner();
        if reply.data.is_empty() && reply.etag.is_none() {
            return Ok(None);
        }
        Ok(Some((
            reply.data,
            reply.etag.map(|e| e.value),
            reply.metadata,
        )))
    }

    /// The JSON record at `key`; a record that does not parse counts as
    /// missing (and is overwritten by the next update), with a warning.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        let Some((data, etag, _)) = self.get_raw(key).await? else {
            return Ok(None);
        };
        match serde_json::from_slice(&data) {
            Ok(value) => Ok(Some(Versioned {
                value,
                etag: etag.unwrap_or_default(),
            })),
            Err(err) => {
                tracing::warn!(key, error = %err, "ignoring an unreadable actor record");
                Ok(None)
            }
        }
    }

    /// Write `value` at `key`: over ETag `etag`, or only if absent when `etag` is `None`.
    pub(crate) async fn put<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        etag: Option<&str>,
    ) -> Result<(), StoreError> {
        let request = set_request(key, value, etag)?;
        self.queued_write(Write::Set(request)).await
    }

    async fn set_now(&self, request: pb::SetRequest) -> Result<(), StoreError> {
        self.component()?
            .call(&methods::STATE_SET, request)
            .await
            .map(drop)
            .map_err(|s| self.failed(&s))
    }

    /// Delete `key`, only while its ETag is `etag` when given.
    pub(crate) async fn delete(&self, key: &str, etag: Option<&str>) -> Result<(), StoreError> {
        self.queued_write(Write::Delete(pb::DeleteRequest {
            key: key.to_owned(),
            etag: etag.map(|value| pb::Etag {
                value: value.to_owned(),
            }),
            metadata: HashMap::new(),
            options: Some(first_write()),
        }))
        .await
    }

    async fn delete_now(&self, request: pb::DeleteRequest) -> Result<(), StoreError> {
        self.component()?
            .call(&methods::STATE_DELETE, request)
            .await
            .map(drop)
            .map_err(|s| self.failed(&s))
    }

    /// Several keys in one `BulkGet`, by key (a key the store could not
    /// read has its error).
    async fn bulk_get_now(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Result<Record, StoreError>>, StoreError> {
        let reply = self
            .component()?
            .call(
                &methods::STATE_BULK_GET,
                pb::BulkGetRequest {
                    items: keys
                        .iter()
                        .map(|key| pb::GetRequest {
                            key: key.clone(),
                            metadata: HashMap::new(),
                            consistency: pb::state_options::StateConsistency::ConsistencyStrong
                                as i32,
                        })
                        .collect(),
                    options: None,
                },
            )
            .await
            .map_err(|s| self.failed(&s))?
            .into_inner();
        let mut found = HashMap::with_capacity(reply.items.len());
        for item in reply.items {
            if !item.error.is_empty() {
                let error = StoreError::Failed(format!(
                    "actor state store {}: reading {}: {}",
                    self.name, item.key, item.error
                ));
                found.insert(item.key, Err(error));
            } else if !item.data.is_empty() || item.etag.is_some() {
                found.insert(
                    item.key,
                    Ok((item.data, item.etag.map(|e| e.value), item.metadata)),
                );
            }
        }
        Ok(found)
    }

    /// Raw bytes of several keys, in order (`None`: missing).
    pub(crate) async fn get_many_raw(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = self.bulk_get_now(keys).await?;
        keys.iter()
            .map(|key| match found.remove(key) {
                None => Ok(None),
                Some(read) => read.map(|(data, _, _)| Some(data)),
            })
            .collect()
    }

    /// Apply `operations` in one transaction.
    pub(crate) async fn transact(
        &self,
        operations: Vec<pb::TransactionalStateOperation>,
    ) -> Result<(), StoreError> {
        self.queued_write(Write::Transact(operations)).await
    }

    async fn transact_now(
        &self,
        operations: Vec<pb::TransactionalStateOperation>,
    ) -> Result<(), StoreError> {
        self.component()?
            .call(
                &methods::STATE_TRANSACT,
                pb::TransactionalStateRequest {
                    operations,
                    metadata: HashMap::new(),
                },
            )
            .await
            .map(drop)
            .map_err(|s| self.failed(&s))
    }

    /// Read-modify-write the JSON record at `key` by compare-and-set:
    /// `change` gets the current value (`None`: missing) and returns the new
    /// one (`None`: delete it) and a result; it is called again after a
    /// conflict with the fresh value.
    pub(crate) async fn update<T, R>(
        &self,
        key: &str,
        mut change: impl FnMut(Option<T>) -> (Option<T>, R),
    ) -> Result<R, StoreError>
    where
        T: Serialize + DeserializeOwned,
    {
        for attempt in 0..CAS_ATTEMPTS {
            let current = self.get::<T>(key).await?;
            let etag = current.as_ref().map(|c| c.etag.clone());
            let (next, result) = change(current.map(|c| c.value));
            let written = match (next, etag.as_deref()) {
                (Some(next), etag) => self.put(key, &next, etag).await,
                (None, Some(etag)) => self.delete(key, Some(etag)).await,
                (None, None) => Ok(()),
            };
            match written {
                Ok(()) => return Ok(result),
                Err(StoreError::Conflict) => {
                    // Back off, spread by a little jitter so that racing
                    // writers (often on other gateways) do not collide again.
                    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 4;
                    let pause = (u64::try_from(attempt).unwrap_or(64) + jitter).min(20);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Failed(format!(
            "actor record {key} kept changing under {CAS_ATTEMPTS} attempts to update it"
        )))
    }
}

fn first_write() -> pb::StateOptions {
    pb::StateOptions {
        concurrency: pb::state_options::StateConcurrency::ConcurrencyFirstWrite as i32,
        consistency: pb::state_options::StateConsistency::ConsistencyStrong as i32,
    }
}

/// An unconditional `Set` of raw bytes, as a transaction operation.
pub(crate) fn set_raw_op(key: &str, value: Vec<u8>) -> pb::TransactionalStateOperation {
    pb::TransactionalStateOperation {
        request: Some(pb::transactional_state_operation::Request::Set(
            pb::SetRequest {
                key: key.to_owned(),
                value,
                etag: None,
                metadata: HashMap::new(),
                content_type: String::new(),
                options: None,
            },
        )),
    }
}

/// An unconditional `Delete`, as a transaction operation.
pub(crate) fn delete_op(key: &str) -> pb::TransactionalStateOperation {
    pb::TransactionalStateOperation {
        request: Some(pb::transactional_state_operation::Request::Delete(
            pb::DeleteRequest {
                key: key.to_owned(),
                etag: None,
                metadata: HashMap::new(),
                options: None,
            },
        )),
    }
}

/// A JSON record written over `etag` (or only if absent), as a transaction operation.
pub(crate) fn set_json_op<T: Serialize>(
    key: &str,
    value: &T,
    etag: Option<&str>,
) -> Result<pb::TransactionalStateOperation, StoreError> {
    Ok(pb::TransactionalStateOperation {
        request: Some(pb::transactional_state_operation::Request::Set(
            set_request(key, value, etag)?,
        )),
    })
}

/// A conditional `Set` of a JSON record (as a transaction operation too).
pub(crate) fn set_request<T: Serialize>(
    key: &str,
    value: &T,
    etag: Option<&str>,
) -> Result<pb::SetRequest, StoreError> {
    let value = serde_json::to_vec(value)
        .map_err(|e| StoreError::Failed(format!("encoding actor record {key}: {e}")))?;
    Ok(pb::SetRequest {
        key: key.to_owned(),
        value,
        etag: etag.map(|value| pb::Etag {
            value: value.to_owned(),
        }),
        metadata: HashMap::new(),
        content_type: "application/json".to_owned(),
        options: Some(first_write()),
    })
}
