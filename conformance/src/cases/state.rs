//! State store cases.

use std::collections::HashMap;
use std::time::Duration;

use outrigger_proto::components as pb;
use pb::transactional_state_operation::Request as Op;
use tonic::Code;
use tonic_types::{ErrorDetail, StatusExt};

use super::{Case, case};
use crate::harness::{Ctx, ensure, ok};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "state/features/declared-are-advertised",
            None,
            super::declared_are_advertised
        ),
        case!(
            "state/init/bad-metadata-fails",
            None,
            super::bad_metadata_fails_init
        ),
        case!("state/ping/works", None, ping),
        case!("state/basic/set-get-delete", None, set_get_delete),
        case!("state/basic/get-missing-key", None, get_missing),
        case!("state/basic/bulk-set-get-delete", None, bulk),
        case!("state/basic/binary-value", None, binary),
        case!("state/basic/large-value", None, large),
        case!("state/basic/unicode-and-separator-keys", None, unicode_keys),
        case!("state/etag/returned-on-get", Some("etag"), etag_on_get),
        case!("state/etag/set-matching", Some("etag"), set_matching),
        case!("state/etag/set-stale", Some("etag"), set_stale),
        case!("state/etag/set-malformed", Some("etag"), set_malformed),
        case!(
            "state/etag/delete-with-etag",
            Some("etag"),
            delete_with_etag
        ),
        case!(
            "state/etag/concurrent-writers-one-winner",
            Some("etag"),
            one_winner
        ),
        case!(
            "state/first-write/create-then-refuse",
            Some("first-write"),
            first_write
        ),
        case!(
            "state/transaction/all-applied-in-order",
            Some("transaction"),
            tx_order
        ),
        case!(
            "state/transaction/failing-op-rolls-back",
            Some("transaction"),
            tx_rollback
        ),
        case!("state/ttl/expires", Some("ttl"), ttl_expires),
        case!("state/ttl/reset-on-overwrite", Some("ttl"), ttl_reset),
        case!("state/query/filter-sort-page", Some("query"), query),
    ]
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

async fn read(ctx: &Ctx, key: &str) -> Result<pb::GetResponse, String> {
    ok("Get", ctx.state().get(ctx.req(get(key))).await)
}

async fn etag(ctx: &Ctx, key: &str) -> Result<String, String> {
    read(ctx, key)
        .await?
        .etag
        .map(|e| e.value)
        .ok_or_else(|| format!("Get of {key} returned no ETag"))
}

/// An error daprd would read as an ETag error: one BadRequest on `etag`.
fn etag_error(status: &tonic::Status, codes: &[Code]) -> Result<(), String> {
    ensure!(
        codes.contains(&status.code()),
        "expected {codes:?} for an ETag error, got {:?}: {}",
        status.code(),
        status.message()
    );
    let details = status
        .check_error_details_vec()
        .map_err(|e| format!("status details do not decode: {e}"))?;
    let one = matches!(details.as_slice(), [ErrorDetail::BadRequest(b)] if b.field_violations.len() == 1 && b.field_violations[0].field == "etag");
    ensure!(
        one,
        "ETag errors need exactly one google.rpc.BadRequest violation on \"etag\" (daprd answers 500 otherwise); got {details:?}"
    );
    Ok(())
}

async fn ping(ctx: Ctx) -> Result<(), String> {
    ok("Ping", ctx.state().ping(ctx.req(pb::PingRequest {})).await).map(drop)
}

async fn set_get_delete(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("basic");
    ok("Set", ctx.state().set(ctx.req(set(&key, b"value-1"))).await)?;
    ensure!(
        read(&ctx, &key).await?.data == b"value-1",
        "Get did not return what Set stored"
    );
    ok(
        "Set (overwrite)",
        ctx.state().set(ctx.req(set(&key, b"value-2"))).await,
    )?;
    ensure!(
        read(&ctx, &key).await?.data == b"value-2",
        "Get did not return the overwritten value"
    );
    ok(
        "Delete",
        ctx.state()
            .delete(ctx.req(pb::DeleteRequest {
                key: key.clone(),
                ..Default::default()
            }))
            .await,
    )?;
    ensure!(
        read(&ctx, &key).await?.data.is_empty(),
        "a deleted key still has data"
    );
    ok(
        "Delete (missing key)",
        ctx.state()
            .delete(ctx.req(pb::DeleteRequest {
                key,
                ..Default::default()
            }))
            .await,
    )
    .map(drop)
}

