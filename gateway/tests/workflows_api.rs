//! Dapr's workflow API (HTTP under `v1.0`, `v1.0-beta1`, `v1.0-alpha1`, and
//! the `…WorkflowBeta1/Alpha1` rpcs) and Outrigger's list API, on one
//! gateway whose actor state store is SQLite (`outrigger-local`).
//!
//! No workflow worker connects, so instances never run a step: they stay
//! PENDING until paused, terminated or purged, which is what these tests
//! check, along with every bad-input answer (status and error code).
// The deprecated `…Alpha1` rpcs are part of the API under test.
#![allow(clippy::unwrap_used, clippy::expect_used, deprecated)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use outrigger_component_sdk::ComponentServer;
use outrigger_proto::runtime as pb;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic_types::StatusExt;
use tower::ServiceExt;

struct Node {
    _dir: tempfile::TempDir,
    gateway: outrigger::Gateway,
    stop: CancellationToken,
    component_stop: CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
        self.component_stop.cancel();
    }
}

/// A gateway with the SQLite state store as its actor state store (or,
/// with `actor_store: false`, no component at all).
async fn node(actor_store: bool) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    let component_stop = CancellationToken::new();
    if actor_store {
        let yaml = format!(
            "kind: Component\nmetadata: {{name: actorstore}}\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{}\"}}\n  - {{name: actorStateStore, value: \"true\"}}\n",
            dir.path().join("actors.db").display()
        );
        std::fs::write(dir.path().join("resources/actorstore.yaml"), yaml).unwrap();
        let server = outrigger_local::services(ComponentServer::new(&sockets));
        let until = component_stop.clone();
        tokio::spawn(server.serve(async move { until.cancelled().await }));
        let socket = sockets.join(format!("{}.sock", outrigger_local::SOCKET));
        while tokio::net::UnixStream::connect(&socket).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let stop = CancellationToken::new();
    let gateway = outrigger::Gateway::start(support::config(dir.path(), None), stop.clone())
        .await
        .unwrap();
    Node {
        _dir: dir,
        gateway,
        stop,
        component_stop,
    }
}

/// One HTTP request through the router: status and body (JSON, or the raw
/// text as a JSON string when it is not JSON, `null` when empty).
async fn call(node: &Node, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
    let response = outrigger::api::http::router(Arc::clone(&node.gateway.runtime))
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, value)
}

/// Assert a Dapr error answer: status and `errorCode`.
#[track_caller]
fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["errorCode"], code, "{}", answer.1);
    assert!(
        answer.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        answer.1
    );
}

fn properties(body: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(body["properties"].clone()).unwrap()
}

fn parse_time(raw: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let text = raw.as_str().unwrap_or_else(|| panic!("not a time: {raw}"));
    assert!(text.ends_with('Z'), "{text} is not UTC");
    chrono::DateTime::parse_from_rfc3339(text).unwrap()
}

