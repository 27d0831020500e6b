//! `configuration.postgresql`: configuration items in one table, changes
//! pushed by `LISTEN/NOTIFY`.
//!
//! The table has Dapr's columns (`key`, `value`, `version`, `metadata` as
//! JSON). `Init` creates it when missing, together with a trigger that sends
//! every insert, update and delete as `pg_notify(channel, {"table",
//! "action", "data": row})`, the payload shape Dapr documents for its own
//! PostgreSQL configuration store, so hand-written Dapr triggers work too:
//! a subscription's `pgNotifyChannel` metadata picks their channel.
//! Notifications sent while a listener is reconnecting are lost (PostgreSQL
//! does not queue them for absent listeners); read again after a reconnect
//! when that matters.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use outrigger_component_sdk::configuration::{
    ConfigurationItem, ConfigurationRequest, ConfigurationStore, Items, UpdateStream,
};
use outrigger_component_sdk::{ComponentError, Metadata, async_trait};
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::state::{check_keys, connect, identifier, seconds_or_duration, sql};

const KEYS: &[&str] = &[
    "connectionString",
    "table",
    "timeout",
    "timeoutInSeconds",
    "maxConns",
];

/// Subscription metadata naming a channel fed by the user's own trigger.
const CHANNEL_KEY: &str = "pgNotifyChannel";

struct Open {
    pool: PgPool,
    table: String,
    channel: String,
}

/// The PostgreSQL configuration store. Configure with `Init`.
#[derive(Default)]
pub struct PgConfiguration {
    open: OnceLock<Open>,
}

/// The channel our trigger notifies for `table`.
pub fn channel_for(table: &str) -> String {
    format!("outrigger_config_{table}")
}

impl PgConfiguration {
    fn open(&self) -> Result<&Open, ComponentError> {
        self.open.get().ok_or_else(|| {
            ComponentError::failed_precondition("configuration store is not initialised")
        })
    }
}

/// Create the table, the notify function and the trigger, once across every
/// process sharing the database.
async fn migrate(pool: &PgPool, table: &str, channel: &str) -> Result<(), ComponentError> {
    let mut tx = pool.begin().await.map_err(sql("starting the migration"))?;
    sqlx::query("SELECT pg_advisory_xact_lock(7240577203)")
        .execute(&mut *tx)
        .await
        .map_err(sql("locking for migration"))?;
    let statements = [
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL, \
             version TEXT NOT NULL, metadata JSON)"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION {table}_notify() RETURNS TRIGGER AS $$
             DECLARE row_data json;
             BEGIN
               IF (TG_OP = 'DELETE') THEN row_data = row_to_json(OLD); ELSE row_data = row_to_json(NEW); END IF;
               PERFORM pg_notify('{channel}', json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', row_data)::text);
               RETURN NULL;
             END;
             $$ LANGUAGE plpgsql"
        ),
        format!(
            "CREATE OR REPLACE TRIGGER {table}_notify AFTER INSERT OR UPDATE OR DELETE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION {table}_notify()"
        ),
    ];
    for statement in statements {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await
            .map_err(sql("creating the configuration table"))?;
    }
    tx.commit().await.map_err(sql("committing the migration"))
}

/// The `metadata` column: a JSON object; non-string values keep their JSON text.
fn metadata_map(value: Option<&serde_json::Value>) -> HashMap<String, String> {
    match value {
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
        _ => HashMap::new(),
    }
}

