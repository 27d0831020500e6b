//! The gRPC listener, on the `h2` crate directly.
//!
//! tonic's own server puts hyper's HTTP/2 server, an axum router and four
//! tower layers between a call's frames and the generated service; per
//! unary call they cost more than the state store call behind it (see
//! BENCHMARKS.md). Here a connection is an `h2` server connection, each
//! stream gets a task, and the stream goes straight to the service its path
//! names: `Dapr`, our gateway-to-gateway service, the durabletask hub, or,
//! for any other service, the proxy to the app named by `dapr-app-id`.
//!
//! What tonic's server did that this keeps: the caller's trace context
//! around the call, `grpc-timeout` (an expired call answers
//! `DEADLINE_EXCEEDED`), flow control on answers (a slow reader holds the
//! sender back, it is not buffered without bound), a reset by the caller
//! ending the call, and graceful shutdown (no new streams; the open ones
//! finish).

use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body as _, Bytes};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::ServiceExt;

use outrigger_proto::durabletask::task_hub_sidecar_service_server::TaskHubSidecarServiceServer;
use outrigger_proto::outrigger::internal::v1::gateway_invoke_server::{
    GatewayInvoke as _, GatewayInvokeServer,
};
use outrigger_proto::runtime::dapr_server::DaprServer;

use super::{DaprService, GatewayInvokeService, TaskHubService, proxy};
use crate::Runtime;
use crate::components::channel::{CONNECTION_WINDOW, RecvBody, WINDOW};
use crate::components::unary;
use crate::telemetry;

/// The services the gRPC port serves, by the service name in a call's path.
#[derive(Clone)]
pub struct Services {
    dapr: DaprServer<DaprService>,
    peer: GatewayInvokeServer<GatewayInvokeService>,
    /// The same service, for the calls answered without tonic's codec.
    peer_service: GatewayInvokeService,
    taskhub: TaskHubSidecarServiceServer<TaskHubService>,
    runtime: Arc<Runtime>,
    proxy: proxy::ProxyClient,
    limit: usize,
}

impl Services {
    /// Every service of the gateway, with messages up to the configured body
    /// limit and the API token checked on each call.
    pub fn new(runtime: &Arc<Runtime>) -> Self {
        let limit = runtime.config.max_body_bytes;
        Self {
            dapr: DaprServer::new(DaprService::new(Arc::clone(runtime)))
                .max_decoding_message_size(limit),
            peer: GatewayInvokeServer::new(GatewayInvokeService::new(Arc::clone(runtime)))
                .max_decoding_message_size(limit),
            peer_service: GatewayInvokeService::new(Arc::clone(runtime)),
            taskhub: TaskHubSidecarServiceServer::new(TaskHubService::new(Arc::clone(runtime)))
                .max_decoding_message_size(limit),
            runtime: Arc::clone(runtime),
            proxy: proxy::client(),
            limit,
        }
    }

    /// Answer one call: within the caller's trace context and its
    /// `grpc-timeout`, by the service its path names.
    pub async fn call(&self, request: http::Request<RecvBody>) -> http::Response<Body> {
        let incoming = telemetry::propagation::extract_http(request.headers());
        static GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");
        let deadline = request
            .headers()
            .get(&GRPC_TIMEOUT)
            .and_then(|value| grpc_timeout(value.as_bytes()));
        let call = telemetry::within(incoming, self.route(request));
        match deadline {
            None => call.await,
            Some(limit) => match tokio::time::timeout(limit, call).await {
                Ok(response) => response,
                Err(_) => tonic::Status::deadline_exceeded(format!(
                    "the call's deadline (grpc-timeout, {limit:?}) passed"
                ))
                .into_http(),
            },
        }
    }

    /// The API token, when one is set, is checked before a call reaches
    /// our services; the proxy checks it once it knows the call is its own.
    async fn route(&self, request: http::Request<RecvBody>) -> http::Response<Body> {
        let service = request
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|path| path.split_once('/'))
            .map(|(service, _)| service);
        let ours = matches!(
            service,
            Some(
                DaprServer::<DaprService>::NAME
                    | GatewayInvokeServer::<GatewayInvokeService>::NAME
                    | TaskHubSidecarServiceServer::<TaskHubService>::NAME
            )
        );
        if ours && let Some(token) = &self.runtime.config.api_token {
            let given = request.headers().get(crate::api::http::TOKEN_HEADER);
            if given.map(http::HeaderValue::as_bytes) != Some(token.as_bytes()) {
                return tonic::Status::unauthenticated("missing or invalid dapr-api-token")
                    .into_http();
            }
        }
        match service {
            Some(DaprServer::<DaprService>::NAME) => {
                answered(self.dapr.clone().oneshot(request).await)
            }
            // Every service invocation between gateways: past tonic's codec.
            Some(GatewayInvokeServer::<GatewayInvokeService>::NAME)
                if request.uri().path() == unary::methods::PEER_CALL_LOCAL.path() =>
            {
                let (service, peer) = (self.peer_service.clone(), self.peer.clone());
                super::unary::serve(
                    request,
                    self.limit,
                    |call| async move { service.call_local(call).await },
                    |replayed| async move { answered(peer.oneshot(replayed).await) },
                )
                .await
            }
            Some(GatewayInvokeServer::<GatewayInvokeService>::NAME) => {
                answered(self.peer.clone().oneshot(request).await)
            }
            Some(TaskHubSidecarServiceServer::<TaskHubService>::NAME) => {
                answered(self.taskhub.clone().oneshot(request).await)
            }
            _ => proxy::proxy(
                Arc::clone(&self.runtime),
                self.proxy.clone(),
                request.map(axum::body::Body::new),
            )
            .await
            .map(Body::new),
        }
    }
}

