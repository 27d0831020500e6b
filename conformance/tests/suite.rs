//! The suite against correct components (it passes) and deliberately broken
//! ones (the right cases fail, with reasons that say what went wrong).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../component-sdk/examples/memory.rs"]
mod memory;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outrigger_component_sdk::bindings::*;
use outrigger_component_sdk::pubsub::*;
use outrigger_component_sdk::secrets::*;
use outrigger_component_sdk::state::*;
use outrigger_component_sdk::{
    ComponentError, ComponentServer, Delivery, Metadata, Outcome, async_trait,
};
use outrigger_conformance::{
    Block, Outcome as Result_, Report, SuiteConfig, Target, assert_pass, run,
};
use tokio::sync::Notify;

/// Serve `build` on a temp socket; returns the folder (kept alive) and the socket path.
#[allow(clippy::unused_unit)]
async fn serve(
    name: &str,
    build: impl FnOnce(ComponentServer) -> ComponentServer,
) -> (tempfile::TempDir, std::path::PathBuf, ()) {
    let dir = tempfile::tempdir().unwrap();
    let server = build(ComponentServer::new(dir.path()));
    // Served until the test's runtime ends.
    tokio::spawn(server.serve(std::future::pending()));
    let socket = dir.path().join(format!("{name}.sock"));
    for _ in 0..500 {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (dir, socket, ())
}

fn failed(report: &Report, case: &str) -> String {
    match report.outcome(case) {
        Some(Result_::Fail(why)) => why.clone(),
        other => panic!("{case} should fail, got {other:?}\n{}", report.table()),
    }
}

// === state ===

#[tokio::test]
async fn memory_example_passes_state_suite() {
    let (_dir, socket, _stop) = serve("memory", |s| {
        s.service("memory", |s| s.state_store(memory::MemoryStore::default))
    })
    .await;
    let report = run(
        &Target::new(&socket, Block::State),
        &SuiteConfig::with_operations(["etag", "first-write", "transaction"]),
    )
    .await;
    assert_pass(&report);
    assert!(report.passed() >= 17, "{}", report.table());
    assert!(
        matches!(report.outcome("state/ttl/expires"), Some(Result_::Skip(_))),
        "TTL is neither declared nor advertised"
    );
}

/// Stores values but never checks ETags.
#[derive(Default)]
struct IgnoresEtags(Mutex<HashMap<String, (Vec<u8>, u64)>>);

#[async_trait]
impl StateStore for IgnoresEtags {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }
    fn features(&self) -> Vec<StateFeature> {
        vec![StateFeature::Etag]
    }
    async fn get(&self, r: GetRequest) -> Result<Option<StateItem>, ComponentError> {
        Ok(self.0.lock().unwrap().get(&r.key).map(|(d, v)| StateItem {
            data: d.clone(),
            etag: Some(v.to_string()),
            ..Default::default()
        }))
    }
    async fn set(&self, r: SetRequest) -> Result<(), ComponentError> {
        let mut items = self.0.lock().unwrap();
        let v = items.get(&r.key).map_or(1, |(_, v)| v + 1);
        items.insert(r.key, (r.value, v));
        Ok(())
    }
    async fn delete(&self, r: DeleteRequest) -> Result<(), ComponentError> {
        self.0.lock().unwrap().remove(&r.key);
        Ok(())
    }
}

#[tokio::test]
async fn a_store_that_ignores_etags_fails_the_etag_cases() {
    let (_dir, socket, _stop) = serve("sloppy", |s| {
        s.service("sloppy", |s| s.state_store(IgnoresEtags::default))
    })
    .await;
    let report = run(
        &Target::new(&socket, Block::State),
        &SuiteConfig::with_operations(["etag"]),
    )
    .await;
    assert!(failed(&report, "state/etag/set-stale").contains("ignores ETags"));
    assert!(
        failed(&report, "state/etag/concurrent-writers-one-winner").contains("exactly one must")
    );
    assert!(failed(&report, "state/etag/delete-with-etag").contains("stale ETag succeeded"));
    assert_eq!(
        report.outcome("state/basic/set-get-delete"),
        Some(&Result_::Pass),
        "{}",
        report.table()
    );
}

/// The memory store, advertising TTL it does not implement.
#[derive(Default)]
struct ClaimsTtl(memory::MemoryStore);

