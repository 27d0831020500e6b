//! The secrets block.

use std::collections::HashMap;
use std::sync::Arc;

use outrigger_proto::components as pb;

use super::{component, unreachable};
use crate::components::Registry;
use crate::error::{ApiError, codes};
use crate::resources::Block;

/// The secrets API of one gateway.
#[derive(Debug, Clone)]
pub struct SecretsApi {
    registry: Arc<Registry>,
}

impl SecretsApi {
    /// Over `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    fn store(&self, name: &str) -> Result<Arc<crate::components::Component>, ApiError> {
        component(
            &self.registry,
            Block::SecretStores,
            name,
            codes::ERR_SECRET_STORES_NOT_CONFIGURED,
            codes::ERR_SECRET_STORE_NOT_FOUND,
        )
    }

    /// One secret's key/value pairs.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "secrets", op = "get", store = store_name))]
    pub async fn get(
        &self,
        store_name: &str,
        key: &str,
        metadata: HashMap<String, String>,
    ) -> Result<HashMap<String, String>, ApiError> {
        crate::metrics::timed("secrets", "get", async {
            let store = self.store(store_name)?;
            if key.is_empty() {
                return Err(ApiError::new(
                    codes::ERR_MALFORMED_REQUEST,
                    "key: must not be empty",
                ));
            }
            let reply = store
                .secrets()
                .get(pb::GetSecretRequest {
                    key: key.to_owned(),
                    metadata,
                })
                .await
                .map_err(|s| {
                    ApiError::new(
                        codes::ERR_SECRET_GET,
                        format!(
                            "failed getting secret with key {key} from secret store {store_name}: {}",
                            s.message()
                        ),
                    )
                })?;
            Ok(reply.into_inner().data)
        })
        .await
    }

    /// Every secret of the store.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "secrets", op = "bulk_get", store = store_name))]
    pub async fn bulk_get(
        &self,
        store_name: &str,
        metadata: HashMap<String, String>,
    ) -> Result<HashMap<String, HashMap<String, String>>, ApiError> {
        crate::metrics::timed("secrets", "bulk_get", async {
            let store = self.store(store_name)?;
            let reply = store
                .secrets()
                .bulk_get(pb::BulkGetSecretRequest { metadata })
                .await
                .map_err(|s| ApiError::new(codes::ERR_SECRET_GET, unreachable(&store, &s)))?;
            Ok(reply
                .into_inner()
                .data
                .into_iter()
                .map(|(name, secret)| (name, secret.secrets))
                .collect())
        })
        .await
    }
}
