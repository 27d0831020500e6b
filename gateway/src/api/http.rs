//! The Dapr HTTP API (v1.0) on axum.
//!
//! [`Api`] serves the routes: ahead of routing, once per request, it counts
//! and times every answer (metrics), checks the API token (health routes
//! exempt, as in daprd) and sets the body size limit. After routing, one
//! layer opens the tracing span (and the OpenTelemetry span, child of the
//! app's `traceparent`, named after the matched route). Bodies over the
//! limit and unreadable bodies become `ERR_BODY_READ`.

mod actors;
mod bindings;
mod configuration;
mod invoke;
mod metadata;
mod pubsub;
mod secrets;
mod state;
pub(crate) mod workflows;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use super::Runtime;
use crate::error::{ApiError, codes};

/// The header carrying the API token.
pub const TOKEN_HEADER: &str = "dapr-api-token";

/// The HTTP API over `runtime`, ready to serve.
pub fn router(runtime: Arc<Runtime>) -> Api {
    Api {
        limit: DefaultBodyLimit::max(runtime.config.max_body_bytes),
        routes: routes(Arc::clone(&runtime)),
        runtime,
    }
}

/// The HTTP API: the routes, with what applies to every request done once
/// ahead of routing. (A layer added with `Router::layer` wraps each route
/// instead, and every such layer cost a clone of the boxed route and a
/// boxed future per request.)
#[derive(Clone)]
pub struct Api {
    runtime: Arc<Runtime>,
    limit: DefaultBodyLimit,
    routes: Router,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

impl tower::Service<Request> for Api {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // Routers are always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // Every answer is counted, token refusals included.
        let timer = crate::metrics::http_server::Timer::start(&request);
        let runtime = Arc::clone(&self.runtime);
        let routed = if token_refused(&runtime, &request) {
            None
        } else {
            self.limit.apply(&mut request);
            Some(tower::Service::call(&mut self.routes, request))
        };
        Box::pin(async move {
            let response = match routed {
                Some(routed) => routed.await?,
                // daprd answers a missing or wrong token with plain-text 401.
                None => (StatusCode::UNAUTHORIZED, "invalid api token").into_response(),
            };
            timer.finish(&runtime.config.app_id, response.status());
            Ok(response)
        })
    }
}

/// The routes of the HTTP API over `runtime`.
fn routes(runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route("/v1.0/healthz", get(metadata::healthz))
        .route("/v1.0/healthz/outbound", get(metadata::healthz_outbound))
        .route("/v1.0/metadata", get(metadata::get_metadata))
        .route("/v1.0/metadata/{key}", put(metadata::put_metadata))
        .route("/v1.0/shutdown", post(metadata::shutdown))
        .route("/v1.0/state/{store}", post(state::save).put(state::save))
        .route(
            "/v1.0/state/{store}/bulk",
            post(state::bulk_get).put(state::bulk_get),
        )
        .route(
            "/v1.0/state/{store}/transaction",
            post(state::transaction).put(state::transaction),
        )
        .route(
            "/v1.0/state/{store}/{key}",
            get(state::get).delete(state::delete),
        )
        .route(
            "/v1.0-alpha1/state/{store}/query",
            post(state::query).put(state::query),
        )
        .route("/v1.0/secrets/{store}/bulk", get(secrets::bulk_get))
        .route("/v1.0/secrets/{store}/{key}", get(secrets::get))
        .route(
            "/v1.0/bindings/{name}",
            post(bindings::invoke).put(bindings::invoke),
        )
        .route(
            "/v1.0/publish/{pubsub}/{*topic}",
            post(pubsub::publish).put(pubsub::publish),
        )
        .route(
            "/v1.0/publish/bulk/{pubsub}/{*topic}",
            post(pubsub::bulk_publish).put(pubsub::bulk_publish),
        )
        .route(
            "/v1.0-alpha1/publish/bulk/{pubsub}/{*topic}",
            post(pubsub::bulk_publish).put(pubsub::bulk_publish),
        )
        .route(
            "/v1.0/invoke/{app_id}/method/{*method}",
            axum::routing::any(invoke::invoke),
        )
        .merge(actor_routes())
        .merge(configuration_routes("/v1.0"))
        .merge(configuration_routes("/v1.0-alpha1"))
        .merge(workflow_routes("/v1.0"))
        .merge(workflow_routes("/v1.0-beta1"))
        .merge(workflow_routes("/v1.0-alpha1"))
        .route("/v1.0-alpha1/workflows/{component}", get(workflows::list))
        .fallback(unimplemented)
        // After routing, so the span is named after the matched route.
        .layer(Trace(Arc::clone(&runtime)))
        .with_state(runtime)
}

