//! The state-store building block: [`StateStore`] and its request types.
//!
//! A store implements `init`, `get`, `set` and `delete`. Bulk operations fall
//! back to single calls unless the store overrides them; transactions and
//! queries are capabilities a store implements *and* advertises through
//! [`StateStore::features`] (daprd only calls what is advertised, and the
//! conformance suite checks that what is advertised works).

use std::collections::HashMap;

use async_trait::async_trait;

use crate::{ComponentError, Metadata};

pub(crate) mod adaptor;
pub mod etag;
pub mod query;

/// Capabilities a state store can advertise (Dapr's feature strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateFeature {
    /// Optimistic concurrency with ETags.
    Etag,
    /// Atomic multi-operation transactions ([`StateStore::transact`]).
    Transactional,
    /// The state query API ([`StateStore::query`]).
    QueryApi,
    /// Per-item expiry through `ttlInSeconds` metadata.
    Ttl,
    /// Deleting every key with a prefix.
    DeleteWithPrefix,
    /// Partition keys in metadata.
    PartitionKey,
    /// Key pattern listing.
    KeysLike,
}

impl StateFeature {
    /// The wire name, e.g. `TRANSACTIONAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Etag => "ETAG",
            Self::Transactional => "TRANSACTIONAL",
            Self::QueryApi => "QUERY_API",
            Self::Ttl => "TTL",
            Self::DeleteWithPrefix => "DELETE_WITH_PREFIX",
            Self::PartitionKey => "PARTITION_KEY",
            Self::KeysLike => "KEYS_LIKE",
        }
    }
}

/// How concurrent writers are reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Concurrency {
    /// Not stated: the store's default (Dapr's is last-write).
    #[default]
    Unspecified,
    /// The write needs a matching ETag; without one it may only create.
    FirstWrite,
    /// The last write wins.
    LastWrite,
}

/// Read/write consistency requested by the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Not stated.
    #[default]
    Unspecified,
    /// Eventual consistency is acceptable.
    Eventual,
    /// Strong consistency is required.
    Strong,
}

/// Read one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetRequest {
    /// The key, exactly as the host sends it (usually `appid||key`).
    pub key: String,
    /// Request metadata.
    pub metadata: HashMap<String, String>,
    /// Requested consistency.
    pub consistency: Consistency,
}

/// A stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateItem {
    /// The stored bytes.
    pub data: Vec<u8>,
    /// Its current ETag, for stores with [`StateFeature::Etag`].
    pub etag: Option<String>,
    /// Item metadata returned to the app (e.g. `ttlExpireTime`).
    pub metadata: HashMap<String, String>,
    /// Content type the value was stored with, if the store keeps it.
    pub content_type: Option<String>,
}

/// Write one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetRequest {
    /// The key.
    pub key: String,
    /// The value to store.
    pub value: Vec<u8>,
    /// `Some` when the write must match this ETag (an empty string is still an ETag).
    pub etag: Option<String>,
    /// Request metadata; `ttlInSeconds` asks for expiry.
    pub metadata: HashMap<String, String>,
    /// Concurrency mode.
    pub concurrency: Concurrency,
    /// Consistency mode.
    pub consistency: Consistency,
    /// Content type of the value.
    pub content_type: Option<String>,
}

/// Delete one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRequest {
    /// The key.
    pub key: String,
    /// `Some` when the delete must match this ETag.
    pub etag: Option<String>,
    /// Request metadata.
    pub metadata: HashMap<String, String>,
    /// Concurrency mode.
    pub concurrency: Concurrency,
    /// Consistency mode.
    pub consistency: Consistency,
}

/// One key of a bulk read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkGetItem {
    /// The key asked for.
    pub key: String,
    /// The value, `None` when the key does not exist.
    pub item: Option<StateItem>,
    /// Set when reading this key failed; the other keys still count.
    pub error: Option<String>,
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionOperation {
    /// Upsert.
    Set(SetRequest),
    /// Delete.
    Delete(DeleteRequest),
}

/// Operations to apply atomically, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionRequest {
    /// The operations.
    pub operations: Vec<TransactionOperation>,
    /// Transaction-wide metadata.
    pub metadata: HashMap<String, String>,
}

