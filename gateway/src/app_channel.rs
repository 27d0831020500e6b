//! Calling the app, over HTTP ([`HttpApp`]) or gRPC ([`GrpcApp`], the
//! `AppCallback` service): subscription discovery and event delivery.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use http::HeaderMap;
use http::header::{HOST, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// How long one call to the app may take.
const APP_TIMEOUT: Duration = Duration::from_secs(60);

/// Keeps a timer due within [`APP_TIMEOUT`] armed for as long as the
/// runtime runs: spawn it once.
///
/// Tokio wakes its driver (a write to an eventfd, one system call) whenever
/// a newly armed timer is due before every other. On a gateway with no other
/// timer pending, each app call's [`APP_TIMEOUT`] was such a timer: one
/// wake-up per call. With this one due sooner, arming a call's timeout is
/// bookkeeping in the timer wheel. It costs one empty wake-up every 30 s.
pub async fn keep_timer_armed() {
    loop {
        tokio::time::sleep(APP_TIMEOUT / 2).await;
    }
}

/// Idle connections kept for later calls; more are opened when calls
/// overlap, and closed when they end with the pool full.
const IDLE_CONNECTIONS: usize = 64;

/// How the app is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppAddress {
    /// `127.0.0.1:<port>`.
    Port(u16),
    /// A Unix socket (`--app-socket`).
    Socket(std::path::PathBuf),
}

type Sender = SendRequest<Full<Bytes>>;

/// An HTTP app, over TCP or a Unix socket, on kept-alive HTTP/1.1
/// connections.
///
/// The connections are hyper's own (`client::conn::http1`), pooled here:
/// there is one destination, so the general client's pool (keyed by scheme
/// and authority, hashed byte by byte on every checkout and return) cost
/// ~3 000 instructions per call for nothing.
#[derive(Debug, Clone)]
pub struct HttpApp {
    address: AppAddress,
    token: Option<HeaderValue>,
    host: HeaderValue,
    idle: Arc<Mutex<Vec<Sender>>>,
}

