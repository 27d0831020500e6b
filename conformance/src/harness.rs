//! Connecting to a component and the context every case receives.

use std::collections::HashMap;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use outrigger_proto::components as pb;
use outrigger_proto::outrigger::components::v1 as config_pb;
use tokio::net::UnixStream;
use tonic::Request;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{Block, SuiteConfig, Target};

/// What a case gets: a channel, its instance, a unique key prefix, the
/// advertised features, and the config.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) channel: Channel,
    instance: AsciiMetadataValue,
    pub(crate) target: Arc<Target>,
    pub(crate) prefix: String,
    pub(crate) features: Vec<String>,
    pub(crate) config: Arc<SuiteConfig>,
}

pub(crate) async fn channel(socket: &std::path::Path) -> Result<Channel, String> {
    let socket = socket.to_path_buf();
    let display = socket.display().to_string();
    Endpoint::from_static("http://component.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .map_err(|e| format!("cannot connect to {display}: {e}"))
}

fn status(what: &str, s: &tonic::Status) -> String {
    format!("{what}: {:?}: {}", s.code(), s.message())
}

impl Ctx {
    /// Connect, `Init` the block with the target's metadata, read features.
    pub(crate) async fn connect(target: &Target, config: &SuiteConfig) -> Result<Self, String> {
        let channel = channel(&target.socket).await?;
        let instance = AsciiMetadataValue::try_from(target.instance.as_str())
            .map_err(|_| format!("instance name {:?} must be ASCII", target.instance))?;
        let mut ctx = Self {
            channel,
            instance,
            target: Arc::new(target.clone()),
            prefix: format!("conf-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            features: Vec::new(),
            config: Arc::new(config.clone()),
        };
        ctx.features = ctx.init(target.metadata.clone()).await?;
        Ok(ctx)
    }

    /// `Init` this block under the context's instance; returns its features
    /// (or the output binding's operations).
    pub(crate) async fn init(
        &self,
        properties: HashMap<String, String>,
    ) -> Result<Vec<String>, String> {
        let metadata = Some(pb::MetadataRequest { properties });
        match self.target.block {
            Block::State => {
                let mut c = self.state();
                c.init(self.req(pb::InitRequest { metadata }))
                    .await
                    .map_err(|s| status("Init", &s))?;
                Ok(c.features(self.req(pb::FeaturesRequest {}))
                    .await
                    .map_err(|s| status("Features", &s))?
                    .into_inner()
                    .features)
            }
            Block::Pubsub => {
                let mut c = self.pubsub();
                c.init(self.req(pb::PubSubInitRequest { metadata }))
                    .await
                    .map_err(|s| status("Init", &s))?;
                Ok(c.features(self.req(pb::FeaturesRequest {}))
                    .await
                    .map_err(|s| status("Features", &s))?
                    .into_inner()
                    .features)
            }
            Block::Secrets => {
                let mut c = self.secrets();
                c.init(self.req(pb::SecretStoreInitRequest { metadata }))
                    .await
                    .map_err(|s| status("Init", &s))?;
                Ok(c.features(self.req(pb::FeaturesRequest {}))
                    .await
                    .map_err(|s| status("Features", &s))?
                    .into_inner()
                    .features)
            }
            Block::Configuration => {
                let mut c = self.configuration();
                c.init(self.req(config_pb::ConfigurationStoreInitRequest { metadata }))
                    .await
                    .map_err(|s| status("Init", &s))?;
                Ok(c.features(self.req(pb::FeaturesRequest {}))
                    .await
                    .map_err(|s| status("Features", &s))?
                    .into_inner()
                    .features)
            }
            Block::Bindings => {
                let mut ops = Vec::new();
                if self.config.operations.contains("input") {
                    self.input()
                        .init(self.req(pb::InputBindingInitRequest {
                            metadata: metadata.clone(),
                        }))
                        .await
                        .map_err(|s| status("InputBinding Init", &s))?;
                }
                if self.config.operations.contains("output")
                    || !self.config.operations.contains("input")
                {
                    let mut c = self.output();
                    c.init(self.req(pb::OutputBindingInitRequest { metadata }))
                        .await
                        .map_err(|s| status("OutputBinding Init", &s))?;
                    ops = c
                        .list_operations(self.req(pb::ListOperationsRequest {}))
                        .await
                        .map_err(|s| status("ListOperations", &s))?
                        .into_inner()
                        .operations;
                }
                Ok(ops)
            }
        }
    }

    /// `message` addressed to this instance.
    pub(crate) fn req<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.metadata_mut()
            .insert("x-component-instance", self.instance.clone());
        r
    }

    /// A key unique to this run.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    pub(crate) fn state(&self) -> pb::state_store_client::StateStoreClient<Channel> {
        pb::state_store_client::StateStoreClient::new(self.channel.clone())
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    pub(crate) fn transactional(
        &self,
    ) -> pb::transactional_state_store_client::TransactionalStateStoreClient<Channel> {
        pb::transactional_state_store_client::TransactionalStateStoreClient::new(
            self.channel.clone(),
        )
    }

    pub(crate) fn queriable(
        &self,
    ) -> pb::queriable_state_store_client::QueriableStateStoreClient<Channel> {
        pb::queriable_state_store_client::QueriableStateStoreClient::new(self.channel.clone())
    }

    pub(crate) fn pubsub(&self) -> pb::pub_sub_client::PubSubClient<Channel> {
        pb::pub_sub_client::PubSubClient::new(self.channel.clone())
    }

    pub(crate) fn secrets(&self) -> pb::secret_store_client::SecretStoreClient<Channel> {
        pb::secret_store_client::SecretStoreClient::new(self.channel.clone())
    }

    pub(crate) fn output(&self) -> pb::output_binding_client::OutputBindingClient<Channel> {
        pb::output_binding_client::OutputBindingClient::new(self.channel.clone())
    }

    pub(crate) fn configuration(
        &self,
    ) -> config_pb::configuration_store_client::ConfigurationStoreClient<Channel> {
        config_pb::configuration_store_client::ConfigurationStoreClient::new(self.channel.clone())
    }

    pub(crate) fn input(&self) -> pb::input_binding_client::InputBindingClient<Channel> {
        pb::input_binding_client::InputBindingClient::new(self.channel.clone())
    }
}

/// `Err(reason)` unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}
pub(crate) use ensure;

/// A gRPC call that must succeed.
pub(crate) fn ok<T>(what: &str, r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, String> {
    r.map(tonic::Response::into_inner)
        .map_err(|s| status(what, &s))
}
