//! The called side: a call for this gateway's own app, over HTTP or gRPC,
//! and how statuses map between the two.

use http::header::{self, HeaderMap, HeaderValue};

use outrigger_proto::common as common_pb;

use super::headers::HOP_BY_HOP;
use super::{Call, InvokeApi, Reply, direct_invoke};
use crate::app_channel::App;
use crate::error::ApiError;

impl InvokeApi {
    /// Call this gateway's own app (also what a peer's `CallLocal` does).
    ///
    /// # Errors
    /// `ERR_DIRECT_INVOKE` when there is no app or it cannot be reached.
    pub async fn call_app(&self, call: Call) -> Result<Reply, ApiError> {
        let Some(app) = &self.app else {
            return Err(direct_invoke(format!(
                "failed to invoke, id: {}: the app has no --app-port to call",
                self.app_id
            )));
        };
        match app {
            App::Http(http) => {
                let path = if call.query.is_empty() {
                    format!("/{}", call.method)
                } else {
                    format!("/{}?{}", call.method, call.query)
                };
                let (status, mut headers, body) = http
                    .call_full(&call.verb, &path, call.headers, call.body)
                    .await
                    .map_err(|why| {
                        direct_invoke(format!("failed to invoke, id: {}: {why}", self.app_id))
                    })?;
                for name in &HOP_BY_HOP {
                    headers.remove(name);
                }
                Ok(Reply {
                    status,
                    headers,
                    body,
                })
            }
            App::Grpc(grpc) => {
                use common_pb::http_extension::Verb;
                let content_type = call
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let verb =
                    Verb::from_str_name(&call.verb.to_ascii_uppercase()).unwrap_or(Verb::Post);
                let request = common_pb::InvokeRequest {
                    method: call.method,
                    data: Some(prost_types::Any {
                        type_url: String::new(),
                        value: call.body.into(),
                    }),
                    content_type,
                    http_extension: Some(common_pb::HttpExtension {
                        verb: verb as i32,
                        querystring: call.query,
                    }),
                };
                match grpc.client().on_invoke(grpc.request(request)).await {
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        let mut headers = HeaderMap::new();
                        if let Ok(value) = HeaderValue::try_from(reply.content_type)
                            && !value.is_empty()
                        {
                            headers.insert(header::CONTENT_TYPE, value);
                        }
                        Ok(Reply {
                            status: 200,
                            headers,
                            body: reply.data.map(|d| d.value).unwrap_or_default(),
                        })
                    }
                    Err(status) => Ok(Reply {
                        status: http_status_of(status.code()),
                        headers: HeaderMap::from_iter([(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/plain"),
                        )]),
                        body: status.message().as_bytes().to_vec(),
                    }),
                }
            }
        }
    }
}

/// The HTTP status for a gRPC app's error code (as grpc-gateway maps them).
fn http_status_of(code: tonic::Code) -> u16 {
    use tonic::Code;
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Cancelled => 499,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

/// The gRPC code for an HTTP app's error status (for `InvokeService`).
pub fn grpc_code_of(status: u16) -> tonic::Code {
    use tonic::Code;
    match status {
        200..=299 => Code::Ok,
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Unknown,
    }
}
