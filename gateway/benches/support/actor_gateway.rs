//! The gateway of the actors benchmark: the real `outrigger` binary, one
//! per actor state store, in front of the benchmark's actor app.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};

use super::actor_app::ACTOR_TYPE;

/// The gateway for one actor state store, and how to reach it.
pub(crate) struct Gateway {
    pub(crate) child: tokio::process::Child,
    pub(crate) pid: Option<u32>,
    /// `http://127.0.0.1:PORT/v1.0/actors/Bench/`.
    pub(crate) actors: String,
    /// Its gRPC API.
    pub(crate) grpc: std::net::SocketAddr,
}

/// Start the real `outrigger` binary for `store` (its resource `yaml`) in
/// front of the app on `app_port`, and wait until it hosts actors.
pub(crate) async fn start_gateway(
    client: &crate::Http,
    dir: &std::path::Path,
    store: &str,
    yaml: &str,
    app_port: u16,
    sockets: &std::path::Path,
) -> Gateway {
    let resources = dir.join(format!("resources-{store}"));
    std::fs::create_dir_all(&resources).unwrap();
    std::fs::write(resources.join("actorstore.yaml"), yaml).unwrap();
    let (http_port, grpc_port) = (crate::free_port(), crate::free_port());
    // Its log goes to a file, summarised after the rows (warnings are findings).
    let log = std::fs::File::create(dir.join(format!("gateway-{store}.log"))).unwrap();
    let child = crate::support::gateway_cmd::command("bench")
        .args(["--app-port", &app_port.to_string()])
        .args(["--dapr-http-port", &http_port.to_string()])
        .args(["--dapr-grpc-port", &grpc_port.to_string()])
        .arg("--resources-path")
        .arg(&resources)
        .arg("--components-sockets-folder")
        .arg(sockets)
        .arg("--registry-folder")
        .arg(dir.join("registry"))
        .env("NO_COLOR", "1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{http_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = http::Request::get(format!("{base}/v1.0/metadata"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        if let Ok(response) = client.request(request).await {
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let meta: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if meta["actorRuntime"]["hostReady"] == true {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the {store} gateway never hosted actors"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Gateway {
        pid: child.id(),
        child,
        actors: format!("{base}/v1.0/actors/{ACTOR_TYPE}/"),
        grpc: std::net::SocketAddr::from(([127, 0, 0, 1], grpc_port)),
    }
}
