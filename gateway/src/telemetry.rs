//! Distributed tracing: the `Configuration` resource's `spec.tracing`, one
//! OpenTelemetry tracer provider per gateway (OTLP over gRPC or HTTP), and
//! the spans the gateway opens around HTTP API calls, invocation,
//! publishing and delivery.
//!
//! Each [`crate::Gateway`] owns its own [`Telemetry`] rather than a process
//! global, so two gateways in one process (tests, `outrigger run`) export
//! under their own app id with their own sampling. Spans are opened with
//! the OpenTelemetry API and carried with [`within`], which makes them the
//! current context while a call runs; component and peer calls read it from
//! there (see [`propagation`]).
//!
//! Sampling follows Dapr: `samplingRate` "0" turns tracing off (the caller's
//! trace context is still passed on untouched), anything up to "1" samples
//! new traces at that rate and always follows a sampled parent. Without a
//! `tracing` section the rate is Dapr's default, 0.0001, and nothing is
//! exported unless `otel.endpointAddress` is set.

pub mod invoke;
pub mod propagation;
pub mod pubsub;

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, Sampler, SdkTracer, SdkTracerProvider};

/// Dapr's sampling rate when the `Configuration` does not set one.
pub const DEFAULT_SAMPLING_RATE: f64 = 0.0001;

/// How often finished spans are sent to the collector.
pub const EXPORT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Longest one export may take (it also bounds the flush at shutdown when
/// the collector is down).
pub const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// An invalid `spec.tracing` setting; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A field has a value the gateway cannot use.
    #[error("spec.tracing.{field}: {reason}")]
    Invalid {
        /// The field, below `spec.tracing`.
        field: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The OTLP exporter could not be built from valid settings.
    #[error("spec.tracing.otel: cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> TelemetryError {
    TelemetryError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// How spans are sent to the collector (`spec.tracing.otel.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (the default; collectors listen on 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies, to `<endpoint>/v1/traces` (4318).
    Http,
}

/// `spec.tracing.otel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// `endpointAddress`: `host:port` (or a full `http://` URL).
    pub endpoint: String,
    /// `protocol`: `grpc` (default) or `http`.
    pub protocol: OtlpProtocol,
}

/// `spec.tracing` of the `Configuration` resource, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    /// `samplingRate`, 0 to 1 (default [`DEFAULT_SAMPLING_RATE`]); 0 turns tracing off.
    pub sampling_rate: f64,
    /// Where spans are exported; `None` exports nothing.
    pub otlp: Option<OtlpSettings>,
}

impl Default for TracingSettings {
    fn default() -> Self {
        Self {
            sampling_rate: DEFAULT_SAMPLING_RATE,
            otlp: None,
        }
    }
}

