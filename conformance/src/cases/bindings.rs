//! Binding cases: output operations and the input `Read` stream.

use std::time::Duration;

use outrigger_proto::components as pb;
use tokio_stream::StreamExt;

use super::{Case, case};
use crate::harness::{Ctx, ensure, ok};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "bindings/init/bad-metadata-fails",
            None,
            super::bad_metadata_fails_init
        ),
        case!(
            "bindings/output/list-operations",
            Some("output"),
            list_operations
        ),
        case!(
            "bindings/output/invoke-configured-operations",
            Some("output"),
            invoke
        ),
        case!(
            "bindings/output/unknown-operation-refused",
            Some("output"),
            unknown_operation
        ),
        case!("bindings/input/read-and-ack", Some("input"), read),
    ]
}

async fn list_operations(ctx: Ctx) -> Result<(), String> {
    let ops = ok(
        "ListOperations",
        ctx.output()
            .list_operations(ctx.req(pb::ListOperationsRequest {}))
            .await,
    )?
    .operations;
    ensure!(
        !ops.is_empty(),
        "an output binding must list at least one operation"
    );
    for (op, _) in &ctx.config.invoke {
        ensure!(
            ops.contains(op),
            "configured operation {op} is not listed: {ops:?}"
        );
    }
    Ok(())
}

async fn invoke(ctx: Ctx) -> Result<(), String> {
    ensure!(
        !ctx.config.invoke.is_empty(),
        "the config names no operations to invoke (`invoke:`); nothing would be tested"
    );
    for (op, data) in &ctx.config.invoke {
        let req = pb::InvokeRequest {
            data: data.clone(),
            metadata: ctx.config.invoke_metadata.clone(),
            operation: op.clone(),
        };
        ok(
            &format!("Invoke {op}"),
            ctx.output().invoke(ctx.req(req)).await,
        )?;
    }
    Ok(())
}

async fn unknown_operation(ctx: Ctx) -> Result<(), String> {
    let req = pb::InvokeRequest {
        operation: ctx.key("no-such-operation"),
        ..Default::default()
    };
    ensure!(
        ctx.output().invoke(ctx.req(req)).await.is_err(),
        "an operation the binding does not list was accepted"
    );
    Ok(())
}

async fn read(ctx: Ctx) -> Result<(), String> {
    let (answers, rx) = tokio::sync::mpsc::channel(4);
    let mut events = ok(
        "Read",
        ctx.input()
            .read(ctx.req(tokio_stream::wrappers::ReceiverStream::new(rx)))
            .await,
    )?;
    let wait = ctx
        .config
        .case_timeout
        .saturating_sub(Duration::from_secs(1));
    let event = match tokio::time::timeout(wait, events.next()).await {
        Err(_) => return Err(format!("no input event within {wait:?}")),
        Ok(None) => return Err("the component closed the Read stream".into()),
        Ok(Some(Err(s))) => {
            return Err(format!("Read stream error {:?}: {}", s.code(), s.message()));
        }
        Ok(Some(Ok(e))) => e,
    };
    ensure!(
        !event.message_id.is_empty(),
        "input events need a message_id for the ack"
    );
    let ack = pb::ReadRequest {
        response_data: b"ok".to_vec(),
        message_id: event.message_id,
        response_error: None,
    };
    answers.send(ack).await.map_err(|e| e.to_string())
}
