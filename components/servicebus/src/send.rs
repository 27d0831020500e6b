//! Sending one message with Dapr's publish retry policy and clear errors.

use std::future::Future;
use std::time::Duration;

use azure_core::StatusCode;
use azure_core::error::ErrorKind as AzureKind;
use azure_messaging_servicebus::service_bus::SendMessageOptions;
use outrigger_component_sdk::ComponentError;

use crate::message::Outgoing;
use crate::namespace::describe;
use crate::settings::Settings;

/// A copy of `options` (the crate's type is not `Clone`).
fn copy(options: &SendMessageOptions) -> SendMessageOptions {
    SendMessageOptions {
        content_type: options.content_type.clone(),
        broker_properties: options.broker_properties.clone(),
        custom_properties: options.custom_properties.clone(),
    }
}

/// The status of a failed send, when the service answered.
fn status(err: &azure_core::Error) -> Option<StatusCode> {
    match err.kind() {
        AzureKind::HttpResponse { status, .. } => Some(*status),
        _ => None,
    }
}

/// Whether Service Bus asked us to slow down.
fn busy(status: Option<StatusCode>) -> bool {
    matches!(
        status,
        Some(StatusCode::ServiceUnavailable | StatusCode::TooManyRequests)
    )
}

/// Send `message` to the queue or topic `name` through `send`; a busy
/// service is retried with exponential back-off, everything else is an error
/// that says what to fix.
pub(crate) async fn send_with_retries<F, Fut>(
    settings: &Settings,
    name: &str,
    noun: &str,
    message: Outgoing,
    send: F,
) -> Result<(), ComponentError>
where
    F: Fn(String, SendMessageOptions) -> Fut,
    Fut: Future<Output = azure_core::Result<()>>,
{
    let mut wait = settings.publish_initial_retry;
    let mut attempt = 0;
    loop {
        let sent = tokio::time::timeout(
            settings.timeout,
            send(message.body.clone(), copy(&message.options)),
        )
        .await;
        let err = match sent {
            Ok(Ok(())) => return Ok(()),
            Err(_) => {
                return Err(ComponentError::unavailable(format!(
                    "sending to {noun} {name}: no answer within timeoutInSec ({:?})",
                    settings.timeout
                )));
            }
            Ok(Err(err)) => err,
        };
        let code = status(&err);
        if busy(code) && attempt < settings.publish_max_retries {
            attempt += 1;
            tracing::debug!(%name, attempt, ?wait, "Service Bus is busy; retrying the send");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
            continue;
        }
        return Err(match code {
            Some(StatusCode::NotFound | StatusCode::Gone) => ComponentError::not_found(format!(
                "{noun} {name:?} does not exist in namespace {:?}{}",
                settings.namespace.name,
                if settings.manage_entities {
                    ""
                } else {
                    " (disableEntityManagement is true: create it first)"
                }
            )),
            Some(StatusCode::Unauthorized | StatusCode::Forbidden) => {
                ComponentError::failed_precondition(format!(
                    "connectionString: namespace {:?} refused the shared access key {:?} for {noun} {name} ({err})",
                    settings.namespace.name, settings.namespace.key_name
                ))
            }
            Some(StatusCode::PayloadTooLarge) => ComponentError::invalid_argument(
                "data",
                format!("the message is larger than {noun} {name} accepts"),
            ),
            _ if busy(code) => ComponentError::unavailable(format!(
                "sending to {noun} {name}: still busy after {attempt} retries (publishMaxRetries): {err}"
            )),
            _ => {
                ComponentError::unavailable(format!("sending to {noun} {name}: {}", describe(&err)))
            }
        });
    }
}
