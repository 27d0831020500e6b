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

fn new_etag() -> i64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    i64::from_le_bytes(n) & i64::MAX
}

fn parse_etag(etag: &str) -> Result<i64, ComponentError> {
    etag.parse::<i64>().map_err(|_| {
        ComponentError::etag_invalid(format!("{etag:?} is not an ETag issued by this store"))
    })
}

/// `ttlInSeconds` → absolute expiry in ms; `None` for no expiry.
fn expiry(metadata: &HashMap<String, String>) -> Result<Option<i64>, ComponentError> {
    let Some(raw) = metadata.get("ttlInSeconds") else {
        return Ok(None);
    };
    match raw.trim().parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(secs) if secs > 0 => Ok(Some(now_ms().saturating_add(secs.saturating_mul(1000)))),
        _ => Err(ComponentError::invalid_argument(
            "metadata.ttlInSeconds",
            format!("{raw:?} must be a positive number of seconds, or -1 for none"),
        )),
    }
}

// === SQL helpers shared by single, bulk and transactional writes ===

/// A conditional write (an ETag, or first-write without one) as one
/// statement, the condition in its `WHERE`: each statement is a round trip
/// to sqlx's SQLite thread, so reading the current ETag first would double
/// the cost. Plain writes go through [`upsert_many`].
async fn set_in(
    conn: &mut SqliteConnection,
    table: &str,
    req: SetRequest,
) -> Result<(), ComponentError> {
    let expires_at = expiry(&req.metadata)?;
    let now = now_ms();
    let written = match &req.etag {
        Some(etag) => {
            let wanted = parse_etag(etag)?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET value = ?1, etag = ?2, expires_at = ?3
                 WHERE key = ?4 AND etag = ?5 AND (expires_at IS NULL OR expires_at > ?6)"
            )))
            .bind(&req.value)
            .bind(new_etag())
            .bind(expires_at)
            .bind(&req.key)
            .bind(wanted)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(sql("writing state"))?
        }
        // First write without an ETag: only where no live row exists.
        None => sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (key, value, etag, expires_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, etag = excluded.etag, expires_at = excluded.expires_at
             WHERE {table}.expires_at IS NOT NULL AND {table}.expires_at <= ?5"
        )))
        .bind(&req.key)
        .bind(&req.value)
        .bind(new_etag())
        .bind(expires_at)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(sql("writing state"))?,
    };
    if written.rows_affected() == 0 {
        return Err(ComponentError::etag_mismatch(match &req.etag {
            Some(etag) => format!("key {:?}: ETag {etag} is not the current one", req.key),
            None => format!(
                "key {:?} exists; first-write concurrency needs its ETag",
                req.key
            ),
        }));
    }
    Ok(())
}

/// Rows per multi-row upsert (4 parameters each, well under SQLite's limit).
const ROWS_PER_STATEMENT: usize = 200;

/// Whether `req` is a plain write: no ETag, not first-write.
fn is_plain(req: &SetRequest) -> bool {
    req.etag.is_none() && req.concurrency != Concurrency::FirstWrite
}

/// Plain writes of distinct keys, as one multi-row upsert per
/// [`ROWS_PER_STATEMENT`] rows.
async fn upsert_many(
    conn: &mut SqliteConnection,
    table: &str,
    reqs: &[SetRequest],
) -> Result<(), ComponentError> {
    for chunk in reqs.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = i * 4;
                format!("(?{}, ?{}, ?{}, ?{})", n + 1, n + 2, n + 3, n + 4)
            })
            .collect();
        let statement = format!(
            "INSERT INTO {table} (key, value, etag, expires_at) VALUES {}
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, etag = excluded.etag, expires_at = excluded.expires_at",
            rows.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for req in chunk {
            query = query
                .bind(&req.key)
                .bind(&req.value)
                .bind(new_etag())
                .bind(expiry(&req.metadata)?);
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(sql("writing state"))?;
    }
    Ok(())
}

/// Writes over ETags to distinct keys, as one `UPDATE ... FROM` per
/// [`ROWS_PER_STATEMENT`] rows; an ETag mismatch on any of them fails
/// them all (the caller's transaction rolls back) and names the first key
/// whose ETag is not the one given.
async fn update_many(
    conn: &mut SqliteConnection,
    table: &str,
    reqs: &[SetRequest],
) -> Result<(), ComponentError> {
    let now = now_ms();
    for chunk in reqs.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = i * 5 + 1;
                format!(
                    "(?{}, ?{}, ?{}, ?{}, ?{})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5
                )
            })
            .collect();
        let statement = format!(
            "WITH v(key, old, value, etag, expires_at) AS (VALUES {})
             UPDATE {table} SET value = v.value, etag = v.etag, expires_at = v.expires_at
             FROM v WHERE {table}.key = v.key AND {table}.etag = v.old
               AND ({table}.expires_at IS NULL OR {table}.expires_at > ?1)",
            rows.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement)).bind(now);
        let fresh: Vec<i64> = chunk.iter().map(|_| new_etag()).collect();
        for (req, etag) in chunk.iter().zip(&fresh) {
            let wanted = parse_etag(req.etag.as_deref().unwrap_or_default())?;
            query = query
                .bind(&req.key)
                .bind(wanted)
                .bind(&req.value)
                .bind(etag)
                .bind(expiry(&req.metadata)?);
        }
        let done = query
            .execute(&mut *conn)
            .await
            .map_err(sql("writing state"))?;
        if done.rows_affected() < chunk.len() as u64 {
            return Err(first_stale(conn, table, chunk, &fresh, now).await);
        }
    }
    Ok(())
}

