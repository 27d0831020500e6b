//! `pubsub.sqlite`: durable topics on SQLite with at-least-once delivery.
//!
//! Messages get a global sequence number. Each consumer group (subscription
//! `consumerID`, else the component's, else the app id) has one cursor per
//! topic, so two apps each get every message and two instances of one app
//! share them. Claiming a message moves it into `pubsub_pending` with a
//! lease (`ackWait`); an ack deletes it, a nack makes it visible again after
//! `redeliveryDelay`, an abandoned delivery (stream closed) at once, and a
//! crashed consumer's lease simply runs out. Claims run in `BEGIN IMMEDIATE`
//! transactions, so several processes on one file never claim twice.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use outrigger_component_sdk::pubsub::*;
use outrigger_component_sdk::{ComponentError, Delivery, Metadata, Outcome, async_trait};
use sqlx::{Row, SqlitePool};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::db::{self, now_ms, sql};

const KEYS: &[&str] = &[
    "databaseFile",
    "connectionString",
    "busyTimeout",
    "ackWait",
    "redeliveryDelay",
    "retentionPeriod",
    "pollInterval",
    "maxInflight",
];

#[derive(Clone)]
struct Settings {
    ack_wait: Duration,
    redelivery_delay: Duration,
    poll: Duration,
    max_inflight: usize,
    consumer: Option<String>,
}

struct Open {
    pool: SqlitePool,
    settings: Settings,
    published: Arc<Notify>,
    stop: CancellationToken,
    _sweeper: DropGuard,
}

/// The SQLite pub/sub. Configure with `Init`.
#[derive(Default)]
pub struct SqlitePubSub {
    open: OnceLock<Open>,
}

struct Claimed {
    seq: i64,
    message: PulledMessage,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn expires_at(metadata: &HashMap<String, String>) -> Result<Option<i64>, ComponentError> {
    match metadata
        .get("ttlInSeconds")
        .map(|v| v.trim().parse::<i64>())
    {
        None => Ok(None),
        Some(Ok(secs)) if secs > 0 => Ok(Some(now_ms().saturating_add(secs.saturating_mul(1000)))),
        Some(Ok(-1)) => Ok(None),
        Some(_) => Err(ComponentError::invalid_argument(
            "metadata.ttlInSeconds",
            "must be a positive number of seconds",
        )),
    }
}

async fn claim(
    pool: &SqlitePool,
    consumer: &str,
    topic: &str,
    lease: Duration,
) -> Result<Option<Claimed>, ComponentError> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(sql("starting a claim"))?;
    let now = now_ms();
    loop {
        // Redeliveries first: nacked, abandoned or lease-expired messages.
        let due = sqlx::query(
            "SELECT seq FROM pubsub_pending WHERE consumer = ?1 AND topic = ?2 AND visible_at <= ?3 ORDER BY seq LIMIT 1",
        )
        .bind(consumer)
        .bind(topic)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql("finding redeliveries"))?;
        let seq = if let Some(row) = due {
            let seq: i64 = row.get(0);
            sqlx::query("UPDATE pubsub_pending SET visible_at = ?4, attempts = attempts + 1 WHERE consumer = ?1 AND topic = ?2 AND seq = ?3")
                .bind(consumer)
                .bind(topic)
                .bind(seq)
                .bind(now.saturating_add(ms(lease)))
                .execute(&mut *tx)
                .await
                .map_err(sql("renewing a lease"))?;
            seq
        } else {
            let cursor: i64 = sqlx::query(
                "SELECT next_seq FROM pubsub_cursors WHERE consumer = ?1 AND topic = ?2",
            )
            .bind(consumer)
            .bind(topic)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql("reading the cursor"))?
            .map_or(0, |r| r.get(0));
            let next = sqlx::query("SELECT seq FROM pubsub_messages WHERE topic = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1")
                .bind(topic)
                .bind(cursor)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql("finding the next message"))?;
            let Some(row) = next else {
                tx.commit().await.map_err(sql("ending a claim"))?;
                return Ok(None);
            };
            let seq: i64 = row.get(0);
            sqlx::query(
                "INSERT INTO pubsub_cursors (consumer, topic, next_seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT(consumer, topic) DO UPDATE SET next_seq = excluded.next_seq",
            )
            .bind(consumer)
            .bind(topic)
            .bind(seq + 1)
            .execute(&mut *tx)
            .await
            .map_err(sql("advancing the cursor"))?;
            sqlx::query("INSERT OR REPLACE INTO pubsub_pending (consumer, topic, seq, visible_at, attempts) VALUES (?1, ?2, ?3, ?4, 1)")
                .bind(consumer)
                .bind(topic)
                .bind(seq)
                .bind(now.saturating_add(ms(lease)))
                .execute(&mut *tx)
                .await
                .map_err(sql("leasing a message"))?;
            seq
        };
        let row = sqlx::query(
            "SELECT data, metadata, content_type, expires_at FROM pubsub_messages WHERE seq = ?1",
        )
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql("loading a message"))?;
        let live = row.filter(|r| r.get::<Option<i64>, _>(3).is_none_or(|at| at > now));
        let Some(row) = live else {
            // Expired or swept by retention: nothing to deliver; forget it.
            sqlx::query(
                "DELETE FROM pubsub_pending WHERE consumer = ?1 AND topic = ?2 AND seq = ?3",
            )
            .bind(consumer)
            .bind(topic)
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(sql("dropping an expired message"))?;
            continue;
        };
        tx.commit().await.map_err(sql("committing a claim"))?;
        let metadata: HashMap<String, String> =
            serde_json::from_str(row.get::<&str, _>(1)).unwrap_or_default();
        return Ok(Some(Claimed {
            seq,
            message: PulledMessage {
                data: row.get(0),
                topic: topic.to_owned(),
                metadata,
                content_type: row.get(2),
            },
        }));
    }
}

