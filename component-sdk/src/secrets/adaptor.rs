//! The tonic `SecretStore` service.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use outrigger_proto::components as pb;

use crate::ComponentError;
use crate::instance::Instances;
use crate::secrets::SecretStore;

/// Serves one socket's secret store instances.
#[derive(Clone)]
pub(crate) struct SecretStoreAdaptor {
    instances: Arc<Instances<dyn SecretStore>>,
}

impl SecretStoreAdaptor {
    pub(crate) fn new(instances: Instances<dyn SecretStore>) -> Self {
        Self {
            instances: Arc::new(instances),
        }
    }
}

#[tonic::async_trait]
impl pb::secret_store_server::SecretStore for SecretStoreAdaptor {
    #[tracing::instrument(skip_all, fields(block = "secrets", op = "init", instance))]
    async fn init(
        &self,
        request: Request<pb::SecretStoreInitRequest>,
    ) -> Result<Response<pb::SecretStoreInitResponse>, Status> {
        let (headers, _, body) = request.into_parts();
        self.instances
            .init_call(
                &headers,
                body.metadata,
                |c, m| async move { c.init(m).await },
            )
            .await?;
        Ok(Response::new(pb::SecretStoreInitResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "secrets", op = "features"))]
    async fn features(
        &self,
        request: Request<pb::FeaturesRequest>,
    ) -> Result<Response<pb::FeaturesResponse>, Status> {
        let c = self.instances.get(request.metadata())?;
        let features = c
            .features()
            .into_iter()
            .map(|f| f.as_str().to_owned())
            .collect();
        Ok(Response::new(pb::FeaturesResponse { features }))
    }

    #[tracing::instrument(skip_all, fields(block = "secrets", op = "get"))]
    async fn get(
        &self,
        request: Request<pb::GetSecretRequest>,
    ) -> Result<Response<pb::GetSecretResponse>, Status> {
        let c = self.instances.get(request.metadata())?;
        let req = request.into_inner();
        if req.key.is_empty() {
            return Err(ComponentError::invalid_argument("key", "must not be empty").into());
        }
        let data = c.get(&req.key, req.metadata).await?;
        Ok(Response::new(pb::GetSecretResponse { data }))
    }

    #[tracing::instrument(skip_all, fields(block = "secrets", op = "bulk_get"))]
    async fn bulk_get(
        &self,
        request: Request<pb::BulkGetSecretRequest>,
    ) -> Result<Response<pb::BulkGetSecretResponse>, Status> {
        let c = self.instances.get(request.metadata())?;
        let all = c.bulk_get(request.into_inner().metadata).await?;
        let data = all
            .into_iter()
            .map(|(name, secrets)| (name, pb::SecretResponse { secrets }))
            .collect();
        Ok(Response::new(pb::BulkGetSecretResponse { data }))
    }

    #[tracing::instrument(skip_all, fields(block = "secrets", op = "ping"))]
    async fn ping(
        &self,
        request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        self.instances.get(request.metadata())?.ping().await?;
        Ok(Response::new(pb::PingResponse {}))
    }
}
