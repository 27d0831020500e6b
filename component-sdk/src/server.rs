//! [`ComponentServer`]: serves components on Unix sockets the way daprd
//! expects to find them.
//!
//! Each [`Service`] is one socket, `<folder>/<name>.sock`, hosting at most one
//! component per building block. Every socket also serves gRPC reflection
//! (`grpc.reflection.v1alpha`, which daprd uses for discovery, and `v1`) and
//! gRPC health. Shutdown order: mark health not-serving → stop accepting and
//! end subscription streams (unanswered messages are abandoned, never acked)
//! → let in-flight unary calls finish within the grace period → remove the
//! socket file.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use outrigger_proto::components as pb;

use crate::bindings::adaptor::{InputBindingAdaptor, OutputBindingAdaptor};
use crate::bindings::{InputBinding, OutputBinding};
use crate::configuration::ConfigurationStore;
use crate::configuration::adaptor::ConfigurationAdaptor;
use crate::instance::{Factory, Instances};
use crate::pubsub::PubSub;
use crate::pubsub::adaptor::PubSubAdaptor;
use crate::secrets::SecretStore;
use crate::secrets::adaptor::SecretStoreAdaptor;
use crate::state::StateStore;
use crate::state::adaptor::StateAdaptor;

pub(crate) mod healthcheck;

/// Where daprd looks for component sockets unless told otherwise.
pub const DEFAULT_SOCKETS_FOLDER: &str = "/tmp/dapr-components-sockets";
/// Environment variable naming the socket folder (daprd reads the same one).
pub const SOCKETS_FOLDER_ENV: &str = "DAPR_COMPONENTS_SOCKETS_FOLDER";
/// How long in-flight calls may take to finish after shutdown begins.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A socket or folder could not be created, bound or removed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another live process already serves this socket.
    #[error("{0} is in use by another running process; stop it or choose another service name")]
    SocketInUse(PathBuf),
    /// A service was registered without any building block.
    #[error(
        "service {0:?} has no building block: add state_store, pubsub, a binding, secret_store or configuration_store"
    )]
    Empty(String),
    /// Two services share a name (and so a socket).
    #[error("service {0:?} is registered twice; each service is one socket and needs its own name")]
    Duplicate(String),
    /// A service name that cannot be a socket file name.
    #[error("service name {0:?} is invalid: use letters, digits, '-', '_' or '.'")]
    InvalidName(String),
    /// The gRPC reflection service could not be built.
    #[error("building gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The building blocks one socket serves.
pub struct Service {
    name: String,
    state: Option<Factory<dyn StateStore>>,
    pubsub: Option<Factory<dyn PubSub>>,
    input: Option<Factory<dyn InputBinding>>,
    output: Option<Factory<dyn OutputBinding>>,
    secrets: Option<Factory<dyn SecretStore>>,
    configuration: Option<Factory<dyn ConfigurationStore>>,
}

// === impl Service ===

