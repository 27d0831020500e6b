//! The tonic services behind a [`StateStore`]: wire messages in, SDK types
//! out, and back. All proto knowledge of the state block lives here.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use outrigger_proto::components as pb;
use pb::state_options::{StateConcurrency, StateConsistency};

use crate::ComponentError;
use crate::instance::Instances;
use crate::state::*;

/// Serves one socket's state store instances on all four state services.
#[derive(Clone)]
pub(crate) struct StateAdaptor {
    instances: Arc<Instances<dyn StateStore>>,
}

impl StateAdaptor {
    pub(crate) fn new(instances: Instances<dyn StateStore>) -> Self {
        Self {
            instances: Arc::new(instances),
        }
    }
}

// === conversions ===

fn require_key(key: &str, field: &str) -> Result<(), ComponentError> {
    if key.is_empty() {
        Err(ComponentError::invalid_argument(field, "must not be empty"))
    } else {
        Ok(())
    }
}

fn concurrency(raw: i32, field: &str) -> Result<Concurrency, ComponentError> {
    match StateConcurrency::try_from(raw) {
        Ok(StateConcurrency::ConcurrencyUnspecified) => Ok(Concurrency::Unspecified),
        Ok(StateConcurrency::ConcurrencyFirstWrite) => Ok(Concurrency::FirstWrite),
        Ok(StateConcurrency::ConcurrencyLastWrite) => Ok(Concurrency::LastWrite),
        Err(_) => Err(ComponentError::invalid_argument(
            field,
            format!("unknown concurrency value {raw}"),
        )),
    }
}

