//! Service invocation: call a method of an app by its id.
//!
//! A call for this gateway's own app id goes straight to the app. Any other
//! id is resolved by the configured [`Resolver`] (the local registry folder
//! by default, or a static table, or DNS) and
//! sent to that app's gateway over gRPC (`outrigger.internal.v1.GatewayInvoke`,
//! HTTP/2, one pooled connection per peer), which calls its app; the app's
//! status, headers and body come back unchanged, so errors keep the callee's
//! status. Peers that cannot be reached are skipped for the next entry.
//!
//! A `Resiliency` target for the callee's app id (`spec.targets.apps`)
//! wraps the whole send (resolution and peer call) on the caller's gateway
//! in its retry → circuit breaker → timeout layers ([`crate::resiliency`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use tower::ServiceExt;

use crate::access_control::{Caller, Security};
use crate::app_channel::App;
use crate::error::{ApiError, codes};
use crate::nameresolution::Resolver;
use crate::resiliency::{Attempt, Resiliency, ResiliencyError, TargetPolicy};

mod app;
mod headers;
mod peer;

pub use app::grpc_code_of;
use headers::forwarded;
pub use headers::{header_map, header_pairs};
pub(crate) use headers::{map_headers, wire_headers};

/// One call: what the caller's app asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Call {
    /// The method path (after `/method/`).
    pub method: String,
    /// HTTP verb.
    pub verb: String,
    /// Query string, without `?`.
    pub query: String,
    /// Headers to pass on, as the app sent them: they reach the callee
    /// without being copied into strings and parsed again on each side.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// The callee app's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers (hop-by-hop ones removed).
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The `content-type` header, if any (and readable as text).
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }
}

impl Attempt for Reply {
    /// As daprd judges an app's answer: anything outside 200–399 failed.
    fn failed_status(&self) -> Option<u16> {
        (!(200..400).contains(&self.status)).then_some(self.status)
    }
}

/// The invocation API of one gateway.
#[derive(Debug, Clone)]
pub struct InvokeApi {
    app_id: String,
    app: Option<App>,
    names: Option<Resolver>,
    token: Option<http::HeaderValue>,
    peers: Arc<Mutex<HashMap<SocketAddr, crate::components::channel::UdsChannel>>>,
    app_grpc: Option<SocketAddr>,
    resiliency: Arc<OnceLock<Resiliency>>,
    security: Arc<OnceLock<Security>>,
    telemetry: crate::telemetry::Telemetry,
}

fn direct_invoke(message: String) -> ApiError {
    ApiError::new(codes::ERR_DIRECT_INVOKE, message)
}

impl InvokeApi {
    /// For `app_id`'s gateway; `app` is its app, `names` the local registry,
    /// `token` (`DAPR_API_TOKEN`) is presented to peer gateways.
    pub fn new(
        app_id: String,
        app: Option<App>,
        names: Option<Resolver>,
        token: Option<String>,
        app_grpc: Option<SocketAddr>,
    ) -> Self {
        Self {
            app_grpc,
            app_id,
            app,
            names,
            token: token.and_then(|t| http::HeaderValue::try_from(t).ok()),
            peers: Arc::new(Mutex::new(HashMap::new())),
            security: Arc::default(),
            resiliency: Arc::new(OnceLock::new()),
            telemetry: crate::telemetry::Telemetry::disabled(),
        }
    }

