//! The KV state store called directly (no socket): TTL combined with ETags
//! and first-write, a bucket shared by two instances, and history > 1
//! refusing TTLs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use outrigger_component_sdk::state::*;
use outrigger_component_sdk::{ErrorKind, Metadata};
use outrigger_nats::state::KvState;

async fn store(url: &str, bucket: &str, extra: &[(&str, &str)]) -> KvState {
    let mut properties = HashMap::from([
        ("natsURL".to_owned(), url.to_owned()),
        ("bucket".to_owned(), bucket.to_owned()),
    ]);
    for (k, v) in extra {
        properties.insert((*k).to_owned(), (*v).to_owned());
    }
    let s = KvState::default();
    s.init(Metadata::new(properties)).await.unwrap();
    s
}

fn set(key: &str, value: &str, etag: Option<String>, ttl: Option<u64>) -> SetRequest {
    SetRequest {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        etag,
        metadata: ttl
            .map(|t| HashMap::from([("ttlInSeconds".to_owned(), t.to_string())]))
            .unwrap_or_default(),
        ..Default::default()
    }
}

async fn get(s: &KvState, key: &str) -> Option<StateItem> {
    s.get(GetRequest {
        key: key.into(),
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_with_etag_and_first_write() {
    let Some(url) = support::url() else { return };
    let s = store(&url, &support::unique("ttl"), &[]).await;
    assert!(s.features().contains(&StateFeature::Ttl));

    // ETag write with a TTL: stale ETags refused, the current one expires the value.
    s.set(set("app||a", "v1", None, None)).await.unwrap();
    let etag = get(&s, "app||a").await.unwrap().etag;
    let err = s
        .set(set("app||a", "x", Some("999999".into()), Some(1)))
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::EtagMismatch), "{err}");
    s.set(set("app||a", "v2", etag, Some(1))).await.unwrap();
    assert_eq!(get(&s, "app||a").await.unwrap().data, b"v2");

    // First-write with a TTL over a deleted key, then refused while it lives.
    s.set(set("app||b", "old", None, None)).await.unwrap();
    s.delete(DeleteRequest {
        key: "app||b".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut first = set("app||b", "new", None, Some(1));
    first.concurrency = Concurrency::FirstWrite;
    s.set(first.clone()).await.unwrap();
    let err = s.set(first.clone()).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::EtagMismatch), "{err}");

    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(get(&s, "app||a").await.is_none(), "a outlived its TTL");
    assert!(get(&s, "app||b").await.is_none(), "b outlived its TTL");
    // Expired: first-write may create it again.
    s.set(first).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_a_bucket_and_history_refuses_ttl() {
    let Some(url) = support::url() else { return };
    let bucket = support::unique("shared");
    let a = store(&url, &bucket, &[]).await;
    let b = store(&url, &bucket, &[]).await;
    a.set(set("k", "from a", None, None)).await.unwrap();
    let item = get(&b, "k").await.unwrap();
    assert_eq!(item.data, b"from a");
    b.set(set("k", "from b", item.etag.clone(), None))
        .await
        .unwrap();
    let err = a.set(set("k", "late", item.etag, None)).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::EtagMismatch), "{err}");

    let h = store(&url, &support::unique("hist"), &[("history", "5")]).await;
    assert!(!h.features().contains(&StateFeature::Ttl));
    let err = h.set(set("k", "v", None, Some(5))).await.unwrap_err();
    assert!(err.message().contains("ttlInSeconds"), "{err}");
}