/// `(instanceID, runtimeStatus)` of the list API with `query`.
async fn list(node: &Node, query: &str) -> Vec<(String, String)> {
    let (status, body) = call(
        node,
        Method::GET,
        &format!("/v1.0-alpha1/workflows/dapr{query}"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["instanceID"].as_str().unwrap().to_owned(),
                i["runtimeStatus"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_start_get_pause_resume_terminate_purge_and_list() {
    let node = node(true).await;
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);

    // Start with an id and a JSON body: the body is the input, as it is.
    let started = call(
        &node,
        Method::POST,
        "/v1.0-beta1/workflows/dapr/OrderFlow/start?instanceID=order-1",
        r#"{"order":7}"#,
    )
    .await;
    assert_eq!(started.0, StatusCode::ACCEPTED, "{}", started.1);
    assert_eq!(started.1, json!({"instanceID": "order-1"}));

    let (status, got) = call(&node, Method::GET, "/v1.0/workflows/dapr/order-1", "").await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["instanceID"], "order-1");
    assert_eq!(got["workflowName"], "OrderFlow");
    assert_eq!(got["runtimeStatus"], "PENDING", "no worker: never runs");
    let created = parse_time(&got["createdAt"]);
    assert!(created >= before && created <= chrono::Utc::now(), "{got}");
    assert!(parse_time(&got["lastUpdatedAt"]) >= created, "{got}");
    assert_eq!(
        properties(&got),
        BTreeMap::from([("dapr.workflow.input".into(), r#"{"order":7}"#.into())])
    );
    // The same answer under every version prefix.
    for version in ["v1.0-beta1", "v1.0-alpha1"] {
        let (status, again) = call(
            &node,
            Method::GET,
            &format!("/{version}/workflows/dapr/order-1"),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again, got, "{version}");
    }

    // No id: one is generated; no body: no input. Text that is not JSON
    // is passed on as a JSON string.
    let (status, generated) = call(
        &node,
        Method::POST,
        "/v1.0/workflows/dapr/OrderFlow/start",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{generated}");
    let generated = generated["instanceID"].as_str().unwrap().to_owned();
    assert!(!generated.is_empty() && generated != "order-1");
    let (_, got) = call(
        &node,
        Method::GET,
        &format!("/v1.0/workflows/dapr/{generated}"),
        "",
    )
    .await;
    assert_eq!(got["runtimeStatus"], "PENDING", "{got}");
    assert_eq!(got["properties"], json!({}), "no input: no property");
    let (status, _) = call(
        &node,
        Method::POST,
        "/v1.0-alpha1/workflows/dapr/Greeter/start?instanceID=text-1",
        "hello",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, got) = call(&node, Method::GET, "/v1.0/workflows/dapr/text-1", "").await;
    assert_eq!(got["workflowName"], "Greeter");
    assert_eq!(got["properties"]["dapr.workflow.input"], r#""hello""#);

    // An id in use by an unfinished instance cannot start again.
    let again = call(
        &node,
        Method::POST,
        "/v1.0/workflows/dapr/OrderFlow/start?instanceID=order-1",
        "{}",
    )
    .await;
    assert_error(
        &again,
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_START_WORKFLOW",
    );
    assert!(
        again.1["message"].as_str().unwrap().contains("order-1"),
        "{}",
        again.1
    );

    // Raising an event is accepted (the empty reply is `{}`, as daprd's).
    let raised = call(
        &node,
        Method::POST,
        "/v1.0/workflows/dapr/order-1/raiseEvent/approve",
        "true",
    )
    .await;
    assert_eq!(raised, (StatusCode::ACCEPTED, json!({})));

    // Pause → SUSPENDED (also in the list); resume → back to PENDING.
    let paused = call(
        &node,
        Method::POST,
        "/v1.0/workflows/dapr/order-1/pause",
        "",
    )
    .await;
    assert_eq!(paused, (StatusCode::ACCEPTED, json!({})));
    let (_, got) = call(&node, Method::GET, "/v1.0/workflows/dapr/order-1", "").await;
    assert_eq!(got["runtimeStatus"], "SUSPENDED", "{got}");
    assert_eq!(
        list(&node, "?status=SUSPENDED").await,
        [("order-1".to_owned(), "SUSPENDED".to_owned())]
    );
    let resumed = call(
        &node,
        Method::POST,
        "/v1.0-beta1/workflows/dapr/order-1/resume",
        "",
    )
    .await;
    assert_eq!(resumed, (StatusCode::ACCEPTED, json!({})));
    let (_, got) = call(&node, Method::GET, "/v1.0/workflows/dapr/order-1", "").await;
    assert_eq!(got["runtimeStatus"], "PENDING", "{got}");
    assert!(list(&node, "?status=SUSPENDED").await.is_empty());

    // Purging an unfinished instance is refused, naming why.
    let refused = call(
        &node,
        Method::POST,
        "/v1.0/workflows/dapr/order-1/purge",
        "",
    )
    .await;
    assert_error(
        &refused,
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_PURGE_WORKFLOW",
    );
    assert!(
        refused.1["message"]
            .as_str()
            .unwrap()
            .contains("only a finished instance can be purged"),
        "{}",
        refused.1
    );

    // Terminate → TERMINATED; the input stays, Dapr's terminate carries no
    // output; terminating a finished instance again is accepted (daprd).
    let terminated = call(
        &node,
        Method::POST,
        "/v1.0/workflows/dapr/order-1/terminate",
        "",
    )
    .await;
    assert_eq!(terminated, (StatusCode::ACCEPTED, json!({})));
    let (_, got) = call(&node, Method::GET, "/v1.0/workflows/dapr/order-1", "").await;
    assert_eq!(got["runtimeStatus"], "TERMINATED", "{got}");
    assert_eq!(
        properties(&got),
        BTreeMap::from([("dapr.workflow.input".into(), r#"{"order":7}"#.into())])
    );
    assert!(parse_time(&got["lastUpdatedAt"]) >= parse_time(&got["createdAt"]));
    let twice = call(
        &node,
        Method::POST,
        "/v1.0-alpha1/workflows/dapr/order-1/terminate",
        "",
    )
    .await;
    assert_eq!(twice.0, StatusCode::ACCEPTED, "{}", twice.1);

    // The list API, with and without status filters (sorted by id).
    let mut all = vec![
        (generated.clone(), "PENDING".to_owned()),
        ("order-1".to_owned(), "TERMINATED".to_owned()),
        ("text-1".to_owned(), "PENDING".to_owned()),
    ];
    all.sort();
    assert_eq!(list(&node, "").await, all);
    assert_eq!(
        list(&node, "?status=TERMINATED").await,
        [("order-1".to_owned(), "TERMINATED".to_owned())]
    );
    let pending: Vec<_> = all
        .iter()
        .filter(|(_, s)| s == "PENDING")
        .cloned()
        .collect();
    assert_eq!(list(&node, "?status=PENDING").await, pending);
    assert_eq!(list(&node, "?status=pending,terminated").await, all);
    assert_eq!(
        list(&node, "?status=RUNNING&status=TERMINATED").await,
        [("order-1".to_owned(), "TERMINATED".to_owned())]
    );
    assert!(list(&node, "?status=COMPLETED,FAILED").await.is_empty());

    // Purge a finished instance (purge is served under alpha1 too, as in
    // daprd): it is gone from every route and from the list.
    let purged = call(
        &node,
        Method::POST,
        "/v1.0-alpha1/workflows/dapr/order-1/purge",
        "",
    )
    .await;
    assert_eq!(purged, (StatusCode::ACCEPTED, json!({})));
    let gone = call(&node, Method::GET, "/v1.0/workflows/dapr/order-1", "").await;
    assert_eq!(
        gone,
        (
            StatusCode::NOT_FOUND,
            json!({
                "errorCode": "ERR_INSTANCE_ID_NOT_FOUND",
                "message": "unable to find workflow with the provided instance ID: order-1",
            })
        )
    );
    assert_error(
        &call(
            &node,
            Method::POST,
            "/v1.0/workflows/dapr/order-1/purge",
            "",
        )
        .await,
        StatusCode::NOT_FOUND,
        "ERR_INSTANCE_ID_NOT_FOUND",
    );
    assert!(list(&node, "?status=TERMINATED").await.is_empty());

    // A purged id can be used again.
    let reused = call(
        &node,
        Method::POST,
        "/v1.0/workflows/dapr/Other/start?instanceID=order-1",
        "1",
    )
    .await;
    assert_eq!(
        reused,
        (StatusCode::ACCEPTED, json!({"instanceID": "order-1"}))
    );
    let (_, got) = call(&node, Method::GET, "/v1.0/workflows/dapr/order-1", "").await;
    assert_eq!(got["workflowName"], "Other");
    assert_eq!(got["properties"]["dapr.workflow.input"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bad_input_has_daprs_status_and_code() {
    let node = node(true).await;
    let (status, _) = call(
        &node,
        Method::POST,
        "/v1.0/workflows/dapr/Flow/start?instanceID=known",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // An unknown workflow component, on every route.
    for (method, path) in [
        (Method::POST, "Flow/start?instanceID=x1"),
        (Method::GET, "known"),
        (Method::POST, "known/terminate"),
        (Method::POST, "known/pause"),
        (Method::POST, "known/resume"),
        (Method::POST, "known/purge"),
        (Method::POST, "known/raiseEvent/go"),
    ] {
        for version in ["v1.0", "v1.0-beta1", "v1.0-alpha1"] {
            let uri = format!("/{version}/workflows/temporal/{path}");
            let answer = call(&node, method.clone(), &uri, "").await;
            assert_error(
                &answer,
                StatusCode::BAD_REQUEST,
                "ERR_WORKFLOW_COMPONENT_NOT_FOUND",
            );
            assert!(
                answer.1["message"].as_str().unwrap().contains("'temporal'"),
                "{uri}: {}",
                answer.1
            );
        }
    }
    assert_error(
        &call(&node, Method::GET, "/v1.0-alpha1/workflows/temporal", "").await,
        StatusCode::BAD_REQUEST,
        "ERR_WORKFLOW_COMPONENT_NOT_FOUND",
    );
    // Nothing was started by the refused start.
    assert_error(
        &call(&node, Method::GET, "/v1.0/workflows/dapr/x1", "").await,
        StatusCode::NOT_FOUND,
        "ERR_INSTANCE_ID_NOT_FOUND",
    );

    // Bad instance ids on start.
    let long = "a".repeat(65);
    for (id, code) in [
        ("bad.id", "ERR_INSTANCE_ID_INVALID"),
        ("a%20b", "ERR_INSTANCE_ID_INVALID"),
        ("p%3A0001", "ERR_INSTANCE_ID_INVALID"),
        (long.as_str(), "ERR_INSTANCE_ID_TOO_LONG"),
    ] {
        let answer = call(
            &node,
            Method::POST,
            &format!("/v1.0/workflows/dapr/Flow/start?instanceID={id}"),
            "",
        )
        .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, code);
    }
    // 64 characters is the longest id.
    let longest = "b".repeat(64);
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("/v1.0/workflows/dapr/Flow/start?instanceID={longest}"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // A missing event name.
    for path in ["known/raiseEvent", "known/raiseEvent/"] {
        assert_error(
            &call(
                &node,
                Method::POST,
                &format!("/v1.0/workflows/dapr/{path}"),
                "1",
            )
            .await,
            StatusCode::BAD_REQUEST,
            "ERR_WORKFLOW_EVENT_NAME_MISSING",
        );
    }

    // An unknown instance, on every route and version.
    for (method, path) in [
        (Method::GET, ""),
        (Method::POST, "/terminate"),
        (Method::POST, "/pause"),
        (Method::POST, "/resume"),
        (Method::POST, "/purge"),
        (Method::POST, "/raiseEvent/go"),
    ] {
        for version in ["v1.0", "v1.0-beta1", "v1.0-alpha1"] {
            let uri = format!("/{version}/workflows/dapr/nobody{path}");
            let answer = call(&node, method.clone(), &uri, "").await;
            assert_error(&answer, StatusCode::NOT_FOUND, "ERR_INSTANCE_ID_NOT_FOUND");
            assert!(
                answer.1["message"].as_str().unwrap().contains("nobody"),
                "{uri}: {}",
                answer.1
            );
        }
    }
    // None of those created the instance.
    assert!(!list(&node, "").await.iter().any(|(id, _)| id == "nobody"));

    // A bad status filter names the status.
    let bad = call(
        &node,
        Method::GET,
        "/v1.0-alpha1/workflows/dapr?status=RUNNING,DONE",
        "",
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    assert!(
        bad.1["message"].as_str().unwrap().contains("\"DONE\""),
        "{}",
        bad.1
    );

    // This app's own id is fine; another app's workflows are not reachable.
    let (status, body) = call(
        &node,
        Method::GET,
        "/v1.0/workflows/dapr/known?appID=test-app",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &call(
            &node,
            Method::POST,
            "/v1.0/workflows/dapr/Flow/start?instanceID=x2&appID=billing",
            "",
        )
        .await,
        StatusCode::NOT_IMPLEMENTED,
        "ERR_API_UNIMPLEMENTED",
    );

    // Commands are POST only.
    let (status, _) = call(
        &node,
        Method::GET,
        "/v1.0/workflows/dapr/known/terminate",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (_, got) = call(&node, Method::GET, "/v1.0/workflows/dapr/known", "").await;
    assert_eq!(got["runtimeStatus"], "PENDING", "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_actor_state_store_workflows_are_a_clear_error() {
    let node = node(false).await;
    let answer = call(
        &node,
        Method::POST,
        "/v1.0/workflows/dapr/Flow/start?instanceID=w1",
        "",
    )
    .await;
    assert_error(
        &answer,
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_WORKFLOW_ENGINE",
    );
    assert!(
        answer.1["message"]
            .as_str()
            .unwrap()
            .contains("actor state store"),
        "{}",
        answer.1
    );
    assert_error(
        &call(&node, Method::GET, "/v1.0/workflows/dapr/w1", "").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_WORKFLOW_ENGINE",
    );
}

// === gRPC ===

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
