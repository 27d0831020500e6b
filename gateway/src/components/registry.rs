//! The component registry: every declared component, its socket, channel,
//! features and readiness.
//!
//! Start-up initialises secret stores first (other components' `secretKeyRef`s
//! resolve through them), then the rest. A component whose `Init` fails (its
//! backend is not up yet, say) does not stop the gateway: it is reported not
//! ready, with the reason, and retried with back-off. A supervisor pings each
//! ready component and re-initialises it when its process restarted.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use outrigger_proto::components as pb;
use outrigger_proto::outrigger::components::v1 as config_pb;

use super::channel::{self, Instance, Intercepted};
use super::discovery::{self, Discovered};
use crate::resources::{Block, ComponentSpec, MetadataValue, Resources};

/// Whether a component can serve calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Initialised and answering.
    Ready,
    /// Not usable; the reason says why (shown in health and metadata).
    NotReady(String),
}

/// One declared component.
#[derive(Debug)]
pub struct Component {
    /// The declaration.
    pub spec: ComponentSpec,
    /// Its socket.
    pub socket: PathBuf,
    /// Services its socket lists.
    pub services: Vec<String>,
    channel: channel::UdsChannel,
    instance: Instance,
    features: RwLock<Vec<String>>,
    readiness: RwLock<Readiness>,
    outbound: Option<crate::resiliency::TargetPolicy>,
}

/// A declared component that cannot be set up at all.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No socket serves the declared type.
    #[error(
        "{file}: component {name:?} has type {component_type:?}, but no socket in {folder} serves it \
         (sockets found: {found}); start the component first"
    )]
    NoSocket {
        /// File of the declaration.
        file: PathBuf,
        /// Component name.
        name: String,
        /// Its type.
        component_type: String,
        /// Socket folder.
        folder: PathBuf,
        /// Sockets and what they serve.
        found: String,
    },
    /// The component's name cannot be sent as a gRPC header.
    #[error("{file}: component name {name:?} must be printable ASCII")]
    BadName {
        /// File of the declaration.
        file: PathBuf,
        /// The name.
        name: String,
    },
}

/// Our own configuration-store service (Dapr has no pluggable one).
const CONFIGURATION_SERVICE: &str = "outrigger.components.v1.ConfigurationStore";

fn block_services(block: Block) -> &'static [&'static str] {
    match block {
        Block::State => &["dapr.proto.components.v1.StateStore"],
        Block::PubSub => &["dapr.proto.components.v1.PubSub"],
        Block::Bindings => &[
            "dapr.proto.components.v1.InputBinding",
            "dapr.proto.components.v1.OutputBinding",
        ],
        Block::SecretStores => &["dapr.proto.components.v1.SecretStore"],
        Block::Configuration => &[CONFIGURATION_SERVICE],
    }
}

/// The socket serving `spec`: a built-in alias, else `<block>.<socket>`.
fn socket_for<'a>(
    spec: &ComponentSpec,
    found: &'a BTreeMap<String, Discovered>,
) -> Option<&'a Discovered> {
    let wanted = block_services(spec.block);
    let serves = |d: &Discovered| wanted.iter().any(|s| d.services.contains(*s));
    let by_alias = super::BUILTIN_TYPES
        .iter()
        .find(|(t, _)| *t == spec.component_type)
        .and_then(|(_, socket)| found.get(*socket))
        .filter(|d| serves(d));
    by_alias.or_else(|| {
        let (_, rest) = Block::parse_type(&spec.component_type)?;
        found.get(rest).filter(|d| serves(d))
    })
}

// === impl Component ===

impl Component {
    /// Its `Resiliency` outbound policies (`targets.components.<name>.outbound`).
    pub fn outbound_policy(&self) -> Option<&crate::resiliency::TargetPolicy> {
        self.outbound.as_ref()
    }

    fn intercepted(&self) -> Intercepted {
        tonic::service::interceptor::InterceptedService::new(
            self.channel.clone(),
            self.instance.clone(),
        )
    }

    /// Call unary `method` of this component on its channel, without
    /// tonic's client stack (see [`super::unary`]).
    pub async fn call<Request, Reply>(
        &self,
        method: &super::unary::Method<Request, Reply>,
        request: Request,
    ) -> Result<tonic::Response<Reply>, tonic::Status>
    where
        Request: prost::Message,
        Reply: prost::Message + Default,
    {
        let mut headers = http::HeaderMap::with_capacity(4);
        headers.insert(channel::INSTANCE_HEADER, self.instance.header());
        super::unary::call(&self.channel, headers, method, request).await
    }

