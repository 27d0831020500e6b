//! Gateway configuration: daprd's flag and environment names, validated
//! before any port is bound.
//!
//! Layering: built-in defaults < environment (`DAPR_*`, read through an
//! injected lookup so tests never touch the process environment) < flags.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// How the gateway calls the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum AppProtocol {
    /// HTTP/1.1 (daprd's default).
    #[default]
    Http,
    /// gRPC.
    Grpc,
}

/// Flags shared by `outrigger` (the gateway alone) and `outrigger run`.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// The app's id (default: "outrigger-app" when not given).
    #[arg(long = "app-id", env = "APP_ID")]
    pub app_id: Option<String>,
    /// Port the app listens on, if it serves callbacks.
    #[arg(long = "app-port")]
    pub app_port: Option<u16>,
    /// Reach the app on this Unix socket instead of `--app-port` (Outrigger's own flag).
    #[arg(long = "app-socket")]
    pub app_socket: Option<PathBuf>,
    /// Protocol the app speaks on its port.
    #[arg(long = "app-protocol", value_enum, default_value_t = AppProtocol::Http)]
    pub app_protocol: AppProtocol,
    /// Most events delivered to the app at once, across subscriptions (-1: no app-wide limit; 64 per subscription still apply).
    #[arg(long = "app-max-concurrency", default_value_t = -1, allow_negative_numbers = true)]
    pub app_max_concurrency: i64,
    /// Probe the app's health and pause deliveries while it is unhealthy.
    #[arg(long = "enable-app-health-check")]
    pub app_health_check: bool,
    /// HTTP path probed (HTTP apps; gRPC apps get `AppCallbackHealthCheck`).
    #[arg(long = "app-health-check-path", default_value = "/healthz")]
    pub app_health_path: String,
    /// Time between probes: seconds, or a duration such as `500ms`.
    #[arg(long = "app-health-probe-interval", default_value = "5")]
    pub app_health_interval: String,
    /// Time a probe may take: milliseconds, or a duration.
    #[arg(long = "app-health-probe-timeout", default_value = "500")]
    pub app_health_timeout: String,
    /// Consecutive failed probes that make the app unhealthy.
    #[arg(long = "app-health-threshold", default_value_t = 3)]
    pub app_health_threshold: u32,
    /// Port of the Dapr HTTP API (0 picks a free one).
    #[arg(
        long = "dapr-http-port",
        env = "DAPR_HTTP_PORT",
        default_value_t = 3500
    )]
    pub http_port: u16,
    /// Port of the Dapr gRPC API (0 picks a free one).
    #[arg(
        long = "dapr-grpc-port",
        env = "DAPR_GRPC_PORT",
        default_value_t = 50001
    )]
    pub grpc_port: u16,
    /// Address the API ports listen on.
    #[arg(long = "dapr-listen-address", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub listen_address: IpAddr,
    /// Folder of component resource YAML files (repeatable). `--components-path` is an alias.
    #[arg(long = "resources-path", alias = "components-path")]
    pub resources_path: Vec<PathBuf>,
    /// A Dapr `Configuration` YAML file.
    #[arg(long = "config")]
    pub config: Option<PathBuf>,
    /// Log level: debug, info, warn, error (`trace` is accepted; release
    /// builds compile trace events out). From `debug` on, every API call
    /// also has a span (route, building block, operation) that its log
    /// lines carry.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
    /// Threads that serve requests (Outrigger's own flag). One is fastest
    /// for a sidecar on a small machine: every request stays on one thread,
    /// with no hand-offs between threads (see BENCHMARKS.md); raise it for
    /// a gateway that has cores of its own and heavy traffic.
    #[arg(
        long = "worker-threads",
        env = "OUTRIGGER_WORKER_THREADS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub worker_threads: u16,
    /// Port of the Prometheus `/metrics` endpoint (0 disables it).
    #[arg(long = "metrics-port", default_value_t = 9090)]
    pub metrics_port: u16,
    /// Folder holding component sockets.
    #[arg(
        long = "components-sockets-folder",
        env = "DAPR_COMPONENTS_SOCKETS_FOLDER",
        default_value = "/tmp/dapr-components-sockets"
    )]
    pub sockets_folder: PathBuf,
    /// Largest request body the API accepts, in MB (Dapr's default is 4).
    #[arg(
        long = "max-body-size",
        alias = "dapr-http-max-request-size",
        default_value_t = 4
    )]
    pub max_body_mb: u64,
    /// Seconds to wait for a component's Init before reporting it not ready.
    #[arg(long = "component-init-timeout", default_value_t = 5)]
    pub component_init_timeout_secs: u64,
    /// Folder where the gateways of one machine register their app ids for
    /// service invocation (default `~/.outrigger/registry`).
    #[arg(long = "registry-folder", env = "OUTRIGGER_REGISTRY_FOLDER")]
    pub registry_folder: Option<PathBuf>,
    /// How long an actor host's leases outlive its last renewal (seconds or
    /// a duration such as `1500ms`); a dead gateway's actors move after this.
    #[arg(
        long = "actor-lease-ttl",
        env = "OUTRIGGER_ACTOR_LEASE_TTL",
        default_value = "5s"
    )]
    pub actor_lease_ttl: String,
    /// The address other gateways reach this one's gRPC API at, for actor
    /// calls (default: the listen address, or 127.0.0.1 when that is 0.0.0.0).
    #[arg(long = "advertise-address", env = "OUTRIGGER_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<String>,
}