/// The actor API, and Outrigger's list APIs for actors and reminders.
fn actor_routes() -> Router<Arc<Runtime>> {
    const ACTOR: &str = "/v1.0/actors/{actor_type}/{actor_id}";
    Router::new()
        .route(
            &format!("{ACTOR}/method/{{*method}}"),
            axum::routing::any(actors::invoke),
        )
        .route(
            &format!("{ACTOR}/state"),
            post(actors::transaction).put(actors::transaction),
        )
        .route(&format!("{ACTOR}/state/{{key}}"), get(actors::get_state))
        .route(
            &format!("{ACTOR}/reminders/{{name}}"),
            post(actors::create_reminder)
                .put(actors::create_reminder)
                .get(actors::get_reminder)
                .delete(actors::delete_reminder),
        )
        .route(
            &format!("{ACTOR}/timers/{{name}}"),
            post(actors::create_timer)
                .put(actors::create_timer)
                .delete(actors::delete_timer),
        )
        .route("/v1.0-alpha1/actors/{actor_type}", get(actors::list_active))
        .route(
            "/v1.0-alpha1/actors/{actor_type}/reminders",
            get(actors::list_reminders),
        )
        .route(
            "/v1.0-alpha1/actors/{actor_type}/{actor_id}/reminders",
            get(actors::list_reminders),
        )
}

/// The configuration API under one version prefix.
fn configuration_routes(version: &str) -> Router<Arc<Runtime>> {
    Router::new()
        .route(
            &format!("{version}/configuration/{{store}}"),
            get(configuration::get),
        )
        .route(
            &format!("{version}/configuration/{{store}}/subscribe"),
            get(configuration::subscribe),
        )
        .route(
            &format!("{version}/configuration/{{store}}/{{id}}/unsubscribe"),
            get(configuration::unsubscribe),
        )
        .route(
            &format!("{version}/configuration/{{store}}/unsubscribe/{{id}}"),
            get(configuration::unsubscribe_by_path),
        )
}

/// Dapr's workflow API under one version prefix. daprd serves purge under
/// `v1.0-alpha1` too (`pkg/api/http/workflow.go`), so every prefix has it.
/// `{id}` is the workflow name for `start` and the instance id elsewhere.
fn workflow_routes(version: &str) -> Router<Arc<Runtime>> {
    let base = format!("{version}/workflows/{{component}}/{{id}}");
    Router::new()
        .route(&base, get(workflows::get))
        .route(&format!("{base}/start"), post(workflows::start))
        .route(&format!("{base}/terminate"), post(workflows::terminate))
        .route(&format!("{base}/pause"), post(workflows::pause))
        .route(&format!("{base}/resume"), post(workflows::resume))
        .route(&format!("{base}/purge"), post(workflows::purge))
        .route(
            &format!("{base}/raiseEvent/{{event}}"),
            post(workflows::raise_event),
        )
        .route(
            &format!("{base}/raiseEvent"),
            post(workflows::raise_event_unnamed),
        )
        .route(
            &format!("{base}/raiseEvent/"),
            post(workflows::raise_event_unnamed),
        )
}

/// The layer that opens each routed request's spans.
///
/// A tower layer of its own rather than `middleware::from_fn`, which per
/// request clones and boxes the route it wraps and boxes the call again.
#[derive(Clone)]
struct Trace(Arc<Runtime>);

impl<S> tower::Layer<S> for Trace {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced {
            runtime: Arc::clone(&self.0),
            inner,
        }
    }
}

