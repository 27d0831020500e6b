//! `/v1.0/invoke/{appId}/method/{method...}` for every verb, and the
//! `dapr-app-id` header form (any other path, the target in a header).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::body;
use crate::api::Runtime;
use crate::error::ApiError;
use crate::runtime::invoke::{Call, Reply};

fn call(method: String, verb: &Method, uri: &Uri, headers: &HeaderMap, bytes: Bytes) -> Call {
    Call {
        method,
        verb: verb.as_str().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: bytes.to_vec(),
    }
}

fn respond(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name.as_str()),
            axum::http::HeaderValue::try_from(value.as_str()),
        ) {
            headers.append(name, value);
        }
    }
    response
}

/// `/v1.0/invoke/{appId}/method/{method...}`.
pub(super) async fn invoke(
    State(rt): State<Arc<Runtime>>,
    Path((app_id, method)): Path<(String, String)>,
    verb: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(bytes)?;
    let reply = rt
        .invoke
        .invoke(&app_id, call(method, &verb, &uri, &headers, bytes))
        .await?;
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
    let reply = rt
        .invoke
        .invoke(app_id, call(method, &verb, &uri, &headers, bytes))
        .await?;
    Ok(respond(reply))
}
