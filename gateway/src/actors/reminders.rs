//! Durable reminders, kept in the actor state store in partitions per actor
//! type (`outrigger||actors||reminders||{type}||{n}`), each a JSON list
//! changed by compare-and-set. Every host of a type scans its partitions;
//! a due reminder is fired by the gateway that holds (or takes) its actor's
//! lease, under the actor's turn, and its next due time is written back
//! after the app answered: at least once, surviving any restart.
//!
//! After downtime a periodic reminder has missed slots; its misfire policy
//! says what then (an Outrigger extension, `misfirePolicy` in the body):
//! `fireOnce` (the default, as daprd: one call, then the next future slot),
//! `skip` (no call for missed slots) or `catchUp:N` (up to N calls).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::duration::{Schedule, parse_due_time, parse_period, parse_ttl};
use super::placement::now_ms;
use super::store::{PREFIX, Store, StoreError};

/// What to do about slots missed while no gateway could fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub(crate) enum Misfire {
    #[default]
    FireOnce,
    Skip,
    CatchUp {
        max: u32,
    },
}

impl Misfire {
    /// `fireOnce`, `skip` or `catchUp:N`.
    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "" | "fireOnce" => Ok(Self::FireOnce),
            "skip" => Ok(Self::Skip),
            other => other
                .strip_prefix("catchUp:")
                .and_then(|n| n.trim().parse::<u32>().ok())
                .filter(|n| *n > 0)
                .map(|max| Self::CatchUp { max })
                .ok_or_else(|| {
                    format!("misfirePolicy: {other:?} is not fireOnce, skip or catchUp:N (N ≥ 1)")
                }),
        }
    }
}

/// One stored reminder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Reminder {
    pub(crate) actor_id: String,
    pub(crate) name: String,
    pub(crate) due_time: String,
    pub(crate) period: String,
    pub(crate) ttl: String,
    pub(crate) data: serde_json::Value,
    /// When it is next due (Unix ms).
    pub(crate) next_ms: i64,
    /// Calls left, when the period was `R<n>/...`.
    pub(crate) remaining: Option<u32>,
    pub(crate) period_ms: Option<i64>,
    pub(crate) expires_ms: Option<i64>,
    #[serde(default)]
    pub(crate) misfire: Misfire,
    /// Distinguishes a re-registration from the reminder it replaced.
    pub(crate) created: String,
}