async fn get_missing(ctx: Ctx) -> Result<(), String> {
    let r = read(&ctx, &ctx.key("never-set")).await?;
    ensure!(
        r.data.is_empty() && r.etag.is_none(),
        "a missing key must read as empty data and no ETag, not {r:?}"
    );
    Ok(())
}

async fn bulk(ctx: Ctx) -> Result<(), String> {
    let keys: Vec<String> = (0..5).map(|i| ctx.key(&format!("bulk-{i}"))).collect();
    let items = keys.iter().map(|k| set(k, k.as_bytes())).collect();
    ok(
        "BulkSet",
        ctx.state()
            .bulk_set(ctx.req(pb::BulkSetRequest {
                items,
                options: None,
            }))
            .await,
    )?;
    let mut asked: Vec<pb::GetRequest> = keys.iter().map(|k| get(k)).collect();
    asked.push(get(&ctx.key("bulk-missing")));
    let got = ok(
        "BulkGet",
        ctx.state()
            .bulk_get(ctx.req(pb::BulkGetRequest {
                items: asked,
                options: None,
            }))
            .await,
    )?
    .items;
    for k in &keys {
        let item = got
            .iter()
            .find(|i| &i.key == k)
            .ok_or_else(|| format!("BulkGet left out {k}"))?;
        ensure!(
            item.data == k.as_bytes(),
            "BulkGet returned wrong data for {k}"
        );
    }
    let missing = got.iter().find(|i| i.key.ends_with("bulk-missing"));
    ensure!(
        missing.is_none_or(|m| m.data.is_empty()),
        "a missing key in BulkGet has data"
    );
    let deletes = keys
        .iter()
        .map(|k| pb::DeleteRequest {
            key: k.clone(),
            ..Default::default()
        })
        .collect();
    ok(
        "BulkDelete",
        ctx.state()
            .bulk_delete(ctx.req(pb::BulkDeleteRequest {
                items: deletes,
                options: None,
            }))
            .await,
    )?;
    for k in &keys {
        ensure!(read(&ctx, k).await?.data.is_empty(), "BulkDelete left {k}");
    }
    Ok(())
}

async fn binary(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("binary");
    let value: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    ok("Set", ctx.state().set(ctx.req(set(&key, &value))).await)?;
    ensure!(
        read(&ctx, &key).await?.data == value,
        "binary value changed in storage"
    );
    Ok(())
}

async fn large(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("large");
    let value: Vec<u8> = (0..(1024 * 1024 + 17)).map(|i| (i % 251) as u8).collect();
    ok(
        "Set (1 MiB)",
        ctx.state().set(ctx.req(set(&key, &value))).await,
    )?;
    let got = read(&ctx, &key).await?.data;
    ensure!(
        got == value,
        "a 1 MiB value came back as {} bytes, changed",
        got.len()
    );
    Ok(())
}

async fn unicode_keys(ctx: Ctx) -> Result<(), String> {
    for name in ["ключ-🔑", "app||type||id||field", "spaces and / slashes"] {
        let key = ctx.key(name);
        ok(
            "Set",
            ctx.state().set(ctx.req(set(&key, name.as_bytes()))).await,
        )?;
        ensure!(
            read(&ctx, &key).await?.data == name.as_bytes(),
            "key {key:?} did not round-trip"
        );
    }
    Ok(())
}

async fn etag_on_get(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("etag-get");
    ok("Set", ctx.state().set(ctx.req(set(&key, b"1"))).await)?;
    let first = etag(&ctx, &key).await?;
    ok("Set", ctx.state().set(ctx.req(set(&key, b"2"))).await)?;
    let second = etag(&ctx, &key).await?;
    ensure!(
        first != second,
        "the ETag did not change when the value did ({first})"
    );
    Ok(())
}

async fn set_matching(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("etag-match");
    ok("Set", ctx.state().set(ctx.req(set(&key, b"1"))).await)?;
    let mut req = set(&key, b"2");
    req.etag = Some(pb::Etag {
        value: etag(&ctx, &key).await?,
    });
    ok(
        "Set with the current ETag",
        ctx.state().set(ctx.req(req)).await,
    )?;
    ensure!(
        read(&ctx, &key).await?.data == b"2",
        "Set with a matching ETag did not write"
    );
    Ok(())
}

