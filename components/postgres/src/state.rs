//! `state.postgresql`: a state store on one PostgreSQL table.
//!
//! Every conditional write is a single statement whose `WHERE` clause is the
//! condition (`etag = $n`, or "no live row" for first-write), so two gateways
//! racing on one key get exactly one winner without explicit locks. Table
//! names come from metadata and are checked to be plain identifiers, the
//! only text spliced into SQL (hence the `AssertSqlSafe`s).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use outrigger_component_sdk::state::etag::{fresh as new_etag, parse as parse_etag};
use outrigger_component_sdk::state::*;
use outrigger_component_sdk::{ComponentError, Metadata, async_trait};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use tokio_util::sync::{CancellationToken, DropGuard};

const KEYS: &[&str] = &[
    "connectionString",
    "tableName",
    "metadataTableName",
    "timeout",
    "timeoutInSeconds",
    "cleanupInterval",
    "cleanupIntervalInSeconds",
    "maxConns",
];

/// Schema version this build migrates to.
const SCHEMA_VERSION: i64 = 2;

struct Open {
    pool: PgPool,
    table: String,
    timeout: Duration,
    _sweeper: DropGuard,
}

/// The PostgreSQL state store. Configure with `Init`.
#[derive(Default)]
pub struct PgState {
    open: OnceLock<Open>,
}

pub(crate) fn identifier(key: &str, name: &str) -> Result<String, ComponentError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(ComponentError::invalid_argument(
            key,
            format!("{name:?} is not a valid table name (letters, digits, '_')"),
        ))
    }
}

/// `ttlInSeconds` → seconds from now; `None` for no expiry.
fn ttl(metadata: &HashMap<String, String>) -> Result<Option<f64>, ComponentError> {
    match metadata
        .get("ttlInSeconds")
        .map(|v| v.trim().parse::<i64>())
    {
        None | Some(Ok(-1)) => Ok(None),
        Some(Ok(secs)) if secs > 0 => Ok(Some(secs as f64)),
        Some(_) => Err(ComponentError::invalid_argument(
            "metadata.ttlInSeconds",
            "must be a positive number of seconds, or -1 for none",
        )),
    }
}

pub(crate) fn sql(action: &'static str) -> impl Fn(sqlx::Error) -> ComponentError {
    move |e| {
        // SQLSTATE classes 08 (connection exception), 53 (insufficient
        // resources) and 57 (operator intervention: the server is shutting
        // down or restarting) mean "try again later", not a bad request.
        let transient = match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("53") || c.starts_with("57")),
            _ => false,
        };
        if transient {
            ComponentError::unavailable(format!("{action}: PostgreSQL is unavailable: {e}"))
        } else {
            ComponentError::internal(format!("{action}: {e}"))
        }
    }
}

async fn set_in(
    conn: &mut PgConnection,
    table: &str,
    req: SetRequest,
) -> Result<(), ComponentError> {
    let expires = ttl(&req.metadata)?;
    let etag = new_etag();
    // The query API works on this JSONB copy; values that are not JSON have none.
    let json = serde_json::from_slice::<serde_json::Value>(&req.value)
        .ok()
        .map(|v| v.to_string());
    let live = "(t.expires_at IS NULL OR t.expires_at > now())";
    let result = match (&req.etag, req.concurrency) {
        (Some(wanted), _) => sqlx::query(AssertSqlSafe(format!(
            "UPDATE {table} AS t SET value = $2, etag = $3, expires_at = now() + make_interval(secs => $4), updated_at = now(),
                 value_json = $6::jsonb
             WHERE key = $1 AND etag = $5 AND {live}"
        )))
        .bind(&req.key)
        .bind(&req.value)
        .bind(etag)
        .bind(expires)
        .bind(parse_etag(wanted)?)
        .bind(json.as_deref())
        .execute(&mut *conn)
        .await,
        (None, Concurrency::FirstWrite) => sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {table} AS t (key, value, etag, expires_at, updated_at, value_json)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4), now(), $5::jsonb)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = excluded.etag,
                 expires_at = excluded.expires_at, updated_at = now(), value_json = excluded.value_json
             WHERE NOT {live}"
        )))
        .bind(&req.key)
        .bind(&req.value)
        .bind(etag)
        .bind(expires)
        .bind(json.as_deref())
        .execute(&mut *conn)
        .await,
        (None, _) => sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {table} (key, value, etag, expires_at, updated_at, value_json)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4), now(), $5::jsonb)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = excluded.etag,
                 expires_at = excluded.expires_at, updated_at = now(), value_json = excluded.value_json"
        )))
        .bind(&req.key)
        .bind(&req.value)
        .bind(etag)
        .bind(expires)
        .bind(json.as_deref())
        .execute(&mut *conn)
        .await,
    };
    let done = result.map_err(sql("writing state"))?;
    if done.rows_affected() == 0 {
        return Err(ComponentError::etag_mismatch(match req.etag {
            Some(e) => format!("key {:?}: ETag {e} is not the current one", req.key),
            None => format!(
                "key {:?} exists; first-write concurrency needs its ETag",
                req.key
            ),
        }));
    }
    Ok(())
}