fn consistency(raw: i32, field: &str) -> Result<Consistency, ComponentError> {
    match StateConsistency::try_from(raw) {
        Ok(StateConsistency::ConsistencyUnspecified) => Ok(Consistency::Unspecified),
        Ok(StateConsistency::ConsistencyEventual) => Ok(Consistency::Eventual),
        Ok(StateConsistency::ConsistencyStrong) => Ok(Consistency::Strong),
        Err(_) => Err(ComponentError::invalid_argument(
            field,
            format!("unknown consistency value {raw}"),
        )),
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn get_request(req: pb::GetRequest, at: &str) -> Result<GetRequest, ComponentError> {
    require_key(&req.key, &format!("{at}key"))?;
    Ok(GetRequest {
        consistency: consistency(req.consistency, &format!("{at}consistency"))?,
        key: req.key,
        metadata: req.metadata,
    })
}

fn set_request(req: pb::SetRequest, at: &str) -> Result<SetRequest, ComponentError> {
    require_key(&req.key, &format!("{at}key"))?;
    let options = req.options.unwrap_or_default();
    Ok(SetRequest {
        concurrency: concurrency(options.concurrency, &format!("{at}options.concurrency"))?,
        consistency: consistency(options.consistency, &format!("{at}options.consistency"))?,
        key: req.key,
        value: req.value,
        etag: req.etag.map(|e| e.value),
        metadata: req.metadata,
        content_type: non_empty(req.content_type),
    })
}

fn delete_request(req: pb::DeleteRequest, at: &str) -> Result<DeleteRequest, ComponentError> {
    require_key(&req.key, &format!("{at}key"))?;
    let options = req.options.unwrap_or_default();
    Ok(DeleteRequest {
        concurrency: concurrency(options.concurrency, &format!("{at}options.concurrency"))?,
        consistency: consistency(options.consistency, &format!("{at}options.consistency"))?,
        key: req.key,
        etag: req.etag.map(|e| e.value),
        metadata: req.metadata,
    })
}

fn etag(value: Option<String>) -> Option<pb::Etag> {
    value.map(|value| pb::Etag { value })
}

fn query_request(req: pb::QueryRequest) -> Result<QueryRequest, ComponentError> {
    let query = req.query.unwrap_or_default();
    let mut filter = serde_json::Map::new();
    for (op, any) in query.filter {
        // daprd sends each top-level filter operator as JSON in the Any's value.
        let value = serde_json::from_slice(&any.value).map_err(|e| {
            ComponentError::invalid_argument(
                format!("query.filter.{op}"),
                format!("is not JSON: {e}"),
            )
        })?;
        filter.insert(op, value);
    }
    let mut sort = Vec::with_capacity(query.sort.len());
    for (i, s) in query.sort.into_iter().enumerate() {
        let order = match pb::sorting::Order::try_from(s.order) {
            Ok(pb::sorting::Order::Asc) => SortOrder::Ascending,
            Ok(pb::sorting::Order::Desc) => SortOrder::Descending,
            Err(_) => {
                return Err(ComponentError::invalid_argument(
                    format!("query.sort[{i}].order"),
                    format!("unknown order {}", s.order),
                ));
            }
        };
        sort.push((s.key, order));
    }
    let pagination = query.pagination.unwrap_or_default();
    let limit = u64::try_from(pagination.limit).map_err(|_| {
        ComponentError::invalid_argument("query.pagination.limit", "must not be negative")
    })?;
    Ok(QueryRequest {
        filter,
        sort,
        limit,
        token: non_empty(pagination.token),
        metadata: req.metadata,
    })
}

// === services ===

#[tonic::async_trait]
impl pb::state_store_server::StateStore for StateAdaptor {
    #[tracing::instrument(skip_all, fields(block = "state", op = "init", instance))]
    async fn init(
        &self,
        request: Request<pb::InitRequest>,
    ) -> Result<Response<pb::InitResponse>, Status> {
        let (headers, _, body) = request.into_parts();
        self.instances
            .init_call(
                &headers,
                body.metadata,
                |c, m| async move { c.init(m).await },
            )
            .await?;
        Ok(Response::new(pb::InitResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "state", op = "features"))]
    async fn features(
        &self,
        request: Request<pb::FeaturesRequest>,
    ) -> Result<Response<pb::FeaturesResponse>, Status> {
        let store = self.instances.get(request.metadata())?;
        let features = store
            .features()
            .into_iter()
            .map(|f| f.as_str().to_owned())
            .collect();
        Ok(Response::new(pb::FeaturesResponse { features }))
    }

    #[tracing::instrument(skip_all, fields(block = "state", op = "delete"))]
    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let store = self.instances.get(request.metadata())?;
        store
            .delete(delete_request(request.into_inner(), "")?)
            .await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "state", op = "get"))]
    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let store = self.instances.get(request.metadata())?;
        let found = store.get(get_request(request.into_inner(), "")?).await?;
        let response = match found {
            None => pb::GetResponse::default(),
            Some(item) => pb::GetResponse {
                data: item.data,
                etag: etag(item.etag),
                metadata: item.metadata,
                content_type: item.content_type.unwrap_or_default(),
            },
        };
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all, fields(block = "state", op = "set"))]
    async fn set(
        &self,
        request: Request<pb::SetRequest>,
    ) -> Result<Response<pb::SetResponse>, Status> {
        let store = self.instances.get(request.metadata())?;
        store.set(set_request(request.into_inner(), "")?).await?;
        Ok(Response::new(pb::SetResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "state", op = "ping"))]
    async fn ping(
        &self,
        request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        let store = self.instances.get(request.metadata())?;
        store.ping().await?;
        Ok(Response::new(pb::PingResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "state", op = "bulk_delete", count))]
    async fn bulk_delete(
        &self,
        request: Request<pb::BulkDeleteRequest>,
    ) -> Result<Response<pb::BulkDeleteResponse>, Status> {
        let store = self.instances.get(request.metadata())?;
        let items = request.into_inner().items;
        tracing::Span::current().record("count", items.len());
        let requests = items
            .into_iter()
            .enumerate()
            .map(|(i, r)| delete_request(r, &format!("items[{i}].")))
            .collect::<Result<Vec<_>, _>>()?;
        store.bulk_delete(requests).await?;
        Ok(Response::new(pb::BulkDeleteResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "state", op = "bulk_get", count))]
    async fn bulk_get(
        &self,
        request: Request<pb::BulkGetRequest>,
    ) -> Result<Response<pb::BulkGetResponse>, Status> {
        let store = self.instances.get(request.metadata())?;
        let items = request.into_inner().items;
        tracing::Span::current().record("count", items.len());
        let requests = items
            .into_iter()
            .enumerate()
            .map(|(i, r)| get_request(r, &format!("items[{i}].")))
            .collect::<Result<Vec<_>, _>>()?;
        let items = store
            .bulk_get(requests)
            .await?
            .into_iter()
            .map(|found| {
                let item = found.item.unwrap_or_default();
                pb::BulkStateItem {
                    key: found.key,
                    data: item.data,
                    etag: etag(item.etag),
                    error: found.error.unwrap_or_default(),
                    metadata: item.metadata,
                    content_type: item.content_type.unwrap_or_default(),
                }
            })
            .collect();
        Ok(Response::new(pb::BulkGetResponse { items }))
    }

    #[tracing::instrument(skip_all, fields(block = "state", op = "bulk_set", count))]
    async fn bulk_set(
        &self,
        request: Request<pb::BulkSetRequest>,
    ) -> Result<Response<pb::BulkSetResponse>, Status> {
        let store = self.instances.get(request.metadata())?;
        let items = request.into_inner().items;
        tracing::Span::current().record("count", items.len());
        let requests = items
            .into_iter()
            .enumerate()
            .map(|(i, r)| set_request(r, &format!("items[{i}].")))
            .collect::<Result<Vec<_>, _>>()?;
        store.bulk_set(requests).await?;
        Ok(Response::new(pb::BulkSetResponse {}))
    }
}

