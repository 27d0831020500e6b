//! Name resolution: how a gateway finds the gateway of another app id.
//!
//! [`Resolver`] is chosen in the `Configuration` resource
//! (`spec.nameResolution.component`): `local` (the default; Dapr's `mdns`
//! maps to it), `static` (a table in the YAML) or `dns` (a host:port
//! template looked up through the system resolver, for containers and
//! Kubernetes services).
//!
//! Local name resolution: the gateways of one machine find each other
//! through a shared folder, with no multicast and nothing to install.
//!
//! Each gateway writes `<folder>/<app-id>/<pid>-<port>.json` with its gRPC
//! address when it starts and removes it when it stops. A gateway killed
//! with SIGKILL leaves its file behind: entries whose process no longer
//! exists are skipped and deleted, and a caller that cannot connect to an
//! entry tries the next one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// One registered gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The app id it serves.
    pub app_id: String,
    /// Where its gRPC API (and gateway-to-gateway service) listens.
    pub grpc: SocketAddr,
    /// Its process id, to detect entries of dead gateways.
    pub pid: u32,
}

/// The shared folder.
#[derive(Debug, Clone)]
pub struct LocalRegistry {
    folder: PathBuf,
    /// Recent answers by app id: reading the folder on every call cost
    /// more than the call itself (a directory listing, a file read and a
    /// liveness check per entry, on the request path).
    recent: Arc<Mutex<Recent>>,
}

/// App id → when it was read, and what was found.
type Recent = HashMap<String, (Instant, Vec<Entry>)>;

/// How long a registry answer is reused. A gateway that died within it is
/// found by the failed call, which [`LocalRegistry::forget`]s the answer.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// This gateway's entry; dropping it removes the file.
#[derive(Debug)]
pub struct Registration {
    path: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_file(&self.path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %err, "could not remove the registry entry");
        }
    }
}

fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM means it exists but is not ours.
    !matches!(kill(Pid::from_raw(raw), None), Err(Errno::ESRCH))
}

impl LocalRegistry {
    /// Over `folder` (created on first registration).
    pub fn new(folder: impl Into<PathBuf>) -> Self {
        Self {
            folder: folder.into(),
            recent: Arc::default(),
        }
    }

    /// The folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Register `app_id` at `grpc`.
    ///
    /// # Errors
    /// The folder or file cannot be written.
    pub fn register(&self, app_id: &str, grpc: SocketAddr) -> std::io::Result<Registration> {
        let dir = self.folder.join(app_id);
        std::fs::create_dir_all(&dir)?;
        let pid = std::process::id();
        let entry = Entry {
            app_id: app_id.to_owned(),
            grpc,
            pid,
        };
        let path = dir.join(format!("{pid}-{}.json", grpc.port()));
        // Write then rename, so a reader never sees half a file.
        let partial = dir.join(format!(".{pid}-{}.tmp", grpc.port()));
        std::fs::write(&partial, serde_json::to_vec(&entry)?)?;
        std::fs::rename(&partial, &path)?;
        Ok(Registration { path })
    }

    /// Live gateways serving `app_id` (an `app.namespace` id falls back to
    /// `app`: one machine has one namespace). Stale entries are deleted.
    pub fn resolve(&self, app_id: &str) -> Vec<Entry> {
        if let Ok(recent) = self.recent.lock()
            && let Some((at, entries)) = recent.get(app_id)
            && at.elapsed() < FRESH_FOR
        {
            return entries.clone();
        }
        let found = self.read(app_id);
        if !found.is_empty()
            && let Ok(mut recent) = self.recent.lock()
        {
            recent.insert(app_id.to_owned(), (Instant::now(), found.clone()));
        }
        found
    }

    /// Drop the reused answer for `app_id` (a gateway of it did not answer).
    pub fn forget(&self, app_id: &str) {
        if let Ok(mut recent) = self.recent.lock() {
            recent.remove(app_id);
        }
    }

    /// Read the folder for `app_id`, falling back to the id without namespace.
    fn read(&self, app_id: &str) -> Vec<Entry> {
        let found = self.entries(app_id);
        if found.is_empty()
            && let Some((app, _namespace)) = app_id.split_once('.')
        {
            return self.entries(app);
        }
        found
    }

