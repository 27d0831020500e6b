//! The JetStream pub/sub called directly (no socket): consumer-group
//! semantics, NAK delays from `backOff`, headers, and bulk publish.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use outrigger_component_sdk::Metadata;
use outrigger_component_sdk::pubsub::*;
use outrigger_nats::pubsub::JetStreamPubSub;
use tokio_stream::StreamExt;

async fn bus(url: &str, stream: &str, extra: &[(&str, &str)]) -> JetStreamPubSub {
    let mut properties = HashMap::from([
        ("natsURL".to_owned(), url.to_owned()),
        ("streamName".to_owned(), stream.to_owned()),
    ]);
    for (k, v) in extra {
        properties.insert((*k).to_owned(), (*v).to_owned());
    }
    let b = JetStreamPubSub::default();
    b.init(Metadata::new(properties)).await.unwrap();
    b
}

fn topic(name: &str, group: &str) -> Topic {
    Topic {
        name: name.into(),
        metadata: HashMap::from([("consumerID".to_owned(), group.to_owned())]),
    }
}

async fn publish(b: &JetStreamPubSub, topic: &str, body: &str) {
    b.publish(PublishRequest {
        data: body.as_bytes().to_vec(),
        topic: topic.into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Take messages (acking them) until `quiet` passes with none.
async fn drain(stream: &mut MessageStream, quiet: Duration) -> Vec<String> {
    let mut got = Vec::new();
    while let Ok(Some(Ok(d))) = tokio::time::timeout(quiet, stream.next()).await {
        let (m, responder) = d.into_parts();
        got.push(String::from_utf8(m.data).unwrap());
        responder.ack(());
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_each_get_all_and_members_share() {
    let Some(url) = support::url() else { return };
    let name = support::unique("groups");
    let b = bus(&url, &name, &[]).await;
    let t = format!("{name}.t");
    let mut a1 = b.subscribe(topic(&t, "a")).await.unwrap();
    let mut a2 = b.subscribe(topic(&t, "a")).await.unwrap();
    let mut other = b.subscribe(topic(&t, "b")).await.unwrap();
    for i in 0..40 {
        publish(&b, &t, &format!("m{i}")).await;
    }
    let (g1, g2, gb) = tokio::join!(
        drain(&mut a1, Duration::from_secs(2)),
        drain(&mut a2, Duration::from_secs(2)),
        drain(&mut other, Duration::from_secs(2))
    );
    let all: BTreeSet<String> = (0..40).map(|i| format!("m{i}")).collect();
    let shared: BTreeSet<String> = g1.iter().chain(&g2).cloned().collect();
    assert_eq!(shared, all, "group a lost messages");
    assert_eq!(g1.len() + g2.len(), 40, "group a got duplicates");
    assert_eq!(gb.into_iter().collect::<BTreeSet<_>>(), all, "group b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_waits_for_the_backoff_step() {
    let Some(url) = support::url() else { return };
    let name = support::unique("backoff");
    let b = bus(
        &url,
        &name,
        &[("backOff", "1500ms,3s"), ("maxDeliver", "5")],
    )
    .await;
    let t = format!("{name}.t");
    let mut s = b.subscribe(topic(&t, "g")).await.unwrap();
    publish(&b, &t, "retry me").await;
    let d = s.next().await.unwrap().unwrap();
    let nacked = Instant::now();
    d.into_parts().1.nack("app failed");
    let again = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let waited = nacked.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "redelivered after {waited:?}, before the 1.5 s back-off step"
    );
    assert_eq!(again.message.data, b"retry me");
    again.into_parts().1.ack(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_headers_and_bulk_publish() {
    let Some(url) = support::url() else { return };
    let name = support::unique("bulk");
    let b = bus(&url, &name, &[]).await;
    let t = format!("{name}.t");
    let mut s = b.subscribe(topic(&t, "g")).await.unwrap();
    let failed = b
        .bulk_publish(BulkPublishRequest {
            entries: (0..20)
                .map(|i| BulkEntry {
                    entry_id: format!("e{i}"),
                    event: format!("b{i}").into_bytes(),
                    content_type: Some("application/json".into()),
                    metadata: HashMap::from([("traceparent".to_owned(), format!("t{i}"))]),
                })
                .collect(),
            topic: t.clone(),
            metadata: HashMap::from([("source".to_owned(), "bulk".to_owned())]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    let mut seen = BTreeSet::new();
    while seen.len() < 20 {
        let (m, r) = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .into_parts();
        r.ack(());
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(m.metadata.get("source").map(String::as_str), Some("bulk"));
        let body = String::from_utf8(m.data).unwrap();
        let n = &body[1..];
        assert_eq!(
            m.metadata.get("traceparent").map(String::as_str),
            Some(format!("t{n}").as_str())
        );
        seen.insert(body);
    }
    // A header name NATS cannot carry is refused, naming the key.
    let err = b
        .publish(PublishRequest {
            data: b"x".to_vec(),
            topic: t,
            metadata: HashMap::from([("bad:name".to_owned(), "v".to_owned())]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("bad:name") || err.to_string().contains("bad:name"),
        "{err}"
    );
}