/// The app's answer: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppReply {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpApp {
    /// The app at `address`; `token` (`APP_API_TOKEN`) is sent as
    /// `dapr-api-token` (a token that is not a valid header value is not sent).
    pub fn new(address: AppAddress, token: Option<String>) -> Self {
        let host = match &address {
            AppAddress::Port(port) => HeaderValue::try_from(format!("127.0.0.1:{port}"))
                .unwrap_or(HeaderValue::from_static("127.0.0.1")),
            AppAddress::Socket(_) => HeaderValue::from_static("localhost"),
        };
        Self {
            address,
            token: token.and_then(|t| HeaderValue::try_from(t).ok()),
            host,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Call `method path` with `body` and `content_type`.
    ///
    /// # Errors
    /// The app is unreachable or did not answer in time (the message says which).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<AppReply, String> {
        self.call_with_headers(
            method,
            path,
            content_type,
            body,
            &std::collections::HashMap::new(),
        )
        .await
    }

    /// Like [`HttpApp::call`], adding `headers` (invalid names or values are skipped).
    ///
    /// # Errors
    /// As for [`HttpApp::call`].
    pub async fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &std::collections::HashMap<String, String>,
    ) -> Result<AppReply, String> {
        let all = crate::runtime::invoke::header_map(
            std::iter::once(("content-type", content_type))
                .chain(headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        );
        let (status, _, body) = self.call_full(method, path, all, body.into()).await?;
        Ok(AppReply { status, body })
    }

    /// Call `method path` (which may carry a query string) with exactly
    /// `headers` and `body`; the app's status, headers and body.
    ///
    /// # Errors
    /// As for [`HttpApp::call`], and an unusable method or path.
    pub async fn call_full(
        &self,
        method: &str,
        path: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<(u16, HeaderMap, Vec<u8>), String> {
        let target = if path.starts_with('/') {
            http::Uri::try_from(path)
        } else {
            http::Uri::try_from(format!("/{path}"))
        }
        .map_err(|e| format!("building the request to {path}: {e}"))?;
        let verb = http::Method::from_bytes(method.as_bytes())
            .map_err(|e| format!("building the request to {path}: {e}"))?;
        if let Some(token) = &self.token {
            headers.insert("dapr-api-token", token.clone());
        }
        headers.entry(HOST).or_insert_with(|| self.host.clone());
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = verb;
        *request.uri_mut() = target;
        *request.headers_mut() = headers;
        let call = async {
            // Boxed: sending has several paths (pooled connection, new one,
            // a retry), each holding hyper's futures, ~2 KB in all; inline,
            // every caller's future (an actor turn's whole chain) carries it
            // and is copied with it.
            let (sender, response) = Box::pin(self.send(request)).await?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes()
                .to_vec();
            // Read to its end, the answer frees the connection for the next
            // call (`ready` below waits for hyper to see that).
            if let Ok(mut idle) = self.idle.lock()
                && idle.len() < IDLE_CONNECTIONS
                && !sender.is_closed()
            {
                idle.push(sender);
            }
            Ok((parts.status.as_u16(), parts.headers, body))
        };
        tokio::time::timeout(APP_TIMEOUT, call)
            .await
            .map_err(|_| format!("the app did not answer {method} {path} within {APP_TIMEOUT:?}"))?
            .map_err(|e: String| format!("calling the app ({:?}) at {path}: {e}", self.address))
    }

    /// Send `request` on an idle connection, or a new one; the connection
    /// goes back to the pool once the caller has read the answer. A
    /// kept-alive connection the app closed just as the request went out
    /// hands it back unsent; it is sent again on a new connection.
    async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<(Sender, http::Response<hyper::body::Incoming>), String> {
        let Some(mut sender) = self.idle_sender().await else {
            let mut sender = self.connect().await?;
            let response = sender.send_request(request).await;
            return Ok((sender, response.map_err(|e| e.to_string())?));
        };
        match sender.try_send_request(request).await {
            Ok(response) => Ok((sender, response)),
            Err(mut failed) => match failed.take_message() {
                Some(unsent) if failed.error().is_canceled() => {
                    let mut sender = self.connect().await?;
                    let response = sender.send_request(unsent).await;
                    Ok((sender, response.map_err(|e| e.to_string())?))
                }
                _ => Err(failed.into_error().to_string()),
            },
        }
    }

    /// A pooled connection ready for a request, if one is still open.
    async fn idle_sender(&self) -> Option<Sender> {
        loop {
            let mut sender = self.idle.lock().ok()?.pop()?;
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// A new connection to the app, driven by its own task.
    async fn connect(&self) -> Result<Sender, String> {
        match &self.address {
            AppAddress::Port(port) => {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", *port)).await;
                let stream = stream.map_err(|e| e.to_string())?;
                // Small requests and answers: no Nagle delay.
                let _ = stream.set_nodelay(true);
                handshake(stream).await
            }
            AppAddress::Socket(path) => {
                let stream = tokio::net::UnixStream::connect(path).await;
                handshake(stream.map_err(|e| e.to_string())?).await
            }
        }
    }
}

/// An HTTP/1.1 client connection on `io`, driven by a task of its own.
async fn handshake<T>(io: T) -> Result<Sender, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "app connection ended");
        }
    });
    Ok(sender)
}

/// A gRPC app serving `dapr.proto.runtime.v1.AppCallback` on `127.0.0.1:<port>`.
#[derive(Debug, Clone)]
pub struct GrpcApp {
    channel: tonic::transport::Channel,
    token: Option<tonic::metadata::AsciiMetadataValue>,
}

impl GrpcApp {
    /// The app at `address` (connected lazily); `token` is sent as `dapr-api-token`.
    ///
    /// # Errors
    /// An unusable token value.
    pub fn new(address: AppAddress, token: Option<String>) -> Result<Self, String> {
        let channel = match address {
            AppAddress::Port(port) => {
                tonic::transport::Endpoint::try_from(format!("http://127.0.0.1:{port}"))
                    .map_err(|e| e.to_string())?
                    .timeout(APP_TIMEOUT)
                    .connect_lazy()
            }
            AppAddress::Socket(socket) => {
                tonic::transport::Endpoint::from_static("http://app.invalid")
                    .timeout(APP_TIMEOUT)
                    .connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
                        let socket = socket.clone();
                        async move {
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                                tokio::net::UnixStream::connect(socket).await?,
                            ))
                        }
                    }))
            }
        };
        let token = token
            .map(|t| tonic::metadata::AsciiMetadataValue::try_from(t.as_str()))
            .transpose()
            .map_err(|_| "APP_API_TOKEN is not a valid header value".to_owned())?;
        Ok(Self { channel, token })
    }

    /// A request carrying the app token and the current trace context
    /// (`traceparent` metadata; see `telemetry::within`).
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        crate::telemetry::propagation::inject_current_grpc(request.metadata_mut());
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("dapr-api-token", token.clone());
        }
        request
    }

    /// The `AppCallbackHealthCheck` client.
    pub fn health_client(
        &self,
    ) -> outrigger_proto::runtime::app_callback_health_check_client::AppCallbackHealthCheckClient<tonic::transport::Channel>
    {
        outrigger_proto::runtime::app_callback_health_check_client::AppCallbackHealthCheckClient::new(self.channel.clone())
    }

    /// The `AppCallback` client.
    pub fn client(
        &self,
    ) -> outrigger_proto::runtime::app_callback_client::AppCallbackClient<tonic::transport::Channel>
    {
        outrigger_proto::runtime::app_callback_client::AppCallbackClient::new(self.channel.clone())
    }
}

