//! A bare forwarding proxy, a process of its own: the least any sidecar
//! does per call (read the request, send it on a kept-alive connection,
//! read the answer, send it back), with nothing of the gateway's (no
//! routing, actors, metrics, tracing or token check). It runs on one worker
//! thread, as the gateway does by default, so its rows are the ceiling a
//! sidecar reaches on this machine.
//!
//! Each side speaks HTTP/1.1, or HTTP/2 (prior knowledge, one multiplexed
//! connection upstream): two proxies joined by HTTP/2 make the same hops as
//! two gateways joined by gRPC, without gRPC's framing or protobuf.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Set to `<listen port>:<upstream port>[:<sides>]`, the binary runs the
/// proxy instead. `<sides>` is `h1h1` (the default), `h1h2` (HTTP/1.1 in,
/// HTTP/2 upstream) or `h2h1`.
pub(crate) const PROXY_MODE: &str = "OUTRIGGER_BENCH_BARE_PROXY";

/// Which protocol a side of the proxy speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Http1,
    Http2,
}

/// Run the proxy when [`PROXY_MODE`] is set (until killed); `false` if not.
pub(crate) fn serve_if_asked() -> bool {
    let Ok(mode) = std::env::var(PROXY_MODE) else {
        return false;
    };
    let mut parts = mode.split(':');
    let mut port = || parts.next().and_then(|p| p.parse::<u16>().ok()).unwrap();
    let (listen, upstream) = (port(), port());
    let (inbound, outbound) = match mode.rsplit(':').next() {
        Some("h1h2") => (Side::Http1, Side::Http2),
        Some("h2h1") => (Side::Http2, Side::Http1),
        _ => (Side::Http1, Side::Http1),
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(serve(listen, inbound, Upstream::new(upstream, outbound)));
    true
}

/// Where calls go: kept-alive HTTP/1.1 connections, or one HTTP/2 one.
#[derive(Clone)]
struct Upstream {
    port: u16,
    side: Side,
    idle: Arc<Mutex<Vec<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>>,
    h2: Arc<tokio::sync::OnceCell<hyper::client::conn::http2::SendRequest<Full<Bytes>>>>,
}

impl Upstream {
    fn new(port: u16, side: Side) -> Self {
        Self {
            port,
            side,
            idle: Arc::default(),
            h2: Arc::default(),
        }
    }

    async fn connect(&self) -> TokioIo<tokio::net::TcpStream> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        TokioIo::new(stream)
    }

    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error> {
        if self.side == Side::Http2 {
            let sender = self
                .h2
                .get_or_init(|| async {
                    let io = self.connect().await;
                    let (sender, connection) =
                        hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                            .await
                            .unwrap();
                    tokio::spawn(connection);
                    sender
                })
                .await;
            return sender.clone().send_request(request).await;
        }
        let pooled = self.idle.lock().unwrap().pop();
        let ready = match pooled {
            Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
            None => None,
        };
        let mut sender = match ready {
            Some(sender) => sender,
            None => {
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(self.connect().await)
                        .await
                        .unwrap();
                tokio::spawn(connection);
                sender
            }
        };
        let response = sender.send_request(request).await;
        // hyper frees the connection once the caller has read the answer;
        // `ready` above waits for that.
        self.idle.lock().unwrap().push(sender);
        response
    }
}

async fn serve(listen: u16, inbound: Side, upstream: Upstream) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", listen))
        .await
        .unwrap();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let upstream = upstream.clone();
        let forward = hyper::service::service_fn(move |request| forward(upstream.clone(), request));
        let io = TokioIo::new(stream);
        match inbound {
            Side::Http1 => {
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(io, forward),
                );
            }
            Side::Http2 => {
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, forward),
                );
            }
        }
    }
}

async fn forward(
    upstream: Upstream,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let (mut parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    // Each side sets its own version; HTTP/2 wants the authority in the URI.
    parts.version = http::Version::default();
    if upstream.side == Side::Http2 {
        parts.uri = format!("http://127.0.0.1:{}{}", upstream.port, parts.uri.path())
            .parse()
            .unwrap();
        parts.headers.remove(http::header::HOST);
        parts.headers.remove(http::header::CONNECTION);
    }
    let request = hyper::Request::from_parts(parts, Full::new(body));
    let (mut parts, body) = upstream.send(request).await?.into_parts();
    let body = body.collect().await?.to_bytes();
    parts.version = http::Version::default();
    Ok(hyper::Response::from_parts(parts, Full::new(body)))
}