impl Service {
    /// A socket named `name` (the component type becomes `<block>.<name>`).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: None,
            pubsub: None,
            input: None,
            output: None,
            secrets: None,
            configuration: None,
        }
    }

    /// Serve a state store; `factory` builds one object per component instance.
    pub fn state_store<S, F>(mut self, factory: F) -> Self
    where
        S: StateStore,
        F: Fn() -> S + Send + Sync + 'static,
    {
        self.state = Some(Arc::new(move || Arc::new(factory()) as Arc<dyn StateStore>));
        self
    }

    /// Serve a pub/sub component.
    pub fn pubsub<P, F>(mut self, factory: F) -> Self
    where
        P: PubSub,
        F: Fn() -> P + Send + Sync + 'static,
    {
        self.pubsub = Some(Arc::new(move || Arc::new(factory()) as Arc<dyn PubSub>));
        self
    }

    /// Serve an input binding.
    pub fn input_binding<B, F>(mut self, factory: F) -> Self
    where
        B: InputBinding,
        F: Fn() -> B + Send + Sync + 'static,
    {
        self.input = Some(Arc::new(move || {
            Arc::new(factory()) as Arc<dyn InputBinding>
        }));
        self
    }

    /// Serve an output binding.
    pub fn output_binding<B, F>(mut self, factory: F) -> Self
    where
        B: OutputBinding,
        F: Fn() -> B + Send + Sync + 'static,
    {
        self.output = Some(Arc::new(move || {
            Arc::new(factory()) as Arc<dyn OutputBinding>
        }));
        self
    }

    /// Serve a secret store.
    pub fn secret_store<S, F>(mut self, factory: F) -> Self
    where
        S: SecretStore,
        F: Fn() -> S + Send + Sync + 'static,
    {
        self.secrets = Some(Arc::new(move || {
            Arc::new(factory()) as Arc<dyn SecretStore>
        }));
        self
    }

    /// Serve a configuration store (Outrigger's own protocol: Dapr has none
    /// for this block, so only the Outrigger gateway uses it).
    pub fn configuration_store<S, F>(mut self, factory: F) -> Self
    where
        S: ConfigurationStore,
        F: Fn() -> S + Send + Sync + 'static,
    {
        self.configuration = Some(Arc::new(move || {
            Arc::new(factory()) as Arc<dyn ConfigurationStore>
        }));
        self
    }

    /// The socket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fully-qualified gRPC services this socket offers (and reflection lists).
    pub fn service_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.state.is_some() {
            names.extend([
                <pb::state_store_server::StateStoreServer<StateAdaptor> as NamedService>::NAME,
                <pb::transactional_state_store_server::TransactionalStateStoreServer<StateAdaptor> as NamedService>::NAME,
                <pb::queriable_state_store_server::QueriableStateStoreServer<StateAdaptor> as NamedService>::NAME,
                <pb::transactional_store_multi_max_size_server::TransactionalStoreMultiMaxSizeServer<StateAdaptor> as NamedService>::NAME,
            ]);
        }
        if self.pubsub.is_some() {
            names.push(<pb::pub_sub_server::PubSubServer<PubSubAdaptor> as NamedService>::NAME);
        }
        if self.input.is_some() {
            names.push(<pb::input_binding_server::InputBindingServer<InputBindingAdaptor> as NamedService>::NAME);
        }
        if self.output.is_some() {
            names.push(<pb::output_binding_server::OutputBindingServer<OutputBindingAdaptor> as NamedService>::NAME);
        }
        if self.secrets.is_some() {
            names.push(<pb::secret_store_server::SecretStoreServer<SecretStoreAdaptor> as NamedService>::NAME);
        }
        if self.configuration.is_some() {
            names.push(<outrigger_proto::outrigger::components::v1::configuration_store_server::ConfigurationStoreServer<ConfigurationAdaptor> as NamedService>::NAME);
        }
        names
    }

    fn validate(&self) -> Result<(), ServeError> {
        let valid = !self.name.is_empty()
            && !self.name.starts_with('.')
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(ServeError::InvalidName(self.name.clone()));
        }
        if self.service_names().is_empty() {
            return Err(ServeError::Empty(self.name.clone()));
        }
        Ok(())
    }

    /// Serve on an already bound listener until `shutdown` completes, then
    /// drain for at most `grace`. The caller owns the socket file.
    ///
    /// # Errors
    /// When the service has no block, reflection cannot be built, or the
    /// gRPC server fails.
    pub async fn serve_with_listener(
        self,
        listener: UnixListener,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<(), ServeError> {
        self.validate()?;
        let names = self.service_names();
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_service_status("", ServingStatus::Serving).await;
        for name in &names {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }

        let state = self.state.map(|f| StateAdaptor::new(Instances::new(f)));
        let router = Server::builder()
            .add_service(health_service)
            .add_service(reflection(&names).build_v1alpha()?)
            .add_service(reflection(&names).build_v1()?)
            .add_optional_service(state.clone().map(pb::state_store_server::StateStoreServer::new))
            .add_optional_service(
                state
                    .clone()
                    .map(pb::transactional_state_store_server::TransactionalStateStoreServer::new),
            )
            .add_optional_service(
                state
                    .clone()
                    .map(pb::queriable_state_store_server::QueriableStateStoreServer::new),
            )
            .add_optional_service(
                state.map(pb::transactional_store_multi_max_size_server::TransactionalStoreMultiMaxSizeServer::new),
            )
            .add_optional_service(self.pubsub.map(|f| {
                pb::pub_sub_server::PubSubServer::new(PubSubAdaptor::new(
                    Instances::new(f),
                    stop.clone(),
                    tracker.clone(),
                ))
            }))
            .add_optional_service(self.input.map(|f| {
                pb::input_binding_server::InputBindingServer::new(InputBindingAdaptor::new(
                    Instances::new(f),
                    stop.clone(),
                    tracker.clone(),
                ))
            }))
            .add_optional_service(self.output.map(|f| {
                pb::output_binding_server::OutputBindingServer::new(OutputBindingAdaptor::new(Instances::new(f)))
            }))
            .add_optional_service(
                self.secrets
                    .map(|f| pb::secret_store_server::SecretStoreServer::new(SecretStoreAdaptor::new(Instances::new(f)))),
            )
            .add_optional_service(self.configuration.map(|f| {
                outrigger_proto::outrigger::components::v1::configuration_store_server::ConfigurationStoreServer::new(
                    ConfigurationAdaptor::new(Instances::new(f), stop.clone(), tracker.clone()),
                )
            }));

        let stopped = stop.clone();
        let serving = router.serve_with_incoming_shutdown(incoming(listener), async move {
            stopped.cancelled().await;
        });
        tokio::pin!(serving);
        tokio::pin!(shutdown);
        tracing::info!(service = %self.name, blocks = ?names, "serving component");

        let result = tokio::select! {
            result = &mut serving => result.map_err(ServeError::from),
            () = &mut shutdown => {
                tracing::info!(service = %self.name, "shutting down");
                health.set_service_status("", ServingStatus::NotServing).await;
                stop.cancel();
                match tokio::time::timeout(grace, &mut serving).await {
                    Ok(result) => result.map_err(ServeError::from),
                    Err(_) => {
                        tracing::warn!(service = %self.name, ?grace, "calls still running after the grace period; closing them");
                        Ok(())
                    }
                }
            }
        };
        stop.cancel();
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(service = %self.name, "stream tasks still running after the grace period");
        }
        result
    }
}

