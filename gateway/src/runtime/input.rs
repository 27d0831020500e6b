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

use crate::app_channel::HttpApp;
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
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        if let Err(why) = read_once(&binding, &app, &route, &shutdown).await {
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
    app: &HttpApp,
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
        let answer = match app
            .call_with_headers("POST", route, &content_type, event.data, &event.metadata)
            .await
        {
            Ok(reply) if (200..300).contains(&reply.status) => pb::ReadRequest {
                response_data: reply.body,
                message_id: event.message_id,
                response_error: None,
            },
            Ok(reply) => pb::ReadRequest {
                message_id: event.message_id,
                response_error: Some(pb::AckResponseError {
                    message: format!("the app answered HTTP {}", reply.status),
                }),
                ..Default::default()
            },
            Err(why) => pb::ReadRequest {
                message_id: event.message_id,
                response_error: Some(pb::AckResponseError { message: why }),
                ..Default::default()
            },
        };
        answers.send(answer).await.map_err(|e| e.to_string())?;
    }
}
