//! `InvokeService` on the Dapr API, and the gateway-to-gateway
//! `GatewayInvoke/CallLocal` that a peer gateway uses to reach this app.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use outrigger_proto::common as common_pb;
use outrigger_proto::outrigger::internal::v1 as internal_pb;
use outrigger_proto::runtime as pb;

use crate::access_control::Caller;
use crate::api::Runtime;
use crate::runtime::invoke::{Call, grpc_code_of, map_headers, wire_headers};
use crate::telemetry::invoke as invoke_spans;
use crate::telemetry::propagation;

/// `InvokeService`: the request's `http_extension` gives verb (POST when
/// absent) and query; an app answer that is not 2xx becomes an error
/// status carrying the app's body.
pub(super) async fn invoke_service(
    rt: &Runtime,
    request: Request<pb::InvokeServiceRequest>,
) -> Result<Response<common_pb::InvokeResponse>, Status> {
    let (metadata, _, r) = request.into_parts();
    let message = r
        .message
        .ok_or_else(|| Status::invalid_argument("message: the invoke request is missing"))?;
    let (verb, query) = match message.http_extension {
        Some(ext) => {
            let verb = common_pb::http_extension::Verb::try_from(ext.verb)
                .ok()
                .filter(|v| *v != common_pb::http_extension::Verb::None)
                .map_or("POST", |v| v.as_str_name());
            (verb.to_owned(), ext.querystring)
        }
        None => ("POST".to_owned(), String::new()),
    };
    let mut headers = http::HeaderMap::new();
    if !message.content_type.is_empty() {
        let value = http::HeaderValue::try_from(message.content_type.as_str()).map_err(|_| {
            Status::invalid_argument("message.content_type: not a valid header value")
        })?;
        headers.insert(http::header::CONTENT_TYPE, value);
    }
    propagation::inject_http(&propagation::extract_grpc(&metadata), &mut headers);
    let call = Call {
        method: message.method,
        verb,
        query,
        headers,
        body: message.data.map(|d| d.value.into()).unwrap_or_default(),
    };
    let reply = rt.invoke.invoke(&r.id, call).await?;
    let code = grpc_code_of(reply.status);
    if code != tonic::Code::Ok {
        return Err(Status::new(
            code,
            format!(
                "the app answered {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ),
        ));
    }
    Ok(Response::new(common_pb::InvokeResponse {
        content_type: reply.content_type().unwrap_or_default().to_owned(),
        data: Some(prost_types::Any {
            type_url: String::new(),
            value: reply.body,
        }),
    }))
}

/// The caller a peer gateway declared (`None` when it sent no app id);
/// a missing namespace or trust domain is Dapr's default.
fn caller_of(r: &internal_pb::LocalCall) -> Option<Caller> {
    use crate::access_control::{DEFAULT_NAMESPACE, DEFAULT_TRUST_DOMAIN};
    let or = |value: &str, default: &str| {
        if value.is_empty() {
            default.to_owned()
        } else {
            value.to_owned()
        }
    };
    (!r.caller_app_id.is_empty()).then(|| Caller {
        app_id: r.caller_app_id.clone(),
        namespace: or(&r.caller_namespace, DEFAULT_NAMESPACE),
        trust_domain: or(&r.caller_trust_domain, DEFAULT_TRUST_DOMAIN),
    })
}

/// The peer-facing service.
#[derive(Debug, Clone)]
pub struct GatewayInvokeService {
    rt: Arc<Runtime>,
}

impl GatewayInvokeService {
    /// Over `rt`.
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }
}

#[tonic::async_trait]
impl internal_pb::gateway_invoke_server::GatewayInvoke for GatewayInvokeService {
    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "CallLocal"))]
    async fn call_local(
        &self,
        request: Request<internal_pb::LocalCall>,
    ) -> Result<Response<internal_pb::LocalReply>, Status> {
        let r = request.into_inner();
        if r.app_id != self.rt.config.app_id {
            // A stale registry entry: the port is now someone else's.
            return Err(Status::unavailable(format!(
                "this gateway serves {}, not {}",
                self.rt.config.app_id, r.app_id
            )));
        }
        let caller = caller_of(&r);
        let mut call = Call {
            method: r.method,
            verb: r.verb,
            query: r.query,
            headers: map_headers(r.headers),
            body: r.body,
        };
        self.rt.invoke.admit(caller.as_ref(), &call)?;
        let (app_id, caller_id) = (&self.rt.config.app_id, r.caller_app_id.as_str());
        crate::metrics::invocation::request_received(app_id, caller_id);
        let telemetry = self.rt.invoke.telemetry();
        let span = invoke_spans::callee_span(telemetry, &r.app_id, &mut call);
        // Boxed, as the app call's future is large (see `api::http::invoke`).
        let app_call = Box::pin(self.rt.invoke.call_app(call));
        let called = crate::telemetry::within(span.clone(), app_call).await;
        let reply = invoke_spans::finish(&span, called).inspect_err(|err| {
            crate::metrics::invocation::response_sent(app_id, caller_id, err.http.as_u16());
        })?;
        crate::metrics::invocation::response_sent(app_id, caller_id, reply.status);
        Ok(Response::new(internal_pb::LocalReply {
            status: u32::from(reply.status),
            headers: wire_headers(reply.headers),
            body: reply.body.into(),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "CallActor"))]
    async fn call_actor(
        &self,
        request: Request<internal_pb::ActorCall>,
    ) -> Result<Response<internal_pb::ActorReply>, Status> {
        let call = request.into_inner();
        self.rt
            .actors
            .serve_forwarded(call)
            .await
            .map(Response::new)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "ListActors"))]
    async fn list_actors(
        &self,
        request: Request<internal_pb::ListActorsCall>,
    ) -> Result<Response<internal_pb::ListActorsReply>, Status> {
        let actor_ids = self.rt.actors.local_ids(&request.into_inner().actor_type);
        Ok(Response::new(internal_pb::ListActorsReply { actor_ids }))
    }
}