/// Sort order of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Ascending.
    #[default]
    Ascending,
    /// Descending.
    Descending,
}

/// A state query, as the Dapr query API defines it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryRequest {
    /// The filter, e.g. `{"EQ": {"state": "CA"}}` or `{"AND": [...]}`; empty
    /// means every item.
    pub filter: serde_json::Map<String, serde_json::Value>,
    /// Sort keys in priority order: (JSON path in the value, order).
    pub sort: Vec<(String, SortOrder)>,
    /// Page size; 0 means no limit.
    pub limit: u64,
    /// Continuation token from a previous page.
    pub token: Option<String>,
    /// Request metadata.
    pub metadata: HashMap<String, String>,
}

/// One query result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryItem {
    /// The key.
    pub key: String,
    /// The value.
    pub data: Vec<u8>,
    /// Its ETag.
    pub etag: Option<String>,
    /// A per-item error.
    pub error: Option<String>,
    /// Its content type.
    pub content_type: Option<String>,
}

/// A page of query results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResponse {
    /// Matching items.
    pub items: Vec<QueryItem>,
    /// Token for the next page, when there is one.
    pub token: Option<String>,
    /// Response metadata.
    pub metadata: HashMap<String, String>,
}

/// A state store component.
///
/// Methods take `&self`: a store is shared by concurrent calls, so keep
/// mutable state behind a lock or in the backend. Errors are
/// [`ComponentError`]s; use [`ComponentError::etag_mismatch`] and
/// [`ComponentError::etag_invalid`] for ETag failures so daprd answers 409/400.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Configure the store from its component metadata. Called once per instance.
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError>;

    /// Capabilities this store offers. Advertise only what works.
    fn features(&self) -> Vec<StateFeature> {
        Vec::new()
    }

    /// Read a key; `Ok(None)` when it does not exist (not an error).
    async fn get(&self, request: GetRequest) -> Result<Option<StateItem>, ComponentError>;

    /// Write a key.
    async fn set(&self, request: SetRequest) -> Result<(), ComponentError>;

    /// Delete a key. Deleting a missing key without an ETag succeeds.
    async fn delete(&self, request: DeleteRequest) -> Result<(), ComponentError>;

    /// Read several keys. The default reads them one by one, reporting
    /// per-key errors in the items.
    async fn bulk_get(
        &self,
        requests: Vec<GetRequest>,
    ) -> Result<Vec<BulkGetItem>, ComponentError> {
        let mut items = Vec::with_capacity(requests.len());
        for request in requests {
            let key = request.key.clone();
            items.push(match self.get(request).await {
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
            });
        }
        Ok(items)
    }

    /// Write several keys. The default writes them one by one and stops at
    /// the first error (not atomic: use [`StateStore::transact`] for that).
    async fn bulk_set(&self, requests: Vec<SetRequest>) -> Result<(), ComponentError> {
        for request in requests {
            self.set(request).await?;
        }
        Ok(())
    }

    /// Delete several keys. The default deletes them one by one and stops at
    /// the first error.
    async fn bulk_delete(&self, requests: Vec<DeleteRequest>) -> Result<(), ComponentError> {
        for request in requests {
            self.delete(request).await?;
        }
        Ok(())
    }

    /// Apply all operations atomically and in order, or none. Advertise
    /// [`StateFeature::Transactional`] when implemented.
    async fn transact(&self, _request: TransactionRequest) -> Result<(), ComponentError> {
        Err(ComponentError::unimplemented("transactions"))
    }

    /// Run a query. Advertise [`StateFeature::QueryApi`] when implemented.
    async fn query(&self, _request: QueryRequest) -> Result<QueryResponse, ComponentError> {
        Err(ComponentError::unimplemented("the query API"))
    }

    /// Most operations one transaction may hold; `None` for no limit.
    fn max_transaction_size(&self) -> Option<u64> {
        None
    }

    /// Liveness check of the backend.
    async fn ping(&self) -> Result<(), ComponentError> {
        Ok(())
    }
}