/// What a client asks for.
#[derive(Debug, Clone, Default)]
pub struct ReminderRequest {
    /// First firing: a duration from now, or an RFC 3339 time.
    pub due_time: String,
    /// Period (Go, ISO 8601, `R<n>/<period>`); empty: fire once.
    pub period: String,
    /// Expiry: a duration from the due time, or an RFC 3339 time.
    pub ttl: String,
    /// Passed back on each firing.
    pub data: serde_json::Value,
    /// `fireOnce` (default), `skip` or `catchUp:N`.
    pub misfire: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Partition {
    reminders: Vec<Reminder>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    partitions: u32,
}

/// A reminder due now, with the calls its misfire policy asks for.
#[derive(Debug, Clone)]
pub(crate) struct Due {
    pub(crate) reminder: Reminder,
    pub(crate) calls: u32,
}

fn partition_of(id: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// Reminders of every type, through one store.
#[derive(Debug)]
pub(crate) struct Reminders {
    store: Store,
    partitions: Mutex<HashMap<String, u32>>,
    /// `(type, id, name)` being fired by this gateway now.
    in_flight: Mutex<HashSet<(String, String, String)>>,
    /// One writer per partition on this gateway: its own registrations and
    /// firings queue here instead of racing each other's compare-and-set.
    writers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Reminders {
    pub(crate) fn new(store: Store) -> Self {
        Self {
            store,
            partitions: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashSet::new()),
            writers: Mutex::new(HashMap::new()),
        }
    }

    /// Wait for this gateway's turn to write partition `key`.
    async fn writer(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .writers
            .lock()
            .map(|mut w| Arc::clone(w.entry(key.to_owned()).or_default()))
            .unwrap_or_default();
        lock.lock_owned().await
    }

    fn key(actor_type: &str, partition: u32) -> String {
        format!("{PREFIX}||reminders||{actor_type}||{partition}")
    }

    fn meta_key(actor_type: &str) -> String {
        format!("{PREFIX}||reminders||{actor_type}||meta")
    }

    /// Fix `actor_type`'s partition count to `wanted` unless one is stored
    /// already (the stored one wins: partitions are never re-split).
    pub(crate) async fn declare(&self, actor_type: &str, wanted: u32) -> Result<u32, StoreError> {
        let count = self
            .store
            .update::<Meta, _>(&Self::meta_key(actor_type), |current| match current {
                Some(meta) => {
                    let n = meta.partitions.max(1);
                    (Some(meta), n)
                }
                None => (Some(Meta { partitions: wanted }), wanted),
            })
            .await?;
        if count != wanted {
            tracing::warn!(
                actor_type,
                stored = count,
                configured = wanted,
                "remindersStoragePartitions differs from the stored count; keeping the stored one"
            );
        }
        if let Ok(mut p) = self.partitions.lock() {
            p.insert(actor_type.to_owned(), count);
        }
        Ok(count)
    }

    async fn partitions(&self, actor_type: &str) -> Result<u32, StoreError> {
        if let Some(n) = self
            .partitions
            .lock()
            .ok()
            .and_then(|p| p.get(actor_type).copied())
        {
            return Ok(n);
        }
        let n = self
            .store
            .get::<Meta>(&Self::meta_key(actor_type))
            .await?
            .map_or(1, |m| m.value.partitions.max(1));
        if let Ok(mut p) = self.partitions.lock() {
            p.insert(actor_type.to_owned(), n);
        }
        Ok(n)
    }

    async fn key_of(&self, actor_type: &str, id: &str) -> Result<String, StoreError> {
        let n = self.partitions(actor_type).await?;
        Ok(Self::key(actor_type, partition_of(id, n)))
    }

    /// Validate a request into a reminder (errors name the field).
    pub(crate) fn build(id: &str, name: &str, req: ReminderRequest) -> Result<Reminder, String> {
        let now = chrono::Utc::now();
        let due = parse_due_time(&req.due_time, now).map_err(|e| format!("dueTime: {e}"))?;
        let Schedule {
            period,
            repetitions,
        } = parse_period(&req.period).map_err(|e| format!("period: {e}"))?;
        // As daprd, a TTL duration counts from the first due time.
        let expires = parse_ttl(&req.ttl, due).map_err(|e| format!("ttl: {e}"))?;
        if expires.is_some_and(|at| at <= due) {
            return Err("ttl: the reminder would expire before it is first due".into());
        }
        if repetitions == Some(0) {
            return Err("period: R0 means the reminder never fires".into());
        }
        let misfire = Misfire::parse(&req.misfire)?;
        Ok(Reminder {
            actor_id: id.to_owned(),
            name: name.to_owned(),
            due_time: req.due_time,
            period: req.period,
            ttl: req.ttl,
            data: req.data,
            next_ms: due.timestamp_millis(),
            remaining: repetitions,
            period_ms: period.map(|p| i64::try_from(p.as_millis()).unwrap_or(i64::MAX)),
            expires_ms: expires.map(|at| at.timestamp_millis()),
            misfire,
            created: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Store `reminder` (replacing one of the same actor and name).
    pub(crate) async fn put(&self, actor_type: &str, reminder: Reminder) -> Result<(), StoreError> {
        let key = self.key_of(actor_type, &reminder.actor_id).await?;
        let _turn = self.writer(&key).await;
        self.store
            .update::<Partition, _>(&key, |current| {
                let mut part = current.unwrap_or_default();
                part.reminders
                    .retain(|r| !(r.actor_id == reminder.actor_id && r.name == reminder.name));
                part.reminders.push(reminder.clone());
                (Some(part), ())
            })
            .await
    }

    /// One reminder.
    pub(crate) async fn get(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
    ) -> Result<Option<Reminder>, StoreError> {
        let key = self.key_of(actor_type, id).await?;
        Ok(self.store.get::<Partition>(&key).await?.and_then(|p| {
            p.value
                .reminders
                .into_iter()
                .find(|r| r.actor_id == id && r.name == name)
        }))
    }

    /// Delete reminders of `actor_type` matching `id` (all ids when `None`)
    /// and `name` (all names when `None`); how many went.
    pub(crate) async fn delete(
        &self,
        actor_type: &str,
        id: Option<&str>,
        name: Option<&str>,
    ) -> Result<usize, StoreError> {
        let keys = match id {
            Some(id) => vec![self.key_of(actor_type, id).await?],
            None => (0..self.partitions(actor_type).await?)
                .map(|p| Self::key(actor_type, p))
                .collect(),
        };
        let mut removed = 0;
        for key in keys {
            let _turn = self.writer(&key).await;
            removed += self
                .store
                .update::<Partition, _>(&key, |current| {
                    let Some(mut part) = current else {
                        return (None, 0);
                    };
                    let before = part.reminders.len();
                    part.reminders.retain(|r| {
                        !(id.is_none_or(|id| r.actor_id == id)
                            && name.is_none_or(|name| r.name == name))
                    });
                    let gone = before - part.reminders.len();
                    (Some(part), gone)
                })
                .await?;
        }
        Ok(removed)
    }

    /// Every reminder of `actor_type` (of one actor when `id` is given).
    pub(crate) async fn list(
        &self,
        actor_type: &str,
        id: Option<&str>,
    ) -> Result<Vec<Reminder>, StoreError> {
        let mut out = Vec::new();
        for p in 0..self.partitions(actor_type).await? {
            if let Some(part) = self
                .store
                .get::<Partition>(&Self::key(actor_type, p))
                .await?
            {
                out.extend(
                    part.value
                        .reminders
                        .into_iter()
                        .filter(|r| id.is_none_or(|id| r.actor_id == id)),
                );
            }
        }
        out.sort_by(|a, b| (&a.actor_id, &a.name).cmp(&(&b.actor_id, &b.name)));
        Ok(out)
    }

    /// Due reminders of `actor_type` not in flight here, and the next due
    /// time of the others (to sleep until).
    pub(crate) async fn due(
        &self,
        actor_type: &str,
    ) -> Result<(Vec<Due>, Option<i64>), StoreError> {
        let now = now_ms();
        let (mut due, mut next) = (Vec::new(), None::<i64>);
        let busy = self.in_flight.lock().map(|s| s.clone()).unwrap_or_default();
        for r in self.list(actor_type, None).await? {
            if busy.contains(&(actor_type.to_owned(), r.actor_id.clone(), r.name.clone())) {
                continue;
            }
            if r.next_ms > now {
                next = Some(next.map_or(r.next_ms, |n| n.min(r.next_ms)));
                continue;
            }
            let calls = calls_for(&r, now);
            due.push(Due { reminder: r, calls });
        }
        Ok((due, next))
    }

    /// Mark a reminder as being fired here; `false` if it already is.
    pub(crate) fn claim(&self, actor_type: &str, r: &Reminder) -> bool {
        self.in_flight.lock().is_ok_and(|mut s| {
            s.insert((actor_type.to_owned(), r.actor_id.clone(), r.name.clone()))
        })
    }

    pub(crate) fn unclaim(&self, actor_type: &str, r: &Reminder) {
        if let Ok(mut s) = self.in_flight.lock() {
            s.remove(&(actor_type.to_owned(), r.actor_id.clone(), r.name.clone()));
        }
    }

    /// After the app answered `calls` times (or asked to `cancel`): advance
    /// the reminder to its next future slot, or remove it when done.
    pub(crate) async fn fired(
        &self,
        actor_type: &str,
        fired: &Reminder,
        calls: u32,
        cancel: bool,
    ) -> Result<(), StoreError> {
        let key = self.key_of(actor_type, &fired.actor_id).await?;
        let _turn = self.writer(&key).await;
        self.store
            .update::<Partition, _>(&key, |current| {
                let Some(mut part) = current else {
                    return (None, ());
                };
                let now = now_ms();
                let index = part.reminders.iter().position(|r| {
                    r.actor_id == fired.actor_id
                        && r.name == fired.name
                        && r.created == fired.created
                });
                let Some(index) = index else {
                    // Deleted or replaced meanwhile: nothing to advance.
                    return (Some(part), ());
                };
                match advance(&part.reminders[index], now, calls) {
                    Some(next) if !cancel => part.reminders[index] = next,
                    _ => {
                        part.reminders.remove(index);
                    }
                }
                (Some(part), ())
            })
            .await
    }
}

/// Slots of `r` due by `now` (at least one).
fn slots_due(r: &Reminder, now: i64) -> i64 {
    match r.period_ms {
        Some(p) if p > 0 && now > r.next_ms => (now - r.next_ms) / p + 1,
        _ => 1,
    }
}

/// How many calls the misfire policy makes for a reminder due at `now`.
pub(crate) fn calls_for(r: &Reminder, now: i64) -> u32 {
    if r.expires_ms.is_some_and(|at| at <= now) {
        return 0;
    }
    let slots = u32::try_from(slots_due(r, now)).unwrap_or(u32::MAX);
    let calls = match r.misfire {
        Misfire::FireOnce => 1,
        Misfire::Skip if slots > 1 => 0,
        Misfire::Skip => 1,
        Misfire::CatchUp { max } => slots.min(max),
    };
    r.remaining.map_or(calls, |left| calls.min(left))
}

/// The reminder after its due slots were handled at `now` with `calls`
/// calls to the app (repetitions count calls made, not slots); `None` when done.
fn advance(r: &Reminder, now: i64, calls: u32) -> Option<Reminder> {
    let period = r.period_ms.filter(|p| *p > 0)?;
    let slots = slots_due(r, now);
    let remaining = match r.remaining {
        Some(left) => {
            let left = i64::from(left) - i64::from(calls);
            if left <= 0 {
                return None;
            }
            Some(u32::try_from(left).unwrap_or(u32::MAX))
        }
        None => None,
    };
    let next_ms = r.next_ms.saturating_add(slots.saturating_mul(period));
    if r.expires_ms.is_some_and(|at| at <= next_ms) {
        return None;
    }
    Some(Reminder {
        next_ms,
        remaining,
        ..r.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reminder(period_ms: Option<i64>, remaining: Option<u32>, misfire: Misfire) -> Reminder {
        Reminder {
            actor_id: "a".into(),
            name: "r".into(),
            due_time: String::new(),
            period: String::new(),
            ttl: String::new(),
            data: serde_json::Value::Null,
            next_ms: 10_000,
            remaining,
            period_ms,
            expires_ms: None,
            misfire,
            created: "x".into(),
        }
    }

    #[test]
    fn on_time_reminders_fire_once_and_advance_one_period() {
        let r = reminder(Some(1000), Some(5), Misfire::FireOnce);
        assert_eq!(calls_for(&r, 10_050), 1);
        let next = advance(&r, 10_050, 1).unwrap();
        assert_eq!((next.next_ms, next.remaining), (11_000, Some(4)));
        let last = reminder(Some(1000), Some(1), Misfire::FireOnce);
        assert!(advance(&last, 10_050, 1).is_none());
        assert!(advance(&reminder(None, None, Misfire::FireOnce), 10_050, 1).is_none());
    }

    #[test]
    fn misfire_policies_after_downtime() {
        // Ten slots missed (10.0 s .. 19.0 s), now 19.5 s.
        let now = 19_500;
        assert_eq!(
            calls_for(&reminder(Some(1000), None, Misfire::FireOnce), now),
            1
        );
        assert_eq!(
            calls_for(&reminder(Some(1000), None, Misfire::Skip), now),
            0
        );
        assert_eq!(
            calls_for(
                &reminder(Some(1000), None, Misfire::CatchUp { max: 3 }),
                now
            ),
            3
        );
        assert_eq!(
            calls_for(
                &reminder(Some(1000), Some(2), Misfire::CatchUp { max: 5 }),
                now
            ),
            2
        );
        let next = advance(&reminder(Some(1000), None, Misfire::Skip), now, 0).unwrap();
        assert_eq!(next.next_ms, 20_000);
        // Repetitions count calls made, so R5 means five calls whatever was missed.
        let late = advance(&reminder(Some(1000), Some(5), Misfire::FireOnce), now, 1).unwrap();
        assert_eq!((late.next_ms, late.remaining), (20_000, Some(4)));
    }

    #[test]
    fn parses_misfire_policies() {
        assert_eq!(Misfire::parse("").unwrap(), Misfire::FireOnce);
        assert_eq!(Misfire::parse("skip").unwrap(), Misfire::Skip);
        assert_eq!(
            Misfire::parse("catchUp:4").unwrap(),
            Misfire::CatchUp { max: 4 }
        );
        assert!(
            Misfire::parse("catchUp:0")
                .unwrap_err()
                .contains("misfirePolicy")
        );
        assert!(Misfire::parse("sometimes").is_err());
    }

    #[test]
    fn requests_are_validated_naming_the_field() {
        let bad = |due: &str, period: &str, ttl: &str| {
            Reminders::build(
                "a",
                "r",
                ReminderRequest {
                    due_time: due.into(),
                    period: period.into(),
                    ttl: ttl.into(),
                    ..Default::default()
                },
            )
            .unwrap_err()
        };
        assert!(bad("soon", "", "").starts_with("dueTime"));
        assert!(bad("1s", "often", "").starts_with("period"));
        assert!(bad("1s", "", "never").starts_with("ttl"));
        let ok = Reminders::build(
            "a",
            "r",
            ReminderRequest {
                due_time: "0s".into(),
                period: "R5/PT1S".into(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((ok.remaining, ok.period_ms), (Some(5), Some(1000)));
    }
}
