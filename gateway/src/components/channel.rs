//! A gRPC channel over a Unix socket, and the interceptor that names the
//! component instance on every call (streams included).
//!
//! [`UdsChannel`] sends each call straight on one shared HTTP/2 connection
//! (hyper's `SendRequest`, which multiplexes concurrent calls), instead of
//! tonic's `Channel`, which queues every request through a buffer task:
//! that hand-off costs two task wake-ups per call, measurable next to a
//! ~100 µs loopback round trip (see BENCHMARKS.md). It connects on first
//! use and again after the component's process restarted.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;
use tonic::body::Body;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;

/// The header daprd sets to the component's YAML `metadata.name`.
pub const INSTANCE_HEADER: &str = "x-component-instance";

/// Longest a unary component call may take.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long connecting to a component socket may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a component call failed before the component answered.
pub type ChannelError = Box<dyn std::error::Error + Send + Sync>;

/// A lazily connected, self-healing HTTP/2 connection to one socket.
#[derive(Clone, Debug)]
pub struct UdsChannel {
    socket: Arc<PathBuf>,
    sender: Arc<Mutex<Option<SendRequest<Body>>>>,
}

/// A channel that connects (and reconnects) to `socket` on demand.
pub fn lazy(socket: &Path) -> UdsChannel {
    UdsChannel {
        socket: Arc::new(socket.to_path_buf()),
        sender: Arc::new(Mutex::new(None)),
    }
}

impl UdsChannel {
    /// The live connection's sender, or a new connection.
    async fn sender(&self) -> Result<SendRequest<Body>, ChannelError> {
        if let Ok(guard) = self.sender.lock()
            && let Some(sender) = guard.as_ref()
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        // Two callers may race to connect; the later one's connection wins
        // and the other is dropped when its calls finish. Harmless.
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&*self.socket))
            .await
            .map_err(|_| format!("connecting to {} timed out", self.socket.display()))??;
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await?;
        let socket = Arc::clone(&self.socket);
        // The connection task ends when the socket closes.
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(socket = %socket.display(), error = %err, "component connection ended");
            }
        });
        if let Ok(mut guard) = self.sender.lock() {
            *guard = Some(sender.clone());
        }
        Ok(sender)
    }
}

impl tower::Service<http::Request<Body>> for UdsChannel {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = ChannelError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is checked per call on the shared connection.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The caller's trace context (see `telemetry::within`) goes with
        // every component call as `traceparent` metadata.
        crate::telemetry::propagation::inject_http(
            &opentelemetry::Context::current(),
            request.headers_mut(),
        );
        let channel = self.clone();
        Box::pin(async move {
            // HTTP/2 needs an absolute URI; tonic sends only the path.
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            *request.uri_mut() = http::Uri::builder()
                .scheme("http")
                .authority("component")
                .path_and_query(path)
                .build()?;
            let mut sender = channel.sender().await?;
            sender.ready().await?;
            // A component that accepts but never answers must not hang the
            // app; streams are limited only until their headers arrive.
            let response = tokio::time::timeout(CALL_TIMEOUT, sender.send_request(request))
                .await
                .map_err(|_| format!("the component did not answer within {CALL_TIMEOUT:?}"))??;
            Ok(response)
        })
    }
}

/// Adds `x-component-instance: <name>` to each request.
#[derive(Clone, Debug)]
pub struct Instance(AsciiMetadataValue);

impl Instance {
    /// For component `name`; names that are not valid header values are
    /// rejected when resources load, so this falls back to empty.
    pub fn new(name: &str) -> Self {
        Self(MetadataValue::try_from(name).unwrap_or_else(|_| MetadataValue::from_static("")))
    }
}

impl Interceptor for Instance {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert(INSTANCE_HEADER, self.0.clone());
        Ok(request)
    }
}

/// A component channel that names its instance.
pub type Intercepted = InterceptedService<UdsChannel, Instance>;