/// One notification payload → `(key, item)`, or `None` when it is not one.
fn parse_notification(payload: &str) -> Option<(String, ConfigurationItem)> {
    let json: serde_json::Value = serde_json::from_str(payload).ok()?;
    let data = json.get("data")?;
    let field = |name: &str| {
        data.get(name)
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let key = field("key");
    if key.is_empty() {
        return None;
    }
    let item = ConfigurationItem {
        value: field("value"),
        version: field("version"),
        metadata: metadata_map(data.get("metadata")),
    };
    Some((key, item))
}

#[async_trait]
impl ConfigurationStore for PgConfiguration {
    #[tracing::instrument(skip_all, fields(component = "configuration.postgresql"))]
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        check_keys(&metadata, KEYS)?;
        let url = metadata.required("connectionString")?;
        let table = identifier("table", metadata.get("table").unwrap_or("configuration"))?;
        let timeout = seconds_or_duration(
            &metadata,
            "timeout",
            "timeoutInSeconds",
            Duration::from_secs(20),
        )?;
        let max_conns = metadata.parse::<u32>("maxConns")?.unwrap_or(5).max(1);
        let pool = connect(url, max_conns, timeout).await?;
        let channel = channel_for(&table);
        migrate(&pool, &table, &channel).await?;
        self.open
            .set(Open {
                pool,
                table,
                channel,
            })
            .map_err(|_| ComponentError::failed_precondition("already initialised"))
    }

    #[tracing::instrument(skip_all, fields(component = "configuration.postgresql", keys = request.keys.len()))]
    async fn get(&self, request: ConfigurationRequest) -> Result<Items, ComponentError> {
        let open = self.open()?;
        let rows = if request.keys.is_empty() {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT key, value, version, metadata::text FROM {}",
                open.table
            )))
            .fetch_all(&open.pool)
            .await
        } else {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT key, value, version, metadata::text FROM {} WHERE key = ANY($1)",
                open.table
            )))
            .bind(&request.keys)
            .fetch_all(&open.pool)
            .await
        }
        .map_err(sql("reading configuration"))?;
        let mut items = Items::new();
        for row in rows {
            let key: String = row.try_get(0).map_err(sql("reading key"))?;
            let metadata: Option<String> = row.try_get(3).map_err(sql("reading metadata"))?;
            let metadata =
                metadata.and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok());
            items.insert(
                key,
                ConfigurationItem {
                    value: row.try_get(1).map_err(sql("reading value"))?,
                    version: row.try_get(2).map_err(sql("reading version"))?,
                    metadata: metadata_map(metadata.as_ref()),
                },
            );
        }
        Ok(items)
    }

    #[tracing::instrument(skip_all, fields(component = "configuration.postgresql", keys = request.keys.len()))]
    async fn subscribe(
        &self,
        request: ConfigurationRequest,
    ) -> Result<UpdateStream, ComponentError> {
        let open = self.open()?;
        let channel = match request.metadata.get(CHANNEL_KEY) {
            Some(given) if !given.is_empty() && given.len() <= 63 => given.clone(),
            Some(_) => {
                return Err(ComponentError::invalid_argument(
                    format!("metadata.{CHANNEL_KEY}"),
                    "must be a channel name of 1 to 63 characters",
                ));
            }
            None => open.channel.clone(),
        };
        let mut listener = PgListener::connect_with(&open.pool)
            .await
            .map_err(sql("opening a listener"))?;
        listener
            .listen(&channel)
            .await
            .map_err(sql("listening for configuration changes"))?;
        let (tx, rx) = mpsc::channel(16);
        let keys = request.keys;
        tokio::spawn(async move {
            loop {
                let notification = tokio::select! {
                    () = tx.closed() => return,
                    n = listener.try_recv() => n,
                };
                match notification {
                    Ok(Some(n)) => {
                        let Some((key, item)) = parse_notification(n.payload()) else {
                            tracing::warn!(channel = %n.channel(), "ignoring a notification that is not a configuration row");
                            continue;
                        };
                        if !keys.is_empty() && !keys.contains(&key) {
                            continue;
                        }
                        if tx.send(Ok(Items::from([(key, item)]))).await.is_err() {
                            return;
                        }
                    }
                    // The connection dropped; the next try_recv reconnects.
                    Ok(None) => {
                        tracing::warn!(%channel, "configuration listener reconnecting; changes meanwhile are missed");
                    }
                    Err(err) => {
                        let _ = tx.send(Err(sql("receiving notifications")(err))).await;
                        return;
                    }
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_payloads_become_items() {
        let (key, item) = parse_notification(
            r#"{"table":"cfg","action":"UPDATE","data":{"key":"color","value":"red","version":"2","metadata":{"owner":"ops","n":1}}}"#,
        )
        .unwrap();
        assert_eq!(key, "color");
        assert_eq!((item.value.as_str(), item.version.as_str()), ("red", "2"));
        assert_eq!(item.metadata.get("owner").map(String::as_str), Some("ops"));
        assert_eq!(item.metadata.get("n").map(String::as_str), Some("1"));
        assert!(parse_notification("not json").is_none());
        assert!(parse_notification(r#"{"data":{"value":"x"}}"#).is_none());
    }
}