async fn set_stale(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("etag-stale");
    ok("Set", ctx.state().set(ctx.req(set(&key, b"1"))).await)?;
    let old = etag(&ctx, &key).await?;
    ok("Set", ctx.state().set(ctx.req(set(&key, b"2"))).await)?;
    let mut req = set(&key, b"3");
    req.etag = Some(pb::Etag { value: old });
    match ctx.state().set(ctx.req(req)).await {
        Ok(_) => Err("Set with a stale ETag succeeded: the component ignores ETags".into()),
        Err(status) => {
            etag_error(&status, &[Code::FailedPrecondition])?;
            ensure!(
                read(&ctx, &key).await?.data == b"2",
                "a rejected stale write still changed the value"
            );
            Ok(())
        }
    }
}

async fn set_malformed(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("etag-bad");
    ok("Set", ctx.state().set(ctx.req(set(&key, b"1"))).await)?;
    let mut req = set(&key, b"2");
    req.etag = Some(pb::Etag {
        value: "not-an-etag-of-this-store ☃".into(),
    });
    match ctx.state().set(ctx.req(req)).await {
        Ok(_) => Err("Set with a malformed ETag succeeded".into()),
        Err(status) => etag_error(&status, &[Code::InvalidArgument, Code::FailedPrecondition]),
    }
}

async fn delete_with_etag(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("etag-delete");
    ok("Set", ctx.state().set(ctx.req(set(&key, b"1"))).await)?;
    let old = etag(&ctx, &key).await?;
    ok("Set", ctx.state().set(ctx.req(set(&key, b"2"))).await)?;
    let stale = pb::DeleteRequest {
        key: key.clone(),
        etag: Some(pb::Etag { value: old }),
        ..Default::default()
    };
    match ctx.state().delete(ctx.req(stale)).await {
        Ok(_) => return Err("Delete with a stale ETag succeeded".into()),
        Err(status) => etag_error(&status, &[Code::FailedPrecondition])?,
    }
    let current = pb::DeleteRequest {
        key: key.clone(),
        etag: Some(pb::Etag {
            value: etag(&ctx, &key).await?,
        }),
        ..Default::default()
    };
    ok(
        "Delete with the current ETag",
        ctx.state().delete(ctx.req(current)).await,
    )?;
    ensure!(
        read(&ctx, &key).await?.data.is_empty(),
        "Delete with the current ETag left the key"
    );
    Ok(())
}

async fn one_winner(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("race");
    ok("Set", ctx.state().set(ctx.req(set(&key, b"start"))).await)?;
    let tag = etag(&ctx, &key).await?;
    let mut writers = Vec::new();
    for i in 0..10u8 {
        let (ctx, key, tag) = (ctx.clone(), key.clone(), tag.clone());
        writers.push(tokio::spawn(async move {
            let mut req = set(&key, &[i]);
            req.etag = Some(pb::Etag { value: tag });
            ctx.state().set(ctx.req(req)).await.is_ok()
        }));
    }
    let mut winners = 0;
    for w in writers {
        winners += usize::from(w.await.map_err(|e| e.to_string())?);
    }
    ensure!(
        winners == 1,
        "{winners} of 10 writers with the same ETag succeeded; exactly one must"
    );
    Ok(())
}

async fn first_write(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("first-write");
    let mut req = set(&key, b"1");
    req.options = Some(pb::StateOptions {
        concurrency: pb::state_options::StateConcurrency::ConcurrencyFirstWrite as i32,
        consistency: 0,
    });
    ok(
        "first-write create",
        ctx.state().set(ctx.req(req.clone())).await,
    )?;
    match ctx.state().set(ctx.req(req)).await {
        Ok(_) => Err("a second first-write without ETag overwrote the key".into()),
        Err(status) => etag_error(&status, &[Code::FailedPrecondition]),
    }
}

fn op(r: Op) -> pb::TransactionalStateOperation {
    pb::TransactionalStateOperation { request: Some(r) }
}

async fn tx_order(ctx: Ctx) -> Result<(), String> {
    let (a, b) = (ctx.key("tx-a"), ctx.key("tx-b"));
    let ops = vec![
        op(Op::Set(set(&a, b"1"))),
        op(Op::Set(set(&a, b"2"))),
        op(Op::Set(set(&b, b"x"))),
        op(Op::Delete(pb::DeleteRequest {
            key: b.clone(),
            ..Default::default()
        })),
    ];
    ok(
        "Transact",
        ctx.transactional()
            .transact(ctx.req(pb::TransactionalStateRequest {
                operations: ops,
                metadata: HashMap::new(),
            }))
            .await,
    )?;
    ensure!(
        read(&ctx, &a).await?.data == b"2",
        "operations were not applied in order (a)"
    );
    ensure!(
        read(&ctx, &b).await?.data.is_empty(),
        "operations were not applied in order (b set then deleted)"
    );
    Ok(())
}