async fn delete_in(
    conn: &mut PgConnection,
    table: &str,
    req: DeleteRequest,
) -> Result<(), ComponentError> {
    match &req.etag {
        Some(wanted) => {
            let done = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} AS t WHERE key = $1 AND etag = $2 AND (t.expires_at IS NULL OR t.expires_at > now())"
            )))
            .bind(&req.key)
            .bind(parse_etag(wanted)?)
            .execute(&mut *conn)
            .await
            .map_err(sql("deleting state"))?;
            if done.rows_affected() == 0 {
                return Err(ComponentError::etag_mismatch(format!(
                    "key {:?}: ETag {wanted} is not the current one",
                    req.key
                )));
            }
        }
        None => {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE key = $1")))
                .bind(&req.key)
                .execute(&mut *conn)
                .await
                .map_err(sql("deleting state"))?;
        }
    }
    Ok(())
}

// === impl PgState ===

impl PgState {
    fn open(&self) -> Result<&Open, ComponentError> {
        self.open.get().ok_or_else(|| {
            ComponentError::failed_precondition("the state store is not initialised")
        })
    }

    async fn in_transaction(&self, ops: Vec<TransactionOperation>) -> Result<(), ComponentError> {
        let open = self.open()?;
        let work = async {
            // One operation is one statement, atomic on its own: skip the
            // BEGIN/COMMIT round trips.
            if let [_] = ops.as_slice() {
                let mut conn = open.pool.acquire().await.map_err(sql("connecting"))?;
                return match ops.into_iter().next() {
                    Some(TransactionOperation::Set(r)) => set_in(&mut conn, &open.table, r).await,
                    Some(TransactionOperation::Delete(r)) => {
                        delete_in(&mut conn, &open.table, r).await
                    }
                    None => Ok(()),
                };
            }
            let mut tx = open
                .pool
                .begin()
                .await
                .map_err(sql("starting a transaction"))?;
            for op in ops {
                match op {
                    TransactionOperation::Set(r) => set_in(&mut tx, &open.table, r).await?,
                    TransactionOperation::Delete(r) => delete_in(&mut tx, &open.table, r).await?,
                }
            }
            // Any `?` above drops `tx` uncommitted: PostgreSQL rolls it back.
            tx.commit().await.map_err(sql("committing"))
        };
        tokio::time::timeout(open.timeout, work)
            .await
            .map_err(|_| {
                ComponentError::unavailable(format!(
                    "PostgreSQL did not answer within {:?}",
                    open.timeout
                ))
            })?
    }
}

async fn migrate(pool: &PgPool, table: &str, metadata_table: &str) -> Result<(), ComponentError> {
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {metadata_table} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"
    )))
    .execute(pool)
    .await
    .map_err(sql("creating the metadata table"))?;
    let mut tx = pool.begin().await.map_err(sql("starting the migration"))?;
    // One migrator at a time across every process sharing the database.
    sqlx::query("SELECT pg_advisory_xact_lock(7240577202)")
        .execute(&mut *tx)
        .await
        .map_err(sql("locking for migration"))?;
    let version_key = format!("schema-version-{table}");
    let current: i64 = sqlx::query(AssertSqlSafe(format!(
        "SELECT value FROM {metadata_table} WHERE key = $1"
    )))
    .bind(&version_key)
    .fetch_optional(&mut *tx)
    .await
    .map_err(sql("reading the schema version"))?
    .and_then(|r| r.get::<String, _>(0).parse().ok())
    .unwrap_or(0);
    if current < 1 {
        for ddl in [
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    key TEXT PRIMARY KEY NOT NULL, value BYTEA NOT NULL, etag BIGINT NOT NULL,
                    expires_at TIMESTAMPTZ, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {table}_expires ON {table} (expires_at) WHERE expires_at IS NOT NULL"
            ),
        ] {
            sqlx::query(AssertSqlSafe(ddl))
                .execute(&mut *tx)
                .await
                .map_err(sql("migrating to version 1"))?;
        }
    }
    if current < 2 {
        sqlx::query(AssertSqlSafe(format!(
            "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS value_json JSONB"
        )))
        .execute(&mut *tx)
        .await
        .map_err(sql("migrating to version 2"))?;
        // Backfill rows written before the column existed.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT key, value FROM {table} WHERE value_json IS NULL"
        )))
        .fetch_all(&mut *tx)
        .await
        .map_err(sql("reading rows to backfill"))?;
        for row in rows {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&row.get::<Vec<u8>, _>(1))
            else {
                continue;
            };
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {table} SET value_json = $2::jsonb WHERE key = $1"
            )))
            .bind(row.get::<String, _>(0))
            .bind(value.to_string())
            .execute(&mut *tx)
            .await
            .map_err(sql("backfilling value_json"))?;
        }
    }
    if current > SCHEMA_VERSION {
        return Err(ComponentError::failed_precondition(format!(
            "table {table} is at schema version {current}, newer than this build ({SCHEMA_VERSION}); upgrade outrigger-postgres"
        )));
    }
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {metadata_table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )))
    .bind(&version_key)
    .bind(SCHEMA_VERSION.to_string())
    .execute(&mut *tx)
    .await
    .map_err(sql("recording the schema version"))?;
    tx.commit().await.map_err(sql("committing the migration"))
}