    fn entries(&self, app_id: &str) -> Vec<Entry> {
        if app_id.is_empty() || app_id.contains(['/', '\\']) || app_id.starts_with('.') {
            return Vec::new();
        }
        let Ok(listing) = std::fs::read_dir(self.folder.join(app_id)) else {
            return Vec::new();
        };
        let mut live = Vec::new();
        for file in listing.flatten() {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Some(entry) = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Entry>(&bytes).ok())
            else {
                continue;
            };
            if alive(entry.pid) {
                live.push(entry);
            } else {
                tracing::info!(path = %path.display(), pid = entry.pid, "removing the registry entry of a gateway that is gone");
                let _ = std::fs::remove_file(&path);
            }
        }
        live.sort_by_key(|e| (e.pid, e.grpc));
        live
    }
}

/// How app ids become gateway addresses.
#[derive(Debug, Clone)]
pub enum Resolver {
    /// The machine's registry folder.
    Local(LocalRegistry),
    /// A fixed table: app id → gateway gRPC addresses.
    Static(HashMap<String, Vec<SocketAddr>>),
    /// `template` with `{appId}` (and `{namespace}`) replaced, then looked up.
    Dns {
        /// e.g. `{appId}-dapr.{namespace}.svc.cluster.local:50001`.
        template: String,
        /// Namespace for ids given without one.
        namespace: String,
    },
}

/// A `nameResolution` that cannot be used (the message names the field).
#[derive(Debug, thiserror::Error)]
#[error("spec.nameResolution.{field}: {reason}")]
pub struct ResolverError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> ResolverError {
    ResolverError {
        field,
        reason: reason.into(),
    }
}

