//! The case lists, one module per block.

mod bindings;
mod configuration;
mod pubsub;
mod secrets;
mod state;

use std::future::Future;
use std::pin::Pin;

use crate::Block;
use crate::harness::Ctx;

/// The pseudo-operation of cases that change configuration items through
/// the suite's writer command: they run exactly when one is given.
pub(crate) const WRITER: &str = "writer";

/// A boxed case future.
pub(crate) type CaseFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One case: its name, the capability it needs, and its body.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) needs: Option<&'static str>,
    pub(crate) run: fn(Ctx) -> CaseFuture,
}

/// `case!("state/etag/stale", Some("etag"), fn_name)`.
macro_rules! case {
    ($name:literal, $needs:expr, $f:path) => {
        crate::cases::Case {
            name: $name,
            needs: $needs,
            run: |ctx| Box::pin($f(ctx)),
        }
    };
}
pub(crate) use case;

pub(crate) fn for_block(block: Block) -> Vec<Case> {
    match block {
        Block::State => state::cases(),
        Block::Pubsub => pubsub::cases(),
        Block::Bindings => bindings::cases(),
        Block::Secrets => secrets::cases(),
        Block::Configuration => configuration::cases(),
    }
}

/// The feature string that advertises capability `op` of `block`, if any.
pub(crate) fn feature_of(block: Block, op: &str) -> Option<&'static str> {
    match (block, op) {
        (Block::State, "etag" | "first-write") => Some("ETAG"),
        (Block::State, "transaction") => Some("TRANSACTIONAL"),
        (Block::State, "ttl") => Some("TTL"),
        (Block::State, "query") => Some("QUERY_API"),
        (Block::Pubsub, "ttl") => Some("MESSAGE_TTL"),
        (Block::Pubsub, "bulk") => Some("BULK_PUBSUB"),
        (Block::Secrets, "multi") => Some("MULTIPLE_KEY_VALUES_PER_SECRET"),
        _ => None,
    }
}

/// Whether the component advertises the feature behind `op`: an advertised
/// feature is tested even when the config does not declare it.
pub(crate) fn advertised_as(block: Block, op: &str, features: &[String]) -> bool {
    feature_of(block, op).is_some_and(|f| features.iter().any(|x| x == f))
}

/// Every declared capability with a feature string must be advertised.
pub(crate) async fn declared_are_advertised(ctx: Ctx) -> Result<(), String> {
    let block = ctx.target.block;
    let missing: Vec<String> = ctx
        .config
        .operations
        .iter()
        .filter_map(|op| feature_of(block, op).map(|f| (op, f)))
        .filter(|(_, f)| !ctx.features.iter().any(|x| x == f))
        .map(|(op, f)| format!("{op} (feature {f})"))
        .collect();
    crate::harness::ensure!(
        missing.is_empty(),
        "declared but not advertised by Features: {}; advertised: {:?}",
        missing.join(", "),
        ctx.features
    );
    Ok(())
}

/// `Init` with the configured bad metadata must fail and name a bad key.
pub(crate) async fn bad_metadata_fails_init(ctx: Ctx) -> Result<(), String> {
    if ctx.config.bad_metadata.is_empty() {
        return Ok(());
    }
    let mut metadata = ctx.target.metadata.clone();
    metadata.extend(ctx.config.bad_metadata.clone());
    let fresh = ctx.clone();
    match fresh.init(metadata).await {
        Ok(_) => Err(format!(
            "Init accepted bad metadata {:?}",
            ctx.config.bad_metadata
        )),
        Err(reason) => {
            let named = ctx
                .config
                .bad_metadata
                .keys()
                .any(|k| reason.contains(k.as_str()));
            crate::harness::ensure!(
                named,
                "Init failed but the error does not name the bad key: {reason}"
            );
            // Restore a good instance for later cases.
            ctx.init(ctx.target.metadata.clone()).await.map(drop)
        }
    }
}
