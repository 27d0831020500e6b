//! Actors over the gateway's gRPC API: the client rpcs (`InvokeActor`,
//! state, reminders, timers) against the HTTP API's runtime, and a gRPC app
//! hosting actors over `SubscribeActorEventsAlpha1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod actor_harness;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};

use actor_harness::*;

/// The gRPC actor rpcs reach the same runtime as HTTP, and read each
/// other's writes; bad input is `INVALID_ARGUMENT` naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_actor_api() {
    use outrigger_proto::runtime as pb;
    let db = tempfile::tempdir().unwrap();
    let yaml = sqlite_yaml(&db.path().join("actors.db"));
    let seen = Arc::new(Seen::default());
    let node = node(
        "local",
        &yaml,
        Some((0, Arc::clone(&seen), config(serde_json::json!({})))),
    )
    .await;
    host_ready(&node).await;
    let mut client =
        pb::dapr_client::DaprClient::connect(format!("http://{}", node.gateway.grpc_addr))
            .await
            .unwrap();

    let reply = client
        .invoke_actor(pb::InvokeActorRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            method: "work".into(),
            data: b"7".to_vec(),
            metadata: HashMap::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.data, br#"{"app":0,"got":"7"}"#);
    let failed = client
        .invoke_actor(pb::InvokeActorRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            method: "fail".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(failed.code(), tonic::Code::Internal);
    assert_eq!(failed.message(), "it broke");

    // gRPC stores raw bytes; HTTP reads them back as stored.
    client
        .execute_actor_state_transaction(pb::ExecuteActorStateTransactionRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            operations: vec![pb::TransactionalActorStateOperation {
                operation_type: "upsert".into(),
                key: "k".into(),
                value: Some(prost_types::Any {
                    type_url: String::new(),
                    value: b"raw".to_vec(),
                }),
                metadata: HashMap::new(),
            }],
        })
        .await
        .unwrap();
    let state = client
        .get_actor_state(pb::GetActorStateRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            key: "k".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state.data, b"raw");
    let (_, body) = call(&node, Method::GET, "/v1.0/actors/Counter/g1/state/k", "").await;
    assert_eq!(body, "raw");

    // Reminders: register, get, list, unregister by type.
    client
        .register_actor_reminder(pb::RegisterActorReminderRequest {
            actor_type: "Counter".into(),
            actor_id: "g2".into(),
            name: "later".into(),
            due_time: "1h".into(),
            data: br#"{"n":1}"#.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let got = client
        .get_actor_reminder(pb::GetActorReminderRequest {
            actor_type: "Counter".into(),
            actor_id: "g2".into(),
            name: "later".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.due_time.as_deref(), Some("1h"));
    // Stored as daprd does: the JSON of the raw bytes, a base64 string.
    assert_eq!(got.data.unwrap().value, br#""eyJuIjoxfQ==""#);
    let listed = client
        .list_actor_reminders(pb::ListActorRemindersRequest {
            actor_type: "Counter".into(),
            actor_id: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.reminders.len(), 1);
    assert_eq!(listed.reminders[0].name, "later");
    client
        .unregister_actor_reminders_by_type(pb::UnregisterActorRemindersByTypeRequest {
            actor_type: "Counter".into(),
            actor_id: None,
        })
        .await
        .unwrap();
    let missing = client
        .get_actor_reminder(pb::GetActorReminderRequest {
            actor_type: "Counter".into(),
            actor_id: "g2".into(),
            name: "later".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // Timers over gRPC fire like HTTP ones.
    client
        .register_actor_timer(pb::RegisterActorTimerRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            name: "t".into(),
            due_time: "0s".into(),
            period: "R2/PT0.05S".into(),
            callback: "cb".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_for("two gRPC timer firings", 5, || {
        seen.count("timer", "g1") == 2
    })
    .await;

    // Bad input.
    let empty = client
        .invoke_actor(pb::InvokeActorRequest {
            actor_type: "Counter".into(),
            method: "work".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    assert!(empty.message().contains("actor id"), "{}", empty.message());
    let bad = client
        .register_actor_reminder(pb::RegisterActorReminderRequest {
            actor_type: "Counter".into(),
            actor_id: "g2".into(),
            name: "r".into(),
            period: "sometimes".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().starts_with("period"), "{}", bad.message());
    let op = client
        .execute_actor_state_transaction(pb::ExecuteActorStateTransactionRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            operations: vec![pb::TransactionalActorStateOperation {
                operation_type: "merge".into(),
                key: "k".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(op.code(), tonic::Code::InvalidArgument);
    let meta = client
        .get_metadata(pb::GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    let runtime = meta.actor_runtime.unwrap();
    assert!(runtime.host_ready);
    assert!(
        runtime
            .active_actors
            .iter()
            .any(|a| a.r#type == "Counter" && a.count >= 1)
    );
}

/// A gRPC app hosts actors over `SubscribeActorEventsAlpha1`: it registers
/// its types, answers invoke, reminder and deactivate requests by id, and
/// when its stream ends the gateway stops hosting (so it can register again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_app_hosts_actors_over_the_event_stream() {
    use outrigger_proto::runtime as pb;
    use pb::subscribe_actor_events_request_alpha1::RequestType as In;
    use pb::subscribe_actor_events_response_alpha1::ResponseType as Out;
    let db = tempfile::tempdir().unwrap();
    let yaml = sqlite_yaml(&db.path().join("actors.db"));
    let node = Arc::new(node("local", &yaml, None).await);
    let mut client =
        pb::dapr_client::DaprClient::connect(format!("http://{}", node.gateway.grpc_addr))
            .await
            .unwrap();

    // A first message that is not a registration is refused.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(pb::SubscribeActorEventsRequestAlpha1 {
        request_type: Some(In::InvokeResponse(Default::default())),
    })
    .await
    .unwrap();
    let refused = client
        .subscribe_actor_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("initial_request"),
        "{}",
        refused.message()
    );

    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(pb::SubscribeActorEventsRequestAlpha1 {
        request_type: Some(In::InitialRequest(
            pb::SubscribeActorEventsRequestInitialAlpha1 {
                entities: vec!["Streamed".into()],
                actor_idle_timeout: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let mut events = client
        .subscribe_actor_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = events.message().await.unwrap().unwrap();
    assert!(matches!(first.response_type, Some(Out::InitialResponse(_))));

    // The app side: answer every request, recording what came.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorded = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok(Some(message)) = events.message().await {
            let reply = match message.response_type {
                Some(Out::InvokeRequest(r)) => {
                    recorded
                        .lock()
                        .unwrap()
                        .push(format!("invoke {} {}", r.actor_id, r.method));
                    if r.method == "nope" {
                        In::RequestFailed(pb::SubscribeActorEventsRequestFailedAlpha1 {
                            id: r.id,
                            code: tonic::Code::NotFound as u32,
                            message: "no method nope".into(),
                        })
                    } else {
                        let mut data = b"echo:".to_vec();
                        data.extend(r.data);
                        In::InvokeResponse(pb::SubscribeActorEventsRequestInvokeResponseAlpha1 {
                            id: r.id,
                            data,
                            error: r.method == "boom",
                            ..Default::default()
                        })
                    }
                }
                Some(Out::ReminderRequest(r)) => {
                    let data = r.data.map(|d| d.type_url).unwrap_or_default();
                    recorded
                        .lock()
                        .unwrap()
                        .push(format!("remind {} {} {data}", r.actor_id, r.name));
                    In::ReminderResponse(pb::SubscribeActorEventsRequestReminderResponseAlpha1 {
                        id: r.id,
                        cancel: true,
                    })
                }
                Some(Out::DeactivateRequest(r)) => {
                    recorded
                        .lock()
                        .unwrap()
                        .push(format!("deactivate {}", r.actor_id));
                    In::DeactivateResponse(
                        pb::SubscribeActorEventsRequestDeactivateResponseAlpha1 { id: r.id },
                    )
                }
                _ => continue,
            };
            if tx
                .send(pb::SubscribeActorEventsRequestAlpha1 {
                    request_type: Some(reply),
                })
                .await
                .is_err()
            {
                break;
            }
        }
    });
    host_ready(&node).await;

    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Streamed/s1/method/hello",
        "42",
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "echo:42"));
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Streamed/s1/method/boom",
        "x",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "echo:x")
    );
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Streamed/s1/method/nope",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("ERR_ACTOR_INVOKE_METHOD") && body.contains("no method nope"),
        "{body}"
    );

    // A reminder arrives on the stream with its data as a BytesValue; the app cancels it.
    call(
        &node,
        Method::POST,
        "/v1.0/actors/Streamed/s2/reminders/r",
        r#"{"period":"100ms","data":{"a":1}}"#,
    )
    .await;
    let remind = "remind s2 r type.googleapis.com/google.protobuf.BytesValue".to_owned();
    wait_for("the reminder on the stream", 5, || {
        seen.lock().unwrap().contains(&remind)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let fired = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| **s == remind)
        .count();
    assert_eq!(fired, 1, "cancel: true ends the reminder");

    // Idle actors are deactivated through the stream.
    wait_for("deactivation on the stream", 5, || {
        seen.lock().unwrap().iter().any(|s| s == "deactivate s1")
    })
    .await;
}
