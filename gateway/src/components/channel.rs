//! A gRPC channel over a Unix socket, and the interceptor that names the
//! component instance on every call (streams included).
//!
//! [`UdsChannel`] speaks HTTP/2 with the `h2` crate on one shared
//! connection per socket (which multiplexes concurrent calls), instead of
//! tonic's `Channel` (a buffer task per call) or hyper's client. hyper sends
//! a request's HEADERS and its DATA in two writes: it waits for the new
//! stream's send capacity, which the connection task assigns only after it
//! flushed the HEADERS. Each write wakes the component's process, and on an
//! idle VM a wake-up costs tens of µs (BENCHMARKS.md), so a unary call here
//! queues its message right behind its HEADERS and both leave in one write.
//! The channel connects on first use and again after the component's
//! process restarted.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::FutureExt;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Bytes, Frame};
use outrigger_component_sdk::UnixConn;
use tokio::net::TcpStream;
use tonic::body::Body;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;

/// Per-stream flow-control window of our HTTP/2 channels (1 MiB).
pub(crate) const WINDOW: u32 = 1024 * 1024;

/// Connection flow-control window of our HTTP/2 channels (16 MiB).
pub(crate) const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// The header daprd sets to the component's YAML `metadata.name`.
pub const INSTANCE_HEADER: &str = "x-component-instance";

/// Longest a unary component call may take.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long connecting to a component socket may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a component call failed before the component answered.
pub type ChannelError = Box<dyn std::error::Error + Send + Sync>;

/// A lazily connected, self-healing HTTP/2 connection to one socket (or,
/// for calls between gateways, one TCP address).
#[derive(Clone, Debug)]
pub struct UdsChannel {
    target: Arc<Target>,
    sender: Arc<Mutex<Option<h2::client::SendRequest<Bytes>>>>,
}

/// Where a channel connects.
#[derive(Debug)]
enum Target {
    /// A component's Unix socket.
    Unix(PathBuf),
    /// A peer gateway's gRPC port.
    Tcp(std::net::SocketAddr),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "{}", path.display()),
            Self::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// A channel that connects (and reconnects) to `socket` on demand.
pub fn lazy(socket: &Path) -> UdsChannel {
    UdsChannel {
        target: Arc::new(Target::Unix(socket.to_path_buf())),
        sender: Arc::new(Mutex::new(None)),
    }
}

/// A channel to a peer gateway at `addr`, connected on demand; a peer that
/// cannot be reached is `UNAVAILABLE`, so callers can try another.
pub fn lazy_tcp(addr: std::net::SocketAddr) -> UdsChannel {
    UdsChannel {
        target: Arc::new(Target::Tcp(addr)),
        sender: Arc::new(Mutex::new(None)),
    }
}

// === impl UdsChannel ===

impl UdsChannel {
    /// A new connection, which later calls share.
    async fn connect(&self) -> Result<h2::client::SendRequest<Bytes>, ChannelError> {
        // Two callers may race to connect; the later one's connection wins
        // and the other is dropped when its calls finish. Harmless.
        let sender = match &*self.target {
            Target::Unix(path) => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixConn::connect(path))
                    .await
                    .map_err(|_| format!("connecting to {} timed out", path.display()))??;
                self.handshake(stream).await?
            }
            Target::Tcp(addr) => {
                let unavailable = |why: String| -> ChannelError {
                    Box::new(tonic::Status::unavailable(format!(
                        "cannot reach the gateway at {addr}: {why}"
                    )))
                };
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                    .await
                    .map_err(|_| unavailable("connecting timed out".into()))?
                    .map_err(|e| unavailable(e.to_string()))?;
                stream
                    .set_nodelay(true)
                    .map_err(|e| unavailable(e.to_string()))?;
                self.handshake(stream)
                    .await
                    .map_err(|e| unavailable(e.to_string()))?
            }
        };
        if let Ok(mut guard) = self.sender.lock() {
            *guard = Some(sender.clone());
        }
        Ok(sender)
    }

    /// The HTTP/2 handshake on `io`, with the connection driven by a task
    /// that ends when the connection closes.
    async fn handshake<T>(&self, io: T) -> Result<h2::client::SendRequest<Bytes>, h2::Error>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        // Windows as large as tonic's own transport uses: with h2's default
        // 64 KiB connection window, its budget for buffered small DATA
        // frames (half the window) runs out when hundreds of small replies
        // arrive at once, and h2 closes the connection (ENHANCE_YOUR_CALM,
        // "too_many_data_frames"), failing every call on it.
        let (sender, connection) = h2::client::Builder::new()
            .initial_window_size(WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake(io)
            .await?;
        let target = Arc::clone(&self.target);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%target, error = %err, "connection ended");
            }
        });
        Ok(sender)
    }

    /// A sender that may open one more stream: on the shared connection,
    /// or on a new one when that connection is gone.
    async fn ready_sender(&self) -> Result<h2::client::SendRequest<Bytes>, ChannelError> {
        let shared = self.sender.lock().ok().and_then(|guard| guard.clone());
        if let Some(sender) = shared {
            match sender.ready().await {
                Ok(ready) => return Ok(ready),
                Err(err) => {
                    tracing::debug!(target = %self.target, error = %err, "connection lost; reconnecting");
                }
            }
        }
        Ok(self.connect().await?.ready().await?)
    }
}

