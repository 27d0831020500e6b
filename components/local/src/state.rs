//! `state.sqlite`: a state store on one SQLite table.
//!
//! Rows are `(key, value, etag, expires_at)`. The ETag is a random 63-bit
//! number drawn on every write, so a delete-then-recreate never revives an
//! old ETag. Expired rows are invisible at once (every read filters on
//! `expires_at`) and removed by a background sweep every `cleanupInterval`.
//! Transactions and bulk writes run in one SQLite transaction. The table
//! name is the only text spliced into SQL, and `db::identifier` admits only
//! `[A-Za-z_][A-Za-z0-9_]*` (hence the `AssertSqlSafe`s).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use outrigger_component_sdk::state::*;
use outrigger_component_sdk::{ComponentError, Metadata, async_trait};
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::{Mutex, MutexGuard};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::db::{self, now_ms, sql};

mod write;

use write::{ROWS_PER_STATEMENT, apply_ops};

const KEYS: &[&str] = &[
    "databaseFile",
    "connectionString",
    "tableName",
    "timeout",
    "cleanupInterval",
    "busyTimeout",
];

/// Reader connections (WAL lets them read while one writes).
const READERS: usize = 4;

struct Open {
    /// The one writing connection of this process. SQLite allows one
    /// writer anyway, and a writer that finds the lock taken sleeps in
    /// SQLite's busy handler (1, 2, 5, 10... ms), long after the lock is
    /// free again; queueing here hands the lock over at once.
    writer: Arc<Mutex<SqliteConnection>>,
    readers: Vec<Mutex<SqliteConnection>>,
    /// Which reader a caller waits for when all are busy.
    next_reader: AtomicUsize,
    table: String,
    timeout: Duration,
    _sweeper: DropGuard,
}

/// The SQLite state store. Configure with `Init`.
#[derive(Default)]
pub struct SqliteState {
    open: OnceLock<Open>,
}

