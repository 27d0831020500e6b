//! Outrigger's gateway: the sidecar that serves Dapr's HTTP and gRPC API to
//! an application and reaches infrastructure only through pluggable
//! components on Unix sockets.
//!
//! Request flow: `api::http::state::get` (axum) or `api::grpc` (tonic) →
//! `runtime::state::StateApi::get` → `components::Component::state()` (tonic
//! over UDS with `x-component-instance`) → component status →
//! [`error::ApiError`] → `{errorCode, message}` + HTTP status, or
//! `tonic::Status` + `ErrorInfo`. HTTP and gRPC share one runtime call and
//! one error mapping, so they cannot disagree.
//!
//! # Layout
//! - [`config`]: flags and environment, validated before binding.
//! - [`resources`]: Dapr resource YAML.
//! - [`components`]: discovery, channels, registry (init, ping, re-init).
//! - [`runtime`]: building-block logic (state, secrets, bindings,
//!   configuration, service invocation).
//! - [`actors`]: virtual actors, placed by leases in the actor state store.
//! - [`nameresolution`]: how gateways on one machine find each other.
//! - [`access_control`]: which callers may invoke which methods of the app.
//! - [`telemetry`]: `spec.tracing`, OTLP export, W3C trace context.
//! - [`api`]: HTTP and gRPC adapters.
//! - [`error`]: the one API error and the code catalogue.
//! - [`healthcheck`]: `outrigger healthcheck`, a container's probe of its gateway.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

/// mimalloc for every program the gateway is part of (the binary, its
/// tests and benchmarks): a request allocates and frees many small buffers
/// across tasks and threads, where glibc's malloc showed as ~20 % of the
/// gateway's profile under load (`BENCHMARKS.md`, workflows). Built
/// without transparent huge pages (`no_thp`): with them, each thread's
/// first segment became a 2 MiB page and an idle gateway's RSS grew from
/// 12 to 20 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod access_control;
pub mod actors;
pub mod api;
pub mod app_channel;
pub mod app_health;
pub mod components;
pub mod config;
pub mod error;
pub mod healthcheck;
pub mod launcher;
pub mod metrics;
pub mod nameresolution;
pub mod resiliency;
pub mod resources;
pub mod runtime;
pub mod telemetry;
pub mod workflows;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::Runtime;
use crate::components::{Registry, RegistryError};
use crate::config::Config;
use crate::resources::ResourceError;

