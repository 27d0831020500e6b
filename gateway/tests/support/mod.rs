//! Test harness: real components served by the SDK on a temp socket folder,
//! a resources folder, and a real gateway on ephemeral ports.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../component-sdk/examples/memory.rs"]
mod memory;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use outrigger::config::{AppProtocol, Config};
use outrigger_component_sdk::bindings::{InvokeRequest, InvokeResponse, OutputBinding};
use outrigger_component_sdk::configuration::{
    ConfigurationItem, ConfigurationRequest, ConfigurationStore, Items, UpdateStream,
};
use outrigger_component_sdk::pubsub::{MessageStream, PubSub, PublishRequest, Topic};
use outrigger_component_sdk::secrets::{Secret, SecretStore};
use outrigger_component_sdk::{ComponentError, ComponentServer, Metadata, async_trait};
use tokio_util::sync::CancellationToken;

pub(crate) use memory::MemoryStore;

/// A secret store holding `db-password` = {"password": "s3cret"}.
pub struct Vault;

#[async_trait]
impl SecretStore for Vault {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn get(&self, key: &str, _: HashMap<String, String>) -> Result<Secret, ComponentError> {
        match key {
            "db-password" => Ok(HashMap::from([(
                "password".to_owned(),
                "s3cret".to_owned(),
            )])),
            _ => Err(ComponentError::not_found(format!("no secret {key}"))),
        }
    }
    async fn bulk_get(
        &self,
        _: HashMap<String, String>,
    ) -> Result<HashMap<String, Secret>, ComponentError> {
        Ok(HashMap::from([(
            "db-password".to_owned(),
            HashMap::from([("password".to_owned(), "s3cret".to_owned())]),
        )]))
    }
}

/// An output binding that echoes `data` for `create` and checks it got its
/// secret; with a `sleepMs` metadata value it answers that much later.
pub struct Echo {
    password: std::sync::Mutex<String>,
}

#[async_trait]
impl OutputBinding for Echo {
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        *self.password.lock().unwrap() = metadata.required("password")?.to_owned();
        Ok(())
    }
    fn operations(&self) -> Vec<String> {
        vec!["create".into()]
    }
    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, ComponentError> {
        if let Some(ms) = request.metadata.get("sleepMs") {
            let ms = ms
                .parse()
                .map_err(|_| ComponentError::invalid_argument("sleepMs", "not a number"))?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(InvokeResponse {
            data: request.data,
            metadata: HashMap::from([(
                "password-seen".to_owned(),
                self.password.lock().unwrap().clone(),
            )]),
            content_type: None,
        })
    }
}

/// Published messages, as the component received them.
pub type Published = std::sync::Arc<std::sync::Mutex<Vec<PublishRequest>>>;

/// A pub/sub that records what it is asked to publish and refuses bodies
/// containing "reject".
pub struct Recorder(pub Published);

#[async_trait]
impl PubSub for Recorder {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn publish(&self, request: PublishRequest) -> Result<(), ComponentError> {
        if String::from_utf8_lossy(&request.data).contains("reject") {
            return Err(ComponentError::unavailable("broker refused the message"));
        }
        self.0.lock().unwrap().push(request);
        Ok(())
    }
    async fn subscribe(&self, _: Topic) -> Result<MessageStream, ComponentError> {
        Err(ComponentError::unimplemented("subscribe"))
    }
}

/// A configuration store holding `color` = red (version 1); its
/// subscriptions stay open and quiet (the PostgreSQL tests cover changes).
pub struct Palette;

#[async_trait]
impl ConfigurationStore for Palette {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn get(&self, request: ConfigurationRequest) -> Result<Items, ComponentError> {
        let all = Items::from([(
            "color".to_owned(),
            ConfigurationItem {
                value: "red".into(),
                version: "1".into(),
                metadata: HashMap::new(),
            },
        )]);
        Ok(all
            .into_iter()
            .filter(|(k, _)| request.keys.is_empty() || request.keys.contains(k))
            .collect())
    }
    async fn subscribe(&self, _: ConfigurationRequest) -> Result<UpdateStream, ComponentError> {
        Ok(Box::pin(tokio_stream::pending()))
    }
}

const RESOURCES: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.memory
  version: v1
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: vault
spec:
  type: secretstores.vault
  version: v1
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: echo
spec:
  type: bindings.echo
  version: v1
  metadata:
  - name: password
    secretKeyRef:
      name: db-password
      key: password
auth:
  secretStore: vault
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.recorder
  version: v1
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: configstore
spec:
  type: configuration.palette
  version: v1
"#;

