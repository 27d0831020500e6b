//! [`Instances`]: one component object per `x-component-instance`.
//!
//! daprd puts the YAML `metadata.name` of the component in the
//! `x-component-instance` header of every call, so one process can serve
//! several declared components. Each `Init` builds a fresh object with the
//! service's factory and initialises it; later calls with the same header
//! reach that object. A call for an instance that was never initialised is
//! refused rather than served with an unconfigured component.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::{ComponentError, Metadata};

/// gRPC metadata key daprd uses to name the component instance.
pub const INSTANCE_HEADER: &str = "x-component-instance";

/// Builds a new, uninitialised component object.
pub(crate) type Factory<T> = Arc<dyn Fn() -> Arc<T> + Send + Sync>;

/// The live component objects of one block on one socket.
pub(crate) struct Instances<T: ?Sized> {
    factory: Factory<T>,
    live: RwLock<HashMap<String, Arc<T>>>,
}

/// The instance name a request is for (empty when the header is absent,
/// which is how a single-instance host such as a test client calls).
pub(crate) fn instance_name(metadata: &MetadataMap) -> String {
    metadata
        .get(INSTANCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

// === impl Instances ===

impl<T: ?Sized> Instances<T> {
    pub(crate) fn new(factory: Factory<T>) -> Self {
        Self {
            factory,
            live: RwLock::new(HashMap::new()),
        }
    }

    /// Build a fresh object, run `init` on it, and only when that succeeds
    /// make it the instance for `name` (replacing any earlier one, as after a
    /// host restart).
    pub(crate) async fn init<F, Fut>(&self, name: String, init: F) -> Result<(), Status>
    where
        F: FnOnce(Arc<T>) -> Fut,
        Fut: Future<Output = Result<(), ComponentError>>,
    {
        let object = (self.factory)();
        init(Arc::clone(&object)).await.map_err(Status::from)?;
        let mut live = self
            .live
            .write()
            .map_err(|_| Status::internal("component instance table is poisoned"))?;
        live.insert(name, object);
        Ok(())
    }

    /// Serve an `Init` call: the instance its header names, with `metadata`.
    pub(crate) async fn init_call<F, Fut>(
        &self,
        headers: &MetadataMap,
        metadata: Option<outrigger_proto::components::MetadataRequest>,
        init: F,
    ) -> Result<(), Status>
    where
        F: FnOnce(Arc<T>, Metadata) -> Fut,
        Fut: Future<Output = Result<(), ComponentError>>,
    {
        let name = instance_name(headers);
        tracing::Span::current().record("instance", name.as_str());
        let metadata = Metadata::new(metadata.unwrap_or_default().properties);
        self.init(name, |object| init(object, metadata)).await
    }

    /// The initialised object for the request's instance.
    pub(crate) fn get(&self, metadata: &MetadataMap) -> Result<Arc<T>, Status> {
        let name = instance_name(metadata);
        let live = self
            .live
            .read()
            .map_err(|_| Status::internal("component instance table is poisoned"))?;
        live.get(&name).cloned().ok_or_else(|| {
            Status::failed_precondition(format!(
                "component instance {name:?} is not initialised: call Init first \
                 (with the same {INSTANCE_HEADER} header)"
            ))
        })
    }
}
