//! A bare HTTP/1.1 forwarding proxy, a process of its own: the least any
//! HTTP sidecar does per call (read the request, send it to the app on a
//! kept-alive connection, read the answer, send it back), with nothing of
//! the gateway's (no routing, actors, metrics, tracing or token check). It
//! runs on one worker thread, as the gateway does by default, so its rows
//! are the ceiling a sidecar in front of the same app reaches on this
//! machine.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Set to `<listen port>:<app port>`, the binary runs the proxy instead.
pub(crate) const PROXY_MODE: &str = "OUTRIGGER_BENCH_BARE_PROXY";

type Sender = SendRequest<Full<Bytes>>;

/// Run the proxy when [`PROXY_MODE`] is set (until killed); `false` if not.
pub(crate) fn serve_if_asked() -> bool {
    let Some((listen, app)) = std::env::var(PROXY_MODE).ok().and_then(|v| {
        let (listen, app) = v.split_once(':')?;
        Some((listen.parse::<u16>().ok()?, app.parse::<u16>().ok()?))
    }) else {
        return false;
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(serve(listen, app));
    true
}

async fn serve(listen: u16, app: u16) {
    let idle: Arc<Mutex<Vec<Sender>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", listen))
        .await
        .unwrap();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let idle = Arc::clone(&idle);
        let forward =
            hyper::service::service_fn(move |request| forward(Arc::clone(&idle), app, request));
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), forward),
        );
    }
}

async fn forward(
    idle: Arc<Mutex<Vec<Sender>>>,
    app: u16,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let request = hyper::Request::from_parts(parts, Full::new(body));
    let pooled = idle.lock().unwrap().pop();
    let mut sender = match pooled {
        Some(mut sender) => match sender.ready().await {
            Ok(()) => sender,
            Err(_) => connect(app).await,
        },
        None => connect(app).await,
    };
    let (parts, body) = sender.send_request(request).await?.into_parts();
    let body = body.collect().await?.to_bytes();
    idle.lock().unwrap().push(sender);
    Ok(hyper::Response::from_parts(parts, Full::new(body)))
}

async fn connect(app: u16) -> Sender {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", app))
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}
