//! The pub/sub rpcs of the `Dapr` service: publish, bulk publish, and the
//! streaming subscription (`SubscribeTopicEventsAlpha1`) the SDKs hold.

use tonic::{Request, Response, Status};

use outrigger_proto::runtime as pb;

use crate::api::Runtime;

pub(super) async fn publish(
    rt: &Runtime,
    request: Request<pb::PublishEventRequest>,
) -> Result<Response<()>, Status> {
    let traceparent = request
        .metadata()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let r = request.into_inner();
    let message = crate::runtime::pubsub::Message {
        data: r.data,
        content_type: (!r.data_content_type.is_empty()).then_some(r.data_content_type),
        metadata: r.metadata,
        traceparent,
        tracestate: None,
    };
    rt.pubsub.publish(&r.pubsub_name, &r.topic, message).await?;
    Ok(Response::new(()))
}

pub(super) async fn bulk_publish(
    rt: &Runtime,
    r: pb::BulkPublishRequest,
) -> Result<Response<pb::BulkPublishResponse>, Status> {
    let entries = r
        .entries
        .into_iter()
        .map(|e| crate::runtime::pubsub::BulkEntry {
            entry_id: e.entry_id,
            message: crate::runtime::pubsub::Message {
                data: e.event,
                content_type: (!e.content_type.is_empty()).then_some(e.content_type),
                metadata: e.metadata,
                traceparent: None,
                tracestate: None,
            },
        })
        .collect();
    let failed = rt
        .pubsub
        .bulk_publish(&r.pubsub_name, &r.topic, entries, r.metadata)
        .await?;
    Ok(Response::new(pb::BulkPublishResponse {
        failed_entries: failed
            .into_iter()
            .map(|f| pb::BulkPublishResponseFailedEntry {
                entry_id: f.entry_id,
                error: f.error,
            })
            .collect(),
    }))
}

pub(super) async fn subscribe(
    rt: &Runtime,
    request: Request<tonic::Streaming<pb::SubscribeTopicEventsRequestAlpha1>>,
) -> Result<Response<tonic::codegen::BoxStream<pb::SubscribeTopicEventsResponseAlpha1>>, Status> {
    use pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as In;
    use pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Out;
    let mut inbound = request.into_inner();
    let first = inbound
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("initial_request: the stream closed before it"))?;
    let Some(In::InitialRequest(init)) = first.subscribe_topic_events_request_type else {
        return Err(Status::invalid_argument(
            "initial_request: the first message must be the initial request",
        ));
    };
    let subscription = crate::runtime::subscribe::Subscription {
        pubsub: init.pubsub_name,
        topic: init.topic,
        rules: Vec::new(),
        route: None,
        metadata: init.metadata,
        dead_letter_topic: init.dead_letter_topic.filter(|t| !t.is_empty()),
        bulk: None,
    };
    let (mut events, answers) = crate::runtime::streaming::open_stream(
        std::sync::Arc::clone(&rt.registry),
        rt.config.app_id.clone(),
        subscription,
    )
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let initial = pb::SubscribeTopicEventsResponseAlpha1 {
        subscribe_topic_events_response_type: Some(Out::InitialResponse(
            pb::SubscribeTopicEventsResponseInitialAlpha1 {},
        )),
    };
    tx.send(Ok(initial))
        .await
        .map_err(|_| Status::cancelled("the subscriber went away"))?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return };
                    let out = pb::SubscribeTopicEventsResponseAlpha1 {
                        subscribe_topic_events_response_type: Some(Out::EventMessage(event)),
                    };
                    if tx.send(Ok(out)).await.is_err() {
                        return;
                    }
                }
                message = inbound.message() => {
                    let Ok(Some(message)) = message else { return };
                    let Some(In::EventProcessed(done)) = message.subscribe_topic_events_request_type else {
                        let _ = tx.send(Err(Status::invalid_argument("event_processed: expected after the initial request"))).await;
                        return;
                    };
                    let verdict = match done.status.map(|s| s.status) {
                        Some(0) | None => crate::runtime::subscribe::Verdict::Success,
                        Some(2) => crate::runtime::subscribe::Verdict::Drop,
                        Some(_) => crate::runtime::subscribe::Verdict::Retry,
                    };
                    if answers.send((done.id, verdict)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(Response::new(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    )))
}
