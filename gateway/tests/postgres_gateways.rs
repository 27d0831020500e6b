//! Two gateways, each with its own `outrigger-postgres` component (own
//! socket folder, own pool), on one PostgreSQL table: each sees the other's
//! writes, and an ETag race between them has exactly one winner.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use outrigger_component_sdk::ComponentServer;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct Side {
    _dir: tempfile::TempDir,
    gateway: outrigger::Gateway,
    stop: CancellationToken,
}

impl Drop for Side {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn side(url: &str, table: &str) -> Side {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(
        dir.path().join("resources/statestore.yaml"),
        format!(
            "kind: Component\nmetadata: {{name: statestore}}\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n  - {{name: connectionString, value: \"{url}\"}}\n  - {{name: tableName, value: {table}}}\n"
        ),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let component_stop = stop.clone();
    tokio::spawn(
        outrigger_postgres::services(ComponentServer::new(&sockets))
            .serve(async move { component_stop.cancelled().await }),
    );
    let socket = sockets.join("postgres.sock");
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gateway = outrigger::Gateway::start(support::config(dir.path(), None), stop.clone())
        .await
        .unwrap();
    Side {
        _dir: dir,
        gateway,
        stop,
    }
}

async fn call(
    side: &Side,
    method: Method,
    uri: &str,
    body: String,
) -> (StatusCode, Vec<u8>, Option<String>) {
    let response = outrigger::api::http::router(std::sync::Arc::clone(&side.gateway.runtime))
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, body, etag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_postgresql() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let table = format!("two_gw_{}", std::process::id());
    let (a, b) = (side(&url, &table).await, side(&url, &table).await);

    // A writes, B reads; B overwrites, A reads.
    let (status, _, _) = call(
        &a,
        Method::POST,
        "/v1.0/state/statestore",
        r#"[{"key":"shared","value":{"by":"a"}}]"#.into(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body, etag) = call(
        &b,
        Method::GET,
        "/v1.0/state/statestore/shared",
        String::new(),
    )
    .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, br#"{"by":"a"}"#.as_slice())
    );
    let etag = etag.expect("an ETag header");
    let (status, _, _) = call(
        &b,
        Method::POST,
        "/v1.0/state/statestore",
        r#"[{"key":"shared","value":{"by":"b"}}]"#.into(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body, _) = call(
        &a,
        Method::GET,
        "/v1.0/state/statestore/shared",
        String::new(),
    )
    .await;
    assert_eq!(body, br#"{"by":"b"}"#);

    // The ETag read before B's overwrite is stale on both gateways.
    let stale = format!(r#"[{{"key":"shared","value":1,"etag":"{etag}"}}]"#);
    for side in [&a, &b] {
        let (status, _, _) =
            call(side, Method::POST, "/v1.0/state/statestore", stale.clone()).await;
        assert_eq!(status, StatusCode::CONFLICT);
    }

    // Race: 16 writers, half on each gateway, all holding the same fresh ETag.
    let (_, _, fresh) = call(
        &a,
        Method::GET,
        "/v1.0/state/statestore/shared",
        String::new(),
    )
    .await;
    let fresh = fresh.unwrap();
    let mut racers = tokio::task::JoinSet::new();
    let sides = std::sync::Arc::new((a, b));
    for i in 0..16 {
        let sides = std::sync::Arc::clone(&sides);
        let body = format!(r#"[{{"key":"shared","value":{{"winner":{i}}},"etag":"{fresh}"}}]"#);
        racers.spawn(async move {
            let side = if i % 2 == 0 { &sides.0 } else { &sides.1 };
            (
                i,
                call(side, Method::POST, "/v1.0/state/statestore", body)
                    .await
                    .0,
            )
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = racers.join_next().await {
        let (i, status) = joined.unwrap();
        match status {
            StatusCode::NO_CONTENT => winners.push(i),
            StatusCode::CONFLICT => {}
            other => panic!("racer {i}: unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one ETag winner, got {winners:?}");
    let (_, body, _) = call(
        &sides.1,
        Method::GET,
        "/v1.0/state/statestore/shared",
        String::new(),
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({ "winner": winners[0] }),
        "both gateways read the winner's value"
    );
}
