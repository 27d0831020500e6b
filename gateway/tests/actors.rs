//! Actors through real gateways, real state-store components and in-test
//! actor apps (axum servers speaking daprd's app-side actor protocol).
//!
//! - One gateway on SQLite: calls, turn order, state, timers, reminders,
//!   idle deactivation, reentrancy, the list APIs, and bad input.
//! - Three gateways on one PostgreSQL: 1 000 ids hammered from every
//!   gateway never run two turns at once; a gateway that dies loses its
//!   actors to the others within the lease time, and no reminder is lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod actor_harness;
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use actor_harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gateway_calls_state_timers_reminders_and_errors() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .with_test_writer()
        .try_init();
    let db = tempfile::tempdir().unwrap();
    let yaml = sqlite_yaml(&db.path().join("actors.db"));
    let seen = Arc::new(Seen::default());
    let node = node(
        "local",
        &yaml,
        Some((0, Arc::clone(&seen), config(serde_json::json!({})))),
    )
    .await;
    host_ready(&node).await;

    // A call reaches the app with the body; 200 with its answer.
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/a1/method/work",
        "\"hi\"",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"app":0,"got":"\"hi\""}"#);

    // 50 concurrent calls to one id run one at a time.
    let calls = (0..50).map(|_| {
        call(
            &node,
            Method::PUT,
            "/v1.0/actors/Counter/busy/method/work",
            "{}",
        )
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        seen.overlaps.load(Ordering::SeqCst),
        0,
        "two turns of one actor overlapped"
    );

    // An app error header → 500 with the app's body; an app 404 → ERR_ACTOR_INVOKE_METHOD.
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/a1/method/fail",
        "",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "it broke")
    );
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/a1/method/missing",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("ERR_ACTOR_INVOKE_METHOD") && body.contains("404"),
        "{body}"
    );

    // State: a transaction, then reads; HTTP stores the value's JSON.
    let tx = r#"[{"operation":"upsert","request":{"key":"count","value":{"n":3}}},
                 {"operation":"upsert","request":{"key":"gone","value":1}},
                 {"operation":"delete","request":{"key":"gone"}}]"#;
    let (status, body) = call(&node, Method::POST, "/v1.0/actors/Counter/a1/state", tx).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/a1/state/count",
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"n":3}"#));
    let (status, _) = call(&node, Method::GET, "/v1.0/actors/Counter/a1/state/gone", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Another actor's key of the same name is separate.
    let (status, _) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/a2/state/count",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A timer fires three times (R3), under the actor's turn.
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/a1/timers/tick",
        r#"{"dueTime":"0s","period":"R3/PT0.1S","callback":"onTick","data":{"x":1}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    wait_for("3 timer firings", 5, || seen.count("timer", "a1") >= 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.count("timer", "a1"), 3, "R3 means exactly three");

    // Reminders: one every 100 ms five times; one that the app cancels.
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/r1/reminders/five",
        r#"{"dueTime":"0s","period":"R5/PT0.1S","data":"payload"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/r1/reminders/five",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (got["period"].as_str(), got["data"].as_str()),
        (Some("R5/PT0.1S"), Some("payload"))
    );
    call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/r2/reminders/cancel-me",
        r#"{"period":"0.1s"}"#,
    )
    .await;
    let (_, listed) = call(
        &node,
        Method::GET,
        "/v1.0-alpha1/actors/Counter/reminders",
        "",
    )
    .await;
    assert!(
        listed.contains("\"five\"") && listed.contains("cancel-me"),
        "{listed}"
    );
    wait_for("5 reminder firings", 10, || {
        eprintln!("r1 {}", seen.count("remind", "r1"));
        seen.count("remind", "r1") >= 5
    })
    .await;
    wait_for("the cancelled reminder to go", 5, || {
        seen.count("remind", "r2") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(seen.count("remind", "r1"), 5, "R5 means exactly five");
    assert_eq!(
        seen.count("remind", "r2"),
        1,
        "X-Daprremindercancel stops a reminder"
    );
    let (status, body) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/r1/reminders/five",
        "",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a finished reminder is gone: {body}"
    );
    assert!(body.contains("ERR_ACTOR_REMINDER_NOT_FOUND"), "{body}");

    // A TTL ends a periodic reminder (counted from its due time).
    call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/r4/reminders/brief",
        r#"{"period":"100ms","ttl":"PT0.35S"}"#,
    )
    .await;
    wait_for("the TTL reminder to fire", 5, || {
        seen.count("remind", "r4") >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let fired = seen.count("remind", "r4");
    assert!(
        (2..=4).contains(&fired),
        "a 350 ms TTL at 100 ms allows at most 4 firings, got {fired}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.count("remind", "r4"), fired, "fired after its TTL");

    // Deleting a reminder stops it.
    call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/r3/reminders/r",
        r#"{"dueTime":"1h"}"#,
    )
    .await;
    let (status, _) = call(
        &node,
        Method::DELETE,
        "/v1.0/actors/Counter/r3/reminders/r",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/r3/reminders/r",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Reentrancy: on for Reentrant (the chain id comes back), off for Counter (blocked).
    let (_, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Reentrant/x/method/nested",
        "",
    )
    .await;
    assert_eq!(body, "nested:200", "reentrant self-call");
    let (_, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/y/method/nested",
        "",
    )
    .await;
    assert_eq!(
        body, "nested:blocked",
        "a non-reentrant actor cannot call itself"
    );
    assert!(seen.chains.lock().unwrap().iter().any(Option::is_some));

    // The list API shows the active actors.
    let (status, body) = call(&node, Method::GET, "/v1.0-alpha1/actors/Counter", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("\"a1\"") && body.contains("\"busy\""),
        "{body}"
    );

    // Bad input, each naming the problem.
    for (uri, payload, code, needle) in [
        (
            "/v1.0/actors/Counter/a1/reminders/r",
            r#"{"period":"often"}"#,
            "ERR_MALFORMED_REQUEST",
            "period",
        ),
        (
            "/v1.0/actors/Counter/a1/reminders/r",
            r#"{"dueTime":"soon"}"#,
            "ERR_MALFORMED_REQUEST",
            "dueTime",
        ),
        (
            "/v1.0/actors/Counter/a1/reminders/r",
            r#"{"misfirePolicy":"maybe"}"#,
            "ERR_MALFORMED_REQUEST",
            "misfirePolicy",
        ),
        (
            "/v1.0/actors/Counter/a1/timers/t",
            r#"{"ttl":"never"}"#,
            "ERR_MALFORMED_REQUEST",
            "ttl",
        ),
        (
            "/v1.0/actors/Counter/a1/state",
            r#"[{"operation":"merge","request":{"key":"k"}}]"#,
            "ERR_NOT_SUPPORTED_STATE_OPERATION",
            "operation",
        ),
        (
            "/v1.0/actors/Counter/a1/state",
            r#"[{"operation":"upsert","request":{}}]"#,
            "ERR_MALFORMED_REQUEST",
            "key",
        ),
        (
            "/v1.0/actors/Counter/a1/state",
            "not json",
            "ERR_MALFORMED_REQUEST",
            "deserializ",
        ),
        (
            "/v1.0/actors/Nobody/a1/method/work",
            "",
            "ERR_ACTOR_NO_PLACEMENT",
            "Nobody",
        ),
    ] {
        let (status, body) = call(&node, Method::POST, uri, payload).await;
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{uri}: {status}"
        );
        assert!(
            body.contains(code) && body.contains(needle),
            "{uri} {payload}: {status} {body}"
        );
    }
    // The state written earlier is untouched by the failed requests.
    let (_, body) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/a1/state/count",
        "",
    )
    .await;
    assert_eq!(body, r#"{"n":3}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_actors_are_deactivated_and_reminders_survive_a_restart() {
    let db = tempfile::tempdir().unwrap();
    let yaml = sqlite_yaml(&db.path().join("actors.db"));
    let seen = Arc::new(Seen::default());
    let idle =
        config(serde_json::json!({"actorIdleTimeout": "300ms", "actorScanInterval": "100ms"}));
    let first = node("local", &yaml, Some((0, Arc::clone(&seen), idle.clone()))).await;
    host_ready(&first).await;
    call(
        &first,
        Method::POST,
        "/v1.0/actors/Counter/sleepy/method/work",
        "",
    )
    .await;
    wait_for("idle deactivation", 5, || {
        seen.count("deactivate", "sleepy") == 1
    })
    .await;
    let (_, body) = call(&first, Method::GET, "/v1.0-alpha1/actors/Counter", "").await;
    assert!(
        !body.contains("sleepy"),
        "deactivated actors are not listed: {body}"
    );

    // A reminder due in 1.5 s; the gateway stops (draining its actors) first.
    let (status, _) = call(
        &first,
        Method::POST,
        "/v1.0/actors/Counter/durable/reminders/later",
        r#"{"dueTime":"1500ms"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.count("remind", "durable"), 0);
    let second = node("local", &yaml, Some((1, Arc::clone(&seen), idle))).await;
    host_ready(&second).await;
    wait_for("the reminder after the restart", 10, || {
        seen.count("remind", "durable") == 1
    })
    .await;
    let fired_by: Vec<usize> = seen
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.1 == "remind")
        .map(|e| e.0)
        .collect();
    assert_eq!(fired_by, [1], "fired once, by the restarted gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_actor_state_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    let stop = CancellationToken::new();
    let gateway = outrigger::Gateway::start(support::config(dir.path(), None), stop.clone())
        .await
        .unwrap();
    let node = Node {
        _dir: dir,
        gateway,
        stop,
        component_stop: CancellationToken::new(),
    };
    let (status, body) = call(&node, Method::POST, "/v1.0/actors/Counter/a/method/m", "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("ERR_ACTOR_RUNTIME_NOT_FOUND") && body.contains("actorStateStore"),
        "{body}"
    );
}

/// 1 000 ids called from three gateways at once, each gateway with its own
/// app and `outrigger-postgres` component on one table; then one gateway
/// dies (its component stops, so it cannot renew) and its actors and
/// reminders move to the two others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_on_postgresql_never_overlap_and_survive_a_death() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let table = format!("actors_{}", std::process::id());
    let yaml = postgres_yaml(&url, &table);
    let seen = Arc::new(Seen::default());
    let mut nodes = Vec::new();
    for index in 0..3 {
        let n = node(
            "postgres",
            &yaml,
            Some((index, Arc::clone(&seen), config(serde_json::json!({})))),
        )
        .await;
        host_ready(&n).await;
        nodes.push(Arc::new(n));
    }

    let ids: Vec<String> = (0..1000).map(|i| format!("id-{i}")).collect();
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for node in &nodes {
        for chunk in ids.chunks(50) {
            let (node, chunk) = (Arc::clone(node), chunk.to_vec());
            callers.spawn(async move {
                for id in chunk {
                    let uri = format!("/v1.0/actors/Counter/{id}/method/work");
                    let (status, body) = call(&node, Method::PUT, &uri, "{}").await;
                    assert_eq!(status, StatusCode::OK, "{id}: {body}");
                }
            });
        }
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    eprintln!("3 000 calls over 1 000 ids in {:?}", started.elapsed());
    assert_eq!(seen.turns.load(Ordering::SeqCst), 3000);
    assert_eq!(
        seen.overlaps.load(Ordering::SeqCst),
        0,
        "two turns of one id overlapped"
    );

    // Every id is active on exactly one gateway, and all three host some.
    let mut hosts: HashMap<String, usize> = HashMap::new();
    let mut per_app = [0usize; 3];
    for n in &nodes {
        let (_, body) = call(n, Method::GET, "/v1.0-alpha1/actors/Counter", "").await;
        let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
        let listed = listed["actors"].as_array().unwrap().clone();
        assert_eq!(listed.len(), 1000, "every gateway lists all actors");
    }
    for (i, n) in nodes.iter().enumerate() {
        let local = n.gateway.runtime.actors.local_ids("Counter");
        per_app[i] = local.len();
        for id in local {
            assert!(
                hosts.insert(id.clone(), i).is_none(),
                "{id} active on two gateways"
            );
        }
    }
    assert_eq!(hosts.len(), 1000);
    assert!(
        per_app.iter().all(|n| *n > 200),
        "placement spreads: {per_app:?}"
    );

    // Reminders on 30 ids, every 200 ms.
    let reminded: Vec<String> = ids.iter().take(30).cloned().collect();
    for id in &reminded {
        let uri = format!("/v1.0/actors/Counter/{id}/reminders/beat");
        let (status, body) = call(&nodes[0], Method::POST, &uri, r#"{"period":"200ms"}"#).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    wait_for("every reminder firing", 10, || {
        reminded.iter().all(|id| seen.count("remind", id) >= 2)
    })
    .await;

    // Gateway 0 dies: it can no longer reach the store to renew.
    let dead: Vec<String> = nodes[0].gateway.runtime.actors.local_ids("Counter");
    assert!(!dead.is_empty());
    nodes[0].component_stop.cancel();
    let died = Instant::now();
    let counts: HashMap<String, usize> = reminded
        .iter()
        .map(|id| (id.clone(), seen.count("remind", id)))
        .collect();

    // Its actors keep answering: from it while its lease lasts, then from
    // the two others.
    let first = &dead[0];
    let uri = format!("/v1.0/actors/Counter/{first}/method/work");
    let moved = loop {
        let (status, body) = call(&nodes[1], Method::PUT, &uri, "{}").await;
        assert_eq!(status, StatusCode::OK, "{first}: {body}");
        let app: serde_json::Value = serde_json::from_str(&body).unwrap();
        if app["app"] != 0 {
            break died.elapsed();
        }
        assert!(died.elapsed() < LEASE_TTL * 5, "{first} never moved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("the dead gateway's actors answered elsewhere after {moved:?} (lease {LEASE_TTL:?})");
    assert!(moved < LEASE_TTL * 7 / 4, "moving took {moved:?}");
    for id in dead.iter().skip(1).take(100) {
        let uri = format!("/v1.0/actors/Counter/{id}/method/work");
        let (status, body) = call(&nodes[2], Method::PUT, &uri, "{}").await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
        let app: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_ne!(app["app"], 0, "{id} still ran on the dead gateway");
    }

    // No reminder is lost: each fires again after the death, elsewhere.
    wait_for("every reminder after the death", 10, || {
        reminded
            .iter()
            .all(|id| seen.count("remind", id) >= counts[id] + 2)
    })
    .await;
    assert_eq!(seen.overlaps.load(Ordering::SeqCst), 0);
    for node in &nodes {
        node.stop.cancel();
    }
}
