//! The state block: key prefixing, validation, and the component calls,
//! with component errors mapped to Dapr's codes (ETag mismatch → 409 /
//! `Aborted`, invalid ETag → 400 / `InvalidArgument`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use tonic::Code;
use tonic_types::{ErrorDetail, StatusExt};

use outrigger_proto::components as pb;

use super::{component, unreachable};
use crate::components::unary::methods;
use crate::components::{Component, Registry};
use crate::error::{ApiError, codes};
use crate::resiliency::outbound;
use crate::resources::{Block, MetadataValue};

/// The separator between key prefix and key.
pub const KEY_SEPARATOR: &str = "||";

/// A value to save.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveItem {
    /// The app's key.
    pub key: String,
    /// Bytes to store.
    pub value: Vec<u8>,
    /// Required ETag, if any.
    pub etag: Option<String>,
    /// Item metadata (`ttlInSeconds`, `contentType`, ...).
    pub metadata: HashMap<String, String>,
    /// `first-write` / `last-write`.
    pub concurrency: Option<String>,
    /// `eventual` / `strong`.
    pub consistency: Option<String>,
}

/// A value read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    /// Stored bytes.
    pub data: Vec<u8>,
    /// Its ETag.
    pub etag: Option<String>,
    /// Its metadata.
    pub metadata: HashMap<String, String>,
}

/// One key of a bulk read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkItem {
    /// The app's key.
    pub key: String,
    /// The value, if found.
    pub item: Option<Item>,
    /// Per-key error.
    pub error: Option<String>,
}

/// A transaction operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Upsert.
    Upsert(SaveItem),
    /// Delete (the value is ignored).
    Delete(SaveItem),
}

/// One query result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    /// The app's key.
    pub key: String,
    /// Value bytes.
    pub data: Vec<u8>,
    /// ETag.
    pub etag: Option<String>,
    /// Per-item error.
    pub error: Option<String>,
}

/// The state API of one gateway.
#[derive(Debug, Clone)]
pub struct StateApi {
    registry: Arc<Registry>,
    app_id: String,
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::new(codes::ERR_MALFORMED_REQUEST, message)
}

fn concurrency(raw: Option<&str>) -> Result<i32, ApiError> {
    use pb::state_options::StateConcurrency as C;
    Ok(match raw.unwrap_or("") {
        "" => C::ConcurrencyUnspecified,
        "first-write" => C::ConcurrencyFirstWrite,
        "last-write" => C::ConcurrencyLastWrite,
        other => {
            return Err(malformed(format!(
                "options.concurrency: {other:?} is not first-write or last-write"
            )));
        }
    } as i32)
}

fn consistency(raw: Option<&str>) -> Result<i32, ApiError> {
    use pb::state_options::StateConsistency as C;
    Ok(match raw.unwrap_or("") {
        "" => C::ConsistencyUnspecified,
        "eventual" => C::ConsistencyEventual,
        "strong" => C::ConsistencyStrong,
        other => {
            return Err(malformed(format!(
                "options.consistency: {other:?} is not eventual or strong"
            )));
        }
    } as i32)
}

fn check_metadata(metadata: &HashMap<String, String>) -> Result<(), ApiError> {
    if let Some(ttl) = metadata.get("ttlInSeconds")
        && ttl.trim().parse::<i64>().map_or(true, |t| t < -1)
    {
        return Err(malformed(format!(
            "metadata.ttlInSeconds: {ttl:?} is not a whole number of seconds (-1 for no expiry)"
        )));
    }
    Ok(())
}

/// Map a component error: ETag errors get their own statuses, anything else
/// is `entry` (500 / Internal) with a message naming the component.
fn component_error(component: &Component, entry: codes::Entry, status: tonic::Status) -> ApiError {
    let etag_violation = || {
        status
            .check_error_details_vec()
            .ok()
            .and_then(|details| match details.as_slice() {
                [ErrorDetail::BadRequest(bad)]
                    if bad.field_violations.len() == 1
                        && bad.field_violations[0].field == "etag" =>
                {
                    Some(bad.field_violations[0].description.clone())
                }
                _ => None,
            })
    };
    match status.code() {
        Code::FailedPrecondition => {
            if let Some(why) = etag_violation() {
                return ApiError::new(
                    entry,
                    format!("possible etag mismatch. error from state store: {why}"),
                )
                .with_status(StatusCode::CONFLICT, Code::Aborted);
            }
        }
        Code::InvalidArgument => {
            if let Some(why) = etag_violation() {
                return ApiError::new(entry, format!("invalid etag value: {why}"))
                    .with_status(StatusCode::BAD_REQUEST, Code::InvalidArgument);
            }
        }
        _ => {}
    }
    ApiError::new(entry, unreachable(component, &status))
}

