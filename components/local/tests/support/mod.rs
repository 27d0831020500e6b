//! Harness: serve outrigger-local in-process on a temp socket folder and
//! talk to it with the generated clients, as a host would.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use outrigger_component_sdk::ComponentServer;
use outrigger_proto::components as pb;
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::{Channel, Endpoint, Uri};

pub struct Local {
    pub dir: tempfile::TempDir,
    pub channel: Channel,
    stop: CancellationToken,
}

impl Drop for Local {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn wait_socket(path: &Path) {
    for _ in 0..1000 {
        if UnixStream::connect(path).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never accepted", path.display());
}

pub async fn channel(path: &Path) -> Channel {
    let path = path.to_path_buf();
    Endpoint::from_static("http://local.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap()
}

impl Local {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sockets = dir.path().join("sockets");
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(
            outrigger_local::services(ComponentServer::new(&sockets))
                .serve(async move { token.cancelled().await }),
        );
        let socket = sockets.join("local.sock");
        wait_socket(&socket).await;
        let channel = channel(&socket).await;
        Self { dir, channel, stop }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("data.db")
    }

    pub fn socket(&self, name: &str) -> PathBuf {
        self.dir.path().join("sockets").join(format!("{name}.sock"))
    }
}

pub fn to<T>(instance: &str, message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("x-component-instance", instance.parse().unwrap());
    r
}

pub fn props(pairs: &[(&str, &str)]) -> Option<pb::MetadataRequest> {
    Some(pb::MetadataRequest {
        properties: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    })
}