    /// State client.
    pub fn state(&self) -> pb::state_store_client::StateStoreClient<Intercepted> {
        pb::state_store_client::StateStoreClient::new(self.intercepted())
    }

    /// Transactional state client.
    pub fn transactional(
        &self,
    ) -> pb::transactional_state_store_client::TransactionalStateStoreClient<Intercepted> {
        pb::transactional_state_store_client::TransactionalStateStoreClient::new(self.intercepted())
    }

    /// Query client.
    pub fn queriable(
        &self,
    ) -> pb::queriable_state_store_client::QueriableStateStoreClient<Intercepted> {
        pb::queriable_state_store_client::QueriableStateStoreClient::new(self.intercepted())
    }

    /// Secret store client.
    pub fn secrets(&self) -> pb::secret_store_client::SecretStoreClient<Intercepted> {
        pb::secret_store_client::SecretStoreClient::new(self.intercepted())
    }

    /// Configuration store client.
    pub fn configuration(
        &self,
    ) -> config_pb::configuration_store_client::ConfigurationStoreClient<Intercepted> {
        config_pb::configuration_store_client::ConfigurationStoreClient::new(self.intercepted())
    }

    /// Output binding client.
    pub fn output_binding(&self) -> pb::output_binding_client::OutputBindingClient<Intercepted> {
        pb::output_binding_client::OutputBindingClient::new(self.intercepted())
    }

    /// Input binding client.
    pub fn input_binding(&self) -> pb::input_binding_client::InputBindingClient<Intercepted> {
        pb::input_binding_client::InputBindingClient::new(self.intercepted())
    }

    /// Pub/sub client.
    pub fn pubsub(&self) -> pb::pub_sub_client::PubSubClient<Intercepted> {
        pb::pub_sub_client::PubSubClient::new(self.intercepted())
    }

    /// Advertised features (empty until initialised).
    pub fn features(&self) -> Vec<String> {
        self.features.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// Whether `feature` (e.g. `TRANSACTIONAL`) is advertised.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features().iter().any(|f| f == feature)
    }

