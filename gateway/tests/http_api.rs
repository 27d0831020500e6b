//! The HTTP API against real components: daprd's status codes and error
//! codes for good and bad input, and no stored data changed by a rejected
//! request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use support::Stack;
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    fn error_code(&self) -> String {
        self.json()["errorCode"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn call(
    stack: &Stack,
    method: Method,
    uri: &str,
    body: impl Into<Body>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = stack
        .router()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get_key(stack: &Stack, key: &str) -> Reply {
    call(
        stack,
        Method::GET,
        &format!("/v1.0/state/statestore/{key}"),
        Body::empty(),
        &[],
    )
    .await
}

#[tokio::test]
async fn save_get_delete_round_trip() {
    let stack = Stack::start(None).await;
    let saved = call(
        &stack,
        Method::POST,
        "/v1.0/state/statestore",
        r#"[{"key":"order","value":{"id":7}},{"key":"name","value":"ada"}]"#,
        &[],
    )
    .await;
    assert_eq!(
        saved.status,
        StatusCode::NO_CONTENT,
        "{:?}",
        String::from_utf8_lossy(&saved.body)
    );
    assert!(saved.body.is_empty());

    let got = get_key(&stack, "order").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, br#"{"id":7}"#);
    assert!(got.headers.get("etag").is_some(), "ETag header");
    // A JSON string is stored with its quotes.
    assert_eq!(get_key(&stack, "name").await.body, br#""ada""#);

    let deleted = call(
        &stack,
        Method::DELETE,
        "/v1.0/state/statestore/order",
        Body::empty(),
        &[],
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let missing = get_key(&stack, "order").await;
    assert_eq!(
        missing.status,
        StatusCode::NO_CONTENT,
        "missing key is 204, not 404"
    );
    assert!(missing.body.is_empty());
}

#[tokio::test]
async fn etags_conflict_and_malformed() {
    let stack = Stack::start(None).await;
    call(
        &stack,
        Method::POST,
        "/v1.0/state/statestore",
        r#"[{"key":"k","value":1}]"#,
        &[],
    )
    .await;
    let etag = get_key(&stack, "k").await.headers["etag"]
        .to_str()
        .unwrap()
        .to_owned();

    let stale = format!(
        r#"[{{"key":"k","value":2,"etag":"{}"}}]"#,
        etag.parse::<u64>().unwrap() + 5
    );
    let conflict = call(&stack, Method::POST, "/v1.0/state/statestore", stale, &[]).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.error_code(), "ERR_STATE_SAVE");

    let malformed = call(
        &stack,
        Method::POST,
        "/v1.0/state/statestore",
        r#"[{"key":"k","value":3,"etag":"abc"}]"#,
        &[],
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.error_code(), "ERR_STATE_SAVE");

    let wrong_delete = call(
        &stack,
        Method::DELETE,
        "/v1.0/state/statestore/k",
        Body::empty(),
        &[("if-match", "999")],
    )
    .await;
    assert_eq!(wrong_delete.status, StatusCode::CONFLICT);
    assert_eq!(wrong_delete.error_code(), "ERR_STATE_DELETE");

    assert_eq!(
        get_key(&stack, "k").await.body,
        b"1",
        "rejected writes changed nothing"
    );

    let ok = call(
        &stack,
        Method::POST,
        "/v1.0/state/statestore",
        format!(r#"[{{"key":"k","value":4,"etag":"{etag}"}}]"#),
        &[],
    )
    .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bad_input_gets_dapr_error_codes() {
    let stack = Stack::start(None).await;
    call(
        &stack,
        Method::POST,
        "/v1.0/state/statestore",
        r#"[{"key":"keep","value":"v"}]"#,
        &[],
    )
    .await;
    let cases: &[(&str, &str, StatusCode, &str)] = &[
        (
            "/v1.0/state/statestore",
            "not json",
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "/v1.0/state/statestore",
            r#"[{"value":1}]"#,
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "/v1.0/state/statestore",
            r#"[{"key":"a||b","value":1}]"#,
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "/v1.0/state/nostore",
            r#"[{"key":"a","value":1}]"#,
            StatusCode::BAD_REQUEST,
            "ERR_STATE_STORE_NOT_FOUND",
        ),
        (
            "/v1.0/state/statestore",
            r#"[{"key":"keep","value":1,"options":{"concurrency":"sometimes"}}]"#,
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "/v1.0/state/statestore?metadata.ttlInSeconds=soon",
            r#"[{"key":"keep","value":1}]"#,
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "/v1.0/state/statestore/bulk",
            r#"{"keys":"#,
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "/v1.0/state/statestore/transaction",
            r#"{"operations":[{"operation":"merge","request":{"key":"keep"}}]}"#,
            StatusCode::BAD_REQUEST,
            "ERR_NOT_SUPPORTED_STATE_OPERATION",
        ),
        (
            "/v1.0-alpha1/state/statestore/query",
            r#"{"filter":{}}"#,
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_STATE_STORE_NOT_SUPPORTED",
        ),
        (
            "/v1.0/bindings/echo",
            "{",
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
        ),
        (
            "/v1.0/bindings/nobinding",
            r#"{"operation":"create"}"#,
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_INVOKE_OUTPUT_BINDING",
        ),
    ];
    for (uri, body, status, code) in cases {
        let reply = call(&stack, Method::POST, uri, *body, &[]).await;
        assert_eq!(
            reply.status,
            *status,
            "{uri} {body}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.error_code(), *code, "{uri} {body}");
        assert!(
            !reply.json()["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{uri}: message"
        );
    }
    let oversize = format!(r#"[{{"key":"keep","value":"{}"}}]"#, "x".repeat(128 * 1024));
    let reply = call(
        &stack,
        Method::POST,
        "/v1.0/state/statestore",
        oversize,
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_code(), "ERR_BODY_READ");

    assert_eq!(
        get_key(&stack, "keep").await.body,
        br#""v""#,
        "no rejected request changed stored data"
    );

    let missing_secret_store = call(
        &stack,
        Method::GET,
        "/v1.0/secrets/nostore/x",
        Body::empty(),
        &[],
    )
    .await;
    assert_eq!(
        missing_secret_store.status,
        StatusCode::UNAUTHORIZED,
        "daprd's quirk"
    );
    assert_eq!(
        missing_secret_store.error_code(),
        "ERR_SECRET_STORE_NOT_FOUND"
    );
    let missing_secret = call(
        &stack,
        Method::GET,
        "/v1.0/secrets/vault/nope",
        Body::empty(),
        &[],
    )
    .await;
    assert_eq!(missing_secret.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(missing_secret.error_code(), "ERR_SECRET_GET");
    let unimplemented = call(
        &stack,
        Method::POST,
        "/v1.0-alpha1/lock/lockstore",
        "{}",
        &[],
    )
    .await;
    assert_eq!(unimplemented.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(unimplemented.error_code(), "ERR_API_UNIMPLEMENTED");
}

#[tokio::test]
async fn bulk_and_transaction() {
    let stack = Stack::start(None).await;
    let tx = r#"{"operations":[
        {"operation":"upsert","request":{"key":"a","value":{"n":1}}},
        {"operation":"upsert","request":{"key":"b","value":"two"}},
        {"operation":"delete","request":{"key":"c"}}]}"#;
    let reply = call(
        &stack,
        Method::POST,
        "/v1.0/state/statestore/transaction",
        tx,
        &[],
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let bulk = call(
        &stack,
        Method::POST,
        "/v1.0/state/statestore/bulk",
        r#"{"keys":["a","b","zz"]}"#,
        &[],
    )
    .await;
    assert_eq!(bulk.status, StatusCode::OK);
    let items = bulk.json();
    assert_eq!(items[0]["key"], "a");
    assert_eq!(items[0]["data"], serde_json::json!({"n":1}));
    assert!(items[0]["etag"].is_string());
    assert_eq!(items[1]["data"], "two");
    assert_eq!(items[2]["key"], "zz");
    assert!(
        items[2].get("data").is_none(),
        "missing key has no data: {}",
        items[2]
    );
}

#[tokio::test]
async fn secrets_bindings_metadata_health() {
    let stack = Stack::start(None).await;
    let secret = call(
        &stack,
        Method::GET,
        "/v1.0/secrets/vault/db-password",
        Body::empty(),
        &[],
    )
    .await;
    assert_eq!(secret.status, StatusCode::OK);
    assert_eq!(secret.json(), serde_json::json!({"password":"s3cret"}));
    let all = call(
        &stack,
        Method::GET,
        "/v1.0/secrets/vault/bulk",
        Body::empty(),
        &[],
    )
    .await;
    assert_eq!(all.json()["db-password"]["password"], "s3cret");

    // The binding's metadata came through its secretKeyRef.
    let invoked = call(
        &stack,
        Method::POST,
        "/v1.0/bindings/echo",
        r#"{"operation":"create","data":{"x":1}}"#,
        &[],
    )
    .await;
    assert_eq!(invoked.status, StatusCode::OK);
    assert_eq!(invoked.body, br#"{"x":1}"#);
    assert_eq!(invoked.headers["metadata.password-seen"], "s3cret");

    let put = call(&stack, Method::PUT, "/v1.0/metadata/team", "blue", &[]).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    let meta = call(&stack, Method::GET, "/v1.0/metadata", Body::empty(), &[])
        .await
        .json();
    assert_eq!(meta["id"], "test-app");
    assert_eq!(meta["extended"]["team"], "blue");
    let names: Vec<&str> = meta["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["configstore", "echo", "pubsub", "statestore", "vault"]
    );
    let state = meta["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "statestore")
        .unwrap();
    assert_eq!(state["type"], "state.memory");
    assert_eq!(
        state["capabilities"],
        serde_json::json!(["ETAG", "TRANSACTIONAL"])
    );

    assert_eq!(
        call(&stack, Method::GET, "/v1.0/healthz", Body::empty(), &[])
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(
            &stack,
            Method::GET,
            "/v1.0/healthz/outbound",
            Body::empty(),
            &[]
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let wrong_app = call(
        &stack,
        Method::GET,
        "/v1.0/healthz?appid=other",
        Body::empty(),
        &[],
    )
    .await;
    assert_eq!(wrong_app.error_code(), "ERR_HEALTH_APPID_NOT_MATCH");
}

#[tokio::test]
async fn api_token_guards_everything_but_health() {
    let stack = Stack::start(Some("let-me-in")).await;
    let denied = call(
        &stack,
        Method::GET,
        "/v1.0/state/statestore/k",
        Body::empty(),
        &[],
    )
    .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.body, b"invalid api token", "plain text, as daprd");
    let wrong = call(
        &stack,
        Method::GET,
        "/v1.0/metadata",
        Body::empty(),
        &[("dapr-api-token", "nope")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let allowed = call(
        &stack,
        Method::GET,
        "/v1.0/state/statestore/k",
        Body::empty(),
        &[("dapr-api-token", "let-me-in")],
    )
    .await;
    assert_eq!(allowed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&stack, Method::GET, "/v1.0/healthz", Body::empty(), &[])
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}
