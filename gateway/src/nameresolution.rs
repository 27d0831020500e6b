//! Local name resolution: the gateways of one machine find each other
//! through a shared folder, with no multicast and nothing to install.
//!
//! Each gateway writes `<folder>/<app-id>/<pid>-<port>.json` with its gRPC
//! address when it starts and removes it when it stops. A gateway killed
//! with SIGKILL leaves its file behind: entries whose process no longer
//! exists are skipped and deleted, and a caller that cannot connect to an
//! entry tries the next one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
}

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
        assert_eq!(registry.resolve("orders").len(), 1);
        assert!(!stale.exists(), "stale entry removed");

        drop(registration);
        assert!(registry.resolve("orders").is_empty());
    }
}
