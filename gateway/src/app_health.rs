//! Probing the app's health (`--enable-app-health-check`): deliveries pause
//! while the app is unhealthy and resume when it recovers.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app_channel::App;
use crate::config::AppHealthCheck;

/// Start probing; the receiver holds `true` while the app is healthy. The
/// app counts as healthy until `threshold` probes in a row fail.
pub fn watch(
    app: App,
    check: AppHealthCheck,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(true);
    tracker.spawn(async move {
        let mut failures = 0u32;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(check.interval) => {}
            }
            let ok = tokio::time::timeout(check.timeout, probe(&app, &check.path))
                .await
                .unwrap_or(false);
            failures = if ok { 0 } else { failures.saturating_add(1) };
            let healthy = failures < check.threshold;
            if *tx.borrow() != healthy {
                if healthy {
                    tracing::info!("the app is healthy again; resuming deliveries");
                } else {
                    tracing::warn!(failures, "the app is unhealthy; pausing deliveries");
                }
                tx.send_replace(healthy);
            }
        }
    });
    rx
}

async fn probe(app: &App, path: &str) -> bool {
    match app {
        App::Http(http) => http
            .call("GET", path, "text/plain", Vec::new())
            .await
            .is_ok_and(|r| (200..300).contains(&r.status)),
        App::Grpc(grpc) => grpc
            .health_client()
            .health_check(grpc.request(()))
            .await
            .is_ok(),
    }
}
