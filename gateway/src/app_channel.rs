//! Calling the app, over HTTP ([`HttpApp`]) or gRPC ([`GrpcApp`], the
//! `AppCallback` service): subscription discovery and event delivery.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long one call to the app may take.
const APP_TIMEOUT: Duration = Duration::from_secs(60);

/// How the app is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppAddress {
    /// `127.0.0.1:<port>`.
    Port(u16),
    /// A Unix socket (`--app-socket`).
    Socket(std::path::PathBuf),
}

#[derive(Debug, Clone)]
enum HttpClient {
    Tcp(Client<HttpConnector, Full<Bytes>>),
    Unix(Client<hyperlocal::UnixConnector, Full<Bytes>>),
}

/// An HTTP app, over TCP or a Unix socket.
#[derive(Debug, Clone)]
pub struct HttpApp {
    address: AppAddress,
    token: Option<String>,
    client: HttpClient,
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
    /// The app at `address`; `token` (`APP_API_TOKEN`) is sent as `dapr-api-token`.
    pub fn new(address: AppAddress, token: Option<String>) -> Self {
        let client = match address {
            AppAddress::Port(_) => {
                HttpClient::Tcp(Client::builder(TokioExecutor::new()).build_http())
            }
            AppAddress::Socket(_) => HttpClient::Unix(
                Client::builder(TokioExecutor::new()).build(hyperlocal::UnixConnector),
            ),
        };
        Self {
            address,
            token,
            client,
        }
    }

    fn uri(&self, path: &str) -> http::Uri {
        match &self.address {
            AppAddress::Port(port) => format!("http://127.0.0.1:{port}{path}")
                .parse()
                .unwrap_or_default(),
            AppAddress::Socket(socket) => hyperlocal::Uri::new(socket, path).into(),
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
        let mut all: Vec<(String, String)> =
            vec![("content-type".to_owned(), content_type.to_owned())];
        all.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (status, _, body) = self.call_full(method, path, &all, body).await?;
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
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let mut request = http::Request::builder().method(method).uri(self.uri(&path));
        if let Some(token) = &self.token {
            request = request.header("dapr-api-token", token);
        }
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::try_from(name.as_str()),
                http::HeaderValue::try_from(value.as_str()),
            ) {
                request = request.header(name, value);
            }
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("building the request to {path}: {e}"))?;
        let call = async {
            match &self.client {
                HttpClient::Tcp(c) => c.request(request).await,
                HttpClient::Unix(c) => c.request(request).await,
            }
        };
        let response = tokio::time::timeout(APP_TIMEOUT, call)
            .await
            .map_err(|_| format!("the app did not answer {method} {path} within {APP_TIMEOUT:?}"))?
            .map_err(|e| format!("calling the app ({:?}) at {path}: {e}", self.address))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        Ok((status, headers, body))
    }
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
