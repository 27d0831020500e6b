//! `state.sqlite` over its socket: ETags, concurrency, TTL, transactions,
//! bulk, query, bad metadata.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use outrigger_proto::components as pb;
use pb::state_options::StateConcurrency;
use support::{Local, props, to};
use tonic::Code;

async fn store(
    local: &Local,
    instance: &str,
) -> pb::state_store_client::StateStoreClient<tonic::transport::Channel> {
    let mut c = pb::state_store_client::StateStoreClient::new(local.channel.clone());
    let db = local.db().display().to_string();
    c.init(to(
        instance,
        pb::InitRequest {
            metadata: props(&[("databaseFile", &db), ("cleanupInterval", "200ms")]),
        },
    ))
    .await
    .unwrap();
    c
}

fn set(key: &str, value: &[u8]) -> pb::SetRequest {
    pb::SetRequest {
        key: key.into(),
        value: value.to_vec(),
        ..Default::default()
    }
}

fn get(key: &str) -> pb::GetRequest {
    pb::GetRequest {
        key: key.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn etags_and_concurrency() {
    let local = Local::start().await;
    let mut c = store(&local, "s").await;
    let features = c
        .features(to("s", pb::FeaturesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .features;
    for f in ["ETAG", "TRANSACTIONAL", "TTL", "QUERY_API"] {
        assert!(features.iter().any(|x| x == f), "{f} in {features:?}");
    }
    c.set(to("s", set("k", b"1"))).await.unwrap();
    let first = c.get(to("s", get("k"))).await.unwrap().into_inner();
    let etag = first.etag.clone().unwrap().value;
    assert_eq!(first.data, b"1");

    let mut with_etag = set("k", b"2");
    with_etag.etag = Some(pb::Etag {
        value: etag.clone(),
    });
    c.set(to("s", with_etag.clone())).await.unwrap();
    let stale = c.set(to("s", with_etag)).await.unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let mut bad = set("k", b"3");
    bad.etag = Some(pb::Etag {
        value: "abc".into(),
    });
    assert_eq!(
        c.set(to("s", bad)).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let mut first_write = set("k", b"4");
    first_write.options = Some(pb::StateOptions {
        concurrency: StateConcurrency::ConcurrencyFirstWrite as i32,
        consistency: 0,
    });
    assert_eq!(
        c.set(to("s", first_write.clone()))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    first_write.key = "fresh".into();
    c.set(to("s", first_write)).await.unwrap();
    assert_eq!(
        c.get(to("s", get("k"))).await.unwrap().into_inner().data,
        b"2"
    );

    let current = c
        .get(to("s", get("k")))
        .await
        .unwrap()
        .into_inner()
        .etag
        .unwrap()
        .value;
    let stale_delete = pb::DeleteRequest {
        key: "k".into(),
        etag: Some(pb::Etag { value: etag }),
        ..Default::default()
    };
    assert_eq!(
        c.delete(to("s", stale_delete)).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let delete = pb::DeleteRequest {
        key: "k".into(),
        etag: Some(pb::Etag { value: current }),
        ..Default::default()
    };
    c.delete(to("s", delete)).await.unwrap();
    let gone = c.get(to("s", get("k"))).await.unwrap().into_inner();
    assert!(gone.data.is_empty() && gone.etag.is_none());
}

#[tokio::test]
async fn concurrent_writers_have_one_etag_winner() {
    let local = Local::start().await;
    let mut c = store(&local, "s").await;
    c.set(to("s", set("hot", b"0"))).await.unwrap();
    let etag = c
        .get(to("s", get("hot")))
        .await
        .unwrap()
        .into_inner()
        .etag
        .unwrap()
        .value;
    let mut writers = Vec::new();
    for i in 0..8u8 {
        let mut c = c.clone();
        let mut req = set("hot", &[i]);
        req.etag = Some(pb::Etag {
            value: etag.clone(),
        });
        writers.push(tokio::spawn(
            async move { c.set(to("s", req)).await.is_ok() },
        ));
    }
    let mut winners = 0;
    for w in writers {
        winners += usize::from(w.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one writer with the same ETag wins");
}

#[tokio::test]
async fn ttl_hides_and_sweeps() {
    let local = Local::start().await;
    let mut c = store(&local, "s").await;
    let mut short = set("short", b"x");
    short.metadata.insert("ttlInSeconds".into(), "1".into());
    c.set(to("s", short)).await.unwrap();
    let live = c.get(to("s", get("short"))).await.unwrap().into_inner();
    assert!(
        live.metadata.contains_key("ttlExpireTime"),
        "{:?}",
        live.metadata
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        c.get(to("s", get("short")))
            .await
            .unwrap()
            .into_inner()
            .data
            .is_empty(),
        "expired rows are invisible"
    );
    let bulk = c
        .bulk_get(to(
            "s",
            pb::BulkGetRequest {
                items: vec![get("short")],
                options: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(
        bulk.len() == 1 && bulk[0].data.is_empty() && bulk[0].etag.is_none(),
        "expired rows are invisible to BulkGet too: {bulk:?}"
    );

    // Overwriting without a TTL removes the expiry.
    let mut reset = set("reset", b"x");
    reset.metadata.insert("ttlInSeconds".into(), "1".into());
    c.set(to("s", reset)).await.unwrap();
    c.set(to("s", set("reset", b"y"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        c.get(to("s", get("reset")))
            .await
            .unwrap()
            .into_inner()
            .data,
        b"y"
    );

    let mut bad = set("bad", b"x");
    bad.metadata.insert("ttlInSeconds".into(), "soon".into());
    let err = c.set(to("s", bad)).await.unwrap_err();
    assert!(err.message().contains("ttlInSeconds"), "{}", err.message());
}

#[tokio::test]
async fn transactions_are_atomic_and_ordered() {
    let local = Local::start().await;
    let mut c = store(&local, "s").await;
    let mut tx = pb::transactional_state_store_client::TransactionalStateStoreClient::new(
        local.channel.clone(),
    );
    use pb::transactional_state_operation::Request as Op;
    let op = |r| pb::TransactionalStateOperation { request: Some(r) };
    tx.transact(to(
        "s",
        pb::TransactionalStateRequest {
            operations: vec![
                op(Op::Set(set("a", b"1"))),
                op(Op::Set(set("a", b"2"))),
                op(Op::Set(set("b", b"1"))),
                op(Op::Delete(pb::DeleteRequest {
                    key: "b".into(),
                    ..Default::default()
                })),
            ],
            metadata: HashMap::new(),
        },
    ))
    .await
    .unwrap();
    assert_eq!(
        c.get(to("s", get("a"))).await.unwrap().into_inner().data,
        b"2",
        "operations apply in order"
    );
    assert!(
        c.get(to("s", get("b")))
            .await
            .unwrap()
            .into_inner()
            .data
            .is_empty()
    );

    let mut stale = set("a", b"3");
    stale.etag = Some(pb::Etag { value: "1".into() });
    let err = tx
        .transact(to(
            "s",
            pb::TransactionalStateRequest {
                operations: vec![op(Op::Set(set("c", b"new"))), op(Op::Set(stale))],
                metadata: HashMap::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        c.get(to("s", get("c")))
            .await
            .unwrap()
            .into_inner()
            .data
            .is_empty(),
        "a failing op rolls back the rest"
    );

    // Several writes over ETags in one transaction (they go as one
    // statement): all land, or none when one ETag is stale.
    c.set(to("s", set("e1", b"1"))).await.unwrap();
    c.set(to("s", set("e2", b"1"))).await.unwrap();
    let etag = |c: &mut pb::state_store_client::StateStoreClient<_>, key: &'static str| {
        let mut c = c.clone();
        async move { c.get(to("s", get(key))).await.unwrap().into_inner().etag }
    };
    let over = |key: &str, value: &[u8], etag: Option<pb::Etag>| {
        let mut req = set(key, value);
        req.etag = etag;
        op(Op::Set(req))
    };
    let (e1, e2) = (etag(&mut c, "e1").await, etag(&mut c, "e2").await);
    tx.transact(to(
        "s",
        pb::TransactionalStateRequest {
            operations: vec![over("e1", b"2", e1.clone()), over("e2", b"2", e2.clone())],
            metadata: HashMap::new(),
        },
    ))
    .await
    .unwrap();
    let fresh = etag(&mut c, "e1").await;
    assert_ne!(fresh, e1, "a write over an ETag draws a new one");
    let err = tx
        .transact(to(
            "s",
            pb::TransactionalStateRequest {
                operations: vec![over("e1", b"3", fresh), over("e2", b"3", e2)],
                metadata: HashMap::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("\"e2\""), "{}", err.message());
    for key in ["e1", "e2"] {
        assert_eq!(
            c.get(to("s", get(key))).await.unwrap().into_inner().data,
            b"2",
            "{key}: a stale ETag rolls back the other write"
        );
    }
}

#[tokio::test]
async fn bulk_large_binary_and_unicode() {
    let local = Local::start().await;
    let mut c = store(&local, "s").await;
    let big = vec![7u8; 2 * 1024 * 1024];
    let binary: Vec<u8> = (0..=255).collect();
    c.bulk_set(to(
        "s",
        pb::BulkSetRequest {
            items: vec![set("app||ключ||🔑", &binary), set("big", &big)],
            options: None,
        },
    ))
    .await
    .unwrap();
    let items = c
        .bulk_get(to(
            "s",
            pb::BulkGetRequest {
                items: vec![get("app||ключ||🔑"), get("big"), get("none")],
                options: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(items[0].data, binary);
    assert_eq!(items[1].data.len(), big.len());
    assert!(items[2].data.is_empty() && items[2].etag.is_none());
    c.bulk_delete(to(
        "s",
        pb::BulkDeleteRequest {
            items: vec![pb::DeleteRequest {
                key: "big".into(),
                ..Default::default()
            }],
            options: None,
        },
    ))
    .await
    .unwrap();
    assert!(
        c.get(to("s", get("big")))
            .await
            .unwrap()
            .into_inner()
            .data
            .is_empty()
    );
}

#[tokio::test]
async fn query_over_json_values() {
    let local = Local::start().await;
    let mut c = store(&local, "s").await;
    for (k, v) in [
        ("1", r#"{"city":"Oslo","n":3}"#),
        ("2", r#"{"city":"Lima","n":1}"#),
        ("3", r#"{"city":"Oslo","n":2}"#),
    ] {
        c.set(to("s", set(k, v.as_bytes()))).await.unwrap();
    }
    let mut filter = HashMap::new();
    filter.insert(
        "EQ".to_owned(),
        prost_types::Any {
            type_url: String::new(),
            value: br#"{"city":"Oslo"}"#.to_vec(),
        },
    );
    let reply =
        pb::queriable_state_store_client::QueriableStateStoreClient::new(local.channel.clone())
            .query(to(
                "s",
                pb::QueryRequest {
                    query: Some(pb::Query {
                        filter,
                        sort: vec![pb::Sorting {
                            key: "n".into(),
                            order: pb::sorting::Order::Asc as i32,
                        }],
                        pagination: Some(pb::Pagination {
                            limit: 1,
                            token: String::new(),
                        }),
                    }),
                    metadata: HashMap::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(reply.items.len(), 1);
    assert_eq!(reply.items[0].key, "3");
    assert_eq!(reply.token, "1");
}

#[tokio::test]
async fn bad_metadata_names_the_key() {
    let local = Local::start().await;
    let mut c = pb::state_store_client::StateStoreClient::new(local.channel.clone());
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("tableNmae", "x")], "tableNmae"),
        (&[("tableName", "x; DROP TABLE y")], "tableName"),
        (
            &[("databaseFile", "/proc/definitely/not/here.db")],
            "databaseFile",
        ),
        (&[("timeout", "soon")], "timeout"),
    ];
    for (pairs, key) in cases {
        let err = c
            .init(to(
                "bad",
                pb::InitRequest {
                    metadata: props(pairs),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{pairs:?}");
        assert!(err.message().contains(key), "{pairs:?}: {}", err.message());
    }
}
