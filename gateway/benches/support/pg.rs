//! Cleaning up after the PostgreSQL rows of a benchmark.

/// Drop `table` on `url`, ignoring every failure (a benchmark's last step).
pub(crate) async fn drop_table(url: &str, table: &str) {
    if let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
    {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
            .execute(&pool)
            .await;
    }
}