fn answered(result: Result<http::Response<Body>, Infallible>) -> http::Response<Body> {
    match result {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// A `grpc-timeout` value (at most eight digits and a unit) as a duration.
fn grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount.saturating_mul(3600)),
        b'M' => Duration::from_secs(amount.saturating_mul(60)),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Serve gRPC on `listener` until `stop`, then let open calls finish.
pub async fn serve(listener: TcpListener, services: Services, stop: CancellationToken) {
    let services = Arc::new(services);
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        match accepted {
            Ok((io, _)) => {
                let _ = io.set_nodelay(true);
                connections.spawn(connection(io, Arc::clone(&services), stop.clone()));
            }
            // Out of file descriptors, or a connection aborted before it was
            // accepted: wait a moment rather than spin.
            Err(err) => {
                tracing::debug!(error = %err, "accepting a gRPC connection failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    connections.close();
    connections.wait().await;
}

/// One client connection: its streams, until it closes (or, after `stop`,
/// until its open streams finished).
async fn connection(io: TcpStream, services: Arc<Services>, stop: CancellationToken) {
    let handshake = h2::server::Builder::new()
        .initial_window_size(WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(io);
    let mut conn = tokio::select! {
        conn = handshake => match conn {
            Ok(conn) => conn,
            Err(err) => {
                tracing::debug!(error = %err, "gRPC connection handshake failed");
                return;
            }
        },
        () = stop.cancelled() => return,
    };
    let mut closing = false;
    loop {
        tokio::select! {
            next = conn.accept() => match next {
                Some(Ok((request, respond))) => {
                    tokio::spawn(answer(request, respond, Arc::clone(&services)));
                }
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "gRPC connection ended");
                    return;
                }
                None => return,
            },
            () = stop.cancelled(), if !closing => {
                closing = true;
                conn.graceful_shutdown();
            }
        }
    }
}

/// One stream: the call, then its answer's headers, messages and trailers.
async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    services: Arc<Services>,
) {
    // Boxed: the call's future has room for any service's call and is
    // several kilobytes; inline, spawning this task would copy it twice.
    let call = Box::pin(services.call(request.map(RecvBody::new)));
    // A caller that resets the stream cancels the call.
    let response = tokio::select! {
        response = call => response,
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return,
    };
    let (parts, body) = response.into_parts();
    let end = body.is_end_stream();
    match respond.send_response(http::Response::from_parts(parts, ()), end) {
        Ok(send) if !end => pipe(body, send).await,
        Ok(_) => {}
        Err(err) => tracing::debug!(error = %err, "the caller went away before the answer"),
    }
}

/// Send an answer's body frames as they come, until its end, an error, or
/// the caller resetting the stream.
async fn pipe(mut body: Body, mut send: h2::SendStream<Bytes>) {
    loop {
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            _ = poll_fn(|cx| send.poll_reset(cx)) => return,
        };
        let sent = match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let end = body.is_end_stream();
                    send_data(&mut send, data, end).await.map(|()| end)
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => send.send_trailers(trailers).map(|()| true),
                    Err(_) => Ok(false),
                },
            },
            Some(Err(status)) => {
                tracing::debug!(%status, "an answer's body failed");
                send.send_reset(h2::Reason::INTERNAL_ERROR);
                return;
            }
            None => send.send_data(Bytes::new(), true).map(|()| true),
        };
        match sent {
            Ok(false) => {}
            Ok(true) => return,
            Err(err) => {
                tracing::debug!(error = %err, "the caller went away during the answer");
                return;
            }
        }
    }
}

/// Send `data` as the caller's flow-control window allows.
async fn send_data(
    send: &mut h2::SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        return if end {
            send.send_data(data, true)
        } else {
            Ok(())
        };
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let mut room = send.capacity();
        if room == 0 {
            room = match poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(room) => room?,
                None => return Err(h2::Reason::CANCEL.into()),
            };
            if room == 0 {
                continue;
            }
        }
        let chunk = data.split_to(room.min(data.len()));
        send.send_data(chunk, end && data.is_empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_reads_every_unit_and_rejects_the_rest() {
        assert_eq!(grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(grpc_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            grpc_timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [&b""[..], b"S", b"123456789S", b"10x", b"-1S", b"1.5S"] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
