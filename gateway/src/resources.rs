//! Dapr resource YAML: `Component` and `Configuration` documents from the
//! `--resources-path` folders. Unknown kinds are skipped with a log line
//! (Subscriptions and Resiliency arrive with later blocks); malformed
//! documents, unknown component categories and duplicate names are start-up
//! errors naming the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A building block, from the first segment of a component type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Block {
    /// `state.*`
    State,
    /// `pubsub.*`
    PubSub,
    /// `bindings.*`
    Bindings,
    /// `secretstores.*`
    SecretStores,
    /// `configuration.*`
    Configuration,
}

impl Block {
    /// The type prefix, e.g. `state`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::PubSub => "pubsub",
            Self::Bindings => "bindings",
            Self::SecretStores => "secretstores",
            Self::Configuration => "configuration",
        }
    }

    /// Split `state.postgresql` into the block and the rest.
    pub fn parse_type(component_type: &str) -> Option<(Self, &str)> {
        let (prefix, rest) = component_type.split_once('.')?;
        let block = match prefix {
            "state" => Self::State,
            "pubsub" => Self::PubSub,
            "bindings" => Self::Bindings,
            "secretstores" => Self::SecretStores,
            "configuration" => Self::Configuration,
            _ => return None,
        };
        (!rest.is_empty()).then_some((block, rest))
    }
}

/// Where a metadata value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataValue {
    /// A literal.
    Plain(String),
    /// `secretKeyRef`: resolved through the component's secret store.
    Secret {
        /// Secret name.
        name: String,
        /// Key inside the secret (defaults to the name).
        key: String,
    },
}

/// A declared component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSpec {
    /// `metadata.name`: the instance name apps use.
    pub name: String,
    /// `spec.type`, e.g. `state.sqlite`.
    pub component_type: String,
    /// Its block.
    pub block: Block,
    /// `spec.version`.
    pub version: String,
    /// `spec.metadata`, in order.
    pub metadata: Vec<(String, MetadataValue)>,
    /// `auth.secretStore`: where `secretKeyRef`s are resolved.
    pub secret_store: Option<String>,
    /// `scopes`: app ids allowed to use it (empty: all).
    pub scopes: Vec<String>,
    /// The file it was declared in.
    pub file: PathBuf,
}

/// Everything loaded from the resource folders.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// Components that apply to this app (scopes already applied).
    pub components: Vec<ComponentSpec>,
    /// `Subscription` specs that apply to this app, with their files.
    pub subscriptions: Vec<(PathBuf, serde_yaml_ng::Value)>,
    /// `Resiliency` policies that apply to this app.
    pub resiliency: crate::resiliency::Resiliency,
}

/// A resource that cannot be loaded; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// Unreadable file or folder.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Malformed YAML or a document that is not a valid resource.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Two components with one name.
    #[error("{second}: component {name:?} is already declared in {first}")]
    Duplicate {
        /// The name.
        name: String,
        /// Where it was first declared.
        first: PathBuf,
        /// Where it was declared again.
        second: PathBuf,
    },
}

#[derive(Deserialize)]
struct Document {
    kind: Option<String>,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: serde_yaml_ng::Value,
    #[serde(default)]
    auth: Option<Auth>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize, Default)]
