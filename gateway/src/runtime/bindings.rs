//! Output bindings.

use std::collections::HashMap;
use std::sync::Arc;

use outrigger_proto::components as pb;

use super::{component, unreachable};
use crate::components::Registry;
use crate::error::{ApiError, codes};
use crate::resources::Block;

/// What an output binding returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindingResponse {
    /// Response bytes.
    pub data: Vec<u8>,
    /// Response metadata.
    pub metadata: HashMap<String, String>,
}

/// The bindings API of one gateway.
#[derive(Debug, Clone)]
pub struct BindingsApi {
    registry: Arc<Registry>,
}

impl BindingsApi {
    /// Over `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    /// Invoke `operation` on output binding `name`.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "bindings", op = operation, binding = name))]
    pub async fn invoke(
        &self,
        name: &str,
        operation: &str,
        data: Vec<u8>,
        metadata: HashMap<String, String>,
    ) -> Result<BindingResponse, ApiError> {
        crate::metrics::timed("bindings", "invoke", async {
            let binding = component(
                &self.registry,
                Block::Bindings,
                name,
                codes::ERR_INVOKE_OUTPUT_BINDING,
                codes::ERR_INVOKE_OUTPUT_BINDING,
            )?;
            if !binding
                .services
                .iter()
                .any(|s| s == "dapr.proto.components.v1.OutputBinding")
            {
                return Err(ApiError::new(
                    codes::ERR_INVOKE_OUTPUT_BINDING,
                    format!("binding {name} is an input binding only"),
                ));
            }
            if operation.is_empty() {
                return Err(ApiError::new(
                    codes::ERR_MALFORMED_REQUEST,
                    "operation: must not be empty",
                ));
            }
            let request = pb::InvokeRequest {
                data,
                metadata,
                operation: operation.to_owned(),
            };
            let client = binding.output_binding();
            let reply = crate::resiliency::outbound::call(
                binding.outbound_policy(),
                request,
                move |request| {
                    let mut client = client.clone();
                    async move { client.invoke(request).await }
                },
            )
            .await
            .map_err(|s| {
                ApiError::new(
                    codes::ERR_INVOKE_OUTPUT_BINDING,
                    format!(
                        "error invoking output binding {name}: {}",
                        unreachable(&binding, &s)
                    ),
                )
            })?
            .into_inner();
            Ok(BindingResponse {
                data: reply.data,
                metadata: reply.metadata,
            })
        })
        .await
    }
}
