//! Shared harness for the SDK's integration tests: serve components on a
//! real Unix socket in a temp folder, connect real tonic clients to it.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use outrigger_component_sdk::{ComponentServer, INSTANCE_HEADER, ServeError};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Request;
use tonic::transport::{Channel, Endpoint, Uri};

/// A running `ComponentServer`; dropping it stops the server.
pub struct Running {
    pub folder: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServeError>>>,
}

impl Running {
    /// Serve `build(server)` in a fresh temp folder and wait until `socket` accepts.
    pub async fn start(
        socket: &str,
        build: impl FnOnce(ComponentServer) -> ComponentServer,
    ) -> Self {
        let folder = tempfile::tempdir().expect("temp folder");
        let server =
            build(ComponentServer::new(folder.path()).grace_period(Duration::from_secs(2)));
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        let running = Self {
            folder,
            stop: Some(stop),
            handle: Some(handle),
        };
        wait_for_socket(&running.socket(socket)).await;
        running
    }

    pub fn socket(&self, name: &str) -> PathBuf {
        self.folder.path().join(format!("{name}.sock"))
    }

    /// Signal shutdown and wait for `serve` to return.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let handle = self.handle.take().expect("not stopped yet");
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("server stops within 10s")
            .expect("server task joins")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Poll until something accepts on `path` (bounded: 10 s).
pub async fn wait_for_socket(path: &Path) {
    for _ in 0..1000 {
        if UnixStream::connect(path).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never accepted connections", path.display());
}

/// A gRPC channel over the Unix socket at `path`.
pub async fn channel(path: &Path) -> Channel {
    let path = path.to_path_buf();
    Endpoint::from_static("http://component.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .expect("connect over the unix socket")
}

/// `message` addressed to component instance `instance`, as daprd sends it.
pub fn to<T>(instance: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        INSTANCE_HEADER,
        instance.parse().expect("ascii instance name"),
    );
    request
}
