//! The configuration API on both protocols against a real component socket:
//! reads, daprd's status and error codes for bad input, and the
//! subscribe → id → unsubscribe life cycle. Changes flowing end to end are
//! covered on PostgreSQL by `run_e2e::run_with_configuration_on_postgresql`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use outrigger_proto::runtime as pb;
use pb::dapr_client::DaprClient;
use support::Stack;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;
use tower::ServiceExt;

async fn get(stack: &Stack, uri: &str) -> (StatusCode, serde_json::Value) {
    let response = stack
        .router()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

#[tokio::test]
async fn http_reads_and_bad_input() {
    let stack = Stack::start(None).await;
    for version in ["v1.0", "v1.0-alpha1"] {
        let (status, body) = get(
            &stack,
            &format!("/{version}/configuration/configstore?key=color&key=absent"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{version}");
        assert_eq!(
            body,
            serde_json::json!({"color": {"value": "red", "version": "1", "metadata": {}}})
        );
    }
    let (status, _) = get(&stack, "/v1.0/configuration/configstore?key=absent").await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let cases = [
        (
            "/v1.0/configuration/nostore?key=color",
            StatusCode::BAD_REQUEST,
            "ERR_CONFIGURATION_STORE_NOT_FOUND",
        ),
        (
            "/v1.0/configuration/configstore?key=",
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "/v1.0/configuration/nostore/subscribe?key=color",
            StatusCode::BAD_REQUEST,
            "ERR_CONFIGURATION_STORE_NOT_FOUND",
        ),
        // The test gateway has no --app-port: nowhere to POST updates.
        (
            "/v1.0/configuration/configstore/subscribe?key=color",
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_APP_CHANNEL_NIL",
        ),
        (
            "/v1.0/configuration/nostore/some-id/unsubscribe",
            StatusCode::BAD_REQUEST,
            "ERR_CONFIGURATION_STORE_NOT_FOUND",
        ),
    ];
    for (uri, want_status, want_code) in cases {
        let (status, body) = get(&stack, uri).await;
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (want_status, Some(want_code)),
            "{uri}: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{uri}: {body}"
        );
    }

    let (status, body) = get(
        &stack,
        "/v1.0/configuration/configstore/no-such-id/unsubscribe",
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["ok"], false);
    assert!(
        body["message"].as_str().unwrap().contains("no-such-id"),
        "{body}"
    );

    // Bad requests changed nothing: the item reads as before.
    let (_, body) = get(&stack, "/v1.0/configuration/configstore?key=color").await;
    assert_eq!(body["color"]["value"], "red");
}

#[tokio::test]
async fn grpc_reads_subscriptions_and_bad_input() {
    let stack = Stack::start(None).await;
    let mut c = DaprClient::connect(format!("http://{}", stack.gateway.grpc_addr))
        .await
        .unwrap();
    let got = c
        .get_configuration(pb::GetConfigurationRequest {
            store_name: "configstore".into(),
            keys: vec!["color".into(), "absent".into()],
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.items.len(), 1);
    assert_eq!(got.items["color"].value, "red");

    let unknown = c
        .get_configuration_alpha1(pb::GetConfigurationRequest {
            store_name: "nostore".into(),
            keys: vec!["color".into()],
            metadata: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (unknown.code(), reason(&unknown).as_str()),
        (Code::InvalidArgument, "ERR_CONFIGURATION_STORE_NOT_FOUND")
    );
    let empty = c
        .get_configuration(pb::GetConfigurationRequest {
            store_name: "configstore".into(),
            keys: vec![String::new()],
            metadata: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (empty.code(), reason(&empty).as_str()),
        (Code::InvalidArgument, "ERR_MALFORMED_REQUEST")
    );

    // Subscribe: the first message carries the id and no items.
    let mut stream = c
        .subscribe_configuration(pb::SubscribeConfigurationRequest {
            store_name: "configstore".into(),
            keys: vec!["color".into()],
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.id.is_empty() && first.items.is_empty(), "{first:?}");

    let wrong_store = c
        .unsubscribe_configuration(pb::UnsubscribeConfigurationRequest {
            store_name: "nostore".into(),
            id: first.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong_store.code(), Code::InvalidArgument);

    let done = c
        .unsubscribe_configuration(pb::UnsubscribeConfigurationRequest {
            store_name: "configstore".into(),
            id: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(done.ok, "{done:?}");
    // Unsubscribing ends the stream.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ends after unsubscribe");
    assert!(ended.is_none(), "{ended:?}");

    let again = c
        .unsubscribe_configuration_alpha1(pb::UnsubscribeConfigurationRequest {
            store_name: "configstore".into(),
            id: first.id,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.ok && !again.message.is_empty(), "{again:?}");
}
