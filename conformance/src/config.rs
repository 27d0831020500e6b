//! What to test and how: [`Target`], [`SuiteConfig`], and the YAML file form.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A building block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Block {
    /// State store.
    State,
    /// Pub/sub.
    Pubsub,
    /// Input and/or output binding.
    Bindings,
    /// Secret store.
    Secrets,
    /// Configuration store (Outrigger's `outrigger.components.v1` protocol).
    Configuration,
}

impl Block {
    /// Its name in case names.
    pub fn name(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::Pubsub => "pubsub",
            Self::Bindings => "bindings",
            Self::Secrets => "secrets",
            Self::Configuration => "configuration",
        }
    }

    /// Parse `state`, `pubsub`, `bindings` or `secrets`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "state" => Some(Self::State),
            "pubsub" => Some(Self::Pubsub),
            "bindings" => Some(Self::Bindings),
            "secrets" | "secretstores" => Some(Self::Secrets),
            "configuration" => Some(Self::Configuration),
            _ => None,
        }
    }
}

/// The component under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its Unix socket.
    pub socket: PathBuf,
    /// Block to test.
    pub block: Block,
    /// `x-component-instance` to use (a fresh one per run by default).
    pub instance: String,
    /// Metadata for `Init`.
    pub metadata: HashMap<String, String>,
}

impl Target {
    /// `socket`, testing `block`, with a fresh instance name and no metadata.
    pub fn new(socket: impl Into<PathBuf>, block: Block) -> Self {
        Self {
            socket: socket.into(),
            block,
            instance: format!(
                "conformance-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            metadata: HashMap::new(),
        }
    }

    /// Add an `Init` metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// Which cases run, and block-specific inputs.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// Declared capabilities: state `etag`, `first-write`, `transaction`,
    /// `ttl`, `query`; pubsub `durable`, `ordering`, `bulk`, `ttl`;
    /// bindings `output`, `input`; secrets `bulk`; configuration `subscribe`.
    pub operations: BTreeSet<String>,
    /// Only cases whose name contains this.
    pub filter: Option<String>,
    /// Per-case time limit.
    pub case_timeout: Duration,
    /// Metadata that must make `Init` fail (with the key named in the error).
    pub bad_metadata: HashMap<String, String>,
    /// Output binding calls to make: operation → data.
    pub invoke: Vec<(String, Vec<u8>)>,
    /// Request metadata sent with each of those calls (e.g. `sql`).
    pub invoke_metadata: HashMap<String, String>,
    /// Secrets that must exist: name → key/value pairs.
    pub secrets: HashMap<String, HashMap<String, String>>,
    /// Configuration stores have no write rpc: a shell command (`sh -c`)
    /// that sets item `$CONFIGURATION_KEY` to `$CONFIGURATION_VALUE` in the
    /// backend. Cases that change items are skipped without it.
    pub writer: Option<String>,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        Self {
            operations: BTreeSet::new(),
            filter: None,
            case_timeout: Duration::from_secs(30),
            bad_metadata: HashMap::new(),
            invoke: Vec::new(),
            invoke_metadata: HashMap::new(),
            secrets: HashMap::new(),
            writer: None,
        }
    }
}

impl SuiteConfig {
    /// Default config declaring `operations`.
    pub fn with_operations<'a>(operations: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            operations: operations.into_iter().map(str::to_owned).collect(),
            ..Self::default()
        }
    }
}

/// The YAML file form of a target plus its config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    /// Socket path (the CLI's `--socket` overrides it).
    pub socket: Option<PathBuf>,
    /// Block.
    pub block: Block,
    /// Instance name.
    pub instance: Option<String>,
    /// `Init` metadata.
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    /// Declared operations.
    #[serde(default)]
    pub operations: Vec<String>,
    /// Case filter.
    pub filter: Option<String>,
    /// Per-case timeout in seconds.
    pub case_timeout_secs: Option<u64>,
    /// Metadata that must fail `Init`.
    #[serde(default)]
    pub bad_metadata: HashMap<String, String>,
    /// Output binding calls: operation → data (text).
    #[serde(default)]
    pub invoke: HashMap<String, String>,
    /// Request metadata for those calls.
    #[serde(default)]
    pub invoke_metadata: HashMap<String, String>,
    /// Secrets that must exist.
    #[serde(default)]
    pub secrets: HashMap<String, HashMap<String, String>>,
    /// Shell command setting a configuration item (see [`SuiteConfig::writer`]).
    pub writer: Option<String>,
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

impl FileConfig {
    /// Read a YAML config file.
    ///
    /// # Errors
    /// Unreadable or invalid YAML, naming the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        serde_yaml_ng::from_str(&text).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Split into a target (needs a socket) and a suite config.
    pub fn into_parts(self, socket: Option<PathBuf>) -> Option<(Target, SuiteConfig)> {
        let mut target = Target::new(socket.or(self.socket)?, self.block);
        if let Some(instance) = self.instance {
            target.instance = instance;
        }
        target.metadata = self.metadata;
        let mut config = SuiteConfig::with_operations(self.operations.iter().map(String::as_str));
        config.filter = self.filter;
        if let Some(secs) = self.case_timeout_secs {
            config.case_timeout = Duration::from_secs(secs);
        }
        config.bad_metadata = self.bad_metadata;
        config.invoke = self
            .invoke
            .into_iter()
            .map(|(op, data)| (op, data.into_bytes()))
            .collect();
        config.invoke_metadata = self.invoke_metadata;
        config.secrets = self.secrets;
        config.writer = self.writer;
        Some((target, config))
    }
}
