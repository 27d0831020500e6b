//! Which sockets serve which building blocks, found the way daprd finds
//! them: gRPC reflection `v1alpha` (falling back to `v1`) on every socket in
//! the folder.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_stream::StreamExt;
use tonic_reflection::pb::{v1, v1alpha};

use super::channel;

/// One socket and the gRPC services it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// Socket path.
    pub path: PathBuf,
    /// Fully-qualified service names.
    pub services: BTreeSet<String>,
}

/// Every socket in `folder` that answers reflection, by socket name (file
/// name without extension). A missing folder is empty; a socket that does
/// not answer within `timeout` is skipped with a warning.
pub async fn discover(folder: &Path, timeout: Duration) -> BTreeMap<String, Discovered> {
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(folder) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_socket()) {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        match tokio::time::timeout(timeout, list_services(&path)).await {
            Ok(Ok(services)) => {
                found.insert(name, Discovered { path, services });
            }
            Ok(Err(status)) => {
                tracing::warn!(socket = %path.display(), %status, "reflection failed; skipping socket")
            }
            Err(_) => {
                tracing::warn!(socket = %path.display(), "no reflection answer; skipping socket")
            }
        }
    }
    found
}

async fn list_services(path: &Path) -> Result<BTreeSet<String>, tonic::Status> {
    let channel = channel::lazy(path);
    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    match alpha
        .server_reflection_info(tokio_stream::iter([request]))
        .await
    {
        Ok(reply) => {
            if let Some(Ok(msg)) = reply.into_inner().next().await
                && let Some(
                    v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(
                        list,
                    ),
                ) = msg.message_response
            {
                return Ok(list.service.into_iter().map(|s| s.name).collect());
            }
            Err(tonic::Status::unknown("empty reflection answer"))
        }
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            let mut v1 = v1::server_reflection_client::ServerReflectionClient::new(channel);
            let request = v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                    String::new(),
                )),
            };
            let reply = v1
                .server_reflection_info(tokio_stream::iter([request]))
                .await?;
            if let Some(Ok(msg)) = reply.into_inner().next().await
                && let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(
                    list,
                )) = msg.message_response
            {
                return Ok(list.service.into_iter().map(|s| s.name).collect());
            }
            Err(tonic::Status::unknown("empty reflection answer"))
        }
        Err(status) => Err(status),
    }
}
