//! The actor app of the actors benchmark, a process of its own: daprd's
//! app-side actor protocol, answering at once, plus two endpoints of its
//! own for the benchmark to read what reminders it saw.
//!
//! - `GET /dapr/config`: one actor type, [`ACTOR_TYPE`], never idle.
//! - `PUT /actors/{type}/{id}/method/{*method}`: answers `{"ok":true}`;
//!   `remind/{name}` also records when it arrived and the `due` (Unix µs)
//!   the benchmark put in the reminder's data.
//! - `DELETE /actors/{type}/{id}`: 200.
//! - `GET /bench/fires`: the reminder firings so far, and forgets them.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{any, delete, get};

/// The one actor type the app hosts.
pub(crate) const ACTOR_TYPE: &str = "Bench";

/// Set to a port, the binary serves the actor app on it instead.
pub(crate) const APP_MODE: &str = "OUTRIGGER_BENCH_ACTOR_APP_PORT";

/// One reminder firing as the app saw it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Fire {
    /// `{id}/{name}`.
    pub(crate) key: String,
    /// When the app received it, Unix µs.
    pub(crate) at_us: i64,
    /// When it was due, Unix µs (from the reminder's data).
    pub(crate) due_us: i64,
}

/// Wall-clock now, Unix µs (the benchmark and the app share the clock).
pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

type Fires = Arc<Mutex<Vec<Fire>>>;

async fn method(
    State(fires): State<Fires>,
    Path((_actor_type, id, method)): Path<(String, String, String)>,
    body: Bytes,
) -> &'static str {
    if let Some(name) = method.strip_prefix("remind/") {
        let at_us = now_us();
        // daprd's reminder body: {"dueTime", "period", "data"}.
        let due_us = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["data"]["due"].as_i64())
            .unwrap_or(0);
        if let Ok(mut fires) = fires.lock() {
            fires.push(Fire {
                key: format!("{id}/{name}"),
                at_us,
                due_us,
            });
        }
    }
    r#"{"ok":true}"#
}

/// Serve the app on `127.0.0.1:port` until killed.
pub(crate) async fn serve(port: u16) {
    let fires: Fires = Arc::default();
    let router = axum::Router::new()
        .route(
            "/dapr/config",
            get(|| async {
                axum::Json(serde_json::json!({
                    "entities": [ACTOR_TYPE],
                    "actorIdleTimeout": "1h",
                    "actorScanInterval": "30s",
                }))
            }),
        )
        .route("/actors/{actor_type}/{id}/method/{*method}", any(method))
        .route("/actors/{actor_type}/{id}", delete(|| async { "" }))
        .route(
            "/bench/fires",
            get(|State(fires): State<Fires>| async move {
                let taken = fires.lock().map(|mut f| std::mem::take(&mut *f));
                axum::Json(taken.unwrap_or_default())
            }),
        )
        .with_state(fires);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the actor app's port");
    let _ = axum::serve(listener, router).await;
}
