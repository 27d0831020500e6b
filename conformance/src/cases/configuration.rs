//! Configuration-store cases (Outrigger's `outrigger.components.v1`
//! protocol). The protocol has no write rpc, so cases that need items in
//! the store set them with the suite's writer command.

use std::collections::HashMap;
use std::time::Duration;

use outrigger_proto::outrigger::components::v1 as pb;
use tokio_stream::StreamExt;

use super::{Case, WRITER, case};
use crate::harness::{Ctx, ensure, ok};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "configuration/init/bad-metadata-fails",
            None,
            super::bad_metadata_fails_init
        ),
        case!(
            "configuration/get/missing-keys-absent",
            None,
            missing_keys_absent
        ),
        case!(
            "configuration/get/empty-key-refused",
            None,
            empty_key_refused
        ),
        case!(
            "configuration/get/written-items",
            Some(WRITER),
            written_items
        ),
        case!(
            "configuration/get/all-keys-when-none-given",
            Some(WRITER),
            all_keys
        ),
        case!(
            "configuration/subscribe/listening-marker-first",
            Some("subscribe"),
            listening_marker
        ),
        case!(
            "configuration/subscribe/changes-of-subscribed-keys-only",
            Some(WRITER),
            subscribed_changes
        ),
    ]
}

/// Run the writer command for one item.
async fn write(ctx: &Ctx, key: &str, value: &str) -> Result<(), String> {
    let command = ctx
        .config
        .writer
        .as_deref()
        .ok_or("no writer command configured")?;
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("CONFIGURATION_KEY", key)
        .env("CONFIGURATION_VALUE", value)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running the writer command: {e}"))?;
    ensure!(
        output.status.success(),
        "the writer command failed ({}) for {key}={value}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

async fn get(ctx: &Ctx, keys: &[String]) -> Result<HashMap<String, String>, String> {
    let reply = ok(
        "Get",
        ctx.configuration()
            .get(ctx.req(pb::GetConfigurationRequest {
                keys: keys.to_vec(),
                metadata: HashMap::new(),
            }))
            .await,
    )?;
    Ok(reply
        .items
        .into_iter()
        .map(|(k, item)| (k, item.value))
        .collect())
}

async fn missing_keys_absent(ctx: Ctx) -> Result<(), String> {
    let missing = ctx.key("never-written");
    let items = get(&ctx, std::slice::from_ref(&missing)).await?;
    ensure!(
        !items.contains_key(&missing),
        "a key never written came back: {items:?}"
    );
    Ok(())
}

async fn empty_key_refused(ctx: Ctx) -> Result<(), String> {
    let result = ctx
        .configuration()
        .get(ctx.req(pb::GetConfigurationRequest {
            keys: vec![String::new()],
            metadata: HashMap::new(),
        }))
        .await;
    match result {
        Ok(_) => Err("Get with an empty key succeeded".into()),
        Err(s) => {
            ensure!(
                s.code() == tonic::Code::InvalidArgument,
                "empty key: expected InvalidArgument, got {:?}: {}",
                s.code(),
                s.message()
            );
            Ok(())
        }
    }
}

async fn written_items(ctx: Ctx) -> Result<(), String> {
    let (a, b, missing) = (ctx.key("a"), ctx.key("b"), ctx.key("missing"));
    write(&ctx, &a, "one").await?;
    write(&ctx, &b, "two").await?;
    let items = get(&ctx, &[a.clone(), b.clone(), missing.clone()]).await?;
    ensure!(
        items.get(&a).map(String::as_str) == Some("one")
            && items.get(&b).map(String::as_str) == Some("two"),
        "expected {a}=one and {b}=two, got {items:?}"
    );
    ensure!(
        items.len() == 2,
        "only the two asked-for, written keys may come back: {items:?}"
    );
    write(&ctx, &a, "uno").await?;
    let items = get(&ctx, std::slice::from_ref(&a)).await?;
    ensure!(
        items.get(&a).map(String::as_str) == Some("uno"),
        "after rewriting {a}: {items:?}"
    );
    Ok(())
}

async fn all_keys(ctx: Ctx) -> Result<(), String> {
    let (a, b) = (ctx.key("all-a"), ctx.key("all-b"));
    write(&ctx, &a, "x").await?;
    write(&ctx, &b, "y").await?;
    let items = get(&ctx, &[]).await?;
    ensure!(
        items.get(&a).map(String::as_str) == Some("x")
            && items.get(&b).map(String::as_str) == Some("y"),
        "Get with no keys must return every item, including {a} and {b}; got {} items",
        items.len()
    );
    Ok(())
}

async fn open(
    ctx: &Ctx,
    keys: Vec<String>,
) -> Result<tonic::Streaming<pb::ConfigurationUpdate>, String> {
    let mut stream = ok(
        "Subscribe",
        ctx.configuration()
            .subscribe(ctx.req(pb::SubscribeConfigurationRequest {
                keys,
                metadata: HashMap::new(),
            }))
            .await,
    )?;
    match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        Ok(Some(Ok(first))) => {
            ensure!(
                first.items.is_empty(),
                "the first message must be the empty listening marker, got {:?}",
                first.items.keys().collect::<Vec<_>>()
            );
            Ok(stream)
        }
        Ok(Some(Err(s))) => Err(format!("Subscribe stream: {:?}: {}", s.code(), s.message())),
        Ok(None) => Err("Subscribe stream ended before the listening marker".into()),
        Err(_) => Err("no listening marker within 5 s".into()),
    }
}

async fn listening_marker(ctx: Ctx) -> Result<(), String> {
    open(&ctx, vec![ctx.key("marker")]).await.map(drop)
}

async fn subscribed_changes(ctx: Ctx) -> Result<(), String> {
    let (watched, other) = (ctx.key("watched"), ctx.key("other"));
    let mut stream = open(&ctx, vec![watched.clone()]).await?;
    write(&ctx, &other, "ignored").await?;
    write(&ctx, &watched, "v1").await?;
    let update = match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(update))) => update,
        Ok(Some(Err(s))) => return Err(format!("stream failed: {:?}: {}", s.code(), s.message())),
        Ok(None) => return Err("stream ended before the change arrived".into()),
        Err(_) => {
            return Err(format!(
                "the change of {watched} did not arrive within 10 s"
            ));
        }
    };
    ensure!(
        !update.items.contains_key(&other),
        "a change of the unsubscribed key {other} was delivered"
    );
    ensure!(
        update.items.get(&watched).map(|i| i.value.as_str()) == Some("v1"),
        "expected {watched}=v1, got {:?}",
        update.items
    );
    Ok(())
}
