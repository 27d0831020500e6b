//! The multi-app run template: Dapr's keys read into one [`AppPlan`] per
//! app (the flags, folder, environment and command of its `outrigger run`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

/// The template read when `-f` names a folder.
pub const DEFAULT_TEMPLATE: &str = "dapr.yaml";

const TOP: &[&str] = &["version", "name", "common", "apps"];
/// Dapr's settings shared between `common` and each app.
const SHARED: &[&str] = &[
    "configFilePath",
    "appProtocol",
    "apiListenAddresses",
    "enableProfiling",
    "logLevel",
    "appMaxConcurrency",
    "placementHostAddress",
    "resourcesPath",
    "resourcesPaths",
    "appSSL",
    "maxBodySize",
    "readBufferSize",
    "enableAppHealthCheck",
    "appHealthCheckPath",
    "appHealthProbeInterval",
    "appHealthProbeTimeout",
    "appHealthThreshold",
    "enableApiLogging",
    "runtimePath",
    "env",
    "daprdLogDestination",
    "appLogDestination",
    "schedulerHostAddress",
];
/// Dapr's per-app settings.
const APP_ONLY: &[&str] = &[
    "appID",
    "appDirPath",
    "appChannelAddress",
    "appPort",
    "daprHTTPPort",
    "daprGRPCPort",
    "profilePort",
    "command",
    "metricsPort",
    "unixDomainSocket",
    "daprInternalGRPCPort",
    "containerImage",
    "containerImagePullPolicy",
    "createService",
];
/// Accepted for compatibility; they change nothing here.
const IGNORED: &[&str] = &[
    "enableProfiling",
    "profilePort",
    "placementHostAddress",
    "schedulerHostAddress",
    "runtimePath",
    "appSSL",
    "readBufferSize",
    "enableApiLogging",
    "unixDomainSocket",
    "daprInternalGRPCPort",
    "containerImage",
    "containerImagePullPolicy",
    "createService",
    "daprdLogDestination",
    "appLogDestination",
    "appChannelAddress",
];
/// Integer settings and the `outrigger run` flag each becomes (values ≤ 0
/// mean "not set", as in Dapr's templates).
const INT_FLAGS: &[(&str, &str)] = &[
    ("appPort", "--app-port"),
    ("daprHTTPPort", "--dapr-http-port"),
    ("daprGRPCPort", "--dapr-grpc-port"),
    ("metricsPort", "--metrics-port"),
    ("appMaxConcurrency", "--app-max-concurrency"),
    ("appHealthProbeInterval", "--app-health-probe-interval"),
    ("appHealthProbeTimeout", "--app-health-probe-timeout"),
    ("appHealthThreshold", "--app-health-threshold"),
];
/// String settings and their flags.
const TEXT_FLAGS: &[(&str, &str)] = &[
    ("appProtocol", "--app-protocol"),
    ("logLevel", "--log-level"),
    ("appHealthCheckPath", "--app-health-check-path"),
];

/// A template that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The template.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key is unknown, missing or of the wrong kind.
    #[error("{path}: {field}: {reason}")]
    Invalid {
        /// The template.
        path: PathBuf,
        /// e.g. `apps[1].appDirPath`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// An app's `outrigger run` could not be started.
    #[error("starting {app_id}: {source}")]
    Spawn {
        /// The app.
        app_id: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One app of the template, as the `outrigger run` that starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPlan {
    /// `appID`.
    pub app_id: String,
    /// `appDirPath`, absolute: the working folder.
    pub dir: PathBuf,
    /// Flags for `outrigger run`.
    pub args: Vec<String>,
    /// Extra environment (`common.env` then the app's `env`).
    pub env: BTreeMap<String, String>,
    /// The app command (empty: the gateway alone).
    pub command: Vec<String>,
}

struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn bad(&self, field: impl Into<String>, reason: impl Into<String>) -> TemplateError {
        TemplateError::Invalid {
            path: self.path.to_path_buf(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn map<'v>(
        &self,
        value: &'v Value,
        at: &str,
        keys: &[&[&str]],
    ) -> Result<&'v Mapping, TemplateError> {
        let map = value
            .as_mapping()
            .ok_or_else(|| self.bad(at, "must be a map"))?;
        for key in map.keys() {
            let name = key.as_str().unwrap_or_default();
            if !keys.iter().any(|set| set.contains(&name)) {
                let field = if at.is_empty() {
                    name.to_owned()
                } else {
                    format!("{at}.{name}")
                };
                return Err(self.bad(field, "unknown key"));
            }
        }
        Ok(map)
    }

    fn text(&self, value: &Value, at: &str) -> Result<String, TemplateError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(self.bad(at, "must be a string")),
        }
    }

    fn paths(&self, value: &Value, at: &str) -> Result<Vec<String>, TemplateError> {
        match value {
            Value::Sequence(list) => list
                .iter()
                .enumerate()
                .map(|(i, v)| self.text(v, &format!("{at}[{i}]")))
                .collect(),
            Value::Null => Ok(Vec::new()),
            other => Ok(vec![self.text(other, at)?]),
        }
    }

    /// `path` relative to `base`; it must exist.
    fn existing(&self, base: &Path, path: &str, at: &str) -> Result<PathBuf, TemplateError> {
        let expanded = match path.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from(path), |h| PathBuf::from(h).join(rest)),
            None => PathBuf::from(path),
        };
        let full = base.join(expanded);
        let full = std::path::absolute(&full).unwrap_or(full);
        if full.exists() {
            Ok(full)
        } else {
            Err(self.bad(at, format!("{} does not exist", full.display())))
        }
    }
}