#[tonic::async_trait]
impl pb::transactional_state_store_server::TransactionalStateStore for StateAdaptor {
    #[tracing::instrument(skip_all, fields(block = "state", op = "transact", count))]
    async fn transact(
        &self,
        request: Request<pb::TransactionalStateRequest>,
    ) -> Result<Response<pb::TransactionalStateResponse>, Status> {
        let store = self.instances.get(request.metadata())?;
        let request = request.into_inner();
        tracing::Span::current().record("count", request.operations.len());
        let mut operations = Vec::with_capacity(request.operations.len());
        for (i, op) in request.operations.into_iter().enumerate() {
            let at = format!("operations[{i}].");
            operations.push(match op.request {
                Some(pb::transactional_state_operation::Request::Set(set)) => {
                    TransactionOperation::Set(set_request(set, &format!("{at}set."))?)
                }
                Some(pb::transactional_state_operation::Request::Delete(delete)) => {
                    TransactionOperation::Delete(delete_request(delete, &format!("{at}delete."))?)
                }
                None => {
                    return Err(ComponentError::invalid_argument(
                        format!("{at}request"),
                        "must be a set or a delete",
                    )
                    .into());
                }
            });
        }
        store
            .transact(TransactionRequest {
                operations,
                metadata: request.metadata,
            })
            .await?;
        Ok(Response::new(pb::TransactionalStateResponse {}))
    }
}

#[tonic::async_trait]
impl pb::queriable_state_store_server::QueriableStateStore for StateAdaptor {
    #[tracing::instrument(skip_all, fields(block = "state", op = "query"))]
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let store = self.instances.get(request.metadata())?;
        let response = store.query(query_request(request.into_inner())?).await?;
        let items = response
            .items
            .into_iter()
            .map(|item| pb::QueryItem {
                key: item.key,
                data: item.data,
                etag: etag(item.etag),
                error: item.error.unwrap_or_default(),
                content_type: item.content_type.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::QueryResponse {
            items,
            token: response.token.unwrap_or_default(),
            metadata: response.metadata,
        }))
    }
}

#[tonic::async_trait]
impl pb::transactional_store_multi_max_size_server::TransactionalStoreMultiMaxSize
    for StateAdaptor
{
    #[tracing::instrument(skip_all, fields(block = "state", op = "multi_max_size"))]
    async fn multi_max_size(
        &self,
        request: Request<pb::MultiMaxSizeRequest>,
    ) -> Result<Response<pb::MultiMaxSizeResponse>, Status> {
        let store = self.instances.get(request.metadata())?;
        // daprd reads a negative size (or an error) as "no limit".
        let max_size = store
            .max_transaction_size()
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        Ok(Response::new(pb::MultiMaxSizeResponse { max_size }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_keys_are_rejected_with_the_field_name() {
        let err = set_request(pb::SetRequest::default(), "items[2].").unwrap_err();
        assert!(err.message().starts_with("items[2].key"), "{err}");
    }

    #[test]
    fn unknown_enum_values_are_rejected() {
        let req = pb::DeleteRequest {
            key: "k".into(),
            options: Some(pb::StateOptions {
                concurrency: 9,
                consistency: 0,
            }),
            ..Default::default()
        };
        let err = delete_request(req, "").unwrap_err();
        assert!(err.message().contains("options.concurrency"), "{err}");
    }

    #[test]
    fn absent_etag_differs_from_empty_etag() {
        let mut req = pb::SetRequest {
            key: "k".into(),
            ..Default::default()
        };
        assert_eq!(
            set_request(req.clone(), "").map(|r| r.etag).ok(),
            Some(None)
        );
        req.etag = Some(pb::Etag {
            value: String::new(),
        });
        assert_eq!(
            set_request(req, "").map(|r| r.etag).ok(),
            Some(Some(String::new()))
        );
    }

    #[test]
    fn query_filter_must_be_json() {
        let mut query = pb::Query::default();
        query.filter.insert(
            "EQ".into(),
            prost_types::Any {
                type_url: String::new(),
                value: b"{not json".to_vec(),
            },
        );
        let err = query_request(pb::QueryRequest {
            query: Some(query),
            metadata: Default::default(),
        })
        .unwrap_err();
        assert!(err.message().contains("query.filter.EQ"), "{err}");
    }
}