/// How the app's health is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppHealthCheck {
    /// HTTP path.
    pub path: String,
    /// Between probes.
    pub interval: Duration,
    /// Per probe.
    pub timeout: Duration,
    /// Failures before unhealthy.
    pub threshold: u32,
}

/// A number in `unit`, or a duration such as `250ms`.
fn duration_flag(flag: &'static str, raw: &str, unit: Duration) -> Result<Duration, ConfigError> {
    if let Ok(n) = raw.trim().parse::<u32>() {
        return Ok(unit * n);
    }
    humantime::parse_duration(raw.trim()).map_err(|e| ConfigError::Flag {
        flag,
        reason: format!("{raw:?} is not a duration: {e}"),
    })
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The app id.
    pub app_id: String,
    /// App port, if any.
    pub app_port: Option<u16>,
    /// App protocol.
    pub app_protocol: AppProtocol,
    /// App Unix socket, used instead of the port when set.
    pub app_socket: Option<PathBuf>,
    /// App-wide delivery limit, if any.
    pub app_max_concurrency: Option<usize>,
    /// App health probing, when enabled.
    pub app_health: Option<AppHealthCheck>,
    /// HTTP API port.
    pub http_port: u16,
    /// gRPC API port.
    pub grpc_port: u16,
    /// Listen address.
    pub listen_address: IpAddr,
    /// Resource folders.
    pub resources_paths: Vec<PathBuf>,
    /// Configuration file.
    pub config_file: Option<PathBuf>,
    /// Log filter.
    pub log_level: String,
    /// Metrics port; `None` when disabled.
    pub metrics_port: Option<u16>,
    /// Component socket folder.
    pub sockets_folder: PathBuf,
    /// Body limit in bytes.
    pub max_body_bytes: usize,
    /// Component Init timeout.
    pub component_init_timeout: Duration,
    /// Token apps must present (`DAPR_API_TOKEN`).
    pub api_token: Option<String>,
    /// Token the gateway presents to the app (`APP_API_TOKEN`).
    pub app_api_token: Option<String>,
    /// Local name-resolution folder; `None` when there is no home folder.
    pub registry_folder: Option<PathBuf>,
    /// Actor lease time-to-live.
    pub actor_lease_ttl: Duration,
    /// Host (name or IP) peers use for actor calls to this gateway.
    pub advertise_address: Option<String>,
}

