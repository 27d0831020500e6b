//! `/v1.0/invoke/{appId}/method/{method...}` for every verb, and the
//! `dapr-app-id` header form (any other path, the target in a header).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

use crate::api::Runtime;
use crate::error::{ApiError, codes};
use crate::runtime::invoke::{Call, Reply};

fn call(method: String, verb: &Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Call {
    Call {
        method,
        verb: verb.as_str().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body,
    }
}

fn respond(reply: Reply) -> Response {
    let mut response = Response::new(axum::body::Body::from(reply.body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *response.headers_mut() = reply.headers;
    response
}

/// The whole body of a call, up to `limit` bytes.
pub(super) async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        ApiError::new(
            codes::ERR_BODY_READ,
            format!("failed to read request body: {err}"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE, tonic::Code::InvalidArgument)
    })
}

/// `/v1.0/invoke/{appId}/method/{method...}`. The request's headers are
/// taken as they are (no copy) and passed on.
pub(super) async fn invoke(
    State(rt): State<Arc<Runtime>>,
    Path((app_id, method)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, payload) = request.into_parts();
    let bytes = read_body(payload, rt.config.max_body_bytes).await?;
    let call = call(method, &parts.method, &parts.uri, parts.headers, bytes);
    // Boxed: the call's future is large, and inline every layer between
    // hyper and this handler would copy it as it is built up.
    let reply = Box::pin(rt.invoke.invoke(&app_id, call)).await?;
    Ok(respond(reply))
}

/// A request outside the API carrying `dapr-app-id: <target>`: the whole
/// path is the method, as daprd treats it.
pub(super) async fn by_header(
    rt: &Runtime,
    app_id: &str,
    verb: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let method = uri.path().trim_start_matches('/').to_owned();
    let call = call(method, &verb, &uri, headers, bytes);
    let reply = Box::pin(rt.invoke.invoke(app_id, call)).await?;
    Ok(respond(reply))
}
