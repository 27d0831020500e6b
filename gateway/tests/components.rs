//! Component lifecycle as the gateway sees it: a backend that is not up at
//! start-up, a component process that restarts, and a type nothing serves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use outrigger::components::Readiness;
use outrigger_component_sdk::state::*;
use outrigger_component_sdk::{ComponentError, ComponentServer, Metadata, async_trait};
use tokio_util::sync::CancellationToken;

/// A store whose `Init` fails while its "backend" is down.
struct Flaky {
    backend_up: Arc<AtomicBool>,
    inner: support::MemoryStore,
}

#[async_trait]
impl StateStore for Flaky {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        if self.backend_up.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(ComponentError::unavailable(
                "database at db:5432 refused the connection",
            ))
        }
    }
    async fn get(&self, r: GetRequest) -> Result<Option<StateItem>, ComponentError> {
        self.inner.get(r).await
    }
    async fn set(&self, r: SetRequest) -> Result<(), ComponentError> {
        self.inner.set(r).await
    }
    async fn delete(&self, r: DeleteRequest) -> Result<(), ComponentError> {
        self.inner.delete(r).await
    }
}

const RESOURCES: &str =
    "kind: Component\nmetadata: {name: statestore}\nspec: {type: state.flaky, version: v1}\n";

fn serve(sockets: &std::path::Path, up: Arc<AtomicBool>) -> CancellationToken {
    let stop = CancellationToken::new();
    let server = ComponentServer::new(sockets).service("flaky", move |s| {
        let up = Arc::clone(&up);
        s.state_store(move || Flaky {
            backend_up: Arc::clone(&up),
            inner: support::MemoryStore::default(),
        })
    });
    let token = stop.clone();
    tokio::spawn(server.serve(async move { token.cancelled().await }));
    stop
}

async fn wait_socket(path: &std::path::Path) {
    for _ in 0..500 {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("socket {} never came up", path.display());
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 15 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_down_at_start_is_reported_then_retried() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(dir.path().join("resources/c.yaml"), RESOURCES).unwrap();
    let up = Arc::new(AtomicBool::new(false));
    let _component = serve(&sockets, Arc::clone(&up));
    wait_socket(&sockets.join("flaky.sock")).await;

    let shutdown = CancellationToken::new();
    let gateway = outrigger::Gateway::start(support::config(dir.path(), None), shutdown.clone())
        .await
        .expect("a component that is not ready does not stop the gateway");
    let rt = Arc::clone(&gateway.runtime);
    let statestore = rt.registry.get("statestore").unwrap();
    let Readiness::NotReady(reason) = statestore.readiness() else {
        panic!("should not be ready while its backend is down");
    };
    assert!(reason.contains("refused the connection"), "{reason}");
    let err = rt
        .state
        .get("statestore", "k", None, Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, "ERR_COMPONENT_NOT_READY");
    assert!(
        err.message.contains("statestore") && err.message.contains("refused"),
        "{}",
        err.message
    );
    assert!(rt.extended_metadata()["component.statestore.status"].starts_with("not ready"));

    up.store(true, Ordering::SeqCst);
    eventually("re-init after the backend came up", || {
        statestore.readiness() == Readiness::Ready
    })
    .await;
    rt.state
        .save(
            "statestore",
            vec![outrigger::runtime::state::SaveItem {
                key: "k".into(),
                value: b"1".to_vec(),
                ..Default::default()
            }],
        )
        .await
        .unwrap();
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_component_is_initialised_again() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(dir.path().join("resources/c.yaml"), RESOURCES).unwrap();
    let up = Arc::new(AtomicBool::new(true));
    let first = serve(&sockets, Arc::clone(&up));
    wait_socket(&sockets.join("flaky.sock")).await;
    let shutdown = CancellationToken::new();
    let gateway = outrigger::Gateway::start(support::config(dir.path(), None), shutdown.clone())
        .await
        .unwrap();
    let rt = Arc::clone(&gateway.runtime);
    let statestore = rt.registry.get("statestore").unwrap();
    assert_eq!(statestore.readiness(), Readiness::Ready);

    // The component process goes away and a new one (with no instances) takes its socket.
    first.cancel();
    let socket = sockets.join("flaky.sock");
    eventually("old socket removed", || !socket.exists()).await;
    let _second = serve(&sockets, Arc::clone(&up));
    wait_socket(&socket).await;
    // Ping notices the restart and Init runs again: state calls work anew.
    let mut served = false;
    for _ in 0..300 {
        if statestore.readiness() == Readiness::Ready
            && rt
                .state
                .get("statestore", "probe", None, Default::default())
                .await
                .is_ok()
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served,
        "the restarted component was not initialised again within 15 s"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn type_without_a_socket_is_a_startup_error_naming_file_and_sockets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::create_dir_all(dir.path().join("sockets")).unwrap();
    std::fs::write(
        dir.path().join("resources/redis.yaml"),
        "kind: Component\nmetadata: {name: cache}\nspec: {type: state.redis, version: v1}\n",
    )
    .unwrap();
    let err =
        outrigger::Gateway::start(support::config(dir.path(), None), CancellationToken::new())
            .await
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("redis.yaml")
            && err.contains("state.redis")
            && err.contains("sockets found: none"),
        "{err}"
    );
}
