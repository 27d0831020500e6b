//! `pubsub.sqlite` over its socket: consumer groups, at-least-once
//! (nack, dropped stream), per-topic order, durability before subscribing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use outrigger_proto::components as pb;
use support::{Local, props, to};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

type Client = pb::pub_sub_client::PubSubClient<tonic::transport::Channel>;

async fn pubsub(local: &Local, instance: &str) -> Client {
    let mut c = Client::new(local.channel.clone());
    let db = local.db().display().to_string();
    c.init(to(
        instance,
        pb::PubSubInitRequest {
            metadata: props(&[
                ("databaseFile", &db),
                ("redeliveryDelay", "50ms"),
                ("pollInterval", "20ms"),
            ]),
        },
    ))
    .await
    .unwrap();
    c
}

async fn publish(c: &mut Client, instance: &str, topic: &str, body: &str) {
    c.publish(to(
        instance,
        pb::PublishRequest {
            data: body.as_bytes().to_vec(),
            pubsub_name: "p".into(),
            topic: topic.into(),
            metadata: HashMap::from([("k".to_owned(), "v".to_owned())]),
            content_type: "text/plain".into(),
        },
    ))
    .await
    .unwrap();
}

struct Sub {
    acks: mpsc::Sender<pb::PullMessagesRequest>,
    messages: Streaming<pb::PullMessagesResponse>,
}

