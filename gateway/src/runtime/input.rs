//! Input bindings delivered to an HTTP app.
//!
//! As daprd does, the gateway first probes `OPTIONS /<route>` (route = the
//! component's `route` metadata, else `/<binding name>`): 2xx or 405 means
//! the app listens. It then reads the component's `Read` stream and POSTs
//! each event to the route, event metadata as headers; the app's 2xx body is
//! the ack's response data, anything else is sent back as an error.

use std::sync::Arc;
use std::time::Duration;

use outrigger_proto::components as pb;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::app_channel::{App, GrpcApp, HttpApp};
use crate::components::Component;
use crate::resources::MetadataValue;

/// The route events of `binding` go to.
pub fn route(binding: &Component) -> String {
    binding
        .spec
        .metadata
        .iter()
        .find_map(|(k, v)| match v {
            MetadataValue::Plain(v) if k.eq_ignore_ascii_case("route") && !v.is_empty() => {
                Some(v.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| format!("/{}", binding.spec.name))
}

/// Deliver `binding`'s events to `app` until `shutdown`.
pub async fn deliver(binding: Arc<Component>, app: HttpApp, shutdown: CancellationToken) {
    let route = route(&binding);
    // Probe until the app answers; only 2xx or 405 means it wants the events.
    loop {
        match app
            .call("OPTIONS", &route, "application/json", Vec::new())
            .await
        {
            Ok(reply) if (200..300).contains(&reply.status) || reply.status == 405 => break,
            Ok(reply) => {
                tracing::info!(binding = %binding.spec.name, %route, status = reply.status, "the app does not listen for this input binding");
                return;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    read_loop(&binding, &App::Http(Box::new(app)), &route, &shutdown).await;
}

/// Deliver `binding`'s events to a gRPC app (`OnBindingEvent`) when the app
/// lists it in `ListInputBindings`.
pub async fn deliver_grpc(binding: Arc<Component>, app: GrpcApp, shutdown: CancellationToken) {
    loop {
        match app.client().list_input_bindings(app.request(())).await {
            Ok(list) => {
                if !list.into_inner().bindings.contains(&binding.spec.name) {
                    tracing::info!(binding = %binding.spec.name, "the gRPC app does not list this input binding");
                    return;
                }
                break;
            }
            Err(status) if status.code() == tonic::Code::Unimplemented => return,
            Err(_) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    read_loop(&binding, &App::Grpc(app), "", &shutdown).await;
}

async fn read_loop(binding: &Component, app: &App, route: &str, shutdown: &CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        if let Err(why) = read_once(binding, app, route, shutdown).await {
            tracing::warn!(binding = %binding.spec.name, reason = %why, "input binding stream failed; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn read_once(
    binding: &Component,
    app: &App,
    route: &str,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    binding.ensure_ready()?;
    let (answers, rx) = tokio::sync::mpsc::channel(16);
    let mut events = binding
        .input_binding()
        .read(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("Read: {}", s.message()))?
        .into_inner();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            e = events.next() => e,
        };
        let event = match event {
            None => return Ok(()),
            Some(Err(s)) => return Err(s.message().to_owned()),
            Some(Ok(e)) => e,
        };
        let content_type = if event.content_type.is_empty() {
            "application/json".to_owned()
        } else {
            event.content_type.clone()
        };
        let reply = match app {
            App::Http(http) => match http
                .call_with_headers("POST", route, &content_type, event.data, &event.metadata)
                .await
            {
                Ok(reply) if (200..300).contains(&reply.status) => Ok(reply.body),
                Ok(reply) => Err(format!("the app answered HTTP {}", reply.status)),
                Err(why) => Err(why),
            },
            App::Grpc(grpc) => {
                let request = outrigger_proto::runtime::BindingEventRequest {
                    name: binding.spec.name.clone(),
                    data: event.data,
                    metadata: event.metadata,
                };
                grpc.client()
                    .on_binding_event(grpc.request(request))
                    .await
                    .map(|r| r.into_inner().data)
                    .map_err(|s| format!("OnBindingEvent: {}", s.message()))
            }
        };
        let answer = match reply {
            Ok(data) => pb::ReadRequest {
                response_data: data,
                message_id: event.message_id,
                response_error: None,
            },
            Err(message) => pb::ReadRequest {
                message_id: event.message_id,
                response_error: Some(pb::AckResponseError { message }),
                ..Default::default()
            },
        };
        answers.send(answer).await.map_err(|e| e.to_string())?;
    }
}