/// Queue `frame` on `stream`; whether the request is now complete.
fn send_frame(
    stream: &mut h2::SendStream<Bytes>,
    frame: Frame<Bytes>,
    end: bool,
) -> Result<bool, h2::Error> {
    match frame.into_data() {
        Ok(data) => {
            stream.send_data(data, end)?;
            Ok(end)
        }
        Err(frame) => match frame.into_trailers() {
            Ok(trailers) => {
                stream.send_trailers(trailers)?;
                Ok(true)
            }
            Err(_) => Ok(false),
        },
    }
}

/// Send the frames of a request body that are ready now; whether it is done.
///
/// Only a failing body is an error. The peer may answer and close the
/// stream before the whole request went out (a server that rejects a call
/// at once does so); h2 then refuses further frames, and the answer, which
/// the caller awaits next, is what the call returns.
fn send_ready(body: &mut Body, stream: &mut h2::SendStream<Bytes>) -> Result<bool, ChannelError> {
    loop {
        let sent = match body.frame().now_or_never() {
            Some(Some(Ok(frame))) => {
                let end = body.is_end_stream();
                send_frame(stream, frame, end)
            }
            Some(Some(Err(status))) => {
                stream.send_reset(h2::Reason::CANCEL);
                return Err(status.into());
            }
            Some(None) => stream.send_data(Bytes::new(), true).map(|()| true),
            None => return Ok(false),
        };
        match sent {
            Ok(false) => {}
            Ok(true) => return Ok(true),
            Err(err) => {
                tracing::debug!(error = %err, "the peer closed the stream before the request was sent");
                return Ok(true);
            }
        }
    }
}

/// Send the rest of a streaming request body as it comes. Messages on these
/// streams (acknowledgements) are small, so h2 buffers them without waiting
/// for flow-control capacity.
async fn pipe(mut body: Body, mut stream: h2::SendStream<Bytes>) {
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let end = body.is_end_stream();
                if !matches!(send_frame(&mut stream, frame, end), Ok(false)) {
                    return;
                }
            }
            Some(Err(_)) => {
                stream.send_reset(h2::Reason::CANCEL);
                return;
            }
            None => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
        }
    }
}

impl tower::Service<http::Request<Body>> for UdsChannel {
    type Response = http::Response<RecvBody>;
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
            let (mut parts, mut body) = request.into_parts();
            parts.uri = absolute(parts.uri.path_and_query().map_or("/", |p| p.as_str()))?;
            let mut sender = channel.ready_sender().await?;
            let empty = body.is_end_stream();
            let (response, mut stream) =
                sender.send_request(http::Request::from_parts(parts, ()), empty)?;
            // Before anything yields to the connection task, so a unary
            // call's message leaves in the same write as its HEADERS.
            if !empty && !send_ready(&mut body, &mut stream)? {
                tokio::spawn(pipe(body, stream));
            }
            Ok(channel.answer(response).await?.map(RecvBody::new))
        })
    }
}

impl UdsChannel {
    /// Send a unary call to `path`: its `headers`, then its whole `body`
    /// in the same write. The answer's status, headers and body.
    pub(crate) async fn send_unary(
        &self,
        uri: http::Uri,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> Result<(http::StatusCode, http::HeaderMap, h2::RecvStream), ChannelError> {
        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let mut sender = self.ready_sender().await?;
        let (response, mut stream) = sender.send_request(request, false)?;
        if let Err(err) = stream.send_data(body, true) {
            // As in `send_ready`: the answer says why.
            tracing::debug!(error = %err, "the peer closed the stream before the request was sent");
        }
        let (parts, recv) = self.answer(response).await?.into_parts();
        Ok((parts.status, parts.headers, recv))
    }

    /// The answer's head. A component that accepts but never answers must
    /// not hang the app; streams are limited only until their headers
    /// arrive. A peer gateway answers when its app does, which may take
    /// long: invocation timeouts are resiliency policies, not ours.
    async fn answer(
        &self,
        response: h2::client::ResponseFuture,
    ) -> Result<http::Response<h2::RecvStream>, ChannelError> {
        Ok(match &*self.target {
            Target::Unix(_) => tokio::time::timeout(CALL_TIMEOUT, response)
                .await
                .map_err(|_| format!("the component did not answer within {CALL_TIMEOUT:?}"))??,
            Target::Tcp(_) => response.await?,
        })
    }
}

/// The absolute URI HTTP/2 needs for `path` (tonic gives only the path).
pub(crate) fn absolute(path: &str) -> Result<http::Uri, http::Error> {
    http::Uri::builder()
        .scheme("http")
        .authority("component")
        .path_and_query(path)
        .build()
}

/// The body of an HTTP/2 stream we receive (a component's answer, or a
/// call to our gRPC port): its DATA frames, then its trailers (where gRPC
/// puts the status), returning flow-control capacity as it is read.
#[derive(Debug)]
pub struct RecvBody {
    recv: h2::RecvStream,
    data_done: bool,
}

impl RecvBody {
    /// The body of `recv`.
    pub fn new(recv: h2::RecvStream) -> Self {
        Self {
            recv,
            data_done: false,
        }
    }
}

impl HttpBody for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        if !this.data_done {
            match std::task::ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => this.data_done = true,
            }
        }
        match std::task::ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(err))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
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

    /// The header's value.
    pub fn header(&self) -> http::HeaderValue {
        http::HeaderValue::from_bytes(self.0.as_encoded_bytes())
            .unwrap_or_else(|_| http::HeaderValue::from_static(""))
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
