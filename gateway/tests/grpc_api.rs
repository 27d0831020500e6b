//! The gRPC API against real components: Dapr's status codes and
//! `ErrorInfo` reasons for bad input; rpcs not implemented yet answer
//! `UNIMPLEMENTED`, never a transport error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use outrigger_proto::common as common_pb;
use outrigger_proto::runtime as pb;
use pb::dapr_client::DaprClient;
use std::time::{Duration, Instant};
use support::Stack;

use tonic::Code;
use tonic_types::StatusExt;

async fn client(stack: &Stack) -> DaprClient<tonic::transport::Channel> {
    DaprClient::connect(format!("http://{}", stack.gateway.grpc_addr))
        .await
        .unwrap()
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

fn item(key: &str, value: &[u8], etag: Option<&str>) -> common_pb::StateItem {
    common_pb::StateItem {
        key: key.into(),
        value: value.to_vec(),
        etag: etag.map(|v| common_pb::Etag { value: v.into() }),
        ..Default::default()
    }
}

#[tokio::test]
async fn bad_input_gets_dapr_codes_and_changes_nothing() {
    let stack = Stack::start(None).await;
    let mut c = client(&stack).await;
    c.save_state(pb::SaveStateRequest {
        store_name: "statestore".into(),
        states: vec![item("keep", b"v", None)],
    })
    .await
    .unwrap();

    let unknown = c
        .get_state(pb::GetStateRequest {
            store_name: "nostore".into(),
            key: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (unknown.code(), reason(&unknown).as_str()),
        (Code::InvalidArgument, "ERR_STATE_STORE_NOT_FOUND")
    );

    let empty_key = c
        .save_state(pb::SaveStateRequest {
            store_name: "statestore".into(),
            states: vec![item("", b"x", None)],
        })
        .await
        .unwrap_err();
    assert_eq!(
        (empty_key.code(), reason(&empty_key).as_str()),
        (Code::InvalidArgument, "ERR_MALFORMED_REQUEST")
    );

    let stale = c
        .save_state(pb::SaveStateRequest {
            store_name: "statestore".into(),
            states: vec![item("keep", b"x", Some("12345"))],
        })
        .await
        .unwrap_err();
    assert_eq!(
        (stale.code(), reason(&stale).as_str()),
        (Code::Aborted, "ERR_STATE_SAVE")
    );

    let bad_etag = c
        .delete_state(pb::DeleteStateRequest {
            store_name: "statestore".into(),
            key: "keep".into(),
            etag: Some(common_pb::Etag {
                value: "not-a-version".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (bad_etag.code(), reason(&bad_etag).as_str()),
        (Code::InvalidArgument, "ERR_STATE_DELETE")
    );

    let bad_op = c
        .execute_state_transaction(pb::ExecuteStateTransactionRequest {
            store_name: "statestore".into(),
            operations: vec![pb::TransactionalStateOperation {
                operation_type: "merge".into(),
                request: Some(item("keep", b"x", None)),
            }],
            metadata: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad_op), "ERR_NOT_SUPPORTED_STATE_OPERATION");

    let bad_query = c
        .query_state_alpha1(pb::QueryStateRequest {
            store_name: "statestore".into(),
            query: "{not json".into(),
            metadata: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad_query), "ERR_MALFORMED_REQUEST");

    let kept = c
        .get_state(pb::GetStateRequest {
            store_name: "statestore".into(),
            key: "keep".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept.data, b"v", "rejected requests changed nothing");

    let unimplemented = c
        .try_lock_alpha1(pb::TryLockRequest {
            store_name: "lockstore".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unimplemented.code(), Code::Unimplemented);
    assert!(!unimplemented.message().is_empty());
}

#[tokio::test]
async fn metrics_count_both_apis_alike() {
    let stack = Stack::start(None).await;
    let mut c = client(&stack).await;
    c.get_state(pb::GetStateRequest {
        store_name: "nostore".into(),
        key: "k".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    let text = outrigger::metrics::render();
    assert!(
        text.contains(r#"dapr_runtime_requests_total{block="state",op="get",outcome="ERR_STATE_STORE_NOT_FOUND"}"#),
        "{text}"
    );
    assert!(
        text.contains("dapr_runtime_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn token_is_required_on_grpc() {
    let stack = Stack::start(Some("t0ken")).await;
    let mut c = client(&stack).await;
    let denied = c.get_metadata(pb::GetMetadataRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);
    let mut request = tonic::Request::new(pb::GetMetadataRequest {});
    request
        .metadata_mut()
        .insert("dapr-api-token", "t0ken".parse().unwrap());
    let meta = c.get_metadata(request).await.unwrap().into_inner();
    assert_eq!(meta.id, "test-app");
}

/// The gateway enforces a call's `grpc-timeout` itself: a call still
/// running at its deadline answers `DEADLINE_EXCEEDED` naming it, then and
/// not when the component finally answers; a generous deadline changes
/// nothing. The client here is the gateway's own channel, which (unlike
/// tonic's transport) does not enforce the deadline on its side.
#[tokio::test]
async fn grpc_timeout_is_enforced_by_the_gateway() {
    let stack = Stack::start(None).await;
    let mut c = DaprClient::new(outrigger::components::channel::lazy_tcp(
        stack.gateway.grpc_addr,
    ));
    let slow = |timeout: Duration| {
        let mut request = tonic::Request::new(pb::InvokeBindingRequest {
            name: "echo".into(),
            data: b"late".to_vec(),
            metadata: [("sleepMs".to_owned(), "3000".to_owned())].into(),
            operation: "create".into(),
        });
        request.set_timeout(timeout);
        request
    };
    let started = Instant::now();
    let expired = c
        .invoke_binding(slow(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!(expired.code(), Code::DeadlineExceeded, "{expired:?}");
    assert!(expired.message().contains("grpc-timeout"), "{expired:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let answered = c
        .invoke_binding(slow(Duration::from_secs(30)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answered.data, b"late");
}
