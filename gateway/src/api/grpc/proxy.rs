//! Proxying plain gRPC calls by app id: a call for a service this gateway
//! does not serve, carrying `dapr-app-id: <target>` metadata, is forwarded
//! byte for byte (HTTP/2, streams and trailers included) to the target's
//! gateway, which forwards it to its gRPC app. This is how the Dapr SDKs
//! call other apps' own gRPC services through the sidecar.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::api::Runtime;

/// The HTTP/2 (h2c) client proxied calls go out on, one pool per gateway.
pub type ProxyClient = Client<HttpConnector, Body>;

/// A pooled h2c client.
pub fn client() -> ProxyClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector)
}

fn status(status: tonic::Status) -> Response {
    let (parts, body) = status.into_http::<tonic::body::Body>().into_parts();
    Response::from_parts(parts, Body::new(body))
}

/// The fallback of the gRPC server.
#[tracing::instrument(level = "debug", skip_all, fields(rpc.method = %request.uri().path(), app_id))]
pub async fn proxy(
    rt: Arc<Runtime>,
    client: ProxyClient,
    request: axum::extract::Request,
) -> Response {
    let Some(target) = request
        .headers()
        .get("dapr-app-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return status(tonic::Status::unimplemented(format!(
            "{} is not served by this gateway (add dapr-app-id metadata to call an app's own service)",
            request.uri().path()
        )));
    };
    tracing::Span::current().record("app_id", target.as_str());
    if let Some(token) = &rt.config.api_token {
        let given = request
            .headers()
            .get(crate::api::http::TOKEN_HEADER)
            .and_then(|v| v.to_str().ok());
        if given != Some(token.as_str()) {
            return status(tonic::Status::unauthenticated(
                "missing or invalid dapr-api-token",
            ));
        }
    }
    let local = rt.invoke.is_local(&target);
    let addr = match rt.invoke.proxy_target(&target).await {
        Ok(addr) => addr,
        Err(why) => return status(why),
    };
    let (mut parts, body) = request.into_parts();
    let security = rt.invoke.security();
    if local {
        // The callee's access control, on the caller its gateway named.
        let caller = crate::access_control::caller_from_headers(&parts.headers);
        crate::access_control::set_caller_headers(&mut parts.headers, None);
        if let Some(security) = security
            && let Err(denied) = security.admit(caller.as_ref(), parts.uri.path(), "", false)
        {
            return status(denied);
        }
    } else {
        crate::access_control::set_caller_headers(
            &mut parts.headers,
            security.map(|s| &s.identity),
        );
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = match format!("http://{addr}{path}").parse() {
        Ok(uri) => uri,
        Err(err) => return status(tonic::Status::internal(format!("proxy address: {err}"))),
    };
    if local {
        // The app sees the gateway's token for it, not the caller's.
        parts.headers.remove(crate::api::http::TOKEN_HEADER);
        if let Some(token) = rt
            .config
            .app_api_token
            .as_deref()
            .and_then(|t| http::HeaderValue::from_str(t).ok())
        {
            parts.headers.insert(crate::api::http::TOKEN_HEADER, token);
        }
    }
    match client.request(http::Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, Body::new(body.map_err(axum::Error::new)))
        }
        Err(err) => status(tonic::Status::unavailable(format!(
            "proxying to {target} at {addr}: {err}"
        ))),
    }
    .into_response()
}
