//! Connecting to NATS from component metadata, shared by both blocks.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;
use outrigger_component_sdk::{ComponentError, Metadata};

/// Connection keys accepted by both blocks.
pub const CONNECTION_KEYS: &[&str] = &[
    "natsURL",
    "name",
    "jwt",
    "seedKey",
    "tls_client_cert",
    "tls_client_key",
    "token",
    "domain",
    "apiPrefix",
];

/// Refuse keys this component does not know, naming the first one.
///
/// # Errors
/// `InvalidArgument` naming the unknown key and listing the known ones.
pub fn check_keys(metadata: &Metadata, known: &[&str]) -> Result<(), ComponentError> {
    metadata.check_keys(&[CONNECTION_KEYS, known].concat())
}

/// Connect as the metadata says and return the JetStream context.
///
/// The client reconnects by itself forever after the first connection; the
/// first one must succeed within 5 s, so a wrong URL is an `Init` error.
///
/// # Errors
/// `InvalidArgument` naming the key for bad credentials or an unreachable
/// `natsURL`.
pub async fn connect(metadata: &Metadata) -> Result<jetstream::Context, ComponentError> {
    let url = metadata.required("natsURL")?;
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .name(metadata.get("name").unwrap_or("outrigger-nats"));
    match (metadata.get("jwt"), metadata.get("seedKey")) {
        (Some(jwt), Some(seed)) => {
            let creds = format!(
                "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
                 -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
            );
            options = options.credentials(&creds).map_err(|e| {
                ComponentError::invalid_argument("seedKey", format!("bad jwt/seedKey: {e}"))
            })?;
        }
        (Some(_), None) => {
            return Err(ComponentError::invalid_argument(
                "seedKey",
                "jwt needs seedKey as well",
            ));
        }
        (None, Some(_)) => {
            return Err(ComponentError::invalid_argument(
                "jwt",
                "seedKey needs jwt as well",
            ));
        }
        (None, None) => {}
    }
    match (
        metadata.get("tls_client_cert"),
        metadata.get("tls_client_key"),
    ) {
        (Some(cert), Some(key)) => {
            options = options
                .add_client_certificate(PathBuf::from(cert), PathBuf::from(key))
                .require_tls(true);
        }
        (Some(_), None) => {
            return Err(ComponentError::invalid_argument(
                "tls_client_key",
                "tls_client_cert needs tls_client_key as well",
            ));
        }
        (None, Some(_)) => {
            return Err(ComponentError::invalid_argument(
                "tls_client_cert",
                "tls_client_key needs tls_client_cert as well",
            ));
        }
        (None, None) => {}
    }
    if let Some(token) = metadata.get("token") {
        options = options.token(token.to_owned());
    }
    let client = options.connect(url).await.map_err(|e| {
        ComponentError::invalid_argument("natsURL", format!("cannot connect to {url}: {e}"))
    })?;
    Ok(match (metadata.get("domain"), metadata.get("apiPrefix")) {
        (Some(_), Some(_)) => {
            return Err(ComponentError::invalid_argument(
                "apiPrefix",
                "set either domain or apiPrefix, not both",
            ));
        }
        (Some(domain), None) => jetstream::with_domain(client, domain),
        (None, Some(prefix)) => jetstream::with_prefix(client, prefix),
        (None, None) => jetstream::new(client),
    })
}

/// `name` made safe for a stream, consumer or bucket name: letters, digits,
/// `-` and `_` kept, anything else replaced by `_`.
pub(crate) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
