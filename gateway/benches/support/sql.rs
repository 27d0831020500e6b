//! The benchmark's baselines without any component: the same upserts and
//! reads straight on SQLite and PostgreSQL with sqlx.

use std::time::Duration;

use crate::{Rows, measure};

/// The same upserts and reads on SQLite directly, with the component's settings.
pub(crate) async fn sqlite_direct(n: usize, file: &std::path::Path, rows: &mut Rows) {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let options = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(2));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS direct (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, etag INTEGER NOT NULL, expires_at INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    let value = br#"{"name":"outrigger","n":42}"#.to_vec();
    let (p, v) = (pool.clone(), value.clone());
    rows.set.push(("sqlite: directly (sqlx)".into(), measure(n, move |i| {
        let (p, v) = (p.clone(), v.clone());
        async move {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await.unwrap();
            sqlx::query("SELECT etag FROM direct WHERE key = ?1").bind(format!("k{}", i % 1000)).fetch_optional(&mut *tx).await.unwrap();
            sqlx::query("INSERT INTO direct (key, value, etag) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET value = excluded.value, etag = excluded.etag")
                .bind(format!("k{}", i % 1000))
                .bind(v)
                .bind(i as i64)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }).await));
    let p = pool.clone();
    rows.get.push((
        "sqlite: directly (sqlx)".into(),
        measure(n, move |i| {
            let p = p.clone();
            async move {
                sqlx::query("SELECT value, etag FROM direct WHERE key = ?1")
                    .bind(format!("k{}", i % 1000))
                    .fetch_optional(&p)
                    .await
                    .unwrap();
            }
        })
        .await,
    ));
}

/// The same upserts and reads on PostgreSQL directly with sqlx.
pub(crate) async fn postgres_direct(n: usize, url: &str, rows: &mut Rows) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await
        .unwrap();
    let table = format!("bench_direct_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, value BYTEA NOT NULL, etag BIGINT NOT NULL)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let value = br#"{"name":"outrigger","n":42}"#.to_vec();
    let (p, v, t) = (pool.clone(), value.clone(), table.clone());
    rows.set.push((
        "postgres: directly (sqlx)".into(),
        measure(n, move |i| {
            let (p, v, t) = (p.clone(), v.clone(), t.clone());
            async move {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {t} (key, value, etag) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = excluded.etag"
                )))
                .bind(format!("k{}", i % 1000))
                .bind(v)
                .bind(i as i64)
                .execute(&p)
                .await
                .unwrap();
            }
        })
        .await,
    ));
    let (p, t) = (pool.clone(), table.clone());
    rows.get.push((
        "postgres: directly (sqlx)".into(),
        measure(n, move |i| {
            let (p, t) = (p.clone(), t.clone());
            async move {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT value, etag FROM {t} WHERE key = $1"
                )))
                .bind(format!("k{}", i % 1000))
                .fetch_optional(&p)
                .await
                .unwrap();
            }
        })
        .await,
    ));
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&pool)
        .await;
}