/// Record what became of a delivery.
async fn settle(
    pool: &SqlitePool,
    consumer: &str,
    topic: &str,
    seq: i64,
    outcome: Outcome<()>,
    redelivery: Duration,
) {
    let result = match outcome {
        Outcome::Acked(()) => {
            sqlx::query(
                "DELETE FROM pubsub_pending WHERE consumer = ?1 AND topic = ?2 AND seq = ?3",
            )
            .bind(consumer)
            .bind(topic)
            .bind(seq)
            .execute(pool)
            .await
        }
        Outcome::Nacked(_) | Outcome::Abandoned => {
            let delay = if matches!(outcome, Outcome::Abandoned) {
                0
            } else {
                ms(redelivery)
            };
            sqlx::query("UPDATE pubsub_pending SET visible_at = ?4 WHERE consumer = ?1 AND topic = ?2 AND seq = ?3")
                .bind(consumer)
                .bind(topic)
                .bind(seq)
                .bind(now_ms().saturating_add(delay))
                .execute(pool)
                .await
        }
    };
    if let Err(err) = result {
        // The lease still expires, so the message is redelivered anyway.
        tracing::warn!(error = %err, seq, "recording a delivery outcome failed");
    }
}

// === impl SqlitePubSub ===

impl SqlitePubSub {
    fn open(&self) -> Result<&Open, ComponentError> {
        self.open
            .get()
            .ok_or_else(|| ComponentError::failed_precondition("the pub/sub is not initialised"))
    }