// === impl StateApi ===

impl StateApi {
    /// The state API for `app_id` over `registry`.
    pub fn new(registry: Arc<Registry>, app_id: impl Into<String>) -> Self {
        Self {
            registry,
            app_id: app_id.into(),
        }
    }

    fn store(&self, name: &str) -> Result<Arc<Component>, ApiError> {
        component(
            &self.registry,
            Block::State,
            name,
            codes::ERR_STATE_STORE_NOT_CONFIGURED,
            codes::ERR_STATE_STORE_NOT_FOUND,
        )
    }

    /// The key prefix for `store`, from its `keyPrefix` metadata.
    fn prefix(&self, store: &Component) -> Option<String> {
        let configured = store.spec.metadata.iter().find_map(|(k, v)| match v {
            MetadataValue::Plain(v) if k.eq_ignore_ascii_case("keyPrefix") => Some(v.as_str()),
            _ => None,
        });
        match configured.unwrap_or("appid") {
            "appid" | "" | "namespace" => Some(self.app_id.clone()),
            "name" => Some(store.spec.name.clone()),
            "none" => None,
            other => Some(other.to_owned()),
        }
    }

    fn stored_key(&self, store: &Component, key: &str) -> Result<String, ApiError> {
        if key.is_empty() {
            return Err(malformed("key: must not be empty"));
        }
        let prefix = self.prefix(store);
        if prefix.is_some() && key.contains(KEY_SEPARATOR) {
            return Err(malformed(format!(
                "key {key:?} must not contain {KEY_SEPARATOR:?}"
            )));
        }
        Ok(match prefix {
            Some(prefix) => format!("{prefix}{KEY_SEPARATOR}{key}"),
            None => key.to_owned(),
        })
    }

    fn app_key(&self, store: &Component, stored: String) -> String {
        match self.prefix(store) {
            Some(prefix) => stored
                .strip_prefix(&format!("{prefix}{KEY_SEPARATOR}"))
                .map(str::to_owned)
                .unwrap_or(stored),
            None => stored,
        }
    }

    fn set_request(&self, store: &Component, item: SaveItem) -> Result<pb::SetRequest, ApiError> {
        check_metadata(&item.metadata)?;
        Ok(pb::SetRequest {
            key: self.stored_key(store, &item.key)?,
            value: item.value,
            etag: item.etag.map(|value| pb::Etag { value }),
            content_type: item
                .metadata
                .get("contentType")
                .cloned()
                .unwrap_or_default(),
            metadata: item.metadata,
            options: Some(pb::StateOptions {
                concurrency: concurrency(item.concurrency.as_deref())?,
                consistency: consistency(item.consistency.as_deref())?,
            }),
        })
    }

    fn delete_request(
        &self,
        store: &Component,
        item: SaveItem,
    ) -> Result<pb::DeleteRequest, ApiError> {
        Ok(pb::DeleteRequest {
            key: self.stored_key(store, &item.key)?,
            etag: item.etag.map(|value| pb::Etag { value }),
            metadata: item.metadata,
            options: Some(pb::StateOptions {
                concurrency: concurrency(item.concurrency.as_deref())?,
                consistency: consistency(item.consistency.as_deref())?,
            }),
        })
    }

    /// Read one key; `None` when missing.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "state", op = "get", store = store_name))]
    pub async fn get(
        &self,
        store_name: &str,
        key: &str,
        consistency_mode: Option<&str>,
        metadata: HashMap<String, String>,
    ) -> Result<Option<Item>, ApiError> {
        crate::metrics::timed("state", "get", async {
            let store = self.store(store_name)?;
            let request = pb::GetRequest {
                key: self.stored_key(&store, key)?,
                metadata,
                consistency: consistency(consistency_mode)?,
            };
            let component = Arc::clone(&store);
            let reply = outbound::call(store.outbound_policy(), request, move |request| {
                let component = Arc::clone(&component);
                async move { component.call(&methods::STATE_GET, request).await }
            })
            .await
            .map_err(|s| component_error(&store, codes::ERR_STATE_GET, s))?
            .into_inner();
            if reply.data.is_empty() && reply.etag.is_none() {
                return Ok(None);
            }
            Ok(Some(Item {
                data: reply.data,
                etag: reply.etag.map(|e| e.value),
                metadata: reply.metadata,
            }))
        })
        .await
    }

