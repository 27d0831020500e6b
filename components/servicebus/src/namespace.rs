//! Reaching one Service Bus namespace: the connection string, the SAS token
//! for requests we build ourselves, and [`Transport`], the HTTP client every
//! request goes through.
//!
//! [`Transport`] is the seam the `azure_messaging_servicebus` crate offers:
//! it takes any `azure_core::HttpClient`. Ours is a pooled `reqwest` client
//! (the crate's default one opens a new TLS connection per request) that can
//! also send every `https://{ns}.servicebus.windows.net/...` request to
//! another base URL instead, which is how the tests point the component at a
//! loopback Service Bus.

use std::sync::Arc;
use std::time::Duration;

use azure_core::auth::Secret;
use azure_core::{HttpClient, Request, Response, Url};
use outrigger_component_sdk::ComponentError;

/// The only DNS suffix the crate can reach: it builds every URL itself as
/// `https://{namespace}.servicebus.windows.net/...`.
pub const HOST_SUFFIX: &str = ".servicebus.windows.net";

/// Lifetime of the SAS tokens we sign for management requests.
const SAS_LIFETIME: Duration = Duration::from_secs(3600);

/// What a connection string names.
#[derive(Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The namespace: the first label of `{namespace}.servicebus.windows.net`.
    pub name: String,
    /// `SharedAccessKeyName`.
    pub key_name: String,
    /// `SharedAccessKey`, as written (it is used as UTF-8 bytes, not decoded).
    pub key: String,
    /// `EntityPath`, when the string is scoped to one entity.
    pub entity_path: Option<String>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .field("key_name", &self.key_name)
            .field("entity_path", &self.entity_path)
            .finish_non_exhaustive()
    }
}

impl Namespace {
    /// Parse `Endpoint=sb://{ns}.servicebus.windows.net/;SharedAccessKeyName=..;SharedAccessKey=..[;EntityPath=..]`.
    /// Errors name `connectionString` and what is wrong, never the key.
    pub fn parse(raw: &str) -> Result<Self, ComponentError> {
        let bad = |why: &str| ComponentError::invalid_argument("connectionString", why.to_owned());
        let (mut endpoint, mut key_name, mut key, mut entity_path) = (None, None, None, None);
        for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(bad("every part must be Name=Value, separated by ';'"));
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value.trim()),
                "sharedaccesskeyname" => key_name = Some(value.trim()),
                "sharedaccesskey" => key = Some(value.trim()),
                "entitypath" => entity_path = Some(value.trim()),
                "sharedaccesssignature" => {
                    return Err(bad(
                        "SharedAccessSignature connection strings are not supported; use SharedAccessKeyName and SharedAccessKey",
                    ));
                }
                "usedevelopmentemulator" => {
                    return Err(bad(
                        "UseDevelopmentEmulator is not supported: the REST client only reaches *.servicebus.windows.net",
                    ));
                }
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or_else(|| bad("Endpoint is missing"))?;
        let host = endpoint
            .strip_prefix("sb://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .ok_or_else(|| bad("Endpoint must start with sb://"))?
            .trim_end_matches('/');
        let name = host.strip_suffix(HOST_SUFFIX).ok_or_else(|| {
            bad("Endpoint must be sb://{namespace}.servicebus.windows.net/ (the REST client reaches no other cloud)")
        })?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(bad(
                "Endpoint's namespace name is not a valid Service Bus namespace",
            ));
        }
        let key_name = key_name
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("SharedAccessKeyName is missing"))?;
        let key = key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("SharedAccessKey is missing"))?;
        Ok(Self {
            name: name.to_owned(),
            key_name: key_name.to_owned(),
            key: key.to_owned(),
            entity_path: entity_path.filter(|p| !p.is_empty()).map(str::to_owned),
        })
    }

    /// `https://{ns}.servicebus.windows.net/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{HOST_SUFFIX}/{path}", self.name)
    }

    /// A SAS token for `url`, as the `Authorization` header wants it.
    pub fn sas_token(&self, url: &str) -> Result<String, ComponentError> {
        sas_token(url, &self.key_name, &self.key, SAS_LIFETIME)
    }
}