/// The mismatch error for the first of `reqs` whose ETag was not current:
/// read inside the failing transaction, before it rolls back, where the
/// rows that matched carry their `fresh` ETag already.
async fn first_stale(
    conn: &mut SqliteConnection,
    table: &str,
    reqs: &[SetRequest],
    fresh: &[i64],
    now: i64,
) -> ComponentError {
    for (req, fresh) in reqs.iter().zip(fresh) {
        let current: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT etag FROM {table} WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)"
        )))
        .bind(&req.key)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .ok()
        .flatten();
        let given = req.etag.as_deref().unwrap_or_default();
        if current != Some(*fresh) {
            return ComponentError::etag_mismatch(format!(
                "key {:?}: ETag {given} is not the current one",
                req.key
            ));
        }
    }
    ComponentError::etag_mismatch("an ETag of the transaction is not the current one")
}

/// Whether no two of `ops` touch one key.
fn distinct_keys(ops: &[TransactionOperation]) -> bool {
    let mut keys = std::collections::HashSet::with_capacity(ops.len());
    ops.iter().all(|op| {
        keys.insert(match op {
            TransactionOperation::Set(req) => req.key.as_str(),
            TransactionOperation::Delete(req) => req.key.as_str(),
        })
    })
}

/// Apply `ops` on `conn`. Each statement is a round trip to sqlx's SQLite
/// thread, so writes of one kind go together: when no two ops touch one
/// key their order does not matter, and all plain writes go as one
/// statement and all writes over ETags as another (a batch of workflow
/// steps: history events, and instance records over their ETags);
/// otherwise, in order, runs of plain writes to distinct keys go as one.
async fn apply_ops(
    conn: &mut SqliteConnection,
    table: &str,
    ops: Vec<TransactionOperation>,
) -> Result<(), ComponentError> {
    if ops.len() > 1 && distinct_keys(&ops) {
        let (mut plain, mut guarded, mut rest) = (Vec::new(), Vec::new(), Vec::new());
        for op in ops {
            match op {
                TransactionOperation::Set(req) if is_plain(&req) => plain.push(req),
                TransactionOperation::Set(req) if req.etag.is_some() => guarded.push(req),
                other => rest.push(other),
            }
        }
        upsert_many(conn, table, &plain).await?;
        update_many(conn, table, &guarded).await?;
        for op in rest {
            match op {
                TransactionOperation::Set(req) => set_in(conn, table, req).await?,
                TransactionOperation::Delete(req) => delete_in(conn, table, req).await?,
            }
        }
        return Ok(());
    }
    let mut plain: Vec<SetRequest> = Vec::new();
    for op in ops {
        match op {
            TransactionOperation::Set(req) if is_plain(&req) => {
                // One upsert may not touch a row twice.
                if plain.iter().any(|p| p.key == req.key) {
                    upsert_many(conn, table, &plain).await?;
                    plain.clear();
                }
                plain.push(req);
            }
            other => {
                upsert_many(conn, table, &plain).await?;
                plain.clear();
                match other {
                    TransactionOperation::Set(req) => set_in(conn, table, req).await?,
                    TransactionOperation::Delete(req) => delete_in(conn, table, req).await?,
                }
            }
        }
    }
    upsert_many(conn, table, &plain).await
}

async fn delete_in(
    conn: &mut SqliteConnection,
    table: &str,
    req: DeleteRequest,
) -> Result<(), ComponentError> {
    if let Some(etag) = &req.etag {
        let wanted = parse_etag(etag)?;
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE key = ?1 AND etag = ?2 AND (expires_at IS NULL OR expires_at > ?3)"
        )))
        .bind(&req.key)
        .bind(wanted)
        .bind(now_ms())
        .execute(&mut *conn)
        .await
        .map_err(sql("deleting state"))?;
        if done.rows_affected() == 0 {
            return Err(ComponentError::etag_mismatch(format!(
                "key {:?}: ETag {etag} is not the current one",
                req.key
            )));
        }
        return Ok(());
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE key = ?1"
    )))
    .bind(&req.key)
    .execute(&mut *conn)
    .await
    .map_err(sql("deleting state"))?;
    Ok(())
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
