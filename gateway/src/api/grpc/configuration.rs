//! The configuration rpcs (`GetConfiguration`, `SubscribeConfiguration`,
//! `UnsubscribeConfiguration` and their `Alpha1` twins, which behave the same).

use std::sync::Arc;

use tokio_stream::StreamExt;
use tonic::{Response, Status};

use outrigger_proto::runtime as pb;

use crate::api::Runtime;

pub(super) async fn get(
    rt: &Runtime,
    r: pb::GetConfigurationRequest,
) -> Result<Response<pb::GetConfigurationResponse>, Status> {
    let items = rt
        .configuration
        .get(&r.store_name, r.keys, r.metadata)
        .await?;
    Ok(Response::new(pb::GetConfigurationResponse { items }))
}

/// The first message carries the subscription id and no items (the SDKs
/// wait for it); every later one carries the id and the changed items.
pub(super) async fn subscribe(
    rt: &Arc<Runtime>,
    r: pb::SubscribeConfigurationRequest,
) -> Result<Response<tonic::codegen::BoxStream<pb::SubscribeConfigurationResponse>>, Status> {
    let updates = rt
        .configuration
        .subscribe(&r.store_name, r.keys, r.metadata)
        .await?;
    let id = updates.id.clone();
    let first = pb::SubscribeConfigurationResponse {
        id: id.clone(),
        items: Default::default(),
    };
    let rest = updates.into_stream().map(move |update| {
        update
            .map(|items| pb::SubscribeConfigurationResponse {
                id: id.clone(),
                items,
            })
            .map_err(Status::from)
    });
    Ok(Response::new(Box::pin(
        tokio_stream::once(Ok(first)).chain(rest),
    )))
}

/// Unknown ids answer `ok: false` with the reason, as daprd does.
pub(super) fn unsubscribe(
    rt: &Runtime,
    r: pb::UnsubscribeConfigurationRequest,
) -> Result<Response<pb::UnsubscribeConfigurationResponse>, Status> {
    let reply = match rt.configuration.unsubscribe(&r.store_name, &r.id) {
        Ok(()) => pb::UnsubscribeConfigurationResponse {
            ok: true,
            message: String::new(),
        },
        Err(err) if err.code == crate::error::codes::ERR_CONFIGURATION_UNSUBSCRIBE.code => {
            pb::UnsubscribeConfigurationResponse {
                ok: false,
                message: err.message,
            }
        }
        Err(err) => return Err(err.into()),
    };
    Ok(Response::new(reply))
}
