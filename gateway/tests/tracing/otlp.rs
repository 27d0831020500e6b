//! An in-test OTLP receiver: gRPC `TraceService/Export` and OTLP/HTTP
//! `POST /v1/traces` (protobuf), recording each span's service, trace id
//! and name.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;

/// One exported span: its service (app id), trace id (hex) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// The parent span's id (empty for a root).
    pub parent: String,
    pub name: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Default)]
pub struct Spans(Arc<Mutex<Vec<Exported>>>);

impl Spans {
    fn record(&self, request: ExportTraceServiceRequest) {
        let mut all = self.0.lock().unwrap();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    all.push(Exported {
                        service: service.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent: hex(&span.parent_span_id),
                        name: span.name,
                    });
                }
            }
        }
    }

    pub fn all(&self) -> Vec<Exported> {
        self.0.lock().unwrap().clone()
    }

    /// Wait (up to 5 s) until spans of every one of `services` arrived.
    pub async fn wait_for(&self, services: &[&str]) -> Vec<Exported> {
        for _ in 0..100 {
            let all = self.all();
            if services.iter().all(|s| all.iter().any(|e| e.service == *s)) {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("spans of {services:?} never arrived; got {:?}", self.all());
    }
}

#[tonic::async_trait]
impl TraceService for Spans {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.record(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver on a free port.
pub async fn grpc_receiver() -> (SocketAddr, Spans) {
    let spans = Spans::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(spans.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (addr, spans)
}

/// An OTLP/HTTP (protobuf) receiver on a free port.
pub async fn http_receiver() -> (SocketAddr, Spans) {
    let spans = Spans::default();
    let recorded = spans.clone();
    let router = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let recorded = recorded.clone();
            async move {
                recorded.record(ExportTraceServiceRequest::decode(body).unwrap());
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, spans)
}