/// Read the template at `path` (a folder means its `dapr.yaml`).
///
/// # Errors
/// An unreadable file, malformed YAML, an unknown key, a missing
/// `version`/`apps`/`appDirPath`, or a value of the wrong kind, naming the
/// file and the key.
pub fn load(path: &Path) -> Result<Vec<AppPlan>, TemplateError> {
    let path = if path.is_dir() {
        path.join(DEFAULT_TEMPLATE)
    } else {
        path.to_path_buf()
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    let text = std::fs::read_to_string(&path).map_err(|source| TemplateError::Io {
        path: path.clone(),
        source,
    })?;
    let r = Reader { path: &path };
    let doc: Value = serde_yaml_ng::from_str(&text).map_err(|e| r.bad("(yaml)", e.to_string()))?;
    let top = r.map(&doc, "", &[TOP])?;
    match top.get("version").and_then(Value::as_u64) {
        Some(1) => {}
        Some(other) => return Err(r.bad("version", format!("{other} is not a known version (1)"))),
        None => return Err(r.bad("version", "required: 1")),
    }
    let base = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    let empty = Mapping::new();
    let common = match top.get("common") {
        None | Some(Value::Null) => &empty,
        Some(value) => r.map(value, "common", &[SHARED])?,
    };
    let apps = match top.get("apps") {
        Some(Value::Sequence(apps)) if !apps.is_empty() => apps,
        _ => return Err(r.bad("apps", "required: a list of apps")),
    };
    let mut ignored = Vec::new();
    let mut plans = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        let at = format!("apps[{i}]");
        let app = r.map(app, &at, &[SHARED, APP_ONLY])?;
        let dir = match app.get("appDirPath") {
            Some(v) => r.existing(
                &base,
                &r.text(v, &format!("{at}.appDirPath"))?,
                &format!("{at}.appDirPath"),
            )?,
            None => return Err(r.bad(format!("{at}.appDirPath"), "required")),
        };
        let app_id = match app.get("appID") {
            Some(v) => r.text(v, &format!("{at}.appID"))?,
            None => dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        if app_id.is_empty() {
            return Err(r.bad(
                format!("{at}.appID"),
                "required (appDirPath has no folder name)",
            ));
        }
        // A setting of the app, else of `common` (with where it came from).
        let setting = |key: &str| -> Option<(&Value, String)> {
            app.get(key)
                .map(|v| (v, format!("{at}.{key}")))
                .or_else(|| common.get(key).map(|v| (v, format!("common.{key}"))))
        };
        let mut args = vec!["--app-id".to_owned(), app_id.clone()];
        for (key, flag) in INT_FLAGS {
            if let Some((value, field)) = setting(key) {
                let n = value
                    .as_i64()
                    .ok_or_else(|| r.bad(&field, "must be a whole number"))?;
                if n > 0 {
                    args.extend([(*flag).to_owned(), n.to_string()]);
                }
            }
        }
        for (key, flag) in TEXT_FLAGS {
            if let Some((value, field)) = setting(key) {
                args.extend([(*flag).to_owned(), r.text(value, &field)?]);
            }
        }
        if let Some((value, field)) = setting("apiListenAddresses") {
            let first = r.text(value, &field)?;
            if let Some(address) = first.split(',').map(str::trim).find(|a| !a.is_empty()) {
                args.extend(["--dapr-listen-address".to_owned(), address.to_owned()]);
            }
        }
        if let Some((value, field)) = setting("enableAppHealthCheck")
            && value
                .as_bool()
                .ok_or_else(|| r.bad(&field, "must be true or false"))?
        {
            args.push("--enable-app-health-check".to_owned());
        }
        if let Some((value, field)) = setting("maxBodySize") {
            args.extend([
                "--max-body-size".to_owned(),
                megabytes(&r.text(value, &field)?)
                    .ok_or_else(|| r.bad(&field, "must be a size in MB, e.g. 4Mi"))?,
            ]);
        }
        // Resources and configuration: the app's, its `.dapr` folder, `common`'s.
        let mut resources = Vec::new();
        for key in ["resourcesPaths", "resourcesPath"] {
            if let Some(value) = app.get(key) {
                for (j, p) in r.paths(value, &format!("{at}.{key}"))?.iter().enumerate() {
                    resources.push(r.existing(&dir, p, &format!("{at}.{key}[{j}]"))?);
                }
            }
        }
        let local = dir.join(".dapr").join("resources");
        if resources.is_empty() && local.is_dir() {
            resources.push(local);
        }
        if resources.is_empty() {
            for key in ["resourcesPaths", "resourcesPath"] {
                if let Some(value) = common.get(key) {
                    for (j, p) in r.paths(value, &format!("common.{key}"))?.iter().enumerate() {
                        resources.push(r.existing(&base, p, &format!("common.{key}[{j}]"))?);
                    }
                }
            }
        }
        for folder in resources {
            args.extend(["--resources-path".to_owned(), folder.display().to_string()]);
        }
        let local = dir.join(".dapr").join("config.yaml");
        let config = match (app.get("configFilePath"), common.get("configFilePath")) {
            (Some(v), _) => Some(r.existing(
                &dir,
                &r.text(v, &format!("{at}.configFilePath"))?,
                &format!("{at}.configFilePath"),
            )?),
            _ if local.is_file() => Some(local),
            (None, Some(v)) => Some(r.existing(
                &base,
                &r.text(v, "common.configFilePath")?,
                "common.configFilePath",
            )?),
            (None, None) => None,
        };
        if let Some(config) = config {
            args.extend(["--config".to_owned(), config.display().to_string()]);
        }
        let mut env = BTreeMap::new();
        for (source, field) in [
            (common, "common.env".to_owned()),
            (app, format!("{at}.env")),
        ] {
            if let Some(vars) = source.get("env").filter(|v| !v.is_null()) {
                let vars = vars
                    .as_mapping()
                    .ok_or_else(|| r.bad(&field, "must be a map"))?;
                for (k, v) in vars {
                    let k = r.text(k, &field)?;
                    let v = r.text(v, &format!("{field}.{k}"))?;
                    env.insert(k, v);
                }
            }
        }
        let command = match app.get("command") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(parts)) => parts
                .iter()
                .enumerate()
                .map(|(j, p)| r.text(p, &format!("{at}.command[{j}]")))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(r.bad(
                    format!("{at}.command"),
                    "must be a list, e.g. [\"python3\", \"app.py\"]",
                ));
            }
        };
        for key in app.keys().chain(common.keys()).filter_map(Value::as_str) {
            if IGNORED.contains(&key) && !ignored.contains(&key) {
                ignored.push(key);
            }
        }
        plans.push(AppPlan {
            app_id,
            dir,
            args,
            env,
            command,
        });
    }
    if !ignored.is_empty() {
        tracing::warn!(template = %path.display(), keys = %ignored.join(", "), "template keys with no effect in outrigger are ignored");
    }
    Ok(plans)
}

/// `4`, `4M`, `4Mi`, `4MB` → `4` (megabytes).
fn megabytes(size: &str) -> Option<String> {
    let digits = size
        .trim()
        .trim_end_matches("Mi")
        .trim_end_matches("MB")
        .trim_end_matches('M');
    digits.parse::<u64>().ok().map(|n| n.to_string())
}