    /// Trace calls with `telemetry`.
    pub fn with_telemetry(mut self, telemetry: crate::telemetry::Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// The tracer calls are traced with.
    pub fn telemetry(&self) -> &crate::telemetry::Telemetry {
        &self.telemetry
    }

    /// Apply `resiliency`'s app targets to calls made from now on (set once,
    /// at start-up; a second call is ignored).
    pub fn set_resiliency(&self, resiliency: Resiliency) {
        if self.resiliency.set(resiliency).is_err() {
            tracing::warn!(
                "resiliency policies for invocation were already set; keeping the first"
            );
        }
    }

    /// Set access control and the identity sent to peers (once, at start-up).
    pub fn secure(&self, security: Security) {
        if self.security.set(security).is_err() {
            tracing::warn!("access control was already set; keeping the first");
        }
    }

    /// Access control and this app's identity, once set.
    pub fn security(&self) -> Option<&Security> {
        self.security.get()
    }

    /// The callee's side of a peer call: whether access control lets
    /// `caller` call `call.method` with `call.verb`.
    ///
    /// # Errors
    /// `PermissionDenied` when a policy refuses it.
    pub fn admit(&self, caller: Option<&Caller>, call: &Call) -> Result<(), tonic::Status> {
        let Some(security) = self.security.get() else {
            return Ok(());
        };
        let http = !matches!(self.app, Some(App::Grpc(_)));
        security.admit(caller, &call.method, &call.verb, http)
    }

    /// Whether `target` names this gateway's own app (`id` or `id.namespace`).
    pub fn is_local(&self, target: &str) -> bool {
        target == self.app_id
            || target
                .split_once('.')
                .is_some_and(|(app, _)| app == self.app_id)
    }

    /// Call `call.method` of app `target`.
    ///
    /// # Errors
    /// `ERR_DIRECT_INVOKE` when the app cannot be found or reached; an app
    /// that answers, whatever its status, is a [`Reply`].
    #[tracing::instrument(level = "debug", skip_all, fields(block = "invoke", app_id = target, method = %call.method))]
    pub async fn invoke(&self, target: &str, mut call: Call) -> Result<Reply, ApiError> {
        let span = crate::telemetry::invoke::caller_span(&self.telemetry, target, &mut call);
        let called = crate::metrics::timed("invoke", "invoke", async {
            if target.is_empty() {
                return Err(
                    ApiError::new(codes::ERR_DIRECT_INVOKE, "app id: must not be empty")
                        .with_status(http::StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
                );
            }
            call.headers = forwarded(std::mem::take(&mut call.headers));
            // Boxed: the send is a large future (with a policy, larger
            // still), which the metrics and trace wrappers around it would
            // otherwise copy as they are built.
            match self.resiliency.get().and_then(|r| r.app(target)) {
                Some(policy) => Box::pin(self.send_with(policy, target, call)).await,
                None => Box::pin(self.send(target, call)).await,
            }
        });
        crate::telemetry::invoke::finish(
            &span,
            crate::telemetry::within(span.clone(), called).await,
        )
    }

    /// [`Self::send`] wrapped in `policy`'s tower layers.
    async fn send_with(
        &self,
        policy: &TargetPolicy,
        target: &str,
        call: Call,
    ) -> Result<Reply, ApiError> {
        let (api, to) = (Arc::new(self.clone()), Arc::<str>::from(target));
        let send = tower::service_fn(move |call: Call| {
            let (api, to) = (Arc::clone(&api), Arc::clone(&to));
            async move { api.send(&to, call).await.map_err(ResiliencyError::Inner) }
        });
        let result = crate::resiliency::layers::stack(policy, send)
            .oneshot(call)
            .await;
        result.map_err(|err| match err {
            ResiliencyError::Inner(err) => err,
            ResiliencyError::Timeout(_) => {
                direct_invoke(format!("failed to invoke, id: {target}, err: {err}")).with_status(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    tonic::Code::DeadlineExceeded,
                )
            }
            ResiliencyError::BreakerOpen { .. } => {
                tracing::debug!(app_id = target, "circuit breaker open; failing fast");
                direct_invoke(format!("failed to invoke, id: {target}, err: {err}"))
            }
        })
    }

    /// Send one call to `target`'s app: straight to ours, or through the
    /// first of its gateways that answers.
    async fn send(&self, target: &str, call: Call) -> Result<Reply, ApiError> {
        if self.is_local(target) {
            return self.call_app(call).await;
        }
        let Some(names) = &self.names else {
            return Err(direct_invoke(format!(
                "failed to invoke, id: {target}: no name resolution is configured"
            )));
        };
        let peers = names.resolve(target).await;
        if peers.is_empty() {
            return Err(direct_invoke(format!(
                "failed to invoke, id: {target}, err: couldn't find service: {target}"
            )));
        }
        let mut message = self.local_call(call);
        let mut last = String::new();
        for peer in peers {
            let started = crate::metrics::invocation::request_sent(&self.app_id, target);
            peer.app_id.clone_into(&mut message.app_id);
            match self.call_peer(peer.grpc, &message).await {
                Ok(reply) => {
                    crate::metrics::invocation::response_received(
                        &self.app_id,
                        target,
                        reply.status,
                        started,
                    );
                    return Ok(reply);
                }
                Err(status) if status.code() == tonic::Code::PermissionDenied => {
                    // Refused by the callee's access control (daprd: 403).
                    return Err(direct_invoke(format!(
                        "failed to invoke, id: {target}, err: {}",
                        status.message()
                    ))
                    .with_status(http::StatusCode::FORBIDDEN, tonic::Code::PermissionDenied));
                }
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    tracing::debug!(peer = %peer.grpc, reason = %status.message(), "peer gateway unreachable; trying the next");
                    last = status.message().to_owned();
                    names.forget(target);
                }
                Err(status) => {
                    return Err(direct_invoke(format!(
                        "failed to invoke, id: {target}: {}",
                        status.message()
                    )));
                }
            }
        }
        Err(direct_invoke(format!(
            "failed to invoke, id: {target}: no gateway of it answered ({last})"
        )))
    }

    /// Where a proxied gRPC call for `target` goes: this gateway's gRPC
    /// app, or the first live gateway of `target`.
    ///
    /// # Errors
    /// A status naming why there is nowhere to send it.
    pub async fn proxy_target(&self, target: &str) -> Result<SocketAddr, tonic::Status> {
        if self.is_local(target) {
            return match self.app_grpc {
                Some(addr) => Ok(addr),
                None => Err(tonic::Status::unavailable(format!(
                    "{target} has no gRPC app (--app-protocol grpc --app-port) to proxy to"
                ))),
            };
        }
        let found = match &self.names {
            Some(names) => names.resolve(target).await.into_iter().next(),
            None => None,
        };
        found
            .map(|entry| entry.grpc)
            .ok_or_else(|| tonic::Status::unavailable(format!("couldn't find service: {target}")))
    }
}