    async fn insert(&self, entries: Vec<(String, PublishRequest)>) -> Result<(), ComponentError> {
        let open = self.open()?;
        let mut tx = open
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("starting a publish"))?;
        for (_, req) in entries {
            let expires = expires_at(&req.metadata)?;
            sqlx::query(
                "INSERT INTO pubsub_messages (topic, data, metadata, content_type, published_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(&req.topic)
            .bind(&req.data)
            .bind(serde_json::to_string(&req.metadata).unwrap_or_else(|_| "{}".into()))
            .bind(req.content_type.as_deref())
            .bind(now_ms())
            .bind(expires)
            .execute(&mut *tx)
            .await
            .map_err(sql("storing a message"))?;
        }
        tx.commit().await.map_err(sql("committing a publish"))?;
        open.published.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl PubSub for SqlitePubSub {
    #[tracing::instrument(skip_all, fields(component = "pubsub.sqlite"))]
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        db::check_keys(&metadata, KEYS)?;
        let settings = Settings {
            ack_wait: metadata
                .duration("ackWait")?
                .unwrap_or(Duration::from_secs(30)),
            redelivery_delay: metadata
                .duration("redeliveryDelay")?
                .unwrap_or(Duration::from_secs(1)),
            poll: metadata
                .duration("pollInterval")?
                .unwrap_or(Duration::from_millis(100)),
            max_inflight: metadata
                .parse::<usize>("maxInflight")?
                .unwrap_or(128)
                .max(1),
            consumer: metadata.get("consumerID").map(str::to_owned),
        };
        let retention = metadata
            .duration("retentionPeriod")?
            .unwrap_or(Duration::from_secs(24 * 3600));
        let pool = db::open(&metadata).await?;
        for ddl in [
            "CREATE TABLE IF NOT EXISTS pubsub_messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, data BLOB NOT NULL,
                metadata TEXT NOT NULL, content_type TEXT, published_at INTEGER NOT NULL, expires_at INTEGER)",
            "CREATE INDEX IF NOT EXISTS pubsub_messages_topic ON pubsub_messages (topic, seq)",
            "CREATE TABLE IF NOT EXISTS pubsub_cursors (
                consumer TEXT NOT NULL, topic TEXT NOT NULL, next_seq INTEGER NOT NULL, PRIMARY KEY (consumer, topic))",
            "CREATE TABLE IF NOT EXISTS pubsub_pending (
                consumer TEXT NOT NULL, topic TEXT NOT NULL, seq INTEGER NOT NULL, visible_at INTEGER NOT NULL,
                attempts INTEGER NOT NULL, PRIMARY KEY (consumer, topic, seq))",
        ] {
            sqlx::query(ddl).execute(&pool).await.map_err(sql("creating pub/sub tables"))?;
        }
        let stop = CancellationToken::new();
        let (sweep_pool, token) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let every = retention
                .min(Duration::from_secs(60))
                .max(Duration::from_millis(100));
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                let cutoff = now_ms().saturating_sub(ms(retention));
                if let Err(err) = sqlx::query("DELETE FROM pubsub_messages WHERE published_at < ?1")
                    .bind(cutoff)
                    .execute(&sweep_pool)
                    .await
                {
                    tracing::warn!(error = %err, "retention sweep failed");
                }
            }
        });
        self.open
            .set(Open {
                pool,
                settings,
                published: Arc::new(Notify::new()),
                stop: stop.clone(),
                _sweeper: stop.drop_guard(),
            })
            .map_err(|_| {
                ComponentError::failed_precondition("Init was already called on this instance")
            })
    }

    fn features(&self) -> Vec<PubSubFeature> {
        vec![PubSubFeature::MessageTtl]
    }

    async fn publish(&self, req: PublishRequest) -> Result<(), ComponentError> {
        self.insert(vec![(String::new(), req)]).await
    }

    async fn bulk_publish(
        &self,
        req: BulkPublishRequest,
    ) -> Result<Vec<FailedEntry>, ComponentError> {
        let ids: Vec<String> = req.entries.iter().map(|e| e.entry_id.clone()).collect();
        let entries = req
            .entries
            .into_iter()
            .map(|e| {
                let mut metadata = req.metadata.clone();
                metadata.extend(e.metadata);
                (
                    e.entry_id,
                    PublishRequest {
                        data: e.event,
                        pubsub_name: req.pubsub_name.clone(),
                        topic: req.topic.clone(),
                        metadata,
                        content_type: e.content_type,
                    },
                )
            })
            .collect();
        // One transaction: all entries are stored, or all are reported failed.
        match self.insert(entries).await {
            Ok(()) => Ok(Vec::new()),
            Err(err) => Ok(ids
                .into_iter()
                .map(|entry_id| FailedEntry {
                    entry_id,
                    error: err.to_string(),
                })
                .collect()),
        }
    }

    async fn subscribe(&self, topic: Topic) -> Result<MessageStream, ComponentError> {
        let open = self.open()?;
        let settings = open.settings.clone();
        let consumer = topic
            .metadata
            .get("consumerID")
            .cloned()
            .or(settings.consumer.clone())
            .or_else(|| std::env::var("APP_ID").ok())
            .unwrap_or_else(|| "default".into());
        let (tx, rx) = mpsc::channel(settings.max_inflight.min(64));
        let pool = open.pool.clone();
        let published = Arc::clone(&open.published);
        let stop = open.stop.clone();
        let name = topic.name;
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_inflight));
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let notified = published.notified();
                let claimed = tokio::select! {
                    () = stop.cancelled() => return,
                    () = tx.closed() => return,
                    claimed = claim(&pool, &consumer, &name, settings.ack_wait) => claimed,
                };
                match claimed {
                    Ok(Some(Claimed { seq, message })) => {
                        let (delivery, outcome) = Delivery::new(message);
                        if tx.send(Ok(delivery)).await.is_err() {
                            settle(
                                &pool,
                                &consumer,
                                &name,
                                seq,
                                Outcome::Abandoned,
                                settings.redelivery_delay,
                            )
                            .await;
                            return;
                        }
                        let (pool, consumer, name) = (pool.clone(), consumer.clone(), name.clone());
                        let redelivery = settings.redelivery_delay;
                        tokio::spawn(async move {
                            let outcome = outcome.await;
                            settle(&pool, &consumer, &name, seq, outcome, redelivery).await;
                            drop(slot);
                        });
                    }
                    Ok(None) => {
                        drop(slot);
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tx.closed() => return,
                            () = notified => {}
                            () = tokio::time::sleep(settings.poll) => {}
                        }
                    }
                    Err(err) => {
                        drop(slot);
                        tracing::warn!(error = %err, topic = %name, "claiming a message failed; retrying");
                        tokio::time::sleep(settings.poll).await;
                    }
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
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
