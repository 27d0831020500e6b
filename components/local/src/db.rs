//! Opening the SQLite file and checking metadata keys.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use outrigger_component_sdk::{ComponentError, Metadata};
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

/// Refuse keys this component does not know (Dapr's generic keys pass).
///
/// # Errors
/// `InvalidArgument` naming the unknown key and listing the known ones.
pub fn check_keys(metadata: &Metadata, known: &[&str]) -> Result<(), ComponentError> {
    metadata.check_keys(known)
}

/// The default database file: `$OUTRIGGER_DATA_DIR/outrigger.db`, else
/// `~/.outrigger/data/outrigger.db` (what `outrigger run` also uses).
pub fn default_database() -> PathBuf {
    let dir = std::env::var_os("OUTRIGGER_DATA_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir)
                .join(".outrigger")
                .join("data")
        });
    dir.join("outrigger.db")
}

/// A SQL identifier we can splice into statements.
///
/// # Errors
/// When `name` is not `[A-Za-z_][A-Za-z0-9_]*` (at most 64 characters).
pub fn identifier(key: &str, name: &str) -> Result<String, ComponentError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(ComponentError::invalid_argument(
            key,
            format!("{name:?} is not a valid table name (letters, digits, '_')"),
        ))
    }
}

/// How to open the database named by `databaseFile` (created when
/// missing), in WAL mode with `busyTimeout` (default 2 s).
///
/// # Errors
/// A bad duration, or a folder that cannot be created (named).
fn options(metadata: &Metadata) -> Result<(SqliteConnectOptions, PathBuf), ComponentError> {
    let file = metadata
        .get("databaseFile")
        .or_else(|| metadata.get("connectionString"))
        .map(PathBuf::from)
        .unwrap_or_else(default_database);
    let busy = metadata
        .duration("busyTimeout")?
        .unwrap_or(Duration::from_secs(2));
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            ComponentError::invalid_argument(
                "databaseFile",
                format!("cannot create folder {}: {e}", parent.display()),
            )
        })?;
    }
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|e| ComponentError::internal(e.to_string()))?
        .filename(&file)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(busy);
    Ok((options, file))
}

fn cannot_open(file: &std::path::Path) -> impl Fn(sqlx::Error) -> ComponentError + '_ {
    move |e| {
        ComponentError::invalid_argument(
            "databaseFile",
            format!("cannot open {}: {e}", file.display()),
        )
    }
}

/// A pool on the database named by `databaseFile` (see [`connect`]).
///
/// sqlx's default pool pings a connection before lending it; SQLite
/// connections do not drop like network ones, and each ping is one more
/// round trip to the connection's thread, so it is off.
///
/// # Errors
/// A bad path or timeout, or SQLite failing to open the file (named).
pub async fn open(metadata: &Metadata) -> Result<SqlitePool, ComponentError> {
    let (options, file) = options(metadata)?;
    SqlitePoolOptions::new()
        .max_connections(8)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(cannot_open(&file))
}

/// `count` connections of their own (outside any pool) on the database
/// named by `databaseFile`, in WAL mode with `busyTimeout` (default 2 s).
///
/// A pooled connection costs two more round trips to its SQLite thread per
/// use than the statement itself (sqlx pings it when it goes back to the
/// pool, and when lent unless told not to); the state store's hot path
/// keeps connections of its own instead.
///
/// # Errors
/// A bad path or timeout, or SQLite failing to open the file (named).
pub async fn connect(
    metadata: &Metadata,
    count: usize,
) -> Result<Vec<SqliteConnection>, ComponentError> {
    let (options, file) = options(metadata)?;
    let mut connections = Vec::with_capacity(count);
    for _ in 0..count {
        connections.push(options.connect().await.map_err(cannot_open(&file))?);
    }
    Ok(connections)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Map a SQLite error to a component error naming what was being done.
pub fn sql(action: &'static str) -> impl Fn(sqlx::Error) -> ComponentError {
    move |e| ComponentError::internal(format!("{action}: {e}"))
}