/// Invalid configuration; the message names the flag or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag with a bad value.
    #[error("{flag}: {reason}")]
    Flag {
        /// The flag, e.g. `--app-id`.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A path that does not exist or is not what it should be.
    #[error("{flag} {path}: {reason}")]
    Path {
        /// The flag naming the path.
        flag: &'static str,
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl GatewayArgs {
    /// Check everything and derive the [`Config`]; `env` reads the tokens.
    ///
    /// # Errors
    /// The first invalid flag or path, named.
    pub fn validate(self, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let app_id = self.app_id.unwrap_or_else(|| "outrigger-app".to_owned());
        if app_id.is_empty()
            || app_id.contains("||")
            || !app_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ConfigError::Flag {
                flag: "--app-id",
                reason: format!("{app_id:?} must be letters, digits, '-', '_' or '.'"),
            });
        }
        if self.http_port != 0 && self.http_port == self.grpc_port {
            return Err(ConfigError::Flag {
                flag: "--dapr-grpc-port",
                reason: format!("{} is also the HTTP port", self.grpc_port),
            });
        }
        if self.app_port == Some(0) {
            return Err(ConfigError::Flag {
                flag: "--app-port",
                reason: "must be a port number between 1 and 65535".into(),
            });
        }
        for path in &self.resources_path {
            if !path.is_dir() {
                return Err(ConfigError::Path {
                    flag: "--resources-path",
                    path: path.clone(),
                    reason: "is not a readable folder".into(),
                });
            }
        }
        if let Some(file) = &self.config
            && !file.is_file()
        {
            return Err(ConfigError::Path {
                flag: "--config",
                path: file.clone(),
                reason: "is not a readable file".into(),
            });
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return Err(ConfigError::Flag {
                flag: "--log-level",
                reason: format!(
                    "{:?} is not a log level (trace, debug, info, warn, error)",
                    self.log_level
                ),
            });
        }
        if self.app_max_concurrency == 0 || self.app_max_concurrency < -1 {
            return Err(ConfigError::Flag {
                flag: "--app-max-concurrency",
                reason: "must be a positive number, or -1 for no limit".into(),
            });
        }
        let app_health = if self.app_health_check {
            if self.app_health_threshold == 0 {
                return Err(ConfigError::Flag {
                    flag: "--app-health-threshold",
                    reason: "must be at least 1".into(),
                });
            }
            Some(AppHealthCheck {
                path: self.app_health_path.clone(),
                interval: duration_flag(
                    "--app-health-probe-interval",
                    &self.app_health_interval,
                    Duration::from_secs(1),
                )?,
                timeout: duration_flag(
                    "--app-health-probe-timeout",
                    &self.app_health_timeout,
                    Duration::from_millis(1),
                )?,
                threshold: self.app_health_threshold,
            })
        } else {
            None
        };
        if self.max_body_mb == 0 {
            return Err(ConfigError::Flag {
                flag: "--max-body-size",
                reason: "must be at least 1 (MB)".into(),
            });
        }
        let actor_lease_ttl = duration_flag(
            "--actor-lease-ttl",
            &self.actor_lease_ttl,
            Duration::from_secs(1),
        )?;
        if actor_lease_ttl < Duration::from_millis(500) {
            return Err(ConfigError::Flag {
                flag: "--actor-lease-ttl",
                reason: format!("{actor_lease_ttl:?} is too short (at least 500ms)"),
            });
        }
        let max_body_bytes =
            usize::try_from(self.max_body_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        Ok(Config {
            app_id,
            app_port: self.app_port,
            app_protocol: self.app_protocol,
            app_socket: self.app_socket,
            app_health,
            app_max_concurrency: usize::try_from(self.app_max_concurrency)
                .ok()
                .filter(|n| *n > 0),
            http_port: self.http_port,
            grpc_port: self.grpc_port,
            listen_address: self.listen_address,
            resources_paths: self.resources_path,
            config_file: self.config,
            log_level: self.log_level,
            metrics_port: (self.metrics_port != 0).then_some(self.metrics_port),
            sockets_folder: self.sockets_folder,
            max_body_bytes,
            component_init_timeout: Duration::from_secs(self.component_init_timeout_secs.max(1)),
            api_token: env("DAPR_API_TOKEN").filter(|t| !t.is_empty()),
            app_api_token: env("APP_API_TOKEN").filter(|t| !t.is_empty()),
            actor_lease_ttl,
            advertise_address: self.advertise_address.filter(|a| !a.is_empty()),
            registry_folder: self.registry_folder.or_else(|| {
                env("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|home| PathBuf::from(home).join(".outrigger/registry"))
            }),
        })
    }
}