pub(crate) fn seconds_or_duration(
    metadata: &Metadata,
    key: &str,
    seconds_key: &str,
    default: Duration,
) -> Result<Duration, ComponentError> {
    if let Some(secs) = metadata.parse::<u64>(seconds_key)? {
        return Ok(Duration::from_secs(secs));
    }
    Ok(metadata.duration(key)?.unwrap_or(default))
}

/// An Init error naming the first metadata key not in `known` (any case).
pub(crate) fn check_keys(metadata: &Metadata, known: &[&str]) -> Result<(), ComponentError> {
    metadata.check_keys(known)
}

/// A pool on `url`, or an Init error naming `connectionString`.
pub(crate) async fn connect(
    url: &str,
    max_conns: u32,
    timeout: Duration,
) -> Result<PgPool, ComponentError> {
    // sqlx retries a refused connection until the acquire timeout; Init
    // must answer well within the host's Init timeout instead.
    let connect = PgPoolOptions::new()
        .max_connections(max_conns)
        .acquire_timeout(timeout)
        .connect(url);
    tokio::time::timeout(Duration::from_secs(4), connect)
        .await
        .map_err(|_| {
            ComponentError::invalid_argument(
                "connectionString",
                "cannot connect: no answer within 4 s",
            )
        })?
        .map_err(|e| {
            ComponentError::invalid_argument("connectionString", format!("cannot connect: {e}"))
        })
}

#[async_trait]
impl StateStore for PgState {
    #[tracing::instrument(skip_all, fields(component = "state.postgresql"))]
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        check_keys(&metadata, KEYS)?;
        let url = metadata.required("connectionString")?;
        let table = identifier("tableName", metadata.get("tableName").unwrap_or("state"))?;
        let metadata_table = identifier(
            "metadataTableName",
            metadata
                .get("metadataTableName")
                .unwrap_or("outrigger_metadata"),
        )?;
        let timeout = seconds_or_duration(
            &metadata,
            "timeout",
            "timeoutInSeconds",
            Duration::from_secs(20),
        )?;
        let cleanup = seconds_or_duration(
            &metadata,
            "cleanupInterval",
            "cleanupIntervalInSeconds",
            Duration::from_secs(3600),
        )?;
        let max_conns = metadata.parse::<u32>("maxConns")?.unwrap_or(10).max(1);
        let pool = connect(url, max_conns, timeout).await?;
        migrate(&pool, &table, &metadata_table).await?;

        let stop = CancellationToken::new();
        if !cleanup.is_zero() {
            let (pool, table, token) = (pool.clone(), table.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(cleanup) => {}
                    }
                    let swept = sqlx::query(AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE expires_at IS NOT NULL AND expires_at <= now()"
                    )))
                    .execute(&pool)
                    .await;
                    if let Err(err) = swept {
                        tracing::warn!(error = %err, "sweeping expired state failed");
                    }
                }
            });
        }
        self.open
            .set(Open {
                pool,
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
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT value, etag, expires_at FROM {} WHERE key = $1 AND (expires_at IS NULL OR expires_at > now())",
            open.table
        )))
        .bind(&req.key)
        .fetch_optional(&open.pool)
        .await
        .map_err(sql("reading state"))?;
        Ok(row.map(|r| {
            let mut metadata = HashMap::new();
            if let Some(at) = r.get::<Option<chrono::DateTime<chrono::Utc>>, _>(2) {
                metadata.insert(
                    "ttlExpireTime".to_owned(),
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                );
            }
            StateItem {
                data: r.get(0),
                etag: Some(r.get::<i64, _>(1).to_string()),
                metadata,
                content_type: None,
            }
        }))
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
        let (text, params, offset) = crate::query::sql(&open.table, &req)?;
        let mut query = sqlx::query(AssertSqlSafe(text));
        for p in params {
            query = match p {
                crate::query::Param::Path(path) => query.bind(path),
                crate::query::Param::Json(json) => query.bind(json),
                crate::query::Param::Int(n) => query.bind(n),
            };
        }
        let rows = query
            .fetch_all(&open.pool)
            .await
            .map_err(sql("querying state"))?;
        let items: Vec<QueryItem> = rows
            .into_iter()
            .map(|r| QueryItem {
                key: r.get(0),
                data: r.get(1),
                etag: Some(r.get::<i64, _>(2).to_string()),
                error: None,
                content_type: None,
            })
            .collect();
        // A full page may have a next one; the token is the next offset.
        let full = req.limit > 0 && u64::try_from(items.len()).unwrap_or(0) == req.limit;
        let token = full.then(|| (offset + i64::try_from(items.len()).unwrap_or(0)).to_string());
        Ok(QueryResponse {
            items,
            token,
            metadata: HashMap::new(),
        })
    }

    async fn ping(&self) -> Result<(), ComponentError> {
        let open = self.open()?;
        sqlx::query("SELECT 1")
            .execute(&open.pool)
            .await
            .map_err(sql("ping"))?;
        Ok(())
    }
}