fn reflection(names: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(outrigger_proto::FILE_DESCRIPTOR_SET);
    for name in names {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// A process's component sockets: build with [`ComponentServer::service`],
/// run with [`ComponentServer::serve`].
pub struct ComponentServer {
    folder: PathBuf,
    services: Vec<Service>,
    grace: Duration,
}

// === impl ComponentServer ===

impl ComponentServer {
    /// Sockets go in `folder` (created when missing).
    pub fn new(folder: impl Into<PathBuf>) -> Self {
        Self {
            folder: folder.into(),
            services: Vec::new(),
            grace: DEFAULT_GRACE_PERIOD,
        }
    }

    /// Socket folder from `DAPR_COMPONENTS_SOCKETS_FOLDER`, else
    /// `/tmp/dapr-components-sockets`.
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Like [`ComponentServer::from_env`] with an injected environment (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let folder = lookup(SOCKETS_FOLDER_ENV)
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| DEFAULT_SOCKETS_FOLDER.to_owned());
        Self::new(folder)
    }

    /// Add a socket `<folder>/<name>.sock`, configured by `configure`.
    pub fn service(mut self, name: &str, configure: impl FnOnce(Service) -> Service) -> Self {
        self.services.push(configure(Service::new(name)));
        self
    }

    /// How long in-flight calls may run after shutdown begins (default 5 s).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The socket folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The socket path of service `name`.
    pub fn socket_path(&self, name: &str) -> PathBuf {
        self.folder.join(format!("{name}.sock"))
    }

    /// Bind every socket (removing stale files of dead processes first), serve
    /// until `shutdown` completes, drain, and remove the sockets.
    ///
    /// # Errors
    /// Invalid services, a socket in use by a live process, I/O errors on
    /// the folder or sockets, or a failing gRPC server.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let mut seen = std::collections::HashSet::new();
        for service in &self.services {
            service.validate()?;
            if !seen.insert(service.name.clone()) {
                return Err(ServeError::Duplicate(service.name.clone()));
            }
        }
        std::fs::create_dir_all(&self.folder).map_err(|source| ServeError::Io {
            action: "creating socket folder",
            path: self.folder.clone(),
            source,
        })?;

        let mut bound = Vec::new();
        for service in self.services {
            let path = self.folder.join(format!("{}.sock", service.name));
            let listener = match bind(&path).await {
                Ok(listener) => listener,
                Err(err) => {
                    remove_sockets(bound.iter().map(|(p, _, _)| p));
                    return Err(err);
                }
            };
            bound.push((path, listener, service));
        }

        let stop = CancellationToken::new();
        let mut running = tokio::task::JoinSet::new();
        let paths: Vec<PathBuf> = bound.iter().map(|(p, _, _)| p.clone()).collect();
        for (_, listener, service) in bound {
            let stop = stop.clone();
            let grace = self.grace;
            running.spawn(async move {
                service
                    .serve_with_listener(listener, stop.cancelled_owned(), grace)
                    .await
            });
        }

        tokio::pin!(shutdown);
        let mut first_error = None;
        tokio::select! {
            () = &mut shutdown => {}
            Some(joined) = running.join_next() => {
                // A service stopped on its own: that is a failure; stop the rest.
                first_error = joined_error(joined);
            }
        }
        stop.cancel();
        while let Some(joined) = running.join_next().await {
            if first_error.is_none() {
                first_error = joined_error(joined);
            }
        }
        remove_sockets(paths.iter());
        first_error.map_or(Ok(()), Err)
    }
}

