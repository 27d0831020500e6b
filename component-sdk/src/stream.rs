//! Bridging a component's [`DeliveryStream`] to a bidirectional gRPC stream
//! on which the host answers each message by id.
//!
//! Pub/sub `PullMessages` and input-binding `Read` work the same way: the
//! component emits messages, the SDK gives each a transient id, and the host
//! later sends back that id with an ack or an error. This module owns that
//! bookkeeping once for both.

use std::collections::HashMap;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Status, Streaming};

use crate::delivery::{DeliveryStream, Responder};

/// How many encoded messages may wait for the host to read them.
const OUTBOUND_BUFFER: usize = 64;

/// An answer from the host: which message, and its verdict.
pub(crate) struct Answer<R> {
    pub(crate) id: String,
    pub(crate) verdict: Result<R, String>,
}

/// Pump `deliveries` out through `encode` and route the host's answers,
/// decoded by `decode`, back to each delivery's responder. Ends when either
/// side ends or `shutdown` fires; unanswered deliveries are then dropped, so
/// their component sees `Outcome::Abandoned`.
pub(crate) fn bridge<M, R, In, Out>(
    mut deliveries: DeliveryStream<M, R>,
    mut inbound: Streaming<In>,
    encode: impl Fn(String, M) -> Out + Send + 'static,
    decode: impl Fn(In) -> Answer<R> + Send + 'static,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> ReceiverStream<Result<Out, Status>>
where
    M: Send + 'static,
    R: Send + 'static,
    In: Send + 'static,
    Out: Send + 'static,
{
    let (tx, rx) = mpsc::channel(OUTBOUND_BUFFER);
    tracker.spawn(async move {
        let mut pending: HashMap<String, Responder<R>> = HashMap::new();
        let mut next_id: u64 = 0;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                item = deliveries.next() => match item {
                    Some(Ok(delivery)) => {
                        next_id += 1;
                        let id = next_id.to_string();
                        let (message, responder) = delivery.into_parts();
                        pending.insert(id.clone(), responder);
                        if tx.send(Ok(encode(id, message))).await.is_err() {
                            break;
                        }
                    }
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "component ended the stream with an error");
                        let _ = tx.send(Err(Status::from(err))).await;
                        break;
                    }
                    None => break,
                },
                answer = inbound.next() => match answer {
                    Some(Ok(answer)) => {
                        let Answer { id, verdict } = decode(answer);
                        match pending.remove(&id) {
                            Some(responder) => match verdict {
                                Ok(reply) => responder.ack(reply),
                                Err(reason) => responder.nack(reason),
                            },
                            None => tracing::warn!(%id, "answer for an unknown or already answered message"),
                        }
                    }
                    Some(Err(status)) => {
                        tracing::debug!(%status, "host stream failed");
                        break;
                    }
                    None => break,
                },
            }
        }
        tracing::debug!(unanswered = pending.len(), "delivery stream closed");
    });
    ReceiverStream::new(rx)
}