async fn subscribe(c: &mut Client, instance: &str, topic: &str, group: &str) -> Sub {
    let (acks, rx) = mpsc::channel(64);
    acks.send(pb::PullMessagesRequest {
        topic: Some(pb::Topic {
            name: topic.into(),
            metadata: HashMap::from([("consumerID".to_owned(), group.to_owned())]),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let messages = c
        .pull_messages(to(instance, ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    Sub { acks, messages }
}

impl Sub {
    async fn next(&mut self) -> pb::PullMessagesResponse {
        tokio::time::timeout(Duration::from_secs(10), self.messages.next())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .unwrap()
    }

    async fn ack(&self, m: &pb::PullMessagesResponse) {
        self.acks
            .send(pb::PullMessagesRequest {
                ack_message_id: m.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    async fn nack(&self, m: &pb::PullMessagesResponse) {
        self.acks
            .send(pb::PullMessagesRequest {
                ack_message_id: m.id.clone(),
                ack_error: Some(pb::AckMessageError {
                    message: "app failed".into(),
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    async fn nothing_for(&mut self, wait: Duration) {
        if let Ok(Some(Ok(m))) = tokio::time::timeout(wait, self.messages.next()).await {
            panic!("unexpected message {:?}", String::from_utf8_lossy(&m.data));
        }
    }
}

#[tokio::test]
async fn durable_before_subscribe_and_order_over_many_messages() {
    let local = Local::start().await;
    let mut c = pubsub(&local, "p").await;
    for i in 0..60 {
        publish(&mut c, "p", "orders", &format!("m{i}")).await;
    }
    let mut sub = subscribe(&mut c, "p", "orders", "app-a").await;
    for i in 0..60 {
        let m = sub.next().await;
        assert_eq!(
            String::from_utf8_lossy(&m.data),
            format!("m{i}"),
            "per-topic FIFO"
        );
        assert_eq!(m.topic_name, "orders");
        assert_eq!(m.metadata["k"], "v");
        assert_eq!(m.content_type, "text/plain");
        sub.ack(&m).await;
    }
    sub.nothing_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn nack_redelivers() {
    let local = Local::start().await;
    let mut c = pubsub(&local, "p").await;
    let mut sub = subscribe(&mut c, "p", "t", "g").await;
    publish(&mut c, "p", "t", "retry me").await;
    let first = sub.next().await;
    sub.nack(&first).await;
    let again = sub.next().await;
    assert_eq!(again.data, b"retry me");
    sub.ack(&again).await;
    sub.nothing_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn dropped_stream_redelivers_on_a_new_one() {
    let local = Local::start().await;
    let mut c = pubsub(&local, "p").await;
    publish(&mut c, "p", "t", "unacked").await;
    let mut sub = subscribe(&mut c, "p", "t", "g").await;
    assert_eq!(sub.next().await.data, b"unacked");
    drop(sub);
    let mut again = subscribe(&mut c, "p", "t", "g").await;
    let m = again.next().await;
    assert_eq!(
        m.data, b"unacked",
        "a message whose stream dropped is delivered again"
    );
    again.ack(&m).await;
}

#[tokio::test]
async fn consumer_groups_each_get_everything_and_share_within() {
    let local = Local::start().await;
    let mut c = pubsub(&local, "p").await;
    let mut a1 = subscribe(&mut c, "p", "t", "app-a").await;
    let mut a2 = subscribe(&mut c, "p", "t", "app-a").await;
    let mut b = subscribe(&mut c, "p", "t", "app-b").await;
    for i in 0..20 {
        publish(&mut c, "p", "t", &format!("{i}")).await;
    }
    let mut seen_b = Vec::new();
    for _ in 0..20 {
        let m = b.next().await;
        b.ack(&m).await;
        seen_b.push(m.data);
    }
    assert_eq!(seen_b.len(), 20, "another group gets every message");
    let mut seen_a = std::collections::BTreeSet::new();
    while seen_a.len() < 20 {
        tokio::select! {
            Some(Ok(m)) = a1.messages.next() => { a1.ack(&m).await; assert!(seen_a.insert(m.data), "no double delivery inside a group"); }
            Some(Ok(m)) = a2.messages.next() => { a2.ack(&m).await; assert!(seen_a.insert(m.data), "no double delivery inside a group"); }
            () = tokio::time::sleep(Duration::from_secs(10)) => panic!("group app-a stalled at {}", seen_a.len()),
        }
    }
}

#[tokio::test]
async fn several_topics_and_bulk_and_ttl() {
    let local = Local::start().await;
    let mut c = pubsub(&local, "p").await;
    let features = c
        .features(to("p", pb::FeaturesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .features;
    assert!(features.contains(&"MESSAGE_TTL".to_owned()));
    let reply = c
        .bulk_publish(to(
            "p",
            pb::BulkPublishRequest {
                entries: (0..3)
                    .map(|i| pb::BulkMessageEntry {
                        entry_id: format!("e{i}"),
                        event: format!("b{i}").into_bytes(),
                        ..Default::default()
                    })
                    .collect(),
                pubsub_name: "p".into(),
                topic: "bulk".into(),
                metadata: HashMap::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.failed_entries.is_empty());
    c.publish(to(
        "p",
        pb::PublishRequest {
            data: b"short-lived".to_vec(),
            topic: "other".into(),
            metadata: HashMap::from([("ttlInSeconds".to_owned(), "1".to_owned())]),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    publish(&mut c, "p", "other", "lasting").await;
    let mut bulk = subscribe(&mut c, "p", "bulk", "g").await;
    for i in 0..3 {
        let m = bulk.next().await;
        assert_eq!(m.data, format!("b{i}").into_bytes());
        bulk.ack(&m).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut other = subscribe(&mut c, "p", "other", "g").await;
    assert_eq!(
        other.next().await.data,
        b"lasting",
        "the expired message is skipped"
    );
}

#[tokio::test]
async fn bad_metadata_names_the_key() {
    let local = Local::start().await;
    let mut c = Client::new(local.channel.clone());
    for (pairs, key) in [
        (vec![("ackWait", "forever")], "ackWait"),
        (vec![("maxInflight", "-3")], "maxInflight"),
        (vec![("colour", "blue")], "colour"),
    ] {
        let err = c
            .init(to(
                "bad",
                pb::PubSubInitRequest {
                    metadata: props(&pairs),
                },
            ))
            .await
            .unwrap_err();
        assert!(err.message().contains(key), "{pairs:?}: {}", err.message());
    }
}