    /// Current readiness.
    pub fn readiness(&self) -> Readiness {
        self.readiness
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|_| Readiness::NotReady("registry lock poisoned".into()))
    }

    /// `Ok` when ready, else the reason, for an error that names the component.
    pub fn ensure_ready(&self) -> Result<(), String> {
        match self.readiness() {
            Readiness::Ready => Ok(()),
            Readiness::NotReady(reason) => Err(format!(
                "component {} ({}) is not ready: {reason}",
                self.spec.name, self.spec.component_type
            )),
        }
    }

    fn set_readiness(&self, readiness: Readiness) {
        if let Ok(mut r) = self.readiness.write() {
            if *r != readiness {
                match &readiness {
                    Readiness::Ready => {
                        tracing::info!(component = %self.spec.name, "component ready")
                    }
                    Readiness::NotReady(why) => {
                        tracing::warn!(component = %self.spec.name, reason = %why, "component not ready")
                    }
                }
            }
            *r = readiness;
        }
    }

    fn serves(&self, service: &str) -> bool {
        self.services.iter().any(|s| s == service)
    }

    /// `Init` (and `Features` / `ListOperations`) with resolved metadata.
    async fn init(
        &self,
        properties: HashMap<String, String>,
        timeout: Duration,
    ) -> Result<(), String> {
        let metadata = Some(pb::MetadataRequest { properties });
        let call = async {
            let features = match self.spec.block {
                Block::State => {
                    let mut c = self.state();
                    c.init(pb::InitRequest { metadata }).await?;
                    c.features(pb::FeaturesRequest {})
                        .await?
                        .into_inner()
                        .features
                }
                Block::PubSub => {
                    let mut c = self.pubsub();
                    c.init(pb::PubSubInitRequest { metadata }).await?;
                    c.features(pb::FeaturesRequest {})
                        .await?
                        .into_inner()
                        .features
                }
                Block::SecretStores => {
                    let mut c = self.secrets();
                    c.init(pb::SecretStoreInitRequest { metadata }).await?;
                    c.features(pb::FeaturesRequest {})
                        .await?
                        .into_inner()
                        .features
                }
                Block::Configuration => {
                    let mut c = self.configuration();
                    c.init(config_pb::ConfigurationStoreInitRequest { metadata })
                        .await?;
                    c.features(pb::FeaturesRequest {})
                        .await?
                        .into_inner()
                        .features
                }
                Block::Bindings => {
                    if self.serves("dapr.proto.components.v1.InputBinding") {
                        pb::input_binding_client::InputBindingClient::new(self.intercepted())
                            .init(pb::InputBindingInitRequest {
                                metadata: metadata.clone(),
                            })
                            .await?;
                    }
                    if self.serves("dapr.proto.components.v1.OutputBinding") {
                        let mut c = self.output_binding();
                        c.init(pb::OutputBindingInitRequest { metadata }).await?;
                        c.list_operations(pb::ListOperationsRequest {})
                            .await?
                            .into_inner()
                            .operations
                    } else {
                        Vec::new()
                    }
                }
            };
            Ok::<_, tonic::Status>(features)
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(features)) => {
                if let Ok(mut f) = self.features.write() {
                    *f = features;
                }
                Ok(())
            }
            Ok(Err(status)) => Err(format!("Init failed: {}", status.message())),
            Err(_) => Err(format!("Init did not answer within {timeout:?}")),
        }
    }

    async fn ping(&self) -> Result<(), tonic::Status> {
        match self.spec.block {
            Block::State => self.state().ping(pb::PingRequest {}).await.map(drop),
            Block::PubSub => self.pubsub().ping(pb::PingRequest {}).await.map(drop),
            Block::SecretStores => self.secrets().ping(pb::PingRequest {}).await.map(drop),
            Block::Configuration => self
                .configuration()
                .ping(pb::PingRequest {})
                .await
                .map(drop),
            Block::Bindings => {
                if self.serves("dapr.proto.components.v1.OutputBinding") {
                    self.output_binding()
                        .ping(pb::PingRequest {})
                        .await
                        .map(drop)
                } else {
                    pb::input_binding_client::InputBindingClient::new(self.intercepted())
                        .ping(pb::PingRequest {})
                        .await
                        .map(drop)
                }
            }
        }
    }
}

/// All components of this gateway.
#[derive(Debug, Default)]
pub struct Registry {
    by_name: BTreeMap<String, Arc<Component>>,
}

// === impl Registry ===

