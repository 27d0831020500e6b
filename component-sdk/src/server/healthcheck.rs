//! `<component> healthcheck`: asks every socket a [`ComponentServer`] would
//! serve for its gRPC health, so a container image with nothing but the
//! binary (`FROM scratch`, no shell, no curl) can still have a `HEALTHCHECK`:
//!
//! ```dockerfile
//! HEALTHCHECK CMD ["/outrigger-local", "healthcheck"]
//! ```
//!
//! A socket is healthy when it answers `grpc.health.v1.Health/Check` for the
//! server as a whole (service `""`) with `SERVING`, within the timeout.

use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::ComponentServer;

/// The first argument that asks a component binary for a health check
/// instead of serving.
pub const HEALTHCHECK_ARG: &str = "healthcheck";

/// How long each socket may take to answer by default.
pub const DEFAULT_HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthcheckError {
    /// The server has no services, so there is nothing to ask.
    #[error("no services are registered, so no socket can be checked")]
    NoServices,
    /// A socket could not be reached or did not answer.
    #[error("{path}: {reason}")]
    Unreachable {
        /// The socket.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A socket answered, but not `SERVING`.
    #[error("{path}: health is {status}, not SERVING")]
    NotServing {
        /// The socket.
        path: PathBuf,
        /// The status it reported.
        status: String,
    },
}

/// Whether the process was started as `<binary> healthcheck`: a component's
/// `main` calls [`ComponentServer::healthcheck`] instead of serving then.
pub fn healthcheck_requested() -> bool {
    std::env::args().nth(1).as_deref() == Some(HEALTHCHECK_ARG)
}

// === impl ComponentServer ===

impl ComponentServer {
    /// Ask every socket this server would bind for its gRPC health (each
    /// within [`DEFAULT_HEALTHCHECK_TIMEOUT`]); `Ok` when all are `SERVING`.
    ///
    /// # Errors
    /// No services registered, a socket missing or not answering in time,
    /// or one that reports anything but `SERVING`.
    pub async fn healthcheck(&self) -> Result<(), HealthcheckError> {
        self.healthcheck_within(DEFAULT_HEALTHCHECK_TIMEOUT).await
    }

    /// [`ComponentServer::healthcheck`] with `timeout` per socket.
    ///
    /// # Errors
    /// As [`ComponentServer::healthcheck`].
    pub async fn healthcheck_within(&self, timeout: Duration) -> Result<(), HealthcheckError> {
        if self.services.is_empty() {
            return Err(HealthcheckError::NoServices);
        }
        for service in &self.services {
            let path = self.socket_path(&service.name);
            match tokio::time::timeout(timeout, check(&path)).await {
                Ok(Ok(ServingStatus::Serving)) => {}
                Ok(Ok(status)) => {
                    return Err(HealthcheckError::NotServing {
                        path,
                        status: status.as_str_name().to_owned(),
                    });
                }
                Ok(Err(reason)) => return Err(HealthcheckError::Unreachable { path, reason }),
                Err(_) => {
                    return Err(HealthcheckError::Unreachable {
                        path,
                        reason: format!("no answer within {timeout:?}"),
                    });
                }
            }
        }
        Ok(())
    }
}

async fn check(path: &std::path::Path) -> Result<ServingStatus, String> {
    let endpoint = Endpoint::from_shared(format!("unix:{}", path.display()))
        .map_err(|err| format!("invalid socket path: {err}"))?;
    let channel = endpoint.connect().await.map_err(|err| {
        use std::error::Error as _;
        match err.source() {
            Some(source) => format!("cannot connect: {source}"),
            None => format!("cannot connect: {err}"),
        }
    })?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|status| format!("health check failed: {}", status.message()))?;
    Ok(ServingStatus::try_from(reply.into_inner().status).unwrap_or(ServingStatus::Unknown))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ComponentError;
    use crate::metadata::Metadata;
    use crate::secrets::{Secret, SecretStore};
    use std::collections::HashMap;

    struct NoSecrets;

    #[async_trait::async_trait]
    impl SecretStore for NoSecrets {
        async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
            Ok(())
        }
        async fn get(
            &self,
            key: &str,
            _: HashMap<String, String>,
        ) -> Result<Secret, ComponentError> {
            Err(ComponentError::not_found(key))
        }
    }

    fn server(folder: &std::path::Path) -> ComponentServer {
        ComponentServer::new(folder)
            .service("one", |s| s.secret_store(|| NoSecrets))
            .service("two", |s| s.secret_store(|| NoSecrets))
    }

    #[tokio::test]
    async fn healthy_once_every_socket_serves() {
        let dir = tempfile::tempdir().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let serving = tokio::spawn(server(dir.path()).serve(stop.clone().cancelled_owned()));
        let probe = server(dir.path());
        let mut healthy = false;
        for _ in 0..200 {
            if probe.healthcheck().await.is_ok() {
                healthy = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(healthy, "{:?}", probe.healthcheck().await);
        stop.cancel();
        serving.await.unwrap().unwrap();
        // The sockets are gone after shutdown: unhealthy again.
        let err = probe.healthcheck().await.unwrap_err();
        assert!(matches!(err, HealthcheckError::Unreachable { .. }), "{err}");
    }

    #[tokio::test]
    async fn missing_socket_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = server(dir.path()).healthcheck().await.unwrap_err();
        assert!(err.to_string().contains("one.sock"), "{err}");
    }

    #[tokio::test]
    async fn a_socket_that_never_answers_times_out() {
        let dir = tempfile::tempdir().unwrap();
        // Listening but never accepting: the connection hangs in the backlog.
        let _listener =
            std::os::unix::net::UnixListener::bind(dir.path().join("one.sock")).unwrap();
        let err = server(dir.path())
            .healthcheck_within(Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, HealthcheckError::Unreachable { .. }), "{err}");
    }

    #[tokio::test]
    async fn no_services_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ComponentServer::new(dir.path())
            .healthcheck()
            .await
            .unwrap_err();
        assert!(matches!(err, HealthcheckError::NoServices));
    }
}
