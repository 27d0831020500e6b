//! Wire adapters: the Dapr HTTP API ([`http`]) and gRPC API ([`grpc`]).
//! Both decode, call the shared [`Runtime`], and encode; neither holds logic.

pub mod grpc;
pub mod http;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::components::{Readiness, Registry};
use crate::config::Config;
use crate::runtime::bindings::BindingsApi;
use crate::runtime::configuration::ConfigurationApi;
use crate::runtime::invoke::InvokeApi;
use crate::runtime::pubsub::PubSubApi;
use crate::runtime::secrets::SecretsApi;
use crate::runtime::state::StateApi;

/// Everything the API adapters share.
#[derive(Debug)]
pub struct Runtime {
    /// Validated configuration.
    pub config: Config,
    /// The components.
    pub registry: Arc<Registry>,
    /// State block.
    pub state: StateApi,
    /// Secrets block.
    pub secrets: SecretsApi,
    /// Output bindings.
    pub bindings: BindingsApi,
    /// Publishing.
    pub pubsub: PubSubApi,
    /// Configuration block.
    pub configuration: ConfigurationApi,
    /// Service invocation.
    pub invoke: InvokeApi,
    /// Virtual actors.
    pub actors: Arc<crate::actors::Actors>,
    /// Durable workflows.
    pub workflows: crate::workflows::Workflows,
    /// Attributes set with `PUT /v1.0/metadata/{key}`.
    pub extended: RwLock<BTreeMap<String, String>>,
    /// Features enabled by the `Configuration` file.
    pub enabled_features: RwLock<Vec<String>>,
    /// Set once components had their first Init and the APIs listen.
    pub outbound_ready: AtomicBool,
    /// Cancelled by `POST /v1.0/shutdown` or a signal.
    pub shutdown: CancellationToken,
    /// This gateway's tracer.
    pub telemetry: crate::telemetry::Telemetry,
}

/// One component as the metadata API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Name.
    pub name: String,
    /// Type.
    pub component_type: String,
    /// Version.
    pub version: String,
    /// Advertised features.
    pub capabilities: Vec<String>,
    /// `ready` or `not ready: <reason>`.
    pub status: String,
}

impl Runtime {
    /// Build over a registry; background work (configuration update
    /// pumps) runs on `tracker` until `shutdown`; `resolver` finds other
    /// apps' gateways; `telemetry` traces calls.
    pub fn new(
        config: Config,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
        resolver: Option<crate::nameresolution::Resolver>,
        telemetry: crate::telemetry::Telemetry,
    ) -> Arc<Self> {
        let app = crate::app_channel::App::from_config(&config);
        let http_app = match &app {
            Some(crate::app_channel::App::Http(app)) => Some((**app).clone()),
            _ => None,
        };
        let invoke = InvokeApi::new(
            config.app_id.clone(),
            app,
            resolver,
            config.api_token.clone(),
            match (config.app_protocol, config.app_port) {
                (crate::config::AppProtocol::Grpc, Some(port)) => Some(std::net::SocketAddr::new(
                    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                    port,
                )),
                _ => None,
            },
        )
        .with_telemetry(telemetry.clone());
        let actors = Arc::new(crate::actors::Actors::new(
            config.app_id.clone(),
            &registry,
            invoke.clone(),
            config.actor_lease_ttl,
        ));
        let workflows = crate::workflows::Workflows::new(&config.app_id, actors.actor_store());
        Arc::new(Self {
            invoke,
            actors,
            workflows,
            configuration: ConfigurationApi::new(
                Arc::clone(&registry),
                http_app,
                tracker,
                shutdown.clone(),
            ),
            state: StateApi::new(Arc::clone(&registry), config.app_id.clone()),
            secrets: SecretsApi::new(Arc::clone(&registry)),
            bindings: BindingsApi::new(Arc::clone(&registry)),
            pubsub: PubSubApi::new(Arc::clone(&registry), config.app_id.clone())
                .with_telemetry(telemetry.clone()),
            registry,
            config,
            extended: RwLock::new(BTreeMap::new()),
            enabled_features: RwLock::new(Vec::new()),
            outbound_ready: AtomicBool::new(false),
            shutdown,
            telemetry,
        })
    }

    /// Whether outbound calls can be served.
    pub fn is_outbound_ready(&self) -> bool {
        self.outbound_ready.load(Ordering::Acquire)
    }

    /// Components for the metadata API.
    pub fn components(&self) -> Vec<ComponentInfo> {
        self.registry
            .all()
            .map(|c| ComponentInfo {
                name: c.spec.name.clone(),
                component_type: c.spec.component_type.clone(),
                version: c.spec.version.clone(),
                capabilities: c.features(),
                status: match c.readiness() {
                    Readiness::Ready => "ready".into(),
                    Readiness::NotReady(why) => format!("not ready: {why}"),
                },
            })
            .collect()
    }

    /// Extended metadata: attributes set by the app plus component status.
    pub fn extended_metadata(&self) -> HashMap<String, String> {
        let mut out: HashMap<String, String> = self
            .extended
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for c in self.components() {
            out.insert(format!("component.{}.status", c.name), c.status);
        }
        out
    }

    /// Features enabled by the `Configuration` file.
    pub fn features(&self) -> Vec<String> {
        self.enabled_features
            .read()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// Set an extended attribute.
    pub fn set_extended(&self, key: String, value: String) {
        if let Ok(mut m) = self.extended.write() {
            m.insert(key, value);
        }
    }
}
