//! A tonic channel over a Unix socket, and the interceptor that names the
//! component instance on every call (streams included).

use std::path::Path;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

/// The header daprd sets to the component's YAML `metadata.name`.
pub const INSTANCE_HEADER: &str = "x-component-instance";

/// Longest a unary component call may take.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A channel that connects (and reconnects) to `socket` on demand.
pub fn lazy(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    Endpoint::from_static("http://component.invalid")
        .connect_timeout(std::time::Duration::from_secs(2))
        // A component that accepts but never answers must not hang the app;
        // streaming calls (subscriptions) are exempt from this per-call limit.
        .timeout(CALL_TIMEOUT)
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
}

/// Adds `x-component-instance: <name>` to each request.
#[derive(Clone, Debug)]
pub struct Instance(AsciiMetadataValue);

impl Instance {
    /// For component `name`; names that are not valid header values are
    /// rejected when resources load, so this falls back to empty.
    pub fn new(name: &str) -> Self {
        Self(MetadataValue::try_from(name).unwrap_or_else(|_| MetadataValue::from_static("")))
    }
}

impl Interceptor for Instance {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert(INSTANCE_HEADER, self.0.clone());
        Ok(request)
    }
}

/// A component channel that names its instance.
pub type Intercepted = InterceptedService<Channel, Instance>;
