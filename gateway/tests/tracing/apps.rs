//! The test apps: app A calls app B through its gateway, app B echoes,
//! the subscriber records deliveries; each records the `traceparent` it got.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A real HTTP call; the response's status, headers and body.
pub async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::post(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = client
        .request(
            request
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap(),
        )
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

pub type Seen = Arc<Mutex<Vec<String>>>;

pub fn traceparent(headers: &HeaderMap) -> String {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// App A: `/start` calls app B's `/echo` through its own gateway (found in
/// `gateway`), passing on the `traceparent` it was given, as Dapr asks apps to.
pub async fn app_a(seen: Seen, gateway: Arc<OnceLock<SocketAddr>>) -> u16 {
    let router = axum::Router::new().route(
        "/start",
        axum::routing::post(move |headers: HeaderMap| {
            let (seen, gateway) = (seen.clone(), gateway.clone());
            async move {
                let parent = traceparent(&headers);
                seen.lock().unwrap().push(parent.clone());
                let url = format!(
                    "http://{}/v1.0/invoke/app-b/method/echo",
                    gateway.get().unwrap()
                );
                let (_, _, body) = post(&url, &[("traceparent", &parent)], "from a").await;
                body
            }
        }),
    );
    serve(router).await
}

/// App B: `/echo` records the `traceparent` it got.
pub async fn app_b(seen: Seen) -> u16 {
    let router = axum::Router::new().route(
        "/echo",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(traceparent(&headers));
                format!("b got {body}")
            }
        }),
    );
    serve(router).await
}

pub async fn serve(router: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

/// The subscriber app: records each delivered CloudEvent and the
/// `traceparent` header it came with.
pub async fn subscriber(seen: Arc<Mutex<Vec<(serde_json::Value, String)>>>) -> u16 {
    let router = axum::Router::new()
        .route(
            "/dapr/subscribe",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!([
                    {"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}
                ]))
            }),
        )
        .route(
            "/orders",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                async move {
                    let event = serde_json::from_slice(&body).unwrap_or_default();
                    seen.lock().unwrap().push((event, traceparent(&headers)));
                    axum::Json(serde_json::json!({"status": "SUCCESS"}))
                }
            }),
        );
    serve(router).await
}