impl Registry {
    /// Discover sockets, match every declared component to one, and make a
    /// first `Init` attempt for each (secret stores first). Components that
    /// fail `Init` stay registered as not ready and are retried by
    /// supervisors spawned on `tracker` until `shutdown`.
    ///
    /// # Errors
    /// A declared type that no socket serves, or an unusable name.
    pub async fn start(
        resources: &Resources,
        folder: &std::path::Path,
        init_timeout: Duration,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, RegistryError> {
        let found = if resources.components.is_empty() {
            BTreeMap::new()
        } else {
            discovery::discover(folder, init_timeout).await
        };
        let mut by_name = BTreeMap::new();
        for spec in &resources.components {
            if !spec.name.chars().all(|c| c.is_ascii_graphic()) {
                return Err(RegistryError::BadName {
                    file: spec.file.clone(),
                    name: spec.name.clone(),
                });
            }
            let Some(discovered) = socket_for(spec, &found) else {
                let found = if found.is_empty() {
                    "none".to_owned()
                } else {
                    found
                        .iter()
                        .map(|(name, d)| {
                            format!(
                                "{name} [{}]",
                                d.services.iter().cloned().collect::<Vec<_>>().join(", ")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return Err(RegistryError::NoSocket {
                    file: spec.file.clone(),
                    name: spec.name.clone(),
                    component_type: spec.component_type.clone(),
                    folder: folder.to_path_buf(),
                    found,
                });
            };
            let component = Component {
                spec: spec.clone(),
                socket: discovered.path.clone(),
                services: discovered.services.iter().cloned().collect(),
                channel: channel::lazy(&discovered.path),
                instance: Instance::new(&spec.name),
                features: RwLock::new(Vec::new()),
                readiness: RwLock::new(Readiness::NotReady("not initialised yet".into())),
                outbound: resources.resiliency.outbound.get(&spec.name).cloned(),
            };
            by_name.insert(spec.name.clone(), Arc::new(component));
        }
        let registry = Arc::new(Self { by_name });

        // Secret stores first: the others may need them to resolve metadata.
        let mut ordered: Vec<_> = registry.by_name.values().cloned().collect();
        ordered.sort_by_key(|c| c.spec.block != Block::SecretStores);
        for component in &ordered {
            let outcome = registry.try_init(component, init_timeout).await;
            component.set_readiness(match outcome {
                Ok(()) => Readiness::Ready,
                Err(reason) => Readiness::NotReady(reason),
            });
        }
        for component in ordered {
            let registry = Arc::clone(&registry);
            let shutdown = shutdown.clone();
            tracker
                .spawn(async move { registry.supervise(component, init_timeout, shutdown).await });
        }
        Ok(registry)
    }

    /// A registry with no components (tests, gateway without resources).
    pub fn empty() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The component called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Component>> {
        self.by_name.get(name).cloned()
    }

    /// All components, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Component>> {
        self.by_name.values()
    }

    /// Components of one block.
    pub fn of_block(&self, block: Block) -> impl Iterator<Item = &Arc<Component>> {
        self.by_name.values().filter(move |c| c.spec.block == block)
    }

    /// Every component ready?
    pub fn all_ready(&self) -> Result<(), String> {
        let waiting: Vec<String> = self.all().filter_map(|c| c.ensure_ready().err()).collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(waiting.join("; "))
        }
    }

    async fn resolve(&self, component: &Component) -> Result<HashMap<String, String>, String> {
        let mut properties = HashMap::new();
        for (key, value) in &component.spec.metadata {
            let resolved = match value {
                MetadataValue::Plain(v) => v.clone(),
                MetadataValue::Secret {
                    name,
                    key: secret_key,
                } => {
                    let store_name = component.spec.secret_store.as_deref().ok_or_else(|| {
                        format!(
                            "metadata {key:?} uses secretKeyRef but the component has no auth.secretStore ({})",
                            component.spec.file.display()
                        )
                    })?;
                    let store = self
                        .get(store_name)
                        .filter(|s| s.spec.block == Block::SecretStores)
                        .ok_or_else(|| {
                            format!("metadata {key:?}: secret store {store_name:?} is not declared")
                        })?;
                    store.ensure_ready()?;
                    let secret = store
                        .secrets()
                        .get(pb::GetSecretRequest {
                            key: name.clone(),
                            metadata: HashMap::new(),
                        })
                        .await
                        .map_err(|s| {
                            format!(
                                "metadata {key:?}: secret {name:?} from {store_name:?}: {}",
                                s.message()
                            )
                        })?
                        .into_inner();
                    secret.data.get(secret_key).cloned().ok_or_else(|| {
                        format!("metadata {key:?}: secret {name:?} in {store_name:?} has no key {secret_key:?}")
                    })?
                }
            };
            properties.insert(key.clone(), resolved);
        }
        Ok(properties)
    }

    async fn try_init(&self, component: &Component, timeout: Duration) -> Result<(), String> {
        let properties = self.resolve(component).await?;
        component.init(properties, timeout).await
    }

    /// Keep one component ready: retry `Init` with back-off while it is not,
    /// ping it while it is, and start over when a ping fails (for example
    /// because its process restarted and lost its instances).
    async fn supervise(
        &self,
        component: Arc<Component>,
        timeout: Duration,
        shutdown: CancellationToken,
    ) {
        const PING_EVERY: Duration = Duration::from_secs(5);
        const MAX_BACKOFF: Duration = Duration::from_secs(30);
        let mut backoff = Duration::from_millis(500);
        loop {
            let wait = if component.readiness() == Readiness::Ready {
                PING_EVERY
            } else {
                backoff
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            if component.readiness() == Readiness::Ready {
                if let Err(status) = component.ping().await {
                    component.set_readiness(Readiness::NotReady(format!(
                        "ping failed: {}",
                        status.message()
                    )));
                    backoff = Duration::from_millis(500);
                }
                continue;
            }
            match self.try_init(&component, timeout).await {
                Ok(()) => component.set_readiness(Readiness::Ready),
                Err(reason) => {
                    component.set_readiness(Readiness::NotReady(reason));
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
