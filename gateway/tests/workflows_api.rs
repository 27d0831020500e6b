//! Dapr's workflow HTTP API (under `v1.0`, `v1.0-beta1`, `v1.0-alpha1`) and
//! Outrigger's list API, on one gateway whose actor state store is SQLite
//! (`outrigger-local`); the rpcs are in `workflows_grpc.rs`.
//!
//! No workflow worker connects, so instances never run a step: they stay
//! PENDING until paused, terminated or purged, which is what these tests
//! check, along with every bad-input answer (status and error code).
// The deprecated `…Alpha1` rpcs are part of the API under test.
#![allow(clippy::unwrap_used, clippy::expect_used, deprecated)]

mod support;
mod workflow_harness;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use serde_json::json;

use workflow_harness::*;

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