async fn tx_rollback(ctx: Ctx) -> Result<(), String> {
    let (fresh, guarded) = (ctx.key("tx-fresh"), ctx.key("tx-guarded"));
    ok(
        "Set",
        ctx.state().set(ctx.req(set(&guarded, b"keep"))).await,
    )?;
    let old = etag(&ctx, &guarded).await?;
    ok(
        "Set",
        ctx.state().set(ctx.req(set(&guarded, b"kept"))).await,
    )?;
    let mut stale = set(&guarded, b"lost");
    stale.etag = Some(pb::Etag { value: old });
    let ops = vec![
        op(Op::Set(set(&fresh, b"should-roll-back"))),
        op(Op::Set(stale)),
    ];
    let result = ctx
        .transactional()
        .transact(ctx.req(pb::TransactionalStateRequest {
            operations: ops,
            metadata: HashMap::new(),
        }))
        .await;
    ensure!(result.is_err(), "a transaction with a stale ETag succeeded");
    ensure!(
        read(&ctx, &fresh).await?.data.is_empty(),
        "the failing transaction's first operation was not rolled back"
    );
    ensure!(
        read(&ctx, &guarded).await?.data == b"kept",
        "the failing transaction changed the guarded key"
    );
    Ok(())
}

async fn ttl_expires(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("ttl");
    let mut req = set(&key, b"short-lived");
    req.metadata.insert("ttlInSeconds".into(), "1".into());
    ok(
        "Set with ttlInSeconds=1",
        ctx.state().set(ctx.req(req)).await,
    )?;
    ensure!(
        read(&ctx, &key).await?.data == b"short-lived",
        "the value is not readable before its TTL"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    ensure!(
        read(&ctx, &key).await?.data.is_empty(),
        "the value is still readable 2 s after a 1 s TTL"
    );
    Ok(())
}

async fn ttl_reset(ctx: Ctx) -> Result<(), String> {
    let key = ctx.key("ttl-reset");
    let mut req = set(&key, b"v1");
    req.metadata.insert("ttlInSeconds".into(), "1".into());
    ok("Set with TTL", ctx.state().set(ctx.req(req)).await)?;
    ok(
        "overwrite without TTL",
        ctx.state().set(ctx.req(set(&key, b"v2"))).await,
    )?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    ensure!(
        read(&ctx, &key).await?.data == b"v2",
        "overwriting without a TTL did not clear the expiry"
    );
    Ok(())
}

async fn query(ctx: Ctx) -> Result<(), String> {
    let tag = ctx.prefix.clone();
    for (i, city) in ["Oslo", "Lima", "Oslo", "Oslo"].iter().enumerate() {
        let value = serde_json::json!({"run": tag, "city": city, "n": i});
        ok(
            "Set",
            ctx.state()
                .set(ctx.req(set(
                    &ctx.key(&format!("q{i}")),
                    value.to_string().as_bytes(),
                )))
                .await,
        )?;
    }
    let filter = serde_json::json!({"AND": [{"EQ": {"run": tag}}, {"EQ": {"city": "Oslo"}}]});
    let mut map = HashMap::new();
    if let Some(obj) = filter.as_object() {
        for (k, v) in obj {
            map.insert(
                k.clone(),
                prost_types::Any {
                    type_url: String::new(),
                    value: v.to_string().into_bytes(),
                },
            );
        }
    }
    let page = |token: String| pb::QueryRequest {
        query: Some(pb::Query {
            filter: map.clone(),
            sort: vec![pb::Sorting {
                key: "n".into(),
                order: pb::sorting::Order::Desc as i32,
            }],
            pagination: Some(pb::Pagination { limit: 2, token }),
        }),
        metadata: HashMap::new(),
    };
    let first = ok(
        "Query",
        ctx.queriable().query(ctx.req(page(String::new()))).await,
    )?;
    let keys: Vec<String> = first.items.iter().map(|i| i.key.clone()).collect();
    ensure!(
        keys == [ctx.key("q3"), ctx.key("q2")],
        "first page sorted by n DESC should be q3, q2; got {keys:?}"
    );
    ensure!(
        !first.token.is_empty(),
        "a limited page with more results must return a token"
    );
    let second = ok(
        "Query (page 2)",
        ctx.queriable().query(ctx.req(page(first.token))).await,
    )?;
    let keys: Vec<String> = second.items.iter().map(|i| i.key.clone()).collect();
    ensure!(
        keys == [ctx.key("q0")],
        "second page should be q0; got {keys:?}"
    );
    Ok(())
}