/// Components + gateway; dropping it stops both.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub gateway: outrigger::Gateway,
    pub published: Published,
    shutdown: CancellationToken,
    components_stop: CancellationToken,
}

pub fn config(dir: &std::path::Path, token: Option<&str>) -> Config {
    Config {
        app_id: "test-app".into(),
        app_port: None,
        app_protocol: AppProtocol::Http,
        app_max_concurrency: None,
        app_health: None,
        app_socket: None,
        http_port: 0,
        grpc_port: 0,
        listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        resources_paths: vec![dir.join("resources")],
        config_file: None,
        log_level: "info".into(),
        metrics_port: None,
        sockets_folder: dir.join("sockets"),
        max_body_bytes: 64 * 1024,
        component_init_timeout: Duration::from_secs(5),
        api_token: token.map(str::to_owned),
        app_api_token: None,
        registry_folder: Some(dir.join("registry")),
        actor_lease_ttl: Duration::from_secs(5),
        advertise_address: None,
    }
}

impl Stack {
    pub async fn start(token: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sockets = dir.path().join("sockets");
        std::fs::create_dir_all(dir.path().join("resources")).unwrap();
        std::fs::write(dir.path().join("resources/components.yaml"), RESOURCES).unwrap();
        let components_stop = CancellationToken::new();
        let published = Published::default();
        let recorded = published.clone();
        let server = ComponentServer::new(&sockets)
            .service("memory", |s| s.state_store(MemoryStore::default))
            .service("vault", |s| s.secret_store(|| Vault))
            .service("palette", |s| s.configuration_store(|| Palette))
            .service("echo", |s| {
                s.output_binding(|| Echo {
                    password: std::sync::Mutex::new(String::new()),
                })
            })
            .service("recorder", move |s| {
                let recorded = recorded.clone();
                s.pubsub(move || Recorder(recorded.clone()))
            });
        let stop = components_stop.clone();
        tokio::spawn(server.serve(async move { stop.cancelled().await }));
        for name in ["memory", "vault", "echo", "recorder", "palette"] {
            let path: PathBuf = sockets.join(format!("{name}.sock"));
            for _ in 0..500 {
                if tokio::net::UnixStream::connect(&path).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let shutdown = CancellationToken::new();
        let gateway = outrigger::Gateway::start(config(dir.path(), token), shutdown.clone())
            .await
            .expect("gateway starts");
        Self {
            dir,
            gateway,
            published,
            shutdown,
            components_stop,
        }
    }

    pub fn router(&self) -> outrigger::api::http::Api {
        outrigger::api::http::router(std::sync::Arc::clone(&self.gateway.runtime))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.components_stop.cancel();
    }
}

/// `OUTRIGGER_POSTGRES_URL`, set by `scripts/test.sh`; outside it a loud
/// skip (`None`), and under CI a failure.
pub fn postgres_url() -> Option<String> {
    match std::env::var("OUTRIGGER_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "OUTRIGGER_POSTGRES_URL is not set under CI"
            );
            eprintln!("SKIPPED: OUTRIGGER_POSTGRES_URL is not set; run `bash scripts/test.sh`");
            None
        }
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gRPC app: `AppCallbackHealthCheck` answers (and checks the caller's
/// token never reaches it), and its `AppCallback` has no methods at all
/// (every rpc `UNIMPLEMENTED`, from the app itself).
#[derive(Clone)]
pub struct EmptyGrpcApp;

#[tonic::async_trait]
impl outrigger_proto::runtime::app_callback_health_check_server::AppCallbackHealthCheck
    for EmptyGrpcApp
{
    async fn health_check(
        &self,
        request: tonic::Request<()>,
    ) -> Result<tonic::Response<outrigger_proto::runtime::HealthCheckResponse>, tonic::Status> {
        assert!(request.metadata().get("dapr-api-token").is_none());
        Ok(tonic::Response::new(
            outrigger_proto::runtime::HealthCheckResponse {},
        ))
    }
}

#[tonic::async_trait]
impl outrigger_proto::runtime::app_callback_server::AppCallback for EmptyGrpcApp {}

/// Serve [`EmptyGrpcApp`] on a free port; returns the port.
pub async fn empty_grpc_app() -> u16 {
    use outrigger_proto::runtime as pb;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                pb::app_callback_health_check_server::AppCallbackHealthCheckServer::new(
                    EmptyGrpcApp,
                ),
            )
            .add_service(pb::app_callback_server::AppCallbackServer::new(
                EmptyGrpcApp,
            ))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    port
}

/// `message` as a request carrying `dapr-app-id: <app_id>` metadata.
pub fn with_app_id<T>(message: T, app_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("dapr-app-id", app_id.parse().unwrap());
    request
}