fn joined_error(
    joined: Result<Result<(), ServeError>, tokio::task::JoinError>,
) -> Option<ServeError> {
    match joined {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(err),
        Err(join) => Some(ServeError::Io {
            action: "running service task",
            path: PathBuf::new(),
            source: std::io::Error::other(join.to_string()),
        }),
    }
}

fn remove_sockets<'a>(paths: impl Iterator<Item = &'a PathBuf>) {
    for path in paths {
        if let Err(err) = std::fs::remove_file(path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %err, "could not remove socket");
        }
    }
}

/// The connections `listener` accepts, each registered for reads only (see
/// [`crate::UnixConn`]); an accept that fails is passed on as the error.
fn incoming(
    listener: UnixListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<crate::UnixConn>> {
    tokio_stream::StreamExt::map(UnixListenerStream::new(listener), |accepted| {
        accepted.and_then(crate::UnixConn::from_tokio)
    })
}

/// Bind `path`, first removing a socket file left by a process that died
/// (nothing answers on it). A socket someone still listens on is refused.
async fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    if std::fs::symlink_metadata(path).is_ok() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ServeError::SocketInUse(path.to_path_buf()));
        }
        tracing::info!(path = %path.display(), "removing stale socket");
        std::fs::remove_file(path).map_err(|source| ServeError::Io {
            action: "removing stale socket",
            path: path.to_path_buf(),
            source,
        })?;
    }
    UnixListener::bind(path).map_err(|source| ServeError::Io {
        action: "binding socket",
        path: path.to_path_buf(),
        source,
    })
}

/// Completes on SIGINT or SIGTERM: pass it to [`ComponentServer::serve`].
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; waiting for ctrl-c only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
