//! The secret-store building block: [`SecretStore`].

use std::collections::HashMap;

use async_trait::async_trait;

use crate::{ComponentError, Metadata};

pub(crate) mod adaptor;

/// Capabilities a secret store can advertise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretStoreFeature {
    /// One secret may hold several key/value pairs.
    MultipleKeyValuesPerSecret,
}

impl SecretStoreFeature {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MultipleKeyValuesPerSecret => "MULTIPLE_KEY_VALUES_PER_SECRET",
        }
    }
}

/// A secret: its key/value pairs (usually one, named like the secret).
pub type Secret = HashMap<String, String>;

/// A secret store component.
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Configure from component metadata. Called once per instance.
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError>;

    /// Capabilities this store offers.
    fn features(&self) -> Vec<SecretStoreFeature> {
        Vec::new()
    }

    /// One secret. A missing secret is [`ComponentError::not_found`].
    async fn get(
        &self,
        key: &str,
        metadata: HashMap<String, String>,
    ) -> Result<Secret, ComponentError>;

    /// Every secret the store holds, by name.
    async fn bulk_get(
        &self,
        _metadata: HashMap<String, String>,
    ) -> Result<HashMap<String, Secret>, ComponentError> {
        Err(ComponentError::unimplemented("bulk secret reads"))
    }

    /// Liveness check.
    async fn ping(&self) -> Result<(), ComponentError> {
        Ok(())
    }
}