impl TracingSettings {
    /// Read `spec.tracing` (absent: the defaults).
    ///
    /// # Errors
    /// A `samplingRate` that is not a number from 0 to 1, an unknown
    /// `otel.protocol`, `otel.isSecure: true` (TLS export is not built in),
    /// or a non-string endpoint; the error names the field.
    pub fn from_spec(spec: &serde_yaml_ng::Value) -> Result<Self, TelemetryError> {
        let Some(tracing) = spec.get("tracing") else {
            return Ok(Self::default());
        };
        let sampling_rate = match tracing.get("samplingRate") {
            None | Some(serde_yaml_ng::Value::Null) => DEFAULT_SAMPLING_RATE,
            Some(value) => {
                let text = match value {
                    serde_yaml_ng::Value::String(s) => s.trim().to_owned(),
                    serde_yaml_ng::Value::Number(n) => n.to_string(),
                    _ => String::new(),
                };
                text.parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| {
                        invalid(
                            "samplingRate",
                            format!("{value:?} is not a number from \"0\" to \"1\""),
                        )
                    })?
            }
        };
        let otlp = match tracing.get("otel") {
            None | Some(serde_yaml_ng::Value::Null) => None,
            Some(otel) => Self::otel(otel)?,
        };
        Ok(Self {
            sampling_rate,
            otlp,
        })
    }

    fn otel(otel: &serde_yaml_ng::Value) -> Result<Option<OtlpSettings>, TelemetryError> {
        let protocol = match otel.get("protocol") {
            None | Some(serde_yaml_ng::Value::Null) => OtlpProtocol::Grpc,
            Some(value) => match value.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("grpc") => OtlpProtocol::Grpc,
                Some("http" | "http/protobuf") => OtlpProtocol::Http,
                _ => {
                    return Err(invalid(
                        "otel.protocol",
                        format!("{value:?} is not \"grpc\" or \"http\""),
                    ));
                }
            },
        };
        let secure = match otel.get("isSecure") {
            None | Some(serde_yaml_ng::Value::Null) => false,
            Some(serde_yaml_ng::Value::Bool(b)) => *b,
            Some(serde_yaml_ng::Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(serde_yaml_ng::Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(other) => {
                return Err(invalid(
                    "otel.isSecure",
                    format!("{other:?} is not true or false"),
                ));
            }
        };
        if secure {
            return Err(invalid(
                "otel.isSecure",
                "TLS export is not built into Outrigger; send to a local collector with isSecure: false",
            ));
        }
        let endpoint = match otel.get("endpointAddress") {
            None | Some(serde_yaml_ng::Value::Null) => return Ok(None),
            Some(serde_yaml_ng::Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(serde_yaml_ng::Value::String(s)) => s.trim().to_owned(),
            Some(other) => {
                return Err(invalid(
                    "otel.endpointAddress",
                    format!("{other:?} is not a \"host:port\" string"),
                ));
            }
        };
        Ok(Some(OtlpSettings { endpoint, protocol }))
    }
}

/// One gateway's tracer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Telemetry {
    /// `None` when tracing is off (`samplingRate: "0"`).
    tracer: Option<(Arc<Provider>, SdkTracer)>,
}

/// The gateway's provider, shut down off the async runtime when the last
/// [`Telemetry`] clone goes. The SDK's own drop of a provider that was not
/// shut down blocks the dropping thread until the export task answers; on a
/// runtime worker that task may never run (every worker dropping a gateway,
/// as at the end of a test) and the process hangs.
#[derive(Debug)]
struct Provider(SdkTracerProvider);

impl Drop for Provider {
    fn drop(&mut self) {
        let provider = self.0.clone();
        // The thread holds the last reference, so the SDK's drop runs there
        // too; after a shutdown (explicit or here) it no longer blocks.
        let spawned = std::thread::Builder::new()
            .name("otel-shutdown".into())
            .spawn(move || {
                let _ = provider.shutdown();
            });
        if let Err(err) = spawned {
            tracing::debug!(error = %err, "no thread to shut the span exporter down");
        }
    }
}

impl Telemetry {
    /// Tracing off: no spans, the caller's context passes through unchanged.
    pub fn disabled() -> Self {
        Self { tracer: None }
    }