impl Resolver {
    /// From a `Configuration`'s `spec` (its `nameResolution`, if any);
    /// `local` is the machine's registry folder, when there is one.
    ///
    /// # Errors
    /// An unknown component or a malformed table or template.
    pub fn from_spec(
        spec: &serde_yaml_ng::Value,
        local: Option<&Path>,
    ) -> Result<Option<Self>, ResolverError> {
        let local = || local.map(|folder| Self::Local(LocalRegistry::new(folder)));
        let Some(section) = spec.get("nameResolution") else {
            return Ok(local());
        };
        let component = section
            .get("component")
            .and_then(|c| c.as_str())
            .unwrap_or("local");
        let configuration = section.get("configuration");
        match component {
            "local" | "mdns" => Ok(local()),
            "static" => {
                let apps = configuration
                    .and_then(|c| c.get("apps"))
                    .and_then(|a| a.as_mapping())
                    .ok_or_else(|| {
                        bad(
                            "configuration.apps",
                            "a map of app id → \"host:port\" (or a list of them) is required",
                        )
                    })?;
                let mut table = HashMap::new();
                for (id, addresses) in apps {
                    let id = id
                        .as_str()
                        .ok_or_else(|| bad("configuration.apps", "app ids must be strings"))?;
                    let raw: Vec<&str> = match addresses {
                        serde_yaml_ng::Value::String(one) => vec![one.as_str()],
                        serde_yaml_ng::Value::Sequence(many) => {
                            many.iter().filter_map(|a| a.as_str()).collect()
                        }
                        _ => Vec::new(),
                    };
                    let parsed: Result<Vec<SocketAddr>, _> =
                        raw.iter().map(|a| a.parse::<SocketAddr>()).collect();
                    match parsed {
                        Ok(list) if !list.is_empty() => {
                            table.insert(id.to_owned(), list);
                        }
                        _ => {
                            return Err(bad(
                                "configuration.apps",
                                format!("{id}: {addresses:?} is not \"ip:port\" or a list of them"),
                            ));
                        }
                    }
                }
                Ok(Some(Self::Static(table)))
            }
            "dns" => {
                let template = configuration
                    .and_then(|c| c.get("template"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| {
                        bad("configuration.template", "required, e.g. \"{appId}:50001\"")
                    })?;
                if !template.contains("{appId}") || template.rsplit_once(':').is_none() {
                    return Err(bad(
                        "configuration.template",
                        format!("{template:?} must contain {{appId}} and end with :port"),
                    ));
                }
                let namespace = configuration
                    .and_then(|c| c.get("namespace"))
                    .and_then(|n| n.as_str())
                    .unwrap_or("default")
                    .to_owned();
                Ok(Some(Self::Dns {
                    template: template.to_owned(),
                    namespace,
                }))
            }
            other => Err(bad(
                "component",
                format!("{other:?} is not one of local, mdns, static, dns"),
            )),
        }
    }

    /// Forget any reused answer for `app_id`: a gateway of it did not answer.
    pub fn forget(&self, app_id: &str) {
        if let Self::Local(registry) = self {
            registry.forget(app_id);
        }
    }

    /// Gateways serving `app_id` (`app` or `app.namespace`).
    pub async fn resolve(&self, app_id: &str) -> Vec<Entry> {
        let (app, namespace) = app_id.split_once('.').unwrap_or((app_id, ""));
        let entries = |addrs: &[SocketAddr], id: &str| -> Vec<Entry> {
            addrs
                .iter()
                .map(|grpc| Entry {
                    app_id: id.to_owned(),
                    grpc: *grpc,
                    pid: 0,
                })
                .collect()
        };
        match self {
            Self::Local(registry) => registry.resolve(app_id),
            Self::Static(table) => match table.get(app_id) {
                Some(addrs) => entries(addrs, app_id),
                None => table
                    .get(app)
                    .map(|addrs| entries(addrs, app))
                    .unwrap_or_default(),
            },
            Self::Dns {
                template,
                namespace: default,
            } => {
                let namespace = if namespace.is_empty() {
                    default
                } else {
                    namespace
                };
                let host = template
                    .replace("{appId}", app)
                    .replace("{namespace}", namespace);
                match tokio::net::lookup_host(host.as_str()).await {
                    Ok(found) => entries(&found.collect::<Vec<_>>(), app),
                    Err(err) => {
                        tracing::debug!(%host, error = %err, "DNS name resolution found nothing");
                        Vec::new()
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_resolve_and_skip_the_dead() {
        let dir = tempfile::tempdir().unwrap();
        let registry = LocalRegistry::new(dir.path());
        let addr: SocketAddr = "127.0.0.1:50001".parse().unwrap();
        let registration = registry.register("orders", addr).unwrap();
        assert_eq!(registry.resolve("orders")[0].grpc, addr);
        assert_eq!(registry.resolve("orders.default")[0].grpc, addr);
        assert!(registry.resolve("../orders").is_empty());

        // A gateway that died without cleaning up (no such pid).
        let dead = Entry {
            app_id: "orders".into(),
            grpc: "127.0.0.1:1".parse().unwrap(),
            pid: 999_999_999,
        };
        let stale = dir.path().join("orders/999999999-1.json");
        std::fs::write(&stale, serde_json::to_vec(&dead).unwrap()).unwrap();
        // The answer of a moment ago is reused until forgotten.
        assert!(stale.exists());
        registry.forget("orders");
        assert_eq!(registry.resolve("orders").len(), 1);
        assert!(!stale.exists(), "stale entry removed");

        drop(registration);
        assert_eq!(registry.resolve("orders").len(), 1, "reused answer");
        registry.forget("orders");
        assert!(registry.resolve("orders").is_empty());
    }

    fn spec(yaml: &str) -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[tokio::test]
    async fn static_and_dns_resolvers() {
        let table = Resolver::from_spec(
            &spec("nameResolution:\n  component: static\n  configuration:\n    apps:\n      orders: 127.0.0.1:7001\n      carts: [127.0.0.1:7002, 127.0.0.1:7003]\n"),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(table.resolve("orders").await[0].grpc.port(), 7001);
        assert_eq!(table.resolve("carts.prod").await.len(), 2);
        assert!(table.resolve("nobody").await.is_empty());

        let dns = Resolver::from_spec(
            &spec("nameResolution:\n  component: dns\n  configuration:\n    template: \"{appId}:7004\"\n"),
            None,
        )
        .unwrap()
        .unwrap();
        let found = dns.resolve("localhost").await;
        assert!(found.iter().any(|e| e.grpc.port() == 7004), "{found:?}");

        let local =
            Resolver::from_spec(&spec("features: []\n"), Some(Path::new("/tmp/x"))).unwrap();
        assert!(matches!(local, Some(Resolver::Local(_))));
    }

    #[test]
    fn bad_name_resolution_names_the_field() {
        let cases = [
            ("nameResolution:\n  component: consul\n", "component"),
            (
                "nameResolution:\n  component: static\n",
                "configuration.apps",
            ),
            (
                "nameResolution:\n  component: static\n  configuration:\n    apps:\n      a: nowhere\n",
                "configuration.apps",
            ),
            (
                "nameResolution:\n  component: dns\n  configuration:\n    template: host\n",
                "configuration.template",
            ),
        ];
        for (yaml, field) in cases {
            let err = Resolver::from_spec(&spec(yaml), None).unwrap_err();
            assert_eq!(err.field, field, "{yaml}");
        }
    }
}
