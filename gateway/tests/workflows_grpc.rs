//! Dapr's workflow rpcs (`…WorkflowBeta1` and the deprecated `…Alpha1`) on
//! one gateway whose actor state store is SQLite, with no worker connected:
//! instances stay PENDING until paused, terminated or purged; every bad
//! input answers Dapr's gRPC code.
// The deprecated `…Alpha1` rpcs are part of the API under test.
#![allow(clippy::unwrap_used, clippy::expect_used, deprecated)]

mod support;
mod workflow_harness;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use outrigger_proto::runtime as pb;
use tonic::Code;
use tonic_types::StatusExt;

use workflow_harness::*;

type Client = pb::dapr_client::DaprClient<tonic::transport::Channel>;

async fn client(node: &Node) -> Client {
    Client::connect(format!("http://{}", node.gateway.grpc_addr))
        .await
        .unwrap()
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

#[track_caller]
fn assert_status<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, reason_: &str) {
    let status = result.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (code, reason_),
        "{status:?}"
    );
}

fn start(id: &str, name: &str, input: &[u8]) -> pb::StartWorkflowRequest {
    pb::StartWorkflowRequest {
        instance_id: id.into(),
        workflow_component: "dapr".into(),
        workflow_name: name.into(),
        input: input.to_vec(),
        ..Default::default()
    }
}

fn get(id: &str) -> pb::GetWorkflowRequest {
    pb::GetWorkflowRequest {
        instance_id: id.into(),
        workflow_component: "dapr".into(),
        app_id: None,
    }
}

fn terminate(id: &str) -> pb::TerminateWorkflowRequest {
    pb::TerminateWorkflowRequest {
        instance_id: id.into(),
        workflow_component: "dapr".into(),
        app_id: None,
    }
}

fn pause(id: &str) -> pb::PauseWorkflowRequest {
    pb::PauseWorkflowRequest {
        instance_id: id.into(),
        workflow_component: "dapr".into(),
        app_id: None,
    }
}

fn resume(id: &str) -> pb::ResumeWorkflowRequest {
    pb::ResumeWorkflowRequest {
        instance_id: id.into(),
        workflow_component: "dapr".into(),
        app_id: None,
    }
}

fn purge(id: &str) -> pb::PurgeWorkflowRequest {
    pb::PurgeWorkflowRequest {
        instance_id: id.into(),
        workflow_component: "dapr".into(),
        app_id: None,
    }
}

fn raise(id: &str, event: &str, data: &[u8]) -> pb::RaiseEventWorkflowRequest {
    pb::RaiseEventWorkflowRequest {
        instance_id: id.into(),
        workflow_component: "dapr".into(),
        event_name: event.into(),
        event_data: data.to_vec(),
        app_id: None,
    }
}

