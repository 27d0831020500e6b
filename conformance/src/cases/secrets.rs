//! Secret store cases.

use std::collections::HashMap;

use outrigger_proto::components as pb;
use tonic::Code;

use super::{Case, case};
use crate::harness::{Ctx, ensure, ok};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "secrets/features/declared-are-advertised",
            None,
            super::declared_are_advertised
        ),
        case!(
            "secrets/init/bad-metadata-fails",
            None,
            super::bad_metadata_fails_init
        ),
        case!("secrets/ping/works", None, ping),
        case!("secrets/get/configured-secrets", None, configured),
        case!("secrets/get/missing-is-not-found", None, missing),
        case!(
            "secrets/bulk/contains-configured-secrets",
            Some("bulk"),
            bulk
        ),
    ]
}

async fn ping(ctx: Ctx) -> Result<(), String> {
    ok(
        "Ping",
        ctx.secrets().ping(ctx.req(pb::PingRequest {})).await,
    )
    .map(drop)
}

async fn configured(ctx: Ctx) -> Result<(), String> {
    ensure!(
        !ctx.config.secrets.is_empty(),
        "the config names no secrets to read (`secrets:`); nothing would be tested"
    );
    for (name, want) in &ctx.config.secrets {
        let got = ok(
            "Get",
            ctx.secrets()
                .get(ctx.req(pb::GetSecretRequest {
                    key: name.clone(),
                    metadata: HashMap::new(),
                }))
                .await,
        )?
        .data;
        ensure!(&got == want, "secret {name}: got {got:?}, want {want:?}");
    }
    Ok(())
}

async fn missing(ctx: Ctx) -> Result<(), String> {
    let name = ctx.key("no-such-secret");
    match ctx
        .secrets()
        .get(ctx.req(pb::GetSecretRequest {
            key: name,
            metadata: HashMap::new(),
        }))
        .await
    {
        Ok(r) => Err(format!(
            "a missing secret returned {:?} instead of NotFound",
            r.into_inner().data
        )),
        Err(s) => {
            ensure!(
                s.code() == Code::NotFound,
                "a missing secret gave {:?} ({}), not NotFound",
                s.code(),
                s.message()
            );
            Ok(())
        }
    }
}

async fn bulk(ctx: Ctx) -> Result<(), String> {
    let all = ok(
        "BulkGet",
        ctx.secrets()
            .bulk_get(ctx.req(pb::BulkGetSecretRequest::default()))
            .await,
    )?
    .data;
    for (name, want) in &ctx.config.secrets {
        let got = all.get(name).map(|s| &s.secrets);
        ensure!(
            got == Some(want),
            "BulkGet: secret {name} is {got:?}, want {want:?}"
        );
    }
    Ok(())
}
