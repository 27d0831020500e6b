//! [`Delivery`]: a message handed to the host together with the channel on
//! which the host's verdict comes back.
//!
//! Pub/sub subscriptions and input bindings are streams of deliveries. The
//! component keeps the [`OutcomeReceiver`] and learns whether the app took the
//! message ([`Outcome::Acked`]), refused it ([`Outcome::Nacked`], so deliver
//! it again), or whether the stream ended first ([`Outcome::Abandoned`], which
//! for an at-least-once component also means deliver it again).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use tokio_stream::Stream;

use crate::ComponentError;

/// A message plus the way to report what the host did with it.
#[derive(Debug)]
pub struct Delivery<M, R> {
    /// What is delivered.
    pub message: M,
    responder: oneshot::Sender<Result<R, String>>,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<R> {
    /// The app processed it; `R` is its reply (empty for pub/sub).
    Acked(R),
    /// The app or host refused it with this reason: redeliver.
    Nacked(String),
    /// The stream closed before an answer (host shutdown, connection lost).
    Abandoned,
}

/// Resolves to the [`Outcome`] of one [`Delivery`].
#[derive(Debug)]
pub struct OutcomeReceiver<R>(oneshot::Receiver<Result<R, String>>);

/// A stream of deliveries (a subscription or an input binding's event feed).
/// An `Err` item ends the stream and is reported to the host.
pub type DeliveryStream<M, R> =
    Pin<Box<dyn Stream<Item = Result<Delivery<M, R>, ComponentError>> + Send + 'static>>;

// === impl Delivery ===

impl<M, R> Delivery<M, R> {
    /// Pair `message` with a receiver for its outcome.
    pub fn new(message: M) -> (Self, OutcomeReceiver<R>) {
        let (responder, rx) = oneshot::channel();
        (Self { message, responder }, OutcomeReceiver(rx))
    }

    /// Split into the message and a [`Responder`] that reports the outcome.
    pub fn into_parts(self) -> (M, Responder<R>) {
        (self.message, Responder(self.responder))
    }
}

/// Reports the outcome of a delivery; dropping it unused means [`Outcome::Abandoned`].
#[derive(Debug)]
pub struct Responder<R>(oneshot::Sender<Result<R, String>>);

impl<R> Responder<R> {
    /// The app processed the message and answered `reply`.
    pub fn ack(self, reply: R) {
        // The component may have stopped waiting; that is its choice, not an error.
        let _ = self.0.send(Ok(reply));
    }

    /// The message was refused with `reason`.
    pub fn nack(self, reason: impl Into<String>) {
        let _ = self.0.send(Err(reason.into()));
    }
}

impl<R> Future for OutcomeReceiver<R> {
    type Output = Outcome<R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|answer| match answer {
            Ok(Ok(reply)) => Outcome::Acked(reply),
            Ok(Err(reason)) => Outcome::Nacked(reason),
            Err(_) => Outcome::Abandoned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outcomes() {
        let (d, rx) = Delivery::<&str, u8>::new("a");
        d.into_parts().1.ack(7);
        assert_eq!(rx.await, Outcome::Acked(7));

        let (d, rx) = Delivery::<&str, u8>::new("b");
        d.into_parts().1.nack("busy");
        assert_eq!(rx.await, Outcome::Nacked("busy".into()));

        let (d, rx) = Delivery::<&str, u8>::new("c");
        drop(d);
        assert_eq!(rx.await, Outcome::Abandoned);
    }
}
