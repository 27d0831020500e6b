//! Timers as clients define them, validated, and their running: in
//! memory, one task per timer, each firing a turn of its actor.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use super::duration;
use super::host::{Host, Outcome, Slot, Turn, TurnKind};

/// `null` or a missing string field: empty.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(<Option<String> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

/// A timer as a client defines it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerRequest {
    /// First firing: a duration from now, or an RFC 3339 time.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub due_time: String,
    /// Period (Go, ISO 8601, or `R<n>/<period>`); empty: fire once.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub period: String,
    /// Expiry: a duration from the due time, or an RFC 3339 time.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ttl: String,
    /// The callback method the SDK runs.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub callback: String,
    /// Data passed back on each firing.
    #[serde(default)]
    pub data: serde_json::Value,
}

/// A validated timer.
#[derive(Debug, Clone)]
pub(crate) struct Timer {
    pub(crate) due: chrono::DateTime<chrono::Utc>,
    pub(crate) schedule: duration::Schedule,
    pub(crate) expires: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) request: TimerRequest,
}

impl Timer {
    pub(crate) fn parse(request: TimerRequest) -> Result<Self, String> {
        let due = duration::parse_due_time(&request.due_time, chrono::Utc::now())
            .map_err(|e| format!("dueTime: {e}"))?;
        Ok(Self {
            due,
            schedule: duration::parse_period(&request.period)
                .map_err(|e| format!("period: {e}"))?,
            // As daprd, a TTL duration counts from the first due time.
            expires: duration::parse_ttl(&request.ttl, due).map_err(|e| format!("ttl: {e}"))?,
            request,
        })
    }

    /// What the app gets on each firing.
    pub(crate) fn callback_body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "callback": self.request.callback,
            "data": self.request.data,
            "dueTime": self.request.due_time,
            "period": self.request.period,
        }))
        .unwrap_or_default()
    }
}

impl Host {
    /// Start (or replace) timer `name` of `slot`.
    pub(crate) fn start_timer(self: &Arc<Self>, slot: &Arc<Slot>, name: &str, timer: Timer) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        if let Ok(mut timers) = slot.timers.lock()
            && let Some((_, old)) = timers.insert(name.to_owned(), (serial, token.clone()))
        {
            old.cancel();
        }
        let (host, slot, name) = (Arc::clone(self), Arc::clone(slot), name.to_owned());
        tokio::spawn(async move {
            let body = timer.callback_body();
            let mut fired = 0u32;
            let mut next = timer.due;
            loop {
                let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                if timer.expires.is_some_and(|at| chrono::Utc::now() >= at) {
                    break;
                }
                let turn = Turn {
                    kind: TurnKind::Timer(name.clone()),
                    headers: Vec::new(),
                    body: body.clone(),
                };
                match host.turn(&slot, &turn, None).await {
                    Ok(Outcome::Moved) => return,
                    Ok(Outcome::Done(reply)) if reply.status != 200 => {
                        tracing::warn!(timer = %name, status = reply.status, "actor timer callback failed");
                    }
                    Ok(Outcome::Done(_)) => {}
                    Err(err) => {
                        tracing::warn!(timer = %name, error = %err, "actor timer callback failed")
                    }
                }
                fired += 1;
                let Some(period) = timer.schedule.period else {
                    break;
                };
                if timer.schedule.repetitions.is_some_and(|n| fired >= n) {
                    break;
                }
                next = chrono::Utc::now()
                    + chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX);
            }
            if let Ok(mut timers) = slot.timers.lock()
                && timers.get(&name).is_some_and(|(s, _)| *s == serial)
            {
                timers.remove(&name);
            }
        });
    }

    /// Stop timer `name` of `slot` (no error if there is none, as daprd).
    pub(crate) fn stop_timer(&self, slot: &Slot, name: &str) {
        if let Ok(mut timers) = slot.timers.lock()
            && let Some((_, token)) = timers.remove(name)
        {
            token.cancel();
        }
    }
}