    /// Read several keys, in the order asked.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "state", op = "bulk_get", store = store_name))]
    pub async fn bulk_get(
        &self,
        store_name: &str,
        keys: Vec<String>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<BulkItem>, ApiError> {
        crate::metrics::timed("state", "bulk_get", async {
            let store = self.store(store_name)?;
            let items = keys
                .iter()
                .map(|k| {
                    Ok(pb::GetRequest {
                        key: self.stored_key(&store, k)?,
                        metadata: metadata.clone(),
                        consistency: 0,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let reply = store
                .call(
                    &methods::STATE_BULK_GET,
                    pb::BulkGetRequest {
                        items,
                        options: None,
                    },
                )
                .await
                .map_err(|s| component_error(&store, codes::ERR_STATE_BULK_GET, s))?
                .into_inner();
            Ok(reply
                .items
                .into_iter()
                .map(|i| {
                    let found = !i.data.is_empty() || i.etag.is_some();
                    BulkItem {
                        key: self.app_key(&store, i.key),
                        item: found.then(|| Item {
                            data: i.data,
                            etag: i.etag.map(|e| e.value),
                            metadata: i.metadata,
                        }),
                        error: (!i.error.is_empty()).then_some(i.error),
                    }
                })
                .collect())
        })
        .await
    }

    /// Save items (one `Set`, or one `BulkSet` for several).
    #[tracing::instrument(level = "debug", skip_all, fields(block = "state", op = "save", store = store_name, count = items.len()))]
    pub async fn save(&self, store_name: &str, items: Vec<SaveItem>) -> Result<(), ApiError> {
        crate::metrics::timed("state", "save", async {
            let store = self.store(store_name)?;
            let mut requests = items
                .into_iter()
                .map(|i| self.set_request(&store, i))
                .collect::<Result<Vec<_>, _>>()?;
            let (component, policy) = (Arc::clone(&store), store.outbound_policy());
            let result = match requests.len() {
                0 => return Ok(()),
                1 => match requests.pop() {
                    Some(only) => outbound::call(policy, only, move |request| {
                        let component = Arc::clone(&component);
                        async move { component.call(&methods::STATE_SET, request).await }
                    })
                    .await
                    .map(drop),
                    None => return Ok(()),
                },
                _ => {
                    let request = pb::BulkSetRequest {
                        items: requests,
                        options: None,
                    };
                    outbound::call(policy, request, move |request| {
                        let component = Arc::clone(&component);
                        async move { component.call(&methods::STATE_BULK_SET, request).await }
                    })
                    .await
                    .map(drop)
                }
            };
            result.map_err(|s| component_error(&store, codes::ERR_STATE_SAVE, s))
        })
        .await
    }

    /// Delete one key (`item.value` ignored).
    #[tracing::instrument(level = "debug", skip_all, fields(block = "state", op = "delete", store = store_name))]
    pub async fn delete(&self, store_name: &str, item: SaveItem) -> Result<(), ApiError> {
        crate::metrics::timed("state", "delete", async {
            let store = self.store(store_name)?;
            let request = self.delete_request(&store, item)?;
            let component = Arc::clone(&store);
            outbound::call(store.outbound_policy(), request, move |request| {
                let component = Arc::clone(&component);
                async move { component.call(&methods::STATE_DELETE, request).await }
            })
            .await
            .map(drop)
            .map_err(|s| component_error(&store, codes::ERR_STATE_DELETE, s))
        })
        .await
    }

    /// Delete several keys.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "state", op = "delete_bulk", store = store_name))]
    pub async fn delete_bulk(
        &self,
        store_name: &str,
        items: Vec<SaveItem>,
    ) -> Result<(), ApiError> {
        crate::metrics::timed("state", "delete_bulk", async {
            let store = self.store(store_name)?;
            let requests = items
                .into_iter()
                .map(|i| self.delete_request(&store, i))
                .collect::<Result<Vec<_>, _>>()?;
            store
                .state()
                .bulk_delete(pb::BulkDeleteRequest {
                    items: requests,
                    options: None,
                })
                .await
                .map(drop)
                .map_err(|s| component_error(&store, codes::ERR_STATE_DELETE, s))
        })
        .await
    }

    /// Apply operations atomically (the store must advertise `TRANSACTIONAL`).
    #[tracing::instrument(level = "debug", skip_all, fields(block = "state", op = "transaction", store = store_name))]
    pub async fn transact(
        &self,
        store_name: &str,
        operations: Vec<Operation>,
        metadata: HashMap<String, String>,
    ) -> Result<(), ApiError> {
        crate::metrics::timed("state", "transact", async {
            let store = self.store(store_name)?;
            if !store.has_feature("TRANSACTIONAL") {
                return Err(ApiError::new(
                    codes::ERR_STATE_STORE_NOT_SUPPORTED,
                    format!("state store {store_name} doesn't support transactions"),
                ));
            }
            let mut ops = Vec::with_capacity(operations.len());
            for op in operations {
                use pb::transactional_state_operation::Request;
                ops.push(pb::TransactionalStateOperation {
                    request: Some(match op {
                        Operation::Upsert(item) => Request::Set(self.set_request(&store, item)?),
                        Operation::Delete(item) => {
                            Request::Delete(self.delete_request(&store, item)?)
                        }
                    }),
                });
            }
            store
                .call(
                    &methods::STATE_TRANSACT,
                    pb::TransactionalStateRequest {
                        operations: ops,
                        metadata,
                    },
                )
                .await
                .map(drop)
                .map_err(|s| component_error(&store, codes::ERR_STATE_TRANSACTION, s))
        })
        .await
    }

    /// Run a query (`{"filter", "sort", "page"}`); returns results and the next token.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "state", op = "query", store = store_name))]
    pub async fn query(
        &self,
        store_name: &str,
        query: &serde_json::Value,
        metadata: HashMap<String, String>,
    ) -> Result<(Vec<QueryResult>, Option<String>), ApiError> {
        crate::metrics::timed("state", "query", async {
            let store = self.store(store_name)?;
            if !store.has_feature("QUERY_API") {
                return Err(ApiError::new(
                    codes::ERR_STATE_STORE_NOT_SUPPORTED,
                    format!("state store {store_name} doesn't support the query API"),
                ));
            }
            let request = query_request(query, metadata)?;
            let reply = store
                .queriable()
                .query(request)
                .await
                .map_err(|s| component_error(&store, codes::ERR_STATE_QUERY, s))?
                .into_inner();
            let token = (!reply.token.is_empty()).then_some(reply.token);
            let results = reply
                .items
                .into_iter()
                .map(|i| QueryResult {
                    key: self.app_key(&store, i.key),
                    data: i.data,
                    etag: i.etag.map(|e| e.value),
                    error: (!i.error.is_empty()).then_some(i.error),
                })
                .collect();
            Ok((results, token))
        })
        .await
    }
}

/// Translate the query JSON into the components protocol's `Query`.
fn query_request(
    query: &serde_json::Value,
    metadata: HashMap<String, String>,
) -> Result<pb::QueryRequest, ApiError> {
    let object = query
        .as_object()
        .ok_or_else(|| malformed("query: must be a JSON object"))?;
    let mut filter = HashMap::new();
    if let Some(f) = object.get("filter") {
        let f = f
            .as_object()
            .ok_or_else(|| malformed("query.filter: must be an object such as {\"EQ\": {...}}"))?;
        for (op, value) in f {
            filter.insert(
                op.clone(),
                prost_types::Any {
                    type_url: String::new(),
                    value: serde_json::to_vec(value)
                        .map_err(|e| malformed(format!("query.filter.{op}: {e}")))?,
                },
            );
        }
    }
    let mut sort = Vec::new();
    if let Some(s) = object.get("sort") {
        let list = s
            .as_array()
            .ok_or_else(|| malformed("query.sort: must be a list"))?;
        for (i, entry) in list.iter().enumerate() {
            let key = entry
                .get("key")
                .and_then(|k| k.as_str())
                .ok_or_else(|| malformed(format!("query.sort[{i}].key: missing")))?;
            let order = match entry.get("order").and_then(|o| o.as_str()).unwrap_or("ASC") {
                "ASC" | "asc" => pb::sorting::Order::Asc,
                "DESC" | "desc" => pb::sorting::Order::Desc,
                other => {
                    return Err(malformed(format!(
                        "query.sort[{i}].order: {other:?} is not ASC or DESC"
                    )));
                }
            };
            sort.push(pb::Sorting {
                key: key.to_owned(),
                order: order as i32,
            });
        }
    }
    let pagination = object.get("page").map(|page| pb::Pagination {
        limit: page.get("limit").and_then(|l| l.as_i64()).unwrap_or(0),
        token: page
            .get("token")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned(),
    });
    Ok(pb::QueryRequest {
        query: Some(pb::Query {
            filter,
            sort,
            pagination,
        }),
        metadata,
    })
}