#[async_trait]
impl StateStore for ClaimsTtl {
    async fn init(&self, m: Metadata) -> Result<(), ComponentError> {
        self.0.init(m).await
    }
    fn features(&self) -> Vec<StateFeature> {
        vec![StateFeature::Etag, StateFeature::Ttl]
    }
    async fn get(&self, r: GetRequest) -> Result<Option<StateItem>, ComponentError> {
        self.0.get(r).await
    }
    async fn set(&self, r: SetRequest) -> Result<(), ComponentError> {
        self.0.set(r).await
    }
    async fn delete(&self, r: DeleteRequest) -> Result<(), ComponentError> {
        self.0.delete(r).await
    }
}

#[tokio::test]
async fn an_advertised_feature_that_does_not_work_fails() {
    let (_dir, socket, _stop) = serve("claims", |s| {
        s.service("claims", |s| s.state_store(ClaimsTtl::default))
    })
    .await;
    // TTL is not declared, but it is advertised, so it is tested.
    let report = run(
        &Target::new(&socket, Block::State),
        &SuiteConfig::with_operations(["etag", "transaction"]),
    )
    .await;
    assert!(failed(&report, "state/ttl/expires").contains("still readable"));
    assert!(
        failed(&report, "state/features/declared-are-advertised")
            .contains("transaction (feature TRANSACTIONAL)")
    );
}

// === pub/sub ===

#[derive(Default)]
struct Topic {
    log: Vec<PulledMessage>,
    groups: HashMap<String, (usize, VecDeque<usize>)>,
}

/// In-memory pub/sub; with `lose_unacked` it drops nacked and abandoned messages.
#[derive(Clone, Default)]
struct MemoryBus {
    topics: Arc<Mutex<HashMap<String, Topic>>>,
    wake: Arc<Notify>,
    lose_unacked: bool,
}

impl MemoryBus {
    fn claim(&self, topic: &str, group: &str) -> Option<(usize, PulledMessage)> {
        let mut topics = self.topics.lock().unwrap();
        let t = topics.entry(topic.to_owned()).or_default();
        let log_len = t.log.len();
        let (cursor, redo) = t.groups.entry(group.to_owned()).or_default();
        let index = match redo.pop_front() {
            Some(i) => i,
            None if *cursor < log_len => {
                *cursor += 1;
                *cursor - 1
            }
            None => return None,
        };
        Some((index, t.log[index].clone()))
    }
}

