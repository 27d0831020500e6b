//! outrigger-local throughput: state set/get and publish→receive over the
//! component socket, against the same SQLite work done directly, in one run.
//!
//! Run with:
//!     cargo bench -p outrigger-local --bench throughput          (add `-- --quick` for a short run)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use outrigger_proto::components as pb;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use support::{Local, props, to};
use tokio_stream::StreamExt;

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = if std::env::args().any(|a| a == "--quick") {
        500
    } else {
        3000
    };
    let local = Local::start().await;
    let value = br#"{"name":"outrigger","n":42}"#.to_vec();

    // --- SQLite directly, same settings as the component (WAL, synchronous=NORMAL, IMMEDIATE txns).
    let direct_db = local.dir.path().join("direct.db");
    let options = SqliteConnectOptions::from_str("sqlite://")
        .unwrap()
        .filename(&direct_db)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(2));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE state (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, etag INTEGER NOT NULL, expires_at INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE msgs (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT, data BLOB)")
        .execute(&pool)
        .await
        .unwrap();
    let start = Instant::now();
    for i in 0..n {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("SELECT etag FROM state WHERE key = ?1")
            .bind(format!("k{}", i % 500))
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO state (key, value, etag) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET value = excluded.value, etag = excluded.etag")
            .bind(format!("k{}", i % 500))
            .bind(&value)
            .bind(i as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let direct_set = rate(n, start.elapsed());
    let start = Instant::now();
    for i in 0..n {
        let row = sqlx::query("SELECT value, etag FROM state WHERE key = ?1")
            .bind(format!("k{}", i % 500))
            .fetch_one(&pool)
            .await
            .unwrap();
        let _: Vec<u8> = row.get(0);
    }
    let direct_get = rate(n, start.elapsed());
    let start = Instant::now();
    for _ in 0..n {
        sqlx::query("INSERT INTO msgs (topic, data) VALUES ('t', ?1)")
            .bind(&value)
            .execute(&pool)
            .await
            .unwrap();
    }
    for _ in 0..n {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let seq: i64 = sqlx::query("SELECT seq FROM msgs WHERE topic = 't' ORDER BY seq LIMIT 1")
            .fetch_one(&mut *tx)
            .await
            .unwrap()
            .get(0);
        sqlx::query("DELETE FROM msgs WHERE seq = ?1")
            .bind(seq)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let direct_pubsub = rate(n, start.elapsed());

    // --- Through the component socket.
    let db = local.db().display().to_string();
    let mut state = pb::state_store_client::StateStoreClient::new(local.channel.clone());
    state
        .init(to(
            "s",
            pb::InitRequest {
                metadata: props(&[("databaseFile", &db)]),
            },
        ))
        .await
        .unwrap();
    let start = Instant::now();
    for i in 0..n {
        let req = pb::SetRequest {
            key: format!("k{}", i % 500),
            value: value.clone(),
            ..Default::default()
        };
        state.set(to("s", req)).await.unwrap();
    }
    let socket_set = rate(n, start.elapsed());
    let start = Instant::now();
    for i in 0..n {
        state
            .get(to(
                "s",
                pb::GetRequest {
                    key: format!("k{}", i % 500),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    let socket_get = rate(n, start.elapsed());

    let mut bus = pb::pub_sub_client::PubSubClient::new(local.channel.clone());
    bus.init(to(
        "p",
        pb::PubSubInitRequest {
            metadata: props(&[("databaseFile", &db), ("pollInterval", "5ms")]),
        },
    ))
    .await
    .unwrap();
    let start = Instant::now();
    for _ in 0..n {
        let req = pb::PublishRequest {
            data: value.clone(),
            topic: "bench".into(),
            ..Default::default()
        };
        bus.publish(to("p", req)).await.unwrap();
    }
    let (acks, rx) = tokio::sync::mpsc::channel(4096);
    acks.send(pb::PullMessagesRequest {
        topic: Some(pb::Topic {
            name: "bench".into(),
            metadata: HashMap::new(),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut stream = bus
        .pull_messages(to("p", tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..n {
        let m = stream.next().await.unwrap().unwrap();
        acks.send(pb::PullMessagesRequest {
            ack_message_id: m.id,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let socket_pubsub = rate(n, start.elapsed());

    println!(
        "outrigger-local throughput, {n} sequential operations each (2-core machine, one client)"
    );
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "operation", "direct op/s", "socket op/s", "ratio"
    );
    for (name, direct, socket) in [
        ("state set (ETag-checked upsert)", direct_set, socket_set),
        ("state get", direct_get, socket_get),
        ("publish → receive → ack", direct_pubsub, socket_pubsub),
    ] {
        println!(
            "{name:<34} {direct:>12.0} {socket:>12.0} {:>7.2}x",
            socket / direct
        );
    }
}
