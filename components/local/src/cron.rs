//! `bindings.cron`: an input binding that fires on a schedule.
//!
//! `schedule` is `@every <duration>` (`@every 10s`), a nickname (`@hourly`,
//! `@daily`, `@weekly`, `@monthly`, `@yearly`), or a cron expression of five
//! fields, or six with seconds first.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use outrigger_component_sdk::bindings::{EventStream, InputBinding, InputEvent};
use outrigger_component_sdk::{ComponentError, Delivery, Metadata, async_trait, parse_duration};
use tokio::sync::mpsc;

use crate::db;

#[derive(Debug, Clone)]
enum Schedule {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

impl Schedule {
    fn parse(raw: &str) -> Result<Self, ComponentError> {
        let raw = raw.trim();
        if let Some(every) = raw.strip_prefix("@every") {
            let every = parse_duration(every.trim())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ComponentError::invalid_argument(
                        "schedule",
                        format!("{raw:?}: @every needs a duration such as 10s"),
                    )
                })?;
            return Ok(Self::Every(every));
        }
        raw.parse::<croner::Cron>()
            .map(|c| Self::Cron(Box::new(c)))
            .map_err(|e| {
                ComponentError::invalid_argument(
                    "schedule",
                    format!("{raw:?} is not a cron schedule: {e}"),
                )
            })
    }

    /// Time until the next firing after now.
    fn wait(&self) -> Option<Duration> {
        match self {
            Self::Every(d) => Some(*d),
            Self::Cron(cron) => {
                let now = chrono::Utc::now();
                let next = cron.find_next_occurrence(&now, false).ok()?;
                (next - now).to_std().ok()
            }
        }
    }
}

/// The cron binding. Configure with `Init`.
#[derive(Default)]
pub struct Cron {
    schedule: OnceLock<Schedule>,
}

#[async_trait]
impl InputBinding for Cron {
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        db::check_keys(&metadata, &["schedule"])?;
        let schedule = Schedule::parse(metadata.required("schedule")?)?;
        self.schedule.set(schedule).map_err(|_| {
            ComponentError::failed_precondition("Init was already called on this instance")
        })
    }

    async fn read(&self) -> Result<EventStream, ComponentError> {
        let schedule = self.schedule.get().cloned().ok_or_else(|| {
            ComponentError::failed_precondition("the cron binding is not initialised")
        })?;
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let Some(wait) = schedule.wait() else {
                    tracing::warn!("the schedule has no next occurrence; stopping");
                    return;
                };
                tokio::select! {
                    () = tx.closed() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                let fired = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let (delivery, outcome) = Delivery::new(InputEvent {
                    data: Vec::new(),
                    metadata: HashMap::from([
                        ("timeZone".to_owned(), "UTC".to_owned()),
                        ("readTimeUTC".to_owned(), fired),
                    ]),
                    content_type: None,
                });
                if tx.send(Ok(delivery)).await.is_err() {
                    return;
                }
                // A missed tick is not replayed: cron fires on time or not at all.
                drop(outcome);
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert!(
            matches!(Schedule::parse("@every 10s"), Ok(Schedule::Every(d)) if d == Duration::from_secs(10))
        );
        for ok in ["@daily", "@hourly", "*/5 * * * *", "0 30 * * * *"] {
            let s = Schedule::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(s.wait().is_some(), "{ok}");
        }
        for bad in ["@every", "@every never", "61 * * * *", "not cron"] {
            let err = Schedule::parse(bad).unwrap_err();
            assert!(err.message().starts_with("schedule"), "{bad}: {err}");
        }
    }
}