/// A route wrapped by [`Trace`].
#[derive(Clone)]
struct Traced<S> {
    runtime: Arc<Runtime>,
    inner: S,
}

impl<S> tower::Service<Request> for Traced<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // At debug level, as tower-http's request spans: formatting the fields
        // of two spans per request was ~10 % of the gateway's instructions.
        // With `--log-level debug` every event carries them.
        let span = tracing::debug_span!(
            "http",
            http.request.method = %request.method(),
            url.path = %request.uri().path(),
            http.response.status_code = tracing::field::Empty,
        );
        // The gateway's span (a child of the app's `traceparent`) is current
        // while the call runs, so component and peer calls carry it.
        let otel = crate::telemetry::api_span(&self.runtime.telemetry, &request);
        let call = {
            let _entered = span.enter();
            crate::telemetry::within(otel.clone(), self.inner.call(request))
        };
        Box::pin(async move {
            let response = tracing::Instrument::instrument(call, span.clone()).await?;
            span.record("http.response.status_code", response.status().as_u16());
            crate::telemetry::end(&otel, Some(response.status().as_u16()));
            Ok(response)
        })
    }
}

/// Whether `request` lacks the API token this gateway requires (health
/// routes never need it).
fn token_refused(runtime: &Runtime, request: &Request) -> bool {
    let Some(token) = &runtime.config.api_token else {
        return false;
    };
    let path = request.uri().path();
    let exempt = path == "/v1.0/healthz" || path == "/v1.0/healthz/outbound";
    let given = request
        .headers()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok());
    !exempt && given != Some(token.as_str())
}

/// Routes Dapr has and this gateway does not yet: 501 with Dapr's code. A
/// request elsewhere with a `dapr-app-id` header is a service invocation.
async fn unimplemented(State(runtime): State<Arc<Runtime>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let known = ["/v1.0/", "/v1.0-alpha1/", "/v1.0-alpha2/", "/v1.0-beta1/"]
        .iter()
        .any(|p| path.starts_with(p));
    let target = request
        .headers()
        .get("dapr-app-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(app_id) = target
        && !known
    {
        let (parts, payload) = request.into_parts();
        let bytes = match invoke::read_body(payload, runtime.config.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(err) => return err.into_response(),
        };
        return invoke::by_header(
            &runtime,
            &app_id,
            parts.method,
            parts.uri,
            parts.headers,
            bytes,
        )
        .await
        .unwrap_or_else(IntoResponse::into_response);
    }
    if known {
        ApiError::new(
            codes::ERR_API_UNIMPLEMENTED,
            format!(
                "{} {path} is not implemented by this gateway yet",
                request.method()
            ),
        )
        .into_response()
    } else {
        (StatusCode::NOT_FOUND, "").into_response()
    }
}

// === shared extractors ===

/// `metadata.<key>=<value>` query parameters (first value wins).
pub(crate) fn query_metadata(params: &[(String, String)]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in params {
        if let Some(key) = k.strip_prefix("metadata.")
            && !key.is_empty()
        {
            out.entry(key.to_owned()).or_insert_with(|| v.clone());
        }
    }
    out
}

/// The first value of query parameter `name`.
pub(crate) fn query_value<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The body, or `ERR_BODY_READ` (413 when over the limit).
pub(crate) fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        ApiError::new(
            codes::ERR_BODY_READ,
            format!("failed to read request body: {}", rejection.body_text()),
        )
        .with_status(status, tonic::Code::InvalidArgument)
    })
}

/// Parse a JSON body, or `ERR_MALFORMED_REQUEST` naming the problem.
pub(crate) fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            codes::ERR_MALFORMED_REQUEST,
            format!("failed deserializing HTTP body: {e}"),
        )
    })
}

/// `metadata.<key>` response headers.
pub(crate) fn metadata_headers(headers: &mut HeaderMap, metadata: &HashMap<String, String>) {
    for (k, v) in metadata {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(format!("metadata.{k}")),
            axum::http::HeaderValue::try_from(v.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
}