    /// The tracer for `settings`, naming spans' service `app_id`. Must be
    /// called inside the Tokio runtime (the exporter runs on it).
    ///
    /// # Errors
    /// The exporter cannot be built (a malformed endpoint).
    pub fn new(settings: &TracingSettings, app_id: &str) -> Result<Self, TelemetryError> {
        if settings.sampling_rate <= 0.0 {
            return Ok(Self::disabled());
        }
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(app_id.to_owned())
            .build();
        let mut builder = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sampling_rate,
            ))));
        if let Some(otlp) = &settings.otlp {
            let exporter = exporter(otlp)?;
            // The async-runtime batch processor exports on Tokio, which the
            // hyper-based HTTP client needs (the default one runs a thread).
            let processor = BatchSpanProcessor::builder(exporter, Tokio)
                .with_batch_config(
                    BatchConfigBuilder::default()
                        .with_scheduled_delay(EXPORT_INTERVAL)
                        .build(),
                )
                .build();
            builder = builder.with_span_processor(processor);
        }
        let provider = builder.build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "outrigger");
        Ok(Self {
            tracer: Some((Arc::new(Provider(provider)), tracer)),
        })
    }

    /// Open a span of `kind` as a child of `parent`, and the context
    /// holding it; with tracing off, `parent` itself. `describe` gives the
    /// span's name and attributes, and runs only for a span the sampler
    /// records: the others (all but 1 in 10 000 at Dapr's default rate)
    /// cost no formatting.
    pub fn start(
        &self,
        kind: SpanKind,
        parent: &Context,
        describe: impl FnOnce() -> (Cow<'static, str>, Vec<KeyValue>),
    ) -> Context {
        match &self.tracer {
            None => parent.clone(),
            Some((_, tracer)) => {
                let mut span = tracer
                    .span_builder("")
                    .with_kind(kind)
                    .start_with_context(tracer, parent);
                if span.is_recording() {
                    let (name, attributes) = describe();
                    span.update_name(name);
                    span.set_attributes(attributes);
                }
                parent.with_span(span)
            }
        }
    }

    /// Export every finished span now (waits for the exporter).
    pub async fn flush(&self) {
        if let Some((provider, _)) = &self.tracer {
            let provider = provider.0.clone();
            // The SDK blocks the calling thread until the export is done.
            let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
            if let Ok(Err(err)) = flushed {
                tracing::debug!(error = %err, "flushing spans failed");
            }
        }
    }

    /// Export what is left and stop the exporter.
    pub async fn shutdown(&self) {
        if let Some((provider, _)) = &self.tracer {
            let provider = provider.0.clone();
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

fn exporter(otlp: &OtlpSettings) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let base = if otlp.endpoint.contains("://") {
        otlp.endpoint.trim_end_matches('/').to_owned()
    } else {
        format!("http://{}", otlp.endpoint.trim_end_matches('/'))
    };
    let built = match otlp.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(base)
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        OtlpProtocol::Http => {
            // Dapr's endpointAddress is the collector's address; the OTLP
            // path is added unless the address already names one.
            let url = if base.ends_with("/v1/traces") {
                base
            } else {
                format!("{base}/v1/traces")
            };
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url)
                .with_timeout(EXPORT_TIMEOUT)
                .build()
        }
    };
    built.map_err(|e| TelemetryError::Exporter(e.to_string()))
}

/// The current context when it holds a span (an API call's, see
/// [`api_span`] and the gRPC listener's `Services::call`), else `fallback()`.
fn current_or(fallback: impl FnOnce() -> Context) -> Context {
    let current = Context::current();
    if current.span().span_context().is_valid() {
        current
    } else {
        fallback()
    }
}

/// Run `call` with `cx` as the current context (so component and peer
/// calls made inside it carry its trace context).
pub fn within<F: Future>(cx: Context, call: F) -> opentelemetry::context::WithContext<F> {
    opentelemetry::context::FutureExt::with_context(call, cx)
}

/// Open the gateway's server span for an app's HTTP API `request` (a child
/// of its `traceparent`), named after the matched route.
pub fn api_span<B>(telemetry: &Telemetry, request: &http::Request<B>) -> Context {
    let parent = propagation::extract_http(request.headers());
    telemetry.start(SpanKind::Server, &parent, || {
        let route = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| request.uri().path(), |p| p.as_str());
        let method = request.method().as_str();
        (
            format!("{method} {route}").into(),
            vec![
                KeyValue::new("http.request.method", method.to_owned()),
                KeyValue::new("http.route", route.to_owned()),
            ],
        )
    })
}

/// End the span in `cx`, recording the HTTP `status` the call ended with
/// when there is one (5xx marks the span an error).
pub fn end(cx: &Context, status: Option<u16>) {
    let span = cx.span();
    if let Some(code) = status {
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
        if code >= 500 {
            span.set_status(Status::error(format!("status {code}")));
        }
    }
    span.end();
}

/// End the span in `cx` with an error `message`.
pub fn fail(cx: &Context, message: &str) {
    let span = cx.span();
    span.set_status(Status::error(message.to_owned()));
    span.end();
}

#[cfg(test)]
mod tests;