async fn runtime_status(client: &mut Client, id: &str) -> String {
    client
        .get_workflow_beta1(get(id))
        .await
        .unwrap()
        .into_inner()
        .runtime_status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_workflow_rpcs() {
    let node = node(true).await;
    let mut client = client(&node).await;
    let before = std::time::SystemTime::now() - Duration::from_secs(1);

    let started = client
        .start_workflow_beta1(start("g-1", "Billing", br#"{"n":1}"#))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.instance_id, "g-1");
    let got = client
        .get_workflow_beta1(get("g-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.instance_id, "g-1");
    assert_eq!(got.workflow_name, "Billing");
    assert_eq!(got.runtime_status, "PENDING");
    assert_eq!(
        got.properties,
        [("dapr.workflow.input".to_owned(), r#"{"n":1}"#.to_owned())].into()
    );
    let created = std::time::SystemTime::try_from(got.created_at.unwrap()).unwrap();
    assert!(created >= before && created <= std::time::SystemTime::now());
    let updated = std::time::SystemTime::try_from(got.last_updated_at.unwrap()).unwrap();
    assert!(updated >= created);
    // The deprecated Alpha1 twin answers the same; so does HTTP.
    let alpha = client
        .get_workflow_alpha1(get("g-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alpha, got);
    let (_, http) = call(&node, Method::GET, "/v1.0/workflows/dapr/g-1", "").await;
    assert_eq!(http["runtimeStatus"], "PENDING");
    assert_eq!(http["properties"]["dapr.workflow.input"], r#"{"n":1}"#);

    // Alpha1 start without an id or input; text input becomes a JSON string.
    let generated = client
        .start_workflow_alpha1(start("", "Billing", b""))
        .await
        .unwrap()
        .into_inner()
        .instance_id;
    assert!(!generated.is_empty());
    let reply = client.get_workflow_beta1(get(&generated)).await.unwrap();
    assert!(reply.into_inner().properties.is_empty());
    client
        .start_workflow_beta1(start("g-text", "Billing", b"plain"))
        .await
        .unwrap();
    let text = client.get_workflow_beta1(get("g-text")).await.unwrap();
    assert_eq!(
        text.into_inner().properties["dapr.workflow.input"],
        r#""plain""#
    );

    // Raise (both versions), pause and resume (both versions).
    client
        .raise_event_workflow_beta1(raise("g-1", "paid", b"42"))
        .await
        .unwrap();
    client
        .raise_event_workflow_alpha1(raise("g-1", "paid", b""))
        .await
        .unwrap();
    client.pause_workflow_beta1(pause("g-1")).await.unwrap();
    assert_eq!(runtime_status(&mut client, "g-1").await, "SUSPENDED");
    client.resume_workflow_alpha1(resume("g-1")).await.unwrap();
    assert_eq!(runtime_status(&mut client, "g-1").await, "PENDING");
    client.pause_workflow_alpha1(pause("g-1")).await.unwrap();
    assert_eq!(runtime_status(&mut client, "g-1").await, "SUSPENDED");
    client.resume_workflow_beta1(resume("g-1")).await.unwrap();
    assert_eq!(runtime_status(&mut client, "g-1").await, "PENDING");

    // Purge of an unfinished instance is refused, naming why.
    let refused = client.purge_workflow_beta1(purge("g-1")).await.unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::Internal, "ERR_PURGE_WORKFLOW")
    );
    assert!(
        refused
            .message()
            .contains("only a finished instance can be purged"),
        "{refused:?}"
    );

    // Terminate → TERMINATED; purge → gone: daprd answers a get of a
    // missing instance with only its id, no error (HTTP: 404).
    client
        .terminate_workflow_beta1(terminate("g-1"))
        .await
        .unwrap();
    assert_eq!(runtime_status(&mut client, "g-1").await, "TERMINATED");
    client
        .terminate_workflow_alpha1(terminate("g-text"))
        .await
        .unwrap();
    assert_eq!(runtime_status(&mut client, "g-text").await, "TERMINATED");
    client.purge_workflow_alpha1(purge("g-1")).await.unwrap();
    client.purge_workflow_beta1(purge("g-text")).await.unwrap();
    let gone = client.get_workflow_beta1(get("g-1")).await.unwrap();
    assert_eq!(
        gone.into_inner(),
        pb::GetWorkflowResponse {
            instance_id: "g-1".into(),
            ..Default::default()
        }
    );
    assert_eq!(list(&node, "").await, [(generated, "PENDING".to_owned())]);
    let (status, _) = call(&node, Method::GET, "/v1.0/workflows/dapr/g-1", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bad_input_has_daprs_codes() {
    let node = node(true).await;
    let mut client = client(&node).await;
    client
        .start_workflow_beta1(start("known", "Flow", b""))
        .await
        .unwrap();
    let invalid = Code::InvalidArgument;

    // Components: missing, unknown.
    for (component, code) in [
        ("", "ERR_WORKFLOW_COMPONENT_MISSING"),
        ("temporal", "ERR_WORKFLOW_COMPONENT_NOT_FOUND"),
    ] {
        let mut request = start("c1", "Flow", b"");
        request.workflow_component = component.into();
        assert_status(client.start_workflow_beta1(request).await, invalid, code);
        let mut request = get("known");
        request.workflow_component = component.into();
        assert_status(client.get_workflow_beta1(request).await, invalid, code);
        let mut request = terminate("known");
        request.workflow_component = component.into();
        assert_status(
            client.terminate_workflow_alpha1(request).await,
            invalid,
            code,
        );
        let mut request = raise("known", "go", b"");
        request.workflow_component = component.into();
        assert_status(
            client.raise_event_workflow_beta1(request).await,
            invalid,
            code,
        );
    }

    // Bad ids on start; no workflow name.
    assert_status(
        client
            .start_workflow_beta1(start("bad id", "Flow", b""))
            .await,
        invalid,
        "ERR_INSTANCE_ID_INVALID",
    );
    let long = "x".repeat(65);
    assert_status(
        client
            .start_workflow_alpha1(start(&long, "Flow", b""))
            .await,
        invalid,
        "ERR_INSTANCE_ID_TOO_LONG",
    );
    assert_status(
        client.start_workflow_beta1(start("n1", "", b"")).await,
        invalid,
        "ERR_WORKFLOW_NAME_MISSING",
    );

    // daprd's `dapr.workflow.start_time`: must be RFC 3339; a later start
    // is not supported; a past one starts now.
    let at = |when: &str, id: &str| pb::StartWorkflowRequest {
        options: [("dapr.workflow.start_time".to_owned(), when.to_owned())].into(),
        ..start(id, "Flow", b"")
    };
    assert_status(
        client.start_workflow_beta1(at("tomorrow", "t1")).await,
        Code::Internal,
        "ERR_START_WORKFLOW",
    );
    assert_status(
        client
            .start_workflow_beta1(at("2999-01-01T00:00:00Z", "t2"))
            .await,
        Code::Unimplemented,
        "ERR_API_UNIMPLEMENTED",
    );
    client
        .start_workflow_beta1(at("2001-01-01T00:00:00Z", "t3"))
        .await
        .unwrap();
    assert_eq!(runtime_status(&mut client, "t3").await, "PENDING");

    // Missing instance id on the other rpcs; missing event name.
    let missing = "ERR_INSTANCE_ID_PROVIDED_MISSING";
    assert_status(client.get_workflow_beta1(get("")).await, invalid, missing);
    assert_status(
        client.purge_workflow_beta1(purge("")).await,
        invalid,
        missing,
    );
    assert_status(
        client.pause_workflow_alpha1(pause("")).await,
        invalid,
        missing,
    );
    assert_status(
        client
            .raise_event_workflow_beta1(raise("known", "", b"1"))
            .await,
        invalid,
        "ERR_WORKFLOW_EVENT_NAME_MISSING",
    );

    // Unknown instances, on every rpc but get (which answers OK, as daprd).
    let nf = (Code::NotFound, "ERR_INSTANCE_ID_NOT_FOUND");
    assert_status(
        client.terminate_workflow_beta1(terminate("nobody")).await,
        nf.0,
        nf.1,
    );
    assert_status(
        client.pause_workflow_beta1(pause("nobody")).await,
        nf.0,
        nf.1,
    );
    assert_status(
        client.resume_workflow_alpha1(resume("nobody")).await,
        nf.0,
        nf.1,
    );
    assert_status(
        client
            .raise_event_workflow_alpha1(raise("nobody", "go", b""))
            .await,
        nf.0,
        nf.1,
    );
    assert_status(
        client.purge_workflow_alpha1(purge("nobody")).await,
        nf.0,
        nf.1,
    );
    let nobody = client.get_workflow_alpha1(get("nobody")).await.unwrap();
    assert_eq!(nobody.into_inner().runtime_status, "");

    // Another app's workflows; this app's own id is fine.
    let mut other = get("known");
    other.app_id = Some("billing".into());
    assert_status(
        client.get_workflow_beta1(other).await,
        Code::Unimplemented,
        "ERR_API_UNIMPLEMENTED",
    );
    let mut own = get("known");
    own.app_id = Some("test-app".into());
    let own = client.get_workflow_beta1(own).await.unwrap().into_inner();
    assert_eq!(own.runtime_status, "PENDING");

    // None of the refused calls created or changed anything.
    assert_eq!(
        list(&node, "").await,
        [
            ("known".to_owned(), "PENDING".to_owned()),
            ("t3".to_owned(), "PENDING".to_owned())
        ]
    );
}
