//! The state rpcs of the `Dapr` service: the same runtime calls as the HTTP
//! API, except that gRPC stores raw bytes where HTTP stores JSON encodings
//! (and both read each other's writes).

use std::collections::HashMap;

use tonic::{Response, Status};

use outrigger_proto::common as common_pb;
use outrigger_proto::runtime as pb;

use crate::api::Runtime;
use crate::runtime::state::{Operation, SaveItem};

fn concurrency_name(raw: i32) -> Option<String> {
    match common_pb::state_options::StateConcurrency::try_from(raw) {
        Ok(common_pb::state_options::StateConcurrency::ConcurrencyUnspecified) => None,
        Ok(common_pb::state_options::StateConcurrency::ConcurrencyFirstWrite) => {
            Some("first-write".into())
        }
        Ok(common_pb::state_options::StateConcurrency::ConcurrencyLastWrite) => {
            Some("last-write".into())
        }
        Err(_) => Some(format!("<{raw}>")),
    }
}

fn consistency_name(raw: i32) -> Option<String> {
    match common_pb::state_options::StateConsistency::try_from(raw) {
        Ok(common_pb::state_options::StateConsistency::ConsistencyUnspecified) => None,
        Ok(common_pb::state_options::StateConsistency::ConsistencyEventual) => {
            Some("eventual".into())
        }
        Ok(common_pb::state_options::StateConsistency::ConsistencyStrong) => Some("strong".into()),
        Err(_) => Some(format!("<{raw}>")),
    }
}

/// The gRPC API stores raw bytes (the HTTP API stores JSON encodings).
pub(super) fn save_item(item: common_pb::StateItem) -> SaveItem {
    let options = item.options.unwrap_or_default();
    SaveItem {
        key: item.key,
        value: item.value,
        etag: item.etag.map(|e| e.value),
        metadata: item.metadata,
        concurrency: concurrency_name(options.concurrency),
        consistency: consistency_name(options.consistency),
    }
}

pub(super) async fn get(
    rt: &Runtime,
    r: pb::GetStateRequest,
) -> Result<Response<pb::GetStateResponse>, Status> {
    let found = rt
        .state
        .get(
            &r.store_name,
            &r.key,
            consistency_name(r.consistency).as_deref(),
            r.metadata,
        )
        .await?;
    Ok(Response::new(match found {
        None => pb::GetStateResponse::default(),
        Some(item) => pb::GetStateResponse {
            data: item.data,
            etag: item.etag.unwrap_or_default(),
            metadata: item.metadata,
        },
    }))
}

pub(super) async fn bulk_get(
    rt: &Runtime,
    r: pb::GetBulkStateRequest,
) -> Result<Response<pb::GetBulkStateResponse>, Status> {
    let items = rt.state.bulk_get(&r.store_name, r.keys, r.metadata).await?;
    Ok(Response::new(pb::GetBulkStateResponse {
        items: items
            .into_iter()
            .map(|i| {
                let item = i.item.unwrap_or_default();
                pb::BulkStateItem {
                    key: i.key,
                    data: item.data,
                    etag: item.etag.unwrap_or_default(),
                    error: i.error.unwrap_or_default(),
                    metadata: item.metadata,
                }
            })
            .collect(),
    }))
}

pub(super) async fn save(rt: &Runtime, r: pb::SaveStateRequest) -> Result<Response<()>, Status> {
    rt.state
        .save(&r.store_name, r.states.into_iter().map(save_item).collect())
        .await?;
    Ok(Response::new(()))
}

pub(super) async fn query(
    rt: &Runtime,
    r: pb::QueryStateRequest,
) -> Result<Response<pb::QueryStateResponse>, Status> {
    let query: serde_json::Value = serde_json::from_str(&r.query).map_err(|e| {
        Status::from(crate::error::ApiError::new(
            crate::error::codes::ERR_MALFORMED_REQUEST,
            format!("query: is not JSON: {e}"),
        ))
    })?;
    let (results, token) = rt.state.query(&r.store_name, &query, r.metadata).await?;
    Ok(Response::new(pb::QueryStateResponse {
        results: results
            .into_iter()
            .map(|q| pb::QueryStateItem {
                key: q.key,
                data: q.data,
                etag: q.etag.unwrap_or_default(),
                error: q.error.unwrap_or_default(),
            })
            .collect(),
        token: token.unwrap_or_default(),
        metadata: HashMap::new(),
    }))
}

pub(super) async fn delete(
    rt: &Runtime,
    r: pb::DeleteStateRequest,
) -> Result<Response<()>, Status> {
    let options = r.options.unwrap_or_default();
    let item = SaveItem {
        key: r.key,
        etag: r.etag.map(|e| e.value),
        metadata: r.metadata,
        concurrency: concurrency_name(options.concurrency),
        consistency: consistency_name(options.consistency),
        ..Default::default()
    };
    rt.state.delete(&r.store_name, item).await?;
    Ok(Response::new(()))
}

pub(super) async fn delete_bulk(
    rt: &Runtime,
    r: pb::DeleteBulkStateRequest,
) -> Result<Response<()>, Status> {
    rt.state
        .delete_bulk(&r.store_name, r.states.into_iter().map(save_item).collect())
        .await?;
    Ok(Response::new(()))
}

pub(super) async fn transact(
    rt: &Runtime,
    r: pb::ExecuteStateTransactionRequest,
) -> Result<Response<()>, Status> {
    let mut operations = Vec::with_capacity(r.operations.len());
    for (i, op) in r.operations.into_iter().enumerate() {
        let item = save_item(op.request.unwrap_or_default());
        operations.push(match op.operation_type.as_str() {
            "upsert" => Operation::Upsert(item),
            "delete" => Operation::Delete(item),
            other => {
                return Err(crate::error::ApiError::new(
                    crate::error::codes::ERR_NOT_SUPPORTED_STATE_OPERATION,
                    format!("operations[{i}].operationType: {other:?} is not upsert or delete"),
                )
                .into());
            }
        });
    }
    rt.state
        .transact(&r.store_name, operations, r.metadata)
        .await?;
    Ok(Response::new(()))
}
