//! The write side of `state.sqlite`: conditional and plain writes, alone
//! or many to a statement (each statement is a round trip to sqlx's SQLite
//! thread, so the fewer the better). As in the parent module, the table
//! name (checked by `db::identifier`) is the only text spliced into SQL.

use std::collections::HashMap;

use outrigger_component_sdk::ComponentError;
use outrigger_component_sdk::state::etag::{fresh as new_etag, parse as parse_etag};
use outrigger_component_sdk::state::*;
use sqlx::SqliteConnection;

use crate::db::{now_ms, sql};

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
pub(super) const ROWS_PER_STATEMENT: usize = 200;

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
pub(super) async fn apply_ops(
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
