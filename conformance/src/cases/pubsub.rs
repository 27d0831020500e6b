//! Pub/sub cases. Each uses topics and a consumer group unique to the run.

use std::collections::HashMap;
use std::time::Duration;

use outrigger_proto::components as pb;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::{Case, case};
use crate::harness::{Ctx, ensure, ok};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "pubsub/features/declared-are-advertised",
            None,
            super::declared_are_advertised
        ),
        case!(
            "pubsub/init/bad-metadata-fails",
            None,
            super::bad_metadata_fails_init
        ),
        case!("pubsub/ping/works", None, ping),
        case!("pubsub/basic/publish-receive-ack", None, publish_receive),
        case!(
            "pubsub/basic/metadata-and-content-type-preserved",
            None,
            metadata_preserved
        ),
        case!("pubsub/basic/several-topics", None, several_topics),
        case!("pubsub/basic/bulk-publish", None, bulk_publish),
        case!("pubsub/redelivery/nack-redelivered", None, nack_redelivered),
        case!(
            "pubsub/redelivery/dropped-stream-redelivered",
            None,
            dropped_stream
        ),
        case!(
            "pubsub/durable/published-before-subscribe",
            Some("durable"),
            durable
        ),
        case!(
            "pubsub/ordering/fifo-100-messages",
            Some("ordering"),
            ordering
        ),
        case!("pubsub/ttl/expired-not-delivered", Some("ttl"), ttl),
    ]
}

struct Sub {
    /// How long to wait for a message that must come: two thirds of the case timeout.
    wait: Duration,
    acks: mpsc::Sender<pb::PullMessagesRequest>,
    messages: Streaming<pb::PullMessagesResponse>,
}

async fn subscribe(ctx: &Ctx, topic: &str) -> Result<Sub, String> {
    let (acks, rx) = mpsc::channel(256);
    let first = pb::PullMessagesRequest {
        topic: Some(pb::Topic {
            name: topic.into(),
            metadata: HashMap::from([("consumerID".to_owned(), ctx.key("group"))]),
        }),
        ..Default::default()
    };
    acks.send(first).await.map_err(|e| e.to_string())?;
    let messages = ok(
        "PullMessages",
        ctx.pubsub()
            .pull_messages(ctx.req(ReceiverStream::new(rx)))
            .await,
    )?;
    Ok(Sub {
        wait: ctx.config.case_timeout * 2 / 3,
        acks,
        messages,
    })
}

impl Sub {
    async fn next(&mut self, what: &str) -> Result<pb::PullMessagesResponse, String> {
        match tokio::time::timeout(self.wait, self.messages.next()).await {
            Err(_) => Err(format!("{what}: nothing delivered within {:?}", self.wait)),
            Ok(None) => Err(format!("{what}: the component closed the stream")),
            Ok(Some(Err(s))) => Err(format!(
                "{what}: stream error {:?}: {}",
                s.code(),
                s.message()
            )),
            Ok(Some(Ok(m))) => Ok(m),
        }
    }

    async fn ack(&self, m: &pb::PullMessagesResponse) -> Result<(), String> {
        let ack = pb::PullMessagesRequest {
            ack_message_id: m.id.clone(),
            ..Default::default()
        };
        self.acks.send(ack).await.map_err(|e| e.to_string())
    }

    async fn nack(&self, m: &pb::PullMessagesResponse) -> Result<(), String> {
        let nack = pb::PullMessagesRequest {
            ack_message_id: m.id.clone(),
            ack_error: Some(pb::AckMessageError {
                message: "conformance: simulated app failure".into(),
            }),
            ..Default::default()
        };
        self.acks.send(nack).await.map_err(|e| e.to_string())
    }

    /// Nothing more arrives within `wait`.
    async fn quiet(&mut self, wait: Duration, why: &str) -> Result<(), String> {
        if let Ok(Some(Ok(m))) = tokio::time::timeout(wait, self.messages.next()).await {
            return Err(format!("{why}: got {:?}", String::from_utf8_lossy(&m.data)));
        }
        Ok(())
    }
}

async fn publish(
    ctx: &Ctx,
    topic: &str,
    body: &str,
    metadata: HashMap<String, String>,
) -> Result<(), String> {
    let req = pb::PublishRequest {
        data: body.as_bytes().to_vec(),
        pubsub_name: ctx.target.instance.clone(),
        topic: topic.into(),
        metadata,
        content_type: "text/plain".into(),
    };
    ok("Publish", ctx.pubsub().publish(ctx.req(req)).await).map(drop)
}

async fn ping(ctx: Ctx) -> Result<(), String> {
    ok("Ping", ctx.pubsub().ping(ctx.req(pb::PingRequest {})).await).map(drop)
}

async fn publish_receive(ctx: Ctx) -> Result<(), String> {
    let topic = ctx.key("basic");
    let mut sub = subscribe(&ctx, &topic).await?;
    publish(&ctx, &topic, "hello", HashMap::new()).await?;
    let m = sub.next("published message").await?;
    ensure!(
        m.data == b"hello",
        "data changed: {:?}",
        String::from_utf8_lossy(&m.data)
    );
    ensure!(
        m.topic_name == topic,
        "topic_name {:?} is not {topic:?}",
        m.topic_name
    );
    ensure!(!m.id.is_empty(), "messages need an id for the ack");
    sub.ack(&m).await?;
    sub.quiet(
        Duration::from_millis(1500),
        "an acked message was delivered again",
    )
    .await
}

