//! The peek-lock receive loop shared by topic subscriptions and the queue
//! input binding.
//!
//! One long poll at a time per receiver keeps delivery in broker order. At
//! most `maxActiveMessages` locked messages wait for the host's answer; each
//! has a task that renews its lock every `lockRenewalInSec`, then completes
//! it on an ack or abandons it (unlocks it for redelivery) on a nack, on no
//! answer within `handlerTimeoutInSec`, or when the host's stream closes.
//! The broker counts deliveries and dead-letters a message abandoned
//! `MaxDeliveryCount` times.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::StatusCode;
use azure_messaging_servicebus::service_bus::{
    PeekLockResponse, QueueClient, SubscriptionReceiver,
};
use outrigger_component_sdk::{ComponentError, Delivery, Outcome};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::message::{Incoming, incoming};
use crate::namespace::describe;
use crate::settings::Settings;

/// How long one long poll waits for a message.
const POLL: Duration = Duration::from_secs(5);

/// Where messages come from.
#[derive(Clone)]
pub(crate) enum Source {
    Queue(QueueClient),
    Subscription(SubscriptionReceiver),
}

impl Source {
    async fn peek(&self) -> azure_core::Result<PeekLockResponse> {
        match self {
            Self::Queue(q) => q.peek_lock_message2(Some(POLL)).await,
            Self::Subscription(s) => s.peek_lock_message2(Some(POLL)).await,
        }
    }
}

/// Re-creates the entity when it vanished (`autoDeleteOnIdleInSec`), when allowed.
pub(crate) type Recreate =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<(), ComponentError>> + Send + Sync>;

/// A running receiver's inputs.
pub(crate) struct Receiver<M, R> {
    pub(crate) source: Source,
    /// For logs: the queue, or topic/subscription.
    pub(crate) entity: String,
    pub(crate) settings: Settings,
    pub(crate) recreate: Option<Recreate>,
    pub(crate) stop: CancellationToken,
    pub(crate) tx: mpsc::Sender<Result<Delivery<M, R>, ComponentError>>,
    /// Turns a received message into what the host gets.
    pub(crate) wrap: Box<dyn Fn(Incoming) -> M + Send + Sync>,
}

/// What one poll produced.
enum Polled {
    Message(Box<PeekLockResponse>),
    Empty,
    Failed(String, bool),
}

async fn poll(source: &Source) -> Polled {
    match source.peek().await {
        Err(e) => Polled::Failed(format!("peek-lock: {}", describe(&e)), false),
        Ok(response) => match *response.status() {
            StatusCode::Created | StatusCode::Ok => Polled::Message(Box::new(response)),
            StatusCode::NoContent => Polled::Empty,
            status @ (StatusCode::NotFound | StatusCode::Gone) => Polled::Failed(
                format!("peek-lock: HTTP {status}: the entity does not exist"),
                true,
            ),
            status => Polled::Failed(
                format!("peek-lock: HTTP {status}: {}", response.body()),
                false,
            ),
        },
    }
}

impl<M: Send + 'static, R: Send + 'static> Receiver<M, R> {
    /// Receive until the host closes the stream or the component stops.
    pub(crate) async fn run(self) {
        let slots = Arc::new(Semaphore::new(self.settings.max_active));
        // Set by a nack: no new message before this instant.
        let resume_at: Arc<Mutex<Option<Instant>>> = Arc::default();
        let mut retry = self.settings.min_recovery;
        loop {
            let permit = tokio::select! {
                () = self.stop.cancelled() => return,
                () = self.tx.closed() => return,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let pause = resume_at.lock().ok().and_then(|mut at| at.take());
            if let Some(at) = pause {
                tokio::time::sleep_until(at).await;
            }
            let polled = tokio::select! {
                () = self.stop.cancelled() => return,
                polled = poll(&self.source) => polled,
            };
            let response = match polled {
                Polled::Message(response) => response,
                Polled::Empty => continue,
                Polled::Failed(why, missing) => {
                    tracing::warn!(entity = %self.entity, error = %why, ?retry, "receive failed; retrying");
                    if let (true, Some(recreate)) = (missing, &self.recreate)
                        && let Err(e) = recreate().await
                    {
                        tracing::warn!(entity = %self.entity, error = %e, "re-creating the entity failed");
                    }
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = self.tx.closed() => return,
                        () = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(self.settings.max_recovery);
                    continue;
                }
            };
            retry = self.settings.min_recovery;
            let headers = response.custom_properties::<azure_core::headers::Headers>();
            let message = match headers {
                Ok(headers) => incoming(&headers, response.body()),
                Err(never) => match never {},
            };
            let (delivery, outcome) = Delivery::new((self.wrap)(message));
            if self.tx.send(Ok(delivery)).await.is_err() {
                // Nobody will answer: hand it back at once.
                abandon(&response, &self.entity).await;
                return;
            }
            let (settings, entity, resume_at) = (
                self.settings.clone(),
                self.entity.clone(),
                resume_at.clone(),
            );
            tokio::spawn(async move {
                let _slot = permit;
                settle(response, outcome, &settings, &entity, &resume_at).await;
            });
        }
    }
}

/// Keep `message` locked until the host answers, then complete or abandon it.
async fn settle<R>(
    message: Box<PeekLockResponse>,
    outcome: outrigger_component_sdk::OutcomeReceiver<R>,
    settings: &Settings,
    entity: &str,
    resume_at: &Mutex<Option<Instant>>,
) {
    let mut outcome = std::pin::pin!(outcome);
    let deadline = tokio::time::sleep(settings.handler_timeout);
    let mut deadline = std::pin::pin!(deadline);
    let mut renew = tokio::time::interval_at(
        Instant::now() + settings.lock_renewal,
        settings.lock_renewal,
    );
    let verdict = loop {
        tokio::select! {
            verdict = &mut outcome => break Some(verdict),
            () = &mut deadline => break None,
            _ = renew.tick() => {
                if let Err(e) = message.renew_message_lock().await {
                    tracing::warn!(%entity, error = %e, "renewing a message lock failed; it may be redelivered");
                }
            }
        }
    };
    match verdict {
        Some(Outcome::Acked(_)) => {
            if let Err(e) = message.delete_message().await {
                tracing::warn!(%entity, error = %e, "completing a message failed (lock lost?); it will be redelivered");
            }
        }
        other => {
            match other {
                Some(Outcome::Nacked(reason)) => {
                    tracing::debug!(%entity, %reason, "message refused; abandoning it");
                }
                None => tracing::warn!(
                    %entity,
                    timeout = ?settings.handler_timeout,
                    "no answer within handlerTimeoutInSec; abandoning the message"
                ),
                _ => {}
            }
            if !settings.retriable_error_pause.is_zero()
                && let Ok(mut at) = resume_at.lock()
            {
                *at = Some(Instant::now() + settings.retriable_error_pause);
            }
            abandon(&message, entity).await;
        }
    }
}

async fn abandon(message: &PeekLockResponse, entity: &str) {
    if let Err(e) = message.unlock_message().await {
        tracing::warn!(%entity, error = %e, "abandoning a message failed; it is redelivered when its lock expires");
    }
}
