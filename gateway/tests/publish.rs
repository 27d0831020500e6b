//! Publishing through the gateway: the CloudEvents envelope exactly as Dapr
//! builds it, pass-through of the app's own CloudEvents, raw payloads, bulk
//! publish with per-entry failures, and Dapr's error codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use support::Stack;
use tower::ServiceExt;

async fn post(
    stack: &Stack,
    uri: &str,
    content_type: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("content-type", content_type)
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = stack.router().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn last_event(stack: &Stack) -> (support::Published, serde_json::Value) {
    let published = stack.published.clone();
    let last = published
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("something was published");
    let event = serde_json::from_slice(&last.data).unwrap_or(serde_json::Value::Null);
    (published, event)
}

#[tokio::test]
async fn json_body_is_wrapped_in_a_cloudevent() {
    let stack = Stack::start(None).await;
    let (status, _) = post(
        &stack,
        "/v1.0/publish/pubsub/orders/eu",
        "application/json",
        r#"{"id":7}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (published, event) = last_event(&stack);
    let request = published.lock().unwrap().last().cloned().unwrap();
    assert_eq!(request.topic, "orders/eu", "topics may contain '/'");
    assert_eq!(request.pubsub_name, "pubsub");
    assert_eq!(event["data"], serde_json::json!({"id": 7}));
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["source"], "test-app");
    assert_eq!(event["type"], "com.dapr.event.sent");
    assert_eq!(event["topic"], "orders/eu");
    assert_eq!(event["pubsubname"], "pubsub");
    // The caller's trace, continued by the gateway's publish span (as daprd).
    let parent = event["traceparent"].as_str().unwrap_or_default();
    assert!(
        parent.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && parent.ends_with("-01"),
        "{parent}"
    );
    assert_ne!(
        parent,
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(event["traceid"], event["traceparent"]);
    assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(event["time"].is_string());
}

#[tokio::test]
async fn text_binary_raw_and_ttl() {
    let stack = Stack::start(None).await;
    post(&stack, "/v1.0/publish/pubsub/t", "text/plain", "hello").await;
    assert_eq!(last_event(&stack).1["data"], "hello");

    post(
        &stack,
        "/v1.0/publish/pubsub/t",
        "application/octet-stream",
        "\u{1}\u{2}",
    )
    .await;
    let (_, event) = last_event(&stack);
    assert_eq!(event["data_base64"], "AQI=", "{event}");
    assert!(event.get("data").is_none());

    post(
        &stack,
        "/v1.0/publish/pubsub/t?metadata.rawPayload=true",
        "text/plain",
        "not wrapped",
    )
    .await;
    let raw = stack.published.lock().unwrap().last().cloned().unwrap();
    assert_eq!(raw.data, b"not wrapped");
    assert!(!raw.metadata.contains_key("rawPayload"));

    post(
        &stack,
        "/v1.0/publish/pubsub/t?metadata.ttlInSeconds=60",
        "text/plain",
        "expiring",
    )
    .await;
    let (published, event) = last_event(&stack);
    assert!(
        event["expiration"].is_string(),
        "the component lacks MESSAGE_TTL: {event}"
    );
    assert_eq!(
        published.lock().unwrap().last().unwrap().metadata["ttlInSeconds"],
        "60"
    );

    post(
        &stack,
        "/v1.0/publish/pubsub/t?metadata.cloudevent.id=mine&metadata.cloudevent.type=my.type",
        "text/plain",
        "x",
    )
    .await;
    let (_, event) = last_event(&stack);
    assert_eq!(
        (event["id"].as_str(), event["type"].as_str()),
        (Some("mine"), Some("my.type"))
    );
}

#[tokio::test]
async fn existing_cloudevents_pass_through() {
    let stack = Stack::start(None).await;
    let own = r#"{"specversion":"1.0","id":"evt-1","source":"billing","type":"invoice.paid","myext":"kept","topic":"wrong","data":{"amount":3}}"#;
    let (status, _) = post(
        &stack,
        "/v1.0/publish/pubsub/invoices",
        "application/cloudevents+json",
        own,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, event) = last_event(&stack);
    assert_eq!(event["id"], "evt-1");
    assert_eq!(event["source"], "billing");
    assert_eq!(event["type"], "invoice.paid");
    assert_eq!(event["myext"], "kept");
    assert_eq!(event["topic"], "invoices", "topic is overwritten");
    assert_eq!(event["pubsubname"], "pubsub");
    assert_eq!(event["data"], serde_json::json!({"amount": 3}));

    let minimal = r#"{"data":"only data"}"#;
    post(
        &stack,
        "/v1.0/publish/pubsub/invoices",
        "application/cloudevents+json",
        minimal,
    )
    .await;
    let (_, event) = last_event(&stack);
    assert_eq!(
        event["source"], "test-app",
        "missing attributes are filled: {event}"
    );
    assert_eq!(event["specversion"], "1.0");
}

#[tokio::test]
async fn publish_errors_have_dapr_codes_and_publish_nothing() {
    let stack = Stack::start(None).await;
    let cases = [
        (
            "/v1.0/publish/nopubsub/t",
            "text/plain",
            "x",
            StatusCode::NOT_FOUND,
            "ERR_PUBSUB_NOT_FOUND",
        ),
        (
            "/v1.0/publish/pubsub/t?metadata.ttlInSeconds=soon",
            "text/plain",
            "x",
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_REQUEST_METADATA",
        ),
        (
            "/v1.0/publish/pubsub/t?metadata.rawPayload=maybe",
            "text/plain",
            "x",
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_REQUEST_METADATA",
        ),
        (
            "/v1.0/publish/pubsub/t",
            "application/cloudevents+json",
            "{not json",
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_PUBSUB_CLOUD_EVENTS_SER",
        ),
        (
            "/v1.0/publish/pubsub/t",
            "application/json",
            "{not json",
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_PUBSUB_CLOUD_EVENTS_SER",
        ),
        (
            "/v1.0/publish/pubsub/t",
            "text/plain",
            "reject me",
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_PUBSUB_PUBLISH_MESSAGE",
        ),
        (
            "/v1.0/publish/bulk/pubsub/t",
            "application/json",
            r#"[{"entryId":"a","event":1},{"entryId":"a","event":2}]"#,
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_EVENTS_SER",
        ),
        (
            "/v1.0/publish/bulk/pubsub/t",
            "application/json",
            r#"[{"event":1}]"#,
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_EVENTS_SER",
        ),
    ];
    for (uri, content_type, body, status, code) in cases {
        let (got, reply) = post(&stack, uri, content_type, body).await;
        assert_eq!(got, status, "{uri}: {reply}");
        assert_eq!(reply["errorCode"], code, "{uri}: {reply}");
    }
    assert!(
        stack.published.lock().unwrap().is_empty(),
        "nothing reached the broker"
    );
}

#[tokio::test]
async fn bulk_publish_reports_failed_entries() {
    let stack = Stack::start(None).await;
    let body = r#"[{"entryId":"1","event":{"n":1},"contentType":"application/json"},
                   {"entryId":"2","event":"reject this","contentType":"text/plain"},
                   {"entryId":"3","event":"fine"}]"#;
    let (status, reply) = post(
        &stack,
        "/v1.0-alpha1/publish/bulk/pubsub/t",
        "application/json",
        body,
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{reply}");
    assert_eq!(reply["errorCode"], "ERR_PUBSUB_PUBLISH_MESSAGE");
    assert_eq!(
        reply["failedEntries"].as_array().unwrap().len(),
        1,
        "{reply}"
    );
    assert_eq!(reply["failedEntries"][0]["entryId"], "2");
    let published = stack.published.lock().unwrap().clone();
    assert_eq!(published.len(), 2);
    let first: serde_json::Value = serde_json::from_slice(&published[0].data).unwrap();
    assert_eq!(first["data"], serde_json::json!({"n": 1}));

    let ok = r#"[{"entryId":"a","event":"x"}]"#;
    let (status, _) = post(
        &stack,
        "/v1.0/publish/bulk/pubsub/t",
        "application/json",
        ok,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