#[async_trait]
impl PubSub for MemoryBus {
    async fn init(&self, m: Metadata) -> Result<(), ComponentError> {
        m.bool_or("strict", false).map(drop)
    }
    async fn publish(&self, r: PublishRequest) -> Result<(), ComponentError> {
        let message = PulledMessage {
            data: r.data,
            topic: r.topic.clone(),
            metadata: r.metadata,
            content_type: r.content_type,
        };
        self.topics
            .lock()
            .unwrap()
            .entry(r.topic)
            .or_default()
            .log
            .push(message);
        self.wake.notify_waiters();
        Ok(())
    }
    async fn subscribe(&self, topic: Topic_) -> Result<MessageStream, ComponentError> {
        let group = topic
            .metadata
            .get("consumerID")
            .cloned()
            .unwrap_or_default();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let bus = self.clone();
        tokio::spawn(async move {
            loop {
                let woken = bus.wake.notified();
                let Some((index, message)) = bus.claim(&topic.name, &group) else {
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep(Duration::from_millis(20)) => {}
                        () = tx.closed() => return,
                    }
                    continue;
                };
                let (delivery, outcome) = Delivery::new(message);
                let sent = tx.send(Ok(delivery)).await.is_ok();
                let outcome = if sent {
                    outcome.await
                } else {
                    Outcome::Abandoned
                };
                if !matches!(outcome, Outcome::Acked(())) && !bus.lose_unacked {
                    let mut topics = bus.topics.lock().unwrap();
                    if let Some((_, redo)) = topics
                        .get_mut(&topic.name)
                        .and_then(|t| t.groups.get_mut(&group))
                    {
                        redo.push_front(index);
                    }
                }
                if !sent {
                    return;
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

type Topic_ = outrigger_component_sdk::pubsub::Topic;

#[tokio::test]
async fn a_correct_bus_passes_the_pubsub_suite() {
    let bus = MemoryBus::default();
    let (_dir, socket, _stop) = serve("bus", move |s| {
        s.service("bus", move |s| s.pubsub(move || bus.clone()))
    })
    .await;
    let mut config = SuiteConfig::with_operations(["durable", "ordering"]);
    config.bad_metadata = HashMap::from([("strict".to_owned(), "sometimes".to_owned())]);
    let report = run(&Target::new(&socket, Block::Pubsub), &config).await;
    assert_pass(&report);
    assert_eq!(
        report.outcome("pubsub/init/bad-metadata-fails"),
        Some(&Result_::Pass)
    );
}

#[tokio::test]
async fn a_bus_that_loses_unacked_messages_fails_redelivery() {
    let bus = MemoryBus {
        lose_unacked: true,
        ..MemoryBus::default()
    };
    let (_dir, socket, _stop) = serve("lossy", move |s| {
        s.service("lossy", move |s| s.pubsub(move || bus.clone()))
    })
    .await;
    let mut config = SuiteConfig::with_operations(["durable"]);
    config.case_timeout = Duration::from_secs(6);
    config.filter = Some("redelivery".into());
    let report = run(&Target::new(&socket, Block::Pubsub), &config).await;
    assert!(
        failed(&report, "pubsub/redelivery/nack-redelivered").contains("redelivery after a nack")
    );
    assert!(
        failed(&report, "pubsub/redelivery/dropped-stream-redelivered").contains("message lost?")
    );
}

// === secrets and bindings ===

struct Vault;

#[async_trait]
impl SecretStore for Vault {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn get(&self, key: &str, _: HashMap<String, String>) -> Result<Secret, ComponentError> {
        (key == "db")
            .then(|| HashMap::from([("db".to_owned(), "pw".to_owned())]))
            .ok_or_else(|| ComponentError::not_found(key.to_owned()))
    }
    async fn bulk_get(
        &self,
        _: HashMap<String, String>,
    ) -> Result<HashMap<String, Secret>, ComponentError> {
        Ok(HashMap::from([(
            "db".to_owned(),
            HashMap::from([("db".to_owned(), "pw".to_owned())]),
        )]))
    }
}

#[tokio::test]
async fn secrets_suite() {
    let (_dir, socket, _stop) = serve("vault", |s| {
        s.service("vault", |s| s.secret_store(|| Vault))
    })
    .await;
    let mut config = SuiteConfig::with_operations(["bulk"]);
    config.secrets = HashMap::from([(
        "db".to_owned(),
        HashMap::from([("db".to_owned(), "pw".to_owned())]),
    )]);
    assert_pass(&run(&Target::new(&socket, Block::Secrets), &config).await);
    config.secrets.insert(
        "db".into(),
        HashMap::from([("db".to_owned(), "other".to_owned())]),
    );
    let report = run(&Target::new(&socket, Block::Secrets), &config).await;
    assert!(failed(&report, "secrets/get/configured-secrets").contains("want"));
}

struct Echo;

#[async_trait]
impl OutputBinding for Echo {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }
    fn operations(&self) -> Vec<String> {
        vec!["create".into()]
    }
    async fn invoke(&self, r: InvokeRequest) -> Result<InvokeResponse, ComponentError> {
        Ok(InvokeResponse {
            data: r.data,
            ..Default::default()
        })
    }
}

struct Ticker;

#[async_trait]
impl InputBinding for Ticker {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn read(&self) -> Result<EventStream, ComponentError> {
        let (delivery, _outcome) = Delivery::new(InputEvent {
            data: b"tick".to_vec(),
            ..Default::default()
        });
        Ok(Box::pin(tokio_stream::StreamExt::chain(
            tokio_stream::iter([Ok(delivery)]),
            tokio_stream::pending(),
        )))
    }
}

#[tokio::test]
async fn bindings_suite() {
    let (_dir, socket, _stop) = serve("echo", |s| {
        s.service("echo", |s| {
            s.output_binding(|| Echo).input_binding(|| Ticker)
        })
    })
    .await;
    let mut config = SuiteConfig::with_operations(["output", "input"]);
    config.invoke = vec![("create".into(), b"x".to_vec())];
    assert_pass(&run(&Target::new(&socket, Block::Bindings), &config).await);
}

#[tokio::test]
async fn a_missing_socket_is_a_failed_case_not_a_panic() {
    let report = run(
        &Target::new("/nonexistent/none.sock", Block::State),
        &SuiteConfig::default(),
    )
    .await;
    assert!(failed(&report, "state/init/connect-and-init").contains("cannot connect"));
}