/// `SharedAccessSignature sr=..&sig=..&se=..&skn=..`: HMAC-SHA256 of
/// `"{url-encoded resource}\n{expiry}"` under the key's UTF-8 bytes.
pub fn sas_token(
    resource: &str,
    key_name: &str,
    key: &str,
    lifetime: Duration,
) -> Result<String, ComponentError> {
    let sr = encode(resource);
    let expiry = time::OffsetDateTime::now_utc().unix_timestamp()
        + i64::try_from(lifetime.as_secs()).unwrap_or(3600);
    let to_sign = format!("{sr}\n{expiry}");
    // azure_core's HMAC takes a base64 key; ours is raw text.
    let key = Secret::new(azure_core::base64::encode(key));
    let sig = azure_core::hmac::hmac_sha256(&to_sign, &key)
        .map_err(|e| ComponentError::internal(format!("signing a SAS token: {e}")))?;
    Ok(format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn={}",
        encode(&sig),
        encode(key_name)
    ))
}

/// An `azure_core` error with its causes: its own message alone often says
/// only "failed to execute `reqwest` request".
pub(crate) fn describe(err: &azure_core::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn encode(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

/// The HTTP client behind every request: pooled, optionally redirected.
#[derive(Debug, Clone)]
pub struct Transport {
    client: reqwest::Client,
    /// Base URL replacing `https://{ns}.servicebus.windows.net`.
    redirect: Option<Url>,
}

impl Transport {
    /// Straight to Azure.
    pub fn azure() -> Self {
        Self {
            client: reqwest::Client::new(),
            redirect: None,
        }
    }

    /// Every Service Bus request goes to `base` (scheme, host and port),
    /// keeping its path, query, headers and signature. For tests against a
    /// loopback Service Bus.
    pub fn redirected(base: Url) -> Self {
        Self {
            client: reqwest::Client::new(),
            redirect: Some(base),
        }
    }

    /// From `OUTRIGGER_SERVICEBUS_ENDPOINT` when set (a loopback Service Bus), else Azure.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("OUTRIGGER_SERVICEBUS_ENDPOINT") {
            Ok(raw) if !raw.is_empty() => Url::parse(&raw)
                .map(Self::redirected)
                .map_err(|e| format!("OUTRIGGER_SERVICEBUS_ENDPOINT={raw:?}: {e}")),
            _ => Ok(Self::azure()),
        }
    }

    /// As the crate's clients want it.
    pub fn shared(self) -> Arc<dyn HttpClient> {
        Arc::new(self)
    }
}

#[async_trait::async_trait]
impl HttpClient for Transport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<Response> {
        let Some(base) = &self.redirect else {
            return self.client.execute_request(request).await;
        };
        let mut redirected = request.clone();
        let url = redirected.url_mut();
        if url.host_str().is_some_and(|h| h.ends_with(HOST_SUFFIX)) {
            let _ = url.set_scheme(base.scheme());
            let _ = url.set_host(base.host_str());
            let _ = url.set_port(base.port_or_known_default());
        }
        self.client.execute_request(&redirected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "Endpoint=sb://my-ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=c2VjcmV0;EntityPath=orders";

    #[test]
    fn parses_a_connection_string() {
        let ns = Namespace::parse(GOOD).unwrap();
        assert_eq!(ns.name, "my-ns");
        assert_eq!(ns.key_name, "RootManageSharedAccessKey");
        assert_eq!(ns.key, "c2VjcmV0");
        assert_eq!(ns.entity_path.as_deref(), Some("orders"));
        assert!(
            !format!("{ns:?}").contains("c2VjcmV0"),
            "the key leaks into Debug"
        );
    }

    #[test]
    fn malformed_strings_name_the_problem_not_the_key() {
        for (raw, why) in [
            ("", "Endpoint is missing"),
            (
                "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKey=k",
                "SharedAccessKeyName",
            ),
            (
                "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=n",
                "SharedAccessKey is missing",
            ),
            (
                "Endpoint=sb://x.example.com/;SharedAccessKeyName=n;SharedAccessKey=k",
                "servicebus.windows.net",
            ),
            (
                "Endpoint=amqp://x.servicebus.windows.net/;SharedAccessKeyName=n;SharedAccessKey=k",
                "sb://",
            ),
            ("garbage", "Name=Value"),
        ] {
            let err = Namespace::parse(raw).unwrap_err();
            assert!(err.message().contains(why), "{raw:?}: {}", err.message());
            assert!(
                err.message().contains("connectionString"),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn sas_tokens_have_every_part() {
        let token = sas_token(
            "https://a.servicebus.windows.net/q",
            "key name",
            "k",
            SAS_LIFETIME,
        )
        .unwrap();
        assert!(
            token.starts_with("SharedAccessSignature sr=https%3A%2F%2Fa.servicebus"),
            "{token}"
        );
        assert!(token.contains("&skn=key+name"), "{token}");
        assert!(token.contains("&sig=") && token.contains("&se="), "{token}");
    }
}