struct ObjectMeta {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Auth {
    #[serde(rename = "secretStore")]
    secret_store: Option<String>,
}

#[derive(Deserialize)]
struct ComponentBody {
    #[serde(rename = "type")]
    component_type: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    metadata: Vec<MetadataItem>,
}

#[derive(Deserialize)]
struct MetadataItem {
    name: String,
    #[serde(default)]
    value: Option<serde_yaml_ng::Value>,
    #[serde(default, rename = "secretKeyRef")]
    secret_key_ref: Option<SecretKeyRef>,
    #[serde(default, rename = "envRef")]
    env_ref: Option<String>,
}

#[derive(Deserialize)]
struct SecretKeyRef {
    name: String,
    #[serde(default)]
    key: String,
}

fn scalar(value: &serde_yaml_ng::Value) -> String {
    match value {
        serde_yaml_ng::Value::String(s) => s.clone(),
        serde_yaml_ng::Value::Bool(b) => b.to_string(),
        serde_yaml_ng::Value::Number(n) => n.to_string(),
        serde_yaml_ng::Value::Null => String::new(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Load every `*.yaml`/`*.yml` file in `folders` for app `app_id`.
///
/// # Errors
/// The first file that cannot be read or parsed, or a duplicate name.
pub fn load(
    folders: &[PathBuf],
    app_id: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Resources, ResourceError> {
    let mut files = Vec::new();
    for folder in folders {
        let entries = std::fs::read_dir(folder).map_err(|source| ResourceError::Io {
            path: folder.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| ResourceError::Io {
                    path: folder.clone(),
                    source,
                })?
                .path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut resources = Resources::default();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| ResourceError::Io {
            path: file.clone(),
            source,
        })?;
        crate::resiliency::add_file(&mut resources.resiliency, &file, &text, app_id)?;
        for (scopes, spec) in parse_subscriptions(&file, &text)? {
            if scopes.is_empty() || scopes.iter().any(|s| s == app_id) {
                resources.subscriptions.push((file.clone(), spec));
            }
        }
        for component in parse_file(&file, &text, &env)? {
            if !component.scopes.is_empty() && !component.scopes.iter().any(|s| s == app_id) {
                tracing::debug!(name = %component.name, "component not scoped to this app");
                continue;
            }
            if let Some(first) = seen.get(&component.name) {
                return Err(ResourceError::Duplicate {
                    name: component.name,
                    first: first.clone(),
                    second: file,
                });
            }
            seen.insert(component.name.clone(), file.clone());
            resources.components.push(component);
        }
    }
    Ok(resources)
}

fn invalid(path: &Path, reason: impl Into<String>) -> ResourceError {
    ResourceError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The `Subscription` documents of one file: (scopes, spec).
fn parse_subscriptions(
    path: &Path,
    text: &str,
) -> Result<Vec<(Vec<String>, serde_yaml_ng::Value)>, ResourceError> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(document)
            .map_err(|e| invalid(path, e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let doc: Document =
            serde_yaml_ng::from_value(value).map_err(|e| invalid(path, e.to_string()))?;
        if doc.kind.as_deref() == Some("Subscription") {
            out.push((doc.scopes, doc.spec));
        }
    }
    Ok(out)
}

/// Parse the `Component` documents of one file.
pub fn parse_file(
    path: &Path,
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<ComponentSpec>, ResourceError> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(document)
            .map_err(|e| invalid(path, e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let doc: Document =
            serde_yaml_ng::from_value(value).map_err(|e| invalid(path, e.to_string()))?;
        match doc.kind.as_deref() {
            Some("Component") => {}
            Some(other) => {
                tracing::debug!(file = %path.display(), kind = other, "skipping resource kind");
                continue;
            }
            None => return Err(invalid(path, "document has no `kind`")),
        }
        if doc.metadata.name.is_empty() {
            return Err(invalid(path, "component has no metadata.name"));
        }
        let body: ComponentBody = serde_yaml_ng::from_value(doc.spec).map_err(|e| {
            invalid(
                path,
                format!("component {:?}: spec: {e}", doc.metadata.name),
            )
        })?;
        let Some((block, _)) = Block::parse_type(&body.component_type) else {
            return Err(invalid(
                path,
                format!(
                    "component {:?}: type {:?} is not state.*, pubsub.*, bindings.* or secretstores.*",
                    doc.metadata.name, body.component_type
                ),
            ));
        };
        let mut metadata = Vec::with_capacity(body.metadata.len());
        for item in body.metadata {
            let value = if let Some(r) = item.secret_key_ref {
                let key = if r.key.is_empty() {
                    r.name.clone()
                } else {
                    r.key
                };
                MetadataValue::Secret { name: r.name, key }
            } else if let Some(var) = item.env_ref {
                MetadataValue::Plain(env(&var).unwrap_or_default())
            } else {
                MetadataValue::Plain(item.value.as_ref().map(scalar).unwrap_or_default())
            };
            metadata.push((item.name, value));
        }
        out.push(ComponentSpec {
            name: doc.metadata.name,
            component_type: body.component_type,
            block,
            version: body.version,
            metadata,
            secret_store: doc.auth.and_then(|a| a.secret_store),
            scopes: doc.scopes,
            file: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// A Dapr `Configuration` resource (the `--config` file). Only what the
/// gateway uses so far is typed; the rest of `spec` is kept as YAML.
#[derive(Debug, Clone, Default)]
pub struct Configuration {
    /// `metadata.name`.
    pub name: String,
    /// Names of `spec.features` entries with `enabled: true`.
    pub enabled_features: Vec<String>,
    /// The whole `spec`, for settings later blocks read.
    pub spec: serde_yaml_ng::Value,
}

#[derive(Deserialize)]
struct Feature {
    name: String,
    #[serde(default)]
    enabled: bool,
}

/// Load a `Configuration` file.
///
/// # Errors
/// An unreadable file, malformed YAML, another `kind`, or malformed
/// `spec.features`, naming the file.
pub fn load_configuration(path: &Path) -> Result<Configuration, ResourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| ResourceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: Document = serde_yaml_ng::from_str(&text).map_err(|e| invalid(path, e.to_string()))?;
    if doc.kind.as_deref() != Some("Configuration") {
        return Err(invalid(
            path,
            format!(
                "--config needs a `kind: Configuration` resource, not {:?}",
                doc.kind.unwrap_or_default()
            ),
        ));
    }
    let features: Vec<Feature> = match doc.spec.get("features") {
        None => Vec::new(),
        Some(list) => serde_yaml_ng::from_value(list.clone())
            .map_err(|e| invalid(path, format!("spec.features: {e}")))?,
    };
    Ok(Configuration {
        name: doc.metadata.name,
        enabled_features: features
            .into_iter()
            .filter(|f| f.enabled)
            .map(|f| f.name)
            .collect(),
        spec: doc.spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.sqlite
  version: v1
  metadata:
  - name: connectionString
    value: "data.db"
  - name: timeout
    value: 30
  - name: password
    secretKeyRef:
      name: db
      key: pw
  - name: fromEnv
    envRef: MY_VAR
auth:
  secretStore: vault
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: s
spec: {}
"#;

    #[test]
    fn parses_components_and_skips_other_kinds() {
        let env = |k: &str| (k == "MY_VAR").then(|| "from-env".to_owned());
        let parsed = parse_file(Path::new("c.yaml"), YAML, &env).unwrap();
        assert_eq!(parsed.len(), 1);
        let c = &parsed[0];
        assert_eq!((c.name.as_str(), c.block), ("statestore", Block::State));
        assert_eq!(c.metadata[1].1, MetadataValue::Plain("30".into()));
        assert_eq!(
            c.metadata[2].1,
            MetadataValue::Secret {
                name: "db".into(),
                key: "pw".into()
            }
        );
        assert_eq!(c.metadata[3].1, MetadataValue::Plain("from-env".into()));
        assert_eq!(c.secret_store.as_deref(), Some("vault"));
    }

    #[test]
    fn errors_name_the_file() {
        let env = |_: &str| None;
        let err = parse_file(
            Path::new("bad.yaml"),
            "kind: Component\nmetadata: {name: x}\nspec: {type: cache.redis}",
            &env,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("bad.yaml:") && err.to_string().contains("cache.redis"),
            "{err}"
        );
        let err = parse_file(Path::new("broken.yaml"), "kind: [", &env).unwrap_err();
        assert!(err.to_string().starts_with("broken.yaml:"), "{err}");
    }

    #[test]
    fn configuration_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("config.yaml");
        std::fs::write(
            &good,
            "kind: Configuration\nmetadata: {name: appconfig}\nspec:\n  features:\n  - {name: ActorStateTTL, enabled: true}\n  - {name: HotReload, enabled: false}\n",
        )
        .unwrap();
        let loaded = load_configuration(&good).unwrap();
        assert_eq!(loaded.name, "appconfig");
        assert_eq!(loaded.enabled_features, ["ActorStateTTL"]);
        let wrong = dir.path().join("component.yaml");
        std::fs::write(&wrong, "kind: Component\nmetadata: {name: x}\nspec: {}\n").unwrap();
        let err = load_configuration(&wrong).unwrap_err().to_string();
        assert!(
            err.contains("component.yaml") && err.contains("kind: Configuration"),
            "{err}"
        );
    }

    #[test]
    fn duplicates_and_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let one = "kind: Component\nmetadata: {name: s}\nspec: {type: state.x}\n";
        std::fs::write(dir.path().join("a.yaml"), one).unwrap();
        std::fs::write(dir.path().join("b.yaml"), one).unwrap();
        let err = load(&[dir.path().to_path_buf()], "app", |_| None).unwrap_err();
        assert!(matches!(err, ResourceError::Duplicate { .. }), "{err}");

        std::fs::write(
            dir.path().join("b.yaml"),
            "kind: Component\nmetadata: {name: s}\nspec: {type: state.x}\nscopes: [other]\n",
        )
        .unwrap();
        let loaded = load(&[dir.path().to_path_buf()], "app", |_| None).unwrap();
        assert_eq!(
            loaded.components.len(),
            1,
            "scoped-out duplicate is ignored"
        );
    }
}
