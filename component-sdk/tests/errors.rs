//! Errors as daprd reads them off the wire: the status code, and exactly one
//! detail of exactly the shape `pkg/components/state/pluggable.go` accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/memory.rs"]
mod memory;
mod support;

use outrigger_component_sdk::state::*;
use outrigger_component_sdk::{ComponentError, Metadata, async_trait};
use outrigger_proto::components as pb;
use pb::state_store_client::StateStoreClient;
use pb::transactional_state_store_client::TransactionalStateStoreClient;
use support::{Running, channel, to};
use tonic::{Code, Status};
use tonic_types::{ErrorDetail, StatusExt};

async fn memory() -> (Running, tonic::transport::Channel) {
    let running = Running::start("memory", |s| {
        s.service("memory", |s| s.state_store(memory::MemoryStore::default))
    })
    .await;
    let channel = channel(&running.socket("memory")).await;
    StateStoreClient::new(channel.clone())
        .init(to("store", pb::InitRequest::default()))
        .await
        .unwrap();
    (running, channel)
}

fn set(key: &str, value: &[u8], etag: Option<&str>) -> pb::SetRequest {
    pb::SetRequest {
        key: key.into(),
        value: value.to_vec(),
        etag: etag.map(|v| pb::Etag { value: v.into() }),
        ..Default::default()
    }
}

/// The `type_url`s in the raw `grpc-status-details-bin` trailer. Go's
/// `status.Details()` (what daprd calls) resolves detail types by these exact names.
fn raw_detail_types(status: &Status) -> Vec<String> {
    use prost::Message;
    let raw =
        outrigger_proto::google::rpc::Status::decode(status.details()).expect("google.rpc.Status");
    assert_eq!(
        raw.code,
        status.code() as i32,
        "trailer code matches the status"
    );
    raw.details.into_iter().map(|d| d.type_url).collect()
}

/// The one field violation daprd needs for an ETag error, or a panic saying why not.
fn etag_violation(status: &Status) -> String {
    assert_eq!(
        raw_detail_types(status),
        ["type.googleapis.com/google.rpc.BadRequest"],
        "exactly one BadRequest detail"
    );
    let details = status
        .check_error_details_vec()
        .expect("grpc-status-details-bin decodes");
    assert_eq!(
        details.len(),
        1,
        "daprd reads exactly one detail: {details:?}"
    );
    let ErrorDetail::BadRequest(bad) = &details[0] else {
        panic!("expected google.rpc.BadRequest, got {details:?}");
    };
    assert_eq!(
        bad.field_violations.len(),
        1,
        "exactly one violation: {bad:?}"
    );
    assert_eq!(bad.field_violations[0].field, "etag");
    bad.field_violations[0].description.clone()
}

#[tokio::test]
async fn stale_etag_is_failed_precondition_with_etag_violation() {
    let (_running, channel) = memory().await;
    let mut client = StateStoreClient::new(channel);
    client.set(to("store", set("k", b"1", None))).await.unwrap();
    let got = client
        .get(to(
            "store",
            pb::GetRequest {
                key: "k".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let etag = got.etag.expect("ETag on get").value;
    client
        .set(to("store", set("k", b"2", Some(&etag))))
        .await
        .unwrap();

    let err = client
        .set(to("store", set("k", b"3", Some(&etag))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(!etag_violation(&err).is_empty());

    let deleted = client
        .delete(to(
            "store",
            pb::DeleteRequest {
                key: "k".into(),
                etag: Some(pb::Etag { value: etag }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(deleted.code(), Code::FailedPrecondition);
    etag_violation(&deleted);
}

#[tokio::test]
async fn malformed_etag_is_invalid_argument_with_etag_violation() {
    let (_running, channel) = memory().await;
    let mut client = StateStoreClient::new(channel);
    client.set(to("store", set("k", b"1", None))).await.unwrap();
    let err = client
        .set(to("store", set("k", b"2", Some("not-a-version"))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(etag_violation(&err).contains("not-a-version"));
}

#[tokio::test]
async fn failing_transaction_leaves_nothing_behind() {
    let (_running, channel) = memory().await;
    let mut state = StateStoreClient::new(channel.clone());
    let mut tx = TransactionalStateStoreClient::new(channel);
    let op = |r| pb::TransactionalStateOperation { request: Some(r) };
    use pb::transactional_state_operation::Request;
    let err = tx
        .transact(to(
            "store",
            pb::TransactionalStateRequest {
                operations: vec![
                    op(Request::Set(set("a", b"1", None))),
                    op(Request::Set(set("b", b"1", Some("99")))),
                ],
                metadata: Default::default(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let a = state
        .get(to(
            "store",
            pb::GetRequest {
                key: "a".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        a.data.is_empty(),
        "first operation must be rolled back: {a:?}"
    );
}

#[tokio::test]
async fn malformed_requests_name_the_field() {
    let (_running, channel) = memory().await;
    let mut state = StateStoreClient::new(channel.clone());
    let err = state
        .set(to("store", set("", b"x", None)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("key:"), "{}", err.message());

    let err = state
        .bulk_set(to(
            "store",
            pb::BulkSetRequest {
                items: vec![set("ok", b"x", None), set("", b"x", None)],
                options: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("items[1].key"),
        "{}",
        err.message()
    );
    let untouched = state
        .get(to(
            "store",
            pb::GetRequest {
                key: "ok".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        untouched.data.is_empty(),
        "a rejected bulk request writes nothing"
    );

    let err = TransactionalStateStoreClient::new(channel)
        .transact(to(
            "store",
            pb::TransactionalStateRequest {
                operations: vec![pb::TransactionalStateOperation { request: None }],
                metadata: Default::default(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("operations[0].request"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn unimplemented_capability_is_unimplemented() {
    let (_running, channel) = memory().await;
    let err = pb::queriable_state_store_client::QueriableStateStoreClient::new(channel)
        .query(to("store", pb::QueryRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

/// A store whose bulk delete always reports a row-count mismatch.
struct Miscounting;

#[async_trait]
impl StateStore for Miscounting {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn get(&self, _: GetRequest) -> Result<Option<StateItem>, ComponentError> {
        Ok(None)
    }
    async fn set(&self, _: SetRequest) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn delete(&self, _: DeleteRequest) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn bulk_delete(&self, requests: Vec<DeleteRequest>) -> Result<(), ComponentError> {
        Err(ComponentError::bulk_delete_mismatch(
            requests.len() as u64,
            0,
        ))
    }
}

#[tokio::test]
async fn bulk_delete_mismatch_carries_expected_and_affected() {
    let running = Running::start("mis", |s| {
        s.service("mis", |s| s.state_store(|| Miscounting))
    })
    .await;
    let mut client = StateStoreClient::new(channel(&running.socket("mis")).await);
    client
        .init(to("m", pb::InitRequest::default()))
        .await
        .unwrap();
    let delete = |k: &str| pb::DeleteRequest {
        key: k.into(),
        ..Default::default()
    };
    let err = client
        .bulk_delete(to(
            "m",
            pb::BulkDeleteRequest {
                items: vec![delete("a"), delete("b")],
                options: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(
        raw_detail_types(&err),
        ["type.googleapis.com/google.rpc.ErrorInfo"]
    );
    let details = err.check_error_details_vec().unwrap();
    assert_eq!(details.len(), 1);
    let ErrorDetail::ErrorInfo(info) = &details[0] else {
        panic!("expected google.rpc.ErrorInfo, got {details:?}");
    };
    assert_eq!(info.metadata.get("expected").map(String::as_str), Some("2"));
    assert_eq!(info.metadata.get("affected").map(String::as_str), Some("0"));
}
