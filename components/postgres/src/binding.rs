//! `bindings.postgresql`: run SQL from the app. Operations `exec` (response
//! metadata `rows-affected`), `query` (data: a JSON array of rows, each an
//! array of column values in order) and `close` (drops the pool; the next
//! call reconnects). The statement is request metadata `sql`; `params` is a
//! JSON array bound to `$1`, `$2`, ...

use std::collections::HashMap;
use std::sync::Mutex;

use outrigger_component_sdk::bindings::{InvokeRequest, InvokeResponse, OutputBinding};
use outrigger_component_sdk::{ComponentError, Metadata, async_trait};
use sqlx::postgres::{PgArguments, PgPool, PgPoolOptions};

use crate::state::{check_keys, connect, seconds_or_duration};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Postgres, Row};

/// Metadata keys `Init` accepts.
const KEYS: &[&str] = &[
    "connectionString",
    "maxConns",
    "timeout",
    "timeoutInSeconds",
];

/// The PostgreSQL output binding. Configure with `Init` (`connectionString`).
#[derive(Default)]
pub struct PgBinding {
    url: Mutex<Option<String>>,
    pool: Mutex<Option<PgPool>>,
}

fn bind_params<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    params: &'q [serde_json::Value],
) -> Result<Query<'q, Postgres, PgArguments>, ComponentError> {
    for (i, p) in params.iter().enumerate() {
        query = match p {
            serde_json::Value::Null => query.bind(None::<String>),
            serde_json::Value::Bool(b) => query.bind(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => query.bind(i),
                None => query.bind(n.as_f64().unwrap_or_default()),
            },
            serde_json::Value::String(s) => query.bind(s.as_str()),
            other => {
                return Err(ComponentError::invalid_argument(
                    format!("metadata.params[{i}]"),
                    format!("{other} is not a scalar"),
                ));
            }
        };
    }
    Ok(query)
}

impl PgBinding {
    fn pool(&self) -> Result<PgPool, ComponentError> {
        if let Some(pool) = self
            .pool
            .lock()
            .map_err(|_| ComponentError::internal("binding lock poisoned"))?
            .clone()
        {
            return Ok(pool);
        }
        let url = self
            .url
            .lock()
            .map_err(|_| ComponentError::internal("binding lock poisoned"))?
            .clone()
            .ok_or_else(|| ComponentError::failed_precondition("the binding is not initialised"))?;
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect_lazy(&url)
            .map_err(|e| ComponentError::invalid_argument("connectionString", e.to_string()))?;
        *self
            .pool
            .lock()
            .map_err(|_| ComponentError::internal("binding lock poisoned"))? = Some(pool.clone());
        Ok(pool)
    }
}

#[async_trait]
impl OutputBinding for PgBinding {
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        check_keys(&metadata, KEYS)?;
        let url = metadata.required("connectionString")?.to_owned();
        let timeout = seconds_or_duration(
            &metadata,
            "timeout",
            "timeoutInSeconds",
            std::time::Duration::from_secs(20),
        )?;
        let max_conns = metadata.parse::<u32>("maxConns")?.unwrap_or(5).max(1);
        let pool = connect(&url, max_conns, timeout).await?;
        *self
            .url
            .lock()
            .map_err(|_| ComponentError::internal("binding lock poisoned"))? = Some(url);
        *self
            .pool
            .lock()
            .map_err(|_| ComponentError::internal("binding lock poisoned"))? = Some(pool);
        Ok(())
    }

    fn operations(&self) -> Vec<String> {
        vec!["exec".into(), "query".into(), "close".into()]
    }

    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, ComponentError> {
        if req.operation == "close" {
            let pool = self
                .pool
                .lock()
                .map_err(|_| ComponentError::internal("binding lock poisoned"))?
                .take();
            if let Some(pool) = pool {
                pool.close().await;
            }
            return Ok(InvokeResponse::default());
        }
        let sql = req
            .metadata
            .get("sql")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ComponentError::invalid_argument("metadata.sql", "required for exec and query")
            })?
            .clone();
        let params: Vec<serde_json::Value> = match req.metadata.get("params") {
            None => Vec::new(),
            Some(raw) => serde_json::from_str(raw).map_err(|e| {
                ComponentError::invalid_argument(
                    "metadata.params",
                    format!("must be a JSON array: {e}"),
                )
            })?,
        };
        let pool = self.pool()?;
        let started = chrono::Utc::now();
        let mut metadata = HashMap::from([
            ("operation".to_owned(), req.operation.clone()),
            ("sql".to_owned(), sql.clone()),
        ]);
        let failed = |e: sqlx::Error| match &e {
            sqlx::Error::Database(db) => {
                ComponentError::invalid_argument("metadata.sql", db.message().to_owned())
            }
            _ => ComponentError::unavailable(format!("PostgreSQL: {e}")),
        };
        let data = match req.operation.as_str() {
            "exec" => {
                let done = bind_params(sqlx::query(AssertSqlSafe(sql)), &params)?
                    .execute(&pool)
                    .await
                    .map_err(failed)?;
                metadata.insert("rows-affected".into(), done.rows_affected().to_string());
                Vec::new()
            }
            "query" => {
                // PostgreSQL turns each row into a JSON array of its values, in column order.
                let wrapped = format!(
                    "SELECT coalesce(json_agg((SELECT json_agg(c.value) FROM json_each(row_to_json(r)) AS c)), '[]'::json)::text FROM ({sql}) AS r"
                );
                let row = bind_params(sqlx::query(AssertSqlSafe(wrapped)), &params)?
                    .fetch_one(&pool)
                    .await
                    .map_err(failed)?;
                row.get::<String, _>(0).into_bytes()
            }
            other => {
                return Err(ComponentError::invalid_argument(
                    "operation",
                    format!("{other:?} is not exec, query or close"),
                ));
            }
        };
        let finished = chrono::Utc::now();
        metadata.insert("start-time".into(), started.to_rfc3339());
        metadata.insert("end-time".into(), finished.to_rfc3339());
        metadata.insert(
            "duration".into(),
            format!("{}ms", (finished - started).num_milliseconds()),
        );
        Ok(InvokeResponse {
            data,
            metadata,
            content_type: Some("application/json".into()),
        })
    }
}