/// Version reported by the metadata API.
pub const RUNTIME_VERSION: &str = concat!("outrigger-", env!("CARGO_PKG_VERSION"));

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A resource file is invalid.
    #[error(transparent)]
    Resources(#[from] ResourceError),
    /// A declared component cannot be served.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A port could not be bound.
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        /// Which API.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Ask the app for its subscriptions (retrying until it answers) and start
/// delivering them, with the declarative ones and the input bindings.
fn start_subscriptions(
    runtime: &Arc<Runtime>,
    declared: Vec<runtime::subscribe::Subscription>,
    resiliency: &resiliency::Resiliency,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    let config = &runtime.config;
    let Some(app) = app_channel::App::from_config(config) else {
        if !declared.is_empty() && config.app_port.is_none() && config.app_socket.is_none() {
            tracing::warn!(
                "Subscription resources are declared but no --app-port is set; nothing is delivered"
            );
        }
        return;
    };
    for binding in runtime.registry.of_block(resources::Block::Bindings) {
        if !binding
            .services
            .iter()
            .any(|s| s == "dapr.proto.components.v1.InputBinding")
        {
            continue;
        }
        match &app {
            app_channel::App::Http(http) => {
                tracker.spawn(runtime::input::deliver(
                    Arc::clone(binding),
                    (**http).clone(),
                    shutdown.clone(),
                ));
            }
            app_channel::App::Grpc(grpc) => {
                tracker.spawn(runtime::input::deliver_grpc(
                    Arc::clone(binding),
                    grpc.clone(),
                    shutdown.clone(),
                ));
            }
        }
    }
    let app_limit = config
        .app_max_concurrency
        .map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
    let health = config
        .app_health
        .clone()
        .map(|check| app_health::watch(app.clone(), check, tracker, shutdown.clone()));
    let inbound = resiliency.inbound.clone();
    let telemetry = runtime.telemetry.clone();
    let (registry, app_id, inner) = (
        Arc::clone(&runtime.registry),
        config.app_id.clone(),
        tracker.clone(),
    );
    tracker.spawn(async move {
        let mut subscriptions = declared;
        loop {
            match discover_subscriptions(&app).await {
                Ok(found) => {
                    subscriptions.extend(found);
                    break;
                }
                Err(why) => tracing::debug!(reason = %why, "app subscriptions not available yet"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            }
        }
        for subscription in subscriptions {
            let link = runtime::subscribe::AppLink {
                registry: Arc::clone(&registry),
                app: app.clone(),
                app_id: app_id.clone(),
                limit: app_limit.clone(),
                health: health.clone(),
                telemetry: telemetry.clone(),
            };
            inner.spawn(runtime::subscribe::deliver(
                link,
                inbound.get(&subscription.pubsub).cloned(),
                subscription,
                shutdown.clone(),
            ));
        }
    });
}

/// The app's own subscriptions: `GET /dapr/subscribe` (404: none) or
/// `ListTopicSubscriptions` (`UNIMPLEMENTED`: none). `Err` means ask again.
async fn discover_subscriptions(
    app: &app_channel::App,
) -> Result<Vec<runtime::subscribe::Subscription>, String> {
    match app {
        app_channel::App::Http(http) => {
            let reply = http
                .call("GET", "/dapr/subscribe", "application/json", Vec::new())
                .await?;
            match reply.status {
                404 => Ok(Vec::new()),
                200..=299 => Ok(runtime::subscribe::parse_programmatic(&reply.body)
                    .unwrap_or_else(|why| {
                        tracing::error!(reason = %why, "ignoring the app's subscriptions");
                        Vec::new()
                    })),
                status => Err(format!("GET /dapr/subscribe answered {status}")),
            }
        }
        app_channel::App::Grpc(grpc) => match grpc
            .client()
            .list_topic_subscriptions(grpc.request(()))
            .await
        {
            Ok(reply) => Ok(
                runtime::subscribe::from_grpc(reply.into_inner().subscriptions).unwrap_or_else(
                    |why| {
                        tracing::error!(reason = %why, "ignoring the app's subscriptions");
                        Vec::new()
                    },
                ),
            ),
            Err(status) if status.code() == tonic::Code::Unimplemented => Ok(Vec::new()),
            Err(status) => Err(status.message().to_owned()),
        },
    }
}

/// A started gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where the gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// Shared runtime.
    pub runtime: Arc<Runtime>,
    tracker: TaskTracker,
    registration: Option<nameresolution::Registration>,
}

impl Gateway {
    /// Load resources, bind the HTTP API (so health probes answer while
    /// components initialise), initialise components, bind the gRPC API and
    /// mark the gateway ready. Runs until `shutdown` is cancelled.
    ///
    /// # Errors
    /// Invalid resources, a type no socket serves, or a port in use.
    pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Self, GatewayError> {
        let configuration = match &config.config_file {
            Some(path) => resources::load_configuration(path)?,
            None => resources::Configuration::default(),
        };
        let resources = resources::load(&config.resources_paths, &config.app_id, |k| {
            std::env::var(k).ok()
        })?;
        let resolver = nameresolution::Resolver::from_spec(
            &configuration.spec,
            config.registry_folder.as_deref(),
        )
        .map_err(|err| {
            GatewayError::Resources(ResourceError::Invalid {
                path: config.config_file.clone().unwrap_or_default(),
                reason: err.to_string(),
            })
        })?;
        let access_control = access_control::AccessControl::from_spec(&configuration.spec)
            .map_err(|err| {
                GatewayError::Resources(ResourceError::Invalid {
                    path: config.config_file.clone().unwrap_or_default(),
                    reason: err.to_string(),
                })
            })?;
        let telemetry = telemetry::TracingSettings::from_spec(&configuration.spec)
            .and_then(|settings| telemetry::Telemetry::new(&settings, &config.app_id))
            .map_err(|err| {
                GatewayError::Resources(ResourceError::Invalid {
                    path: config.config_file.clone().unwrap_or_default(),
                    reason: err.to_string(),
                })
            })?;
        let tracker = TaskTracker::new();

        let http_addr = SocketAddr::new(config.listen_address, config.http_port);
        let http = TcpListener::bind(http_addr)
            .await
            .map_err(|source| GatewayError::Bind {
                what: "the HTTP API (--dapr-http-port)",
                addr: http_addr,
                source,
            })?;
        let grpc_addr = SocketAddr::new(config.listen_address, config.grpc_port);
        let grpc = TcpListener::bind(grpc_addr)
            .await
            .map_err(|source| GatewayError::Bind {
                what: "the gRPC API (--dapr-grpc-port)",
                addr: grpc_addr,
                source,
            })?;
        let http_addr = http.local_addr().unwrap_or(http_addr);
        let grpc_addr = grpc.local_addr().unwrap_or(grpc_addr);

        // Both ports are bound before components initialise, so clients that
        // probe early queue on the socket instead of being refused.
        let registry = if resources.components.is_empty() {
            Registry::empty()
        } else {
            Registry::start(
                &resources,
                &config.sockets_folder,
                config.component_init_timeout,
                &tracker,
                shutdown.clone(),
            )
            .await?
        };
        let runtime = Runtime::new(
            config,
            registry,
            shutdown.clone(),
            tracker.clone(),
            resolver,
            telemetry,
        );
        if let Some(problem) = runtime.actors.store_problem() {
            return Err(GatewayError::Resources(ResourceError::Invalid {
                path: runtime
                    .config
                    .resources_paths
                    .first()
                    .cloned()
                    .unwrap_or_default(),
                reason: problem,
            }));
        }
        runtime.invoke.set_resiliency(resources.resiliency.clone());
        runtime.invoke.secure(access_control::Security::new(
            access_control,
            &runtime.config.app_id,
            std::env::var("NAMESPACE").ok(),
        ));
        if let Ok(mut features) = runtime.enabled_features.write() {
            *features = configuration.enabled_features;
        }

        let router = api::http::router(Arc::clone(&runtime));
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let served = axum::serve(http, tower::make::Shared::new(router))
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "HTTP API stopped");
            }
        });

        let services = api::grpc::server::Services::new(&runtime);
        tracker.spawn(api::grpc::server::serve(grpc, services, shutdown.clone()));

        if let Some(port) = runtime.config.metrics_port {
            let addr = SocketAddr::new(runtime.config.listen_address, port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| GatewayError::Bind {
                    what: "the metrics endpoint (--metrics-port)",
                    addr,
                    source,
                })?;
            tracing::info!(url = %metrics::describe(listener.local_addr().unwrap_or(addr)), "serving metrics");
            let stop = shutdown.clone();
            tracker.spawn(async move {
                if let Err(err) = metrics::serve(listener, stop).await {
                    tracing::error!(error = %err, "metrics endpoint stopped");
                }
            });
        }

        let mut declared = Vec::new();
        for (file, spec) in resources.subscriptions.clone() {
            let subscription = runtime::subscribe::parse_declarative(spec).map_err(|reason| {
                GatewayError::Resources(ResourceError::Invalid {
                    path: file.clone(),
                    reason,
                })
            })?;
            declared.push(subscription);
        }
        start_subscriptions(
            &runtime,
            declared,
            &resources.resiliency,
            &tracker,
            shutdown.clone(),
        );

        // Found by other gateways on this machine for service invocation.
        let registration = runtime.config.registry_folder.as_ref().and_then(|folder| {
            let reachable = match grpc_addr.ip() {
                ip if ip.is_unspecified() => SocketAddr::new(
                    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                    grpc_addr.port(),
                ),
                _ => grpc_addr,
            };
            nameresolution::LocalRegistry::new(folder)
                .register(&runtime.config.app_id, reachable)
                .map_err(|err| {
                    tracing::warn!(folder = %folder.display(), error = %err, "cannot register for service invocation; other apps cannot call this one");
                })
                .ok()
        });

        // Actors: ask the app which types it hosts and, if any, host them.
        {
            let app = match app_channel::App::from_config(&runtime.config) {
                Some(app_channel::App::Http(app)) => Some(*app),
                _ => None,
            };
            let host = match (&runtime.config.advertise_address, grpc_addr.ip()) {
                (Some(host), _) => host.clone(),
                (None, ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
                (None, ip) => ip.to_string(),
            };
            let address = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, grpc_addr.port()).to_string(),
                Err(_) => format!("{host}:{}", grpc_addr.port()),
            };
            runtime
                .actors
                .start_hosting(app, address, &tracker, shutdown.clone());
        }

        let workflow_type = workflows::Workflows::placement_type(&runtime.config.app_id);
        runtime.workflows.start(
            &tracker,
            shutdown.clone(),
            runtime.actors.internal_host(&workflow_type),
        );

        runtime.outbound_ready.store(true, Ordering::Release);
        tracing::info!(%http_addr, %grpc_addr, app_id = %runtime.config.app_id, "gateway ready");
        Ok(Self {
            http_addr,
            grpc_addr,
            runtime,
            tracker,
            registration,
        })
    }

    /// Wait until shutdown has completed (all servers and supervisors done).
    pub async fn wait(mut self) {
        self.runtime.shutdown.cancelled().await;
        // Stop being found before the servers wind down.
        self.registration.take();
        self.tracker.close();
        self.tracker.wait().await;
        // Last, so spans of the calls that drained are exported too.
        self.runtime.telemetry.shutdown().await;
    }
}