/// The item in columns `value, etag, expires_at` of `row` from `first` on.
fn item(row: &sqlx::sqlite::SqliteRow, first: usize) -> StateItem {
    let mut metadata = HashMap::new();
    if let Some(at) = row
        .get::<Option<i64>, _>(first + 2)
        .and_then(chrono::DateTime::from_timestamp_millis)
    {
        metadata.insert(
            "ttlExpireTime".to_owned(),
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    StateItem {
        data: row.get(first),
        etag: Some(row.get::<i64, _>(first + 1).to_string()),
        metadata,
        content_type: None,
    }
}

// === impl SqliteState ===

impl Open {
    /// A free reader, else the next one in turn once it is free.
    async fn reader(&self) -> MutexGuard<'_, SqliteConnection> {
        for reader in &self.readers {
            if let Ok(free) = reader.try_lock() {
                return free;
            }
        }
        let n = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[n].lock().await
    }
}

impl SqliteState {
    fn open(&self) -> Result<&Open, ComponentError> {
        self.open.get().ok_or_else(|| {
            ComponentError::failed_precondition("the state store is not initialised")
        })
    }

    async fn in_transaction(&self, ops: Vec<TransactionOperation>) -> Result<(), ComponentError> {
        let open = self.open()?;
        let work = async {
            let mut conn = open.writer.lock().await;
            if ops.len() == 1 {
                // One statement is atomic on its own: no BEGIN and COMMIT
                // round trips.
                return apply_ops(&mut conn, &open.table, ops).await;
            }
            // IMMEDIATE takes the write lock up front: a deferred transaction that
            // reads and then writes can fail outright when another writer
            // commits in between.
            let mut tx = conn
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(sql("starting a transaction"))?;
            apply_ops(&mut tx, &open.table, ops).await?;
            // Dropping `tx` without commit (any `?` above) rolls everything back.
            tx.commit().await.map_err(sql("committing"))
        };
        tokio::time::timeout(open.timeout, work)
            .await
            .map_err(|_| {
                ComponentError::unavailable(format!(
                    "the database did not answer within {:?}",
                    open.timeout
                ))
            })?
    }
}

#[async_trait]
impl StateStore for SqliteState {
    #[tracing::instrument(skip_all, fields(component = "state.sqlite"))]
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        db::check_keys(&metadata, KEYS)?;
        let table = db::identifier("tableName", metadata.get("tableName").unwrap_or("state"))?;
        let timeout = metadata
            .duration("timeout")?
            .unwrap_or(Duration::from_secs(20));
        let cleanup = metadata
            .duration("cleanupInterval")?
            .unwrap_or(Duration::from_secs(3600));
        let mut connections = db::connect(&metadata, READERS + 1).await?;
        let mut writer = connections
            .pop()
            .ok_or_else(|| ComponentError::internal("no connection to the database was opened"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                key TEXT PRIMARY KEY NOT NULL,
                value BLOB NOT NULL,
                etag INTEGER NOT NULL,
                expires_at INTEGER
            )"
        )))
        .execute(&mut writer)
        .await
        .map_err(sql("creating the state table"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE INDEX IF NOT EXISTS {table}_expires ON {table} (expires_at) WHERE expires_at IS NOT NULL")))
            .execute(&mut writer)
            .await
            .map_err(sql("creating the expiry index"))?;
        let writer = Arc::new(Mutex::new(writer));

        let stop = CancellationToken::new();
        if !cleanup.is_zero() {
            let (writer, table, token) = (writer.clone(), table.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(cleanup) => {}
                    }
                    let swept = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE expires_at IS NOT NULL AND expires_at <= ?1"
                    )))
                    .bind(now_ms())
                    .execute(&mut *writer.lock().await)
                    .await;
                    match swept {
                        Ok(done) => {
                            tracing::debug!(rows = done.rows_affected(), "swept expired state")
                        }
                        Err(err) => tracing::warn!(error = %err, "sweeping expired state failed"),
                    }
                }
            });
        }
        self.open
            .set(Open {
                writer,
                readers: connections.into_iter().map(Mutex::new).collect(),
                next_reader: AtomicUsize::new(0),
                table,
                timeout,
                _sweeper: stop.drop_guard(),
            })
            .map_err(|_| {
                ComponentError::failed_precondition("Init was already called on this instance")
            })
    }

    fn features(&self) -> Vec<StateFeature> {
        vec![
            StateFeature::Etag,
            StateFeature::Transactional,
            StateFeature::Ttl,
            StateFeature::QueryApi,
        ]
    }

    async fn get(&self, req: GetRequest) -> Result<Option<StateItem>, ComponentError> {
        let open = self.open()?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT value, etag, expires_at FROM {} WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
            open.table
        )))
        .bind(&req.key)
        .bind(now_ms())
        .fetch_optional(&mut *open.reader().await)
        .await
        .map_err(sql("reading state"))?;
        Ok(row.map(|r| item(&r, 0)))
    }

    /// One statement per [`ROWS_PER_STATEMENT`] keys (each statement is a
    /// round trip to the SQLite thread; the default reads key by key).
    async fn bulk_get(&self, reqs: Vec<GetRequest>) -> Result<Vec<BulkGetItem>, ComponentError> {
        let open = self.open()?;
        let mut found: HashMap<String, StateItem> = HashMap::with_capacity(reqs.len());
        let now = now_ms();
        let mut conn = open.reader().await;
        for chunk in reqs.chunks(ROWS_PER_STATEMENT) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
            let statement = format!(
                "SELECT key, value, etag, expires_at FROM {} WHERE (expires_at IS NULL OR expires_at > ?1) AND key IN ({})",
                open.table,
                marks.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement)).bind(now);
            for req in chunk {
                query = query.bind(&req.key);
            }
            for row in query
                .fetch_all(&mut *conn)
                .await
                .map_err(sql("reading state"))?
            {
                found.insert(row.get(0), item(&row, 1));
            }
        }
        Ok(reqs
            .into_iter()
            .map(|req| BulkGetItem {
                item: found.get(&req.key).cloned(),
                key: req.key,
                error: None,
            })
            .collect())
    }

    async fn set(&self, req: SetRequest) -> Result<(), ComponentError> {
        self.in_transaction(vec![TransactionOperation::Set(req)])
            .await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), ComponentError> {
        self.in_transaction(vec![TransactionOperation::Delete(req)])
            .await
    }

    async fn bulk_set(&self, reqs: Vec<SetRequest>) -> Result<(), ComponentError> {
        self.in_transaction(reqs.into_iter().map(TransactionOperation::Set).collect())
            .await
    }

    async fn bulk_delete(&self, reqs: Vec<DeleteRequest>) -> Result<(), ComponentError> {
        self.in_transaction(reqs.into_iter().map(TransactionOperation::Delete).collect())
            .await
    }

    async fn transact(&self, req: TransactionRequest) -> Result<(), ComponentError> {
        self.in_transaction(req.operations).await
    }

    async fn query(&self, req: QueryRequest) -> Result<QueryResponse, ComponentError> {
        let open = self.open()?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT key, value, etag FROM {} WHERE expires_at IS NULL OR expires_at > ?1 ORDER BY key",
            open.table
        )))
        .bind(now_ms())
        .fetch_all(&mut *open.reader().await)
        .await
        .map_err(sql("querying state"))?;
        let items = rows
            .into_iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    r.get::<Vec<u8>, _>(1),
                    r.get::<i64, _>(2),
                )
            })
            .collect();
        outrigger_component_sdk::state::query::run(&req, items)
    }

    async fn ping(&self) -> Result<(), ComponentError> {
        let open = self.open()?;
        sqlx::query("SELECT 1")
            .execute(&mut *open.reader().await)
            .await
            .map_err(sql("ping"))?;
        Ok(())
    }
}