async fn metadata_preserved(ctx: Ctx) -> Result<(), String> {
    let topic = ctx.key("meta");
    let mut sub = subscribe(&ctx, &topic).await?;
    publish(
        &ctx,
        &topic,
        "with metadata",
        HashMap::from([("conformance-key".to_owned(), "conformance value".to_owned())]),
    )
    .await?;
    let m = sub.next("message with metadata").await?;
    sub.ack(&m).await?;
    ensure!(
        m.metadata.get("conformance-key").map(String::as_str) == Some("conformance value"),
        "metadata lost: {:?}",
        m.metadata
    );
    ensure!(
        m.content_type == "text/plain",
        "content type {:?} is not text/plain",
        m.content_type
    );
    Ok(())
}

async fn several_topics(ctx: Ctx) -> Result<(), String> {
    let (t1, t2) = (ctx.key("topic-1"), ctx.key("topic-2"));
    let mut s1 = subscribe(&ctx, &t1).await?;
    let mut s2 = subscribe(&ctx, &t2).await?;
    publish(&ctx, &t1, "for one", HashMap::new()).await?;
    publish(&ctx, &t2, "for two", HashMap::new()).await?;
    let m1 = s1.next("topic 1").await?;
    let m2 = s2.next("topic 2").await?;
    s1.ack(&m1).await?;
    s2.ack(&m2).await?;
    ensure!(
        m1.data == b"for one" && m2.data == b"for two",
        "topics were mixed up"
    );
    Ok(())
}

async fn bulk_publish(ctx: Ctx) -> Result<(), String> {
    let topic = ctx.key("bulk");
    let mut sub = subscribe(&ctx, &topic).await?;
    let entries = (0..5)
        .map(|i| pb::BulkMessageEntry {
            entry_id: format!("e{i}"),
            event: format!("bulk-{i}").into_bytes(),
            content_type: "text/plain".into(),
            metadata: HashMap::new(),
        })
        .collect();
    let reply = ok(
        "BulkPublish",
        ctx.pubsub()
            .bulk_publish(ctx.req(pb::BulkPublishRequest {
                entries,
                pubsub_name: ctx.target.instance.clone(),
                topic: topic.clone(),
                metadata: HashMap::new(),
            }))
            .await,
    )?;
    ensure!(
        reply.failed_entries.is_empty(),
        "entries failed: {:?}",
        reply.failed_entries
    );
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 5 {
        let m = sub.next("bulk-published message").await?;
        sub.ack(&m).await?;
        seen.insert(String::from_utf8_lossy(&m.data).into_owned());
    }
    ensure!(
        seen.iter().all(|s| s.starts_with("bulk-")),
        "unexpected messages {seen:?}"
    );
    Ok(())
}

async fn nack_redelivered(ctx: Ctx) -> Result<(), String> {
    let topic = ctx.key("nack");
    let mut sub = subscribe(&ctx, &topic).await?;
    publish(&ctx, &topic, "fail once", HashMap::new()).await?;
    let first = sub.next("message").await?;
    sub.nack(&first).await?;
    let again = sub.next("redelivery after a nack").await?;
    ensure!(
        again.data == b"fail once",
        "a different message came instead of the redelivery"
    );
    sub.ack(&again).await
}

async fn dropped_stream(ctx: Ctx) -> Result<(), String> {
    let topic = ctx.key("dropped");
    let mut sub = subscribe(&ctx, &topic).await?;
    publish(&ctx, &topic, "never acked", HashMap::new()).await?;
    let m = sub.next("message").await?;
    ensure!(m.data == b"never acked", "unexpected message");
    drop(sub);
    let mut again = subscribe(&ctx, &topic).await?;
    let m = again
        .next("redelivery on a new stream after the old one dropped unacked (message lost?)")
        .await?;
    ensure!(
        m.data == b"never acked",
        "unexpected message on the new stream"
    );
    again.ack(&m).await
}

async fn durable(ctx: Ctx) -> Result<(), String> {
    let topic = ctx.key("durable");
    // Register the consumer group, then leave; messages published while it
    // has no stream must wait for it.
    drop(subscribe(&ctx, &topic).await?);
    publish(&ctx, &topic, "while away", HashMap::new()).await?;
    let mut sub = subscribe(&ctx, &topic).await?;
    let m = sub.next("message published before subscribing").await?;
    ensure!(m.data == b"while away", "unexpected message");
    sub.ack(&m).await
}

async fn ordering(ctx: Ctx) -> Result<(), String> {
    let topic = ctx.key("fifo");
    let mut sub = subscribe(&ctx, &topic).await?;
    for i in 0..100 {
        publish(&ctx, &topic, &format!("{i:03}"), HashMap::new()).await?;
    }
    for i in 0..100 {
        let m = sub.next("ordered message").await?;
        sub.ack(&m).await?;
        let got = String::from_utf8_lossy(&m.data).into_owned();
        ensure!(
            got == format!("{i:03}"),
            "message {i} of 100 arrived as {got}: order not kept"
        );
    }
    Ok(())
}

async fn ttl(ctx: Ctx) -> Result<(), String> {
    let topic = ctx.key("ttl");
    drop(subscribe(&ctx, &topic).await?);
    publish(
        &ctx,
        &topic,
        "expires",
        HashMap::from([("ttlInSeconds".to_owned(), "1".to_owned())]),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    publish(&ctx, &topic, "marker", HashMap::new()).await?;
    let mut sub = subscribe(&ctx, &topic).await?;
    let m = sub.next("marker").await?;
    sub.ack(&m).await?;
    ensure!(
        m.data == b"marker",
        "an expired message was delivered: {:?}",
        String::from_utf8_lossy(&m.data)
    );
    Ok(())
}