/// The app, whichever protocol it speaks.
#[derive(Debug, Clone)]
pub enum App {
    /// HTTP app.
    Http(Box<HttpApp>),
    /// gRPC app.
    Grpc(GrpcApp),
}

impl App {
    /// The app the configuration names (`--app-port` or `--app-socket`,
    /// `--app-protocol`), or `None` when there is none or it cannot be set up
    /// (logged).
    pub fn from_config(config: &crate::config::Config) -> Option<Self> {
        let address = match (&config.app_socket, config.app_port) {
            (Some(socket), _) => AppAddress::Socket(socket.clone()),
            (None, Some(port)) => AppAddress::Port(port),
            (None, None) => return None,
        };
        match config.app_protocol {
            crate::config::AppProtocol::Http => Some(Self::Http(Box::new(HttpApp::new(
                address,
                config.app_api_token.clone(),
            )))),
            crate::config::AppProtocol::Grpc => {
                match GrpcApp::new(address, config.app_api_token.clone()) {
                    Ok(app) => Some(Self::Grpc(app)),
                    Err(why) => {
                        tracing::error!(reason = %why, "cannot call the gRPC app");
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An HTTP/1.1 app on loopback answering every request `ok`, which
    /// closes each connection after `per_connection` answers; its port and
    /// how many connections it accepted.
    async fn app(per_connection: usize) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    for _ in 0..per_connection {
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buf[..n]),
                            }
                        }
                        seen.clear();
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    // Closed without `connection: close`, as an app's idle
                    // timeout does.
                });
            }
        });
        (port, accepted)
    }

    async fn get(app: &HttpApp) -> Result<AppReply, String> {
        app.call("GET", "/x", "text/plain", Vec::new()).await
    }

    #[tokio::test]
    async fn sequential_calls_share_one_connection() {
        let (port, accepted) = app(usize::MAX).await;
        let client = HttpApp::new(AppAddress::Port(port), None);
        for _ in 0..20 {
            let reply = get(&client).await.unwrap();
            assert_eq!((reply.status, reply.body.as_slice()), (200, &b"ok"[..]));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn overlapping_calls_open_more_connections_and_keep_them() {
        let (port, accepted) = app(usize::MAX).await;
        let client = HttpApp::new(AppAddress::Port(port), None);
        let calls = (0..8).map(|_| get(&client));
        for reply in futures::future::join_all(calls).await {
            assert_eq!(reply.unwrap().status, 200);
        }
        let opened = accepted.load(Ordering::SeqCst);
        assert!((1..=8).contains(&opened), "{opened} connections");
        for _ in 0..8 {
            assert_eq!(get(&client).await.unwrap().status, 200);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), opened);
    }

    #[tokio::test]
    async fn a_connection_the_app_closed_is_replaced() {
        // One answer per connection, then the app hangs up.
        let (port, accepted) = app(1).await;
        let client = HttpApp::new(AppAddress::Port(port), None);
        for n in 1..=5 {
            assert_eq!(get(&client).await.unwrap().status, 200, "call {n}");
            // Let the connection task see the hang-up, or not: both the
            // closed and the just-closing connection must work out.
            if n % 2 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn an_unreachable_app_is_a_clear_error() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = HttpApp::new(AppAddress::Port(port), None);
        let err = get(&client).await.unwrap_err();
        assert!(err.starts_with("calling the app (Port("), "{err}");
        assert!(err.contains("at /x"), "{err}");
    }
}
