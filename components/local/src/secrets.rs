//! `secretstores.local.file` and `secretstores.local.env`.

use std::collections::HashMap;
use std::sync::OnceLock;

use outrigger_component_sdk::secrets::{Secret, SecretStore, SecretStoreFeature};
use outrigger_component_sdk::{ComponentError, Metadata, async_trait};

use crate::db;

/// Secrets from a JSON file. Nested objects are flattened with
/// `nestedSeparator` (default `:`): `{"db":{"password":"x"}}` is the secret
/// `db:password`. With `multiValued: true` a top-level object is one secret
/// holding its flattened keys instead.
#[derive(Default)]
pub struct FileSecrets {
    loaded: OnceLock<Loaded>,
}

struct Loaded {
    secrets: HashMap<String, Secret>,
}

fn flatten(
    prefix: &str,
    value: &serde_json::Value,
    separator: &str,
    out: &mut Vec<(String, String)>,
) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}{separator}{k}")
                };
                flatten(&key, v, separator, out);
            }
        }
        serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

#[async_trait]
impl SecretStore for FileSecrets {
    #[tracing::instrument(skip_all, fields(component = "secretstores.local.file"))]
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        db::check_keys(
            &metadata,
            &["secretsFile", "nestedSeparator", "multiValued"],
        )?;
        let file = metadata.required("secretsFile")?;
        let separator = metadata.get("nestedSeparator").unwrap_or(":").to_owned();
        let multi = metadata.bool_or("multiValued", false)?;
        let text = std::fs::read_to_string(file).map_err(|e| {
            ComponentError::invalid_argument("secretsFile", format!("cannot read {file}: {e}"))
        })?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            ComponentError::invalid_argument("secretsFile", format!("{file} is not JSON: {e}"))
        })?;
        let top = json.as_object().ok_or_else(|| {
            ComponentError::invalid_argument(
                "secretsFile",
                format!("{file} must hold a JSON object"),
            )
        })?;
        let mut secrets = HashMap::new();
        if multi {
            for (name, value) in top {
                let mut pairs = Vec::new();
                flatten("", value, &separator, &mut pairs);
                let secret = if value.is_object() {
                    pairs.into_iter().collect()
                } else {
                    pairs.into_iter().map(|(_, v)| (name.clone(), v)).collect()
                };
                secrets.insert(name.clone(), secret);
            }
        } else {
            let mut pairs = Vec::new();
            flatten("", &json, &separator, &mut pairs);
            for (k, v) in pairs {
                secrets.insert(k.clone(), HashMap::from([(k, v)]));
            }
        }
        self.loaded.set(Loaded { secrets }).map_err(|_| {
            ComponentError::failed_precondition("Init was already called on this instance")
        })
    }

    fn features(&self) -> Vec<SecretStoreFeature> {
        vec![SecretStoreFeature::MultipleKeyValuesPerSecret]
    }

    async fn get(
        &self,
        key: &str,
        _metadata: HashMap<String, String>,
    ) -> Result<Secret, ComponentError> {
        let loaded = self.loaded.get().ok_or_else(|| {
            ComponentError::failed_precondition("the secret store is not initialised")
        })?;
        loaded
            .secrets
            .get(key)
            .cloned()
            .ok_or_else(|| ComponentError::not_found(format!("secret {key:?} not found")))
    }

    async fn bulk_get(
        &self,
        _metadata: HashMap<String, String>,
    ) -> Result<HashMap<String, Secret>, ComponentError> {
        let loaded = self.loaded.get().ok_or_else(|| {
            ComponentError::failed_precondition("the secret store is not initialised")
        })?;
        Ok(loaded.secrets.clone())
    }
}

/// Secrets from the component's environment, optionally limited to names
/// starting with `prefix` (which is then stripped).
#[derive(Default)]
pub struct EnvSecrets {
    prefix: OnceLock<String>,
}

#[async_trait]
impl SecretStore for EnvSecrets {
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        db::check_keys(&metadata, &["prefix"])?;
        self.prefix
            .set(metadata.get("prefix").unwrap_or("").to_owned())
            .map_err(|_| {
                ComponentError::failed_precondition("Init was already called on this instance")
            })
    }

    async fn get(
        &self,
        key: &str,
        _metadata: HashMap<String, String>,
    ) -> Result<Secret, ComponentError> {
        let prefix = self.prefix.get().map(String::as_str).unwrap_or("");
        std::env::var(format!("{prefix}{key}"))
            .map(|v| HashMap::from([(key.to_owned(), v)]))
            .map_err(|_| {
                ComponentError::not_found(format!("environment variable {prefix}{key} is not set"))
            })
    }

    async fn bulk_get(
        &self,
        _metadata: HashMap<String, String>,
    ) -> Result<HashMap<String, Secret>, ComponentError> {
        let prefix = self.prefix.get().map(String::as_str).unwrap_or("");
        Ok(std::env::vars()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(prefix)?.to_owned();
                (!name.is_empty()).then(|| (name.clone(), HashMap::from([(name, v)])))
            })
            .collect())
    }
}
