//! The loopback Service Bus's state: entities, messages, locks, delivery
//! counts, dead-lettering and expiry, and the entity descriptions it reads.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::StatusCode;
use quick_xml::events::Event;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// Defaults of a new queue or subscription.
pub(super) const DEFAULT_LOCK: Duration = Duration::from_secs(60);
pub(super) const DEFAULT_MAX_DELIVERY: u32 = 10;
pub(super) const DLQ: &str = "$DeadLetterQueue";

#[derive(Default)]
pub(super) struct Namespace {
    /// Queues, subscriptions (`{topic}/subscriptions/{name}`) and their
    /// dead-letter queues (`{path}/$DeadLetterQueue`).
    pub(super) queues: HashMap<String, Queue>,
    /// Topics and their default TTL.
    pub(super) topics: HashMap<String, Option<Duration>>,
    pub(super) next_sequence: i64,
}

#[derive(Clone)]
pub(super) struct Queue {
    pub(super) lock_duration: Duration,
    pub(super) max_delivery: u32,
    pub(super) default_ttl: Option<Duration>,
    pub(super) dead_letter_on_expiry: bool,
    pub(super) messages: BTreeMap<i64, Message>,
}

#[derive(Clone)]
pub(super) struct Message {
    pub(super) sequence: i64,
    pub(super) body: Bytes,
    pub(super) content_type: Option<String>,
    /// Custom properties, header values as sent.
    pub(super) properties: Vec<(String, String)>,
    pub(super) broker: Map<String, Value>,
    pub(super) message_id: String,
    pub(super) enqueued: SystemTime,
    pub(super) visible_at: Instant,
    pub(super) expires_at: Option<Instant>,
    pub(super) ttl: Duration,
    pub(super) delivery_count: u32,
    pub(super) lock: Option<(String, Instant, SystemTime)>,
}

impl Queue {
    pub(super) fn new(description: &Description) -> Self {
        Self {
            lock_duration: description.lock_duration.unwrap_or(DEFAULT_LOCK),
            max_delivery: description.max_delivery.unwrap_or(DEFAULT_MAX_DELIVERY),
            default_ttl: description.default_ttl,
            dead_letter_on_expiry: description.dead_letter_on_expiry,
            messages: BTreeMap::new(),
        }
    }

    pub(super) fn dead_letter_queue() -> Self {
        Self {
            lock_duration: DEFAULT_LOCK,
            max_delivery: u32::MAX,
            default_ttl: None,
            dead_letter_on_expiry: false,
            messages: BTreeMap::new(),
        }
    }
}

/// What an entity description sets.
#[derive(Default, Debug)]
pub(super) struct Description {
    pub(super) element: String,
    pub(super) lock_duration: Option<Duration>,
    pub(super) max_delivery: Option<u32>,
    pub(super) default_ttl: Option<Duration>,
    pub(super) dead_letter_on_expiry: bool,
}

/// `PnDTnHnMnS` (the XML Schema durations the service writes and reads).
pub(super) fn parse_duration(raw: &str) -> Option<Duration> {
    let rest = raw.trim().strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut secs = 0f64;
    if let Some(d) = days.strip_suffix('D') {
        secs += d.parse::<f64>().ok()? * 86_400.0;
    } else if !days.is_empty() {
        return None;
    }
    let mut number = String::new();
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'M' | 'S' => {
                let n: f64 = number.parse().ok()?;
                number.clear();
                secs += n * match c {
                    'H' => 3600.0,
                    'M' => 60.0,
                    _ => 1.0,
                };
            }
            _ => return None,
        }
    }
    number.is_empty().then(|| Duration::from_secs_f64(secs))
}

pub(super) fn parse_description(body: &[u8]) -> Result<Description, String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut description = Description::default();
    let mut current = String::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                current = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if current.ends_with("Description") && description.element.is_empty() {
                    description.element = current.clone();
                }
            }
            Ok(Event::Text(t)) => {
                let text = t.unescape().map_err(|e| e.to_string())?.into_owned();
                let bad = |what: &str| format!("{what}: {text:?} is not valid");
                match current.as_str() {
                    "LockDuration" => {
                        description.lock_duration =
                            Some(parse_duration(&text).ok_or_else(|| bad("LockDuration"))?);
                    }
                    "DefaultMessageTimeToLive" => {
                        description.default_ttl = Some(
                            parse_duration(&text).ok_or_else(|| bad("DefaultMessageTimeToLive"))?,
                        );
                    }
                    "MaxDeliveryCount" => {
                        description.max_delivery =
                            Some(text.parse().map_err(|_| bad("MaxDeliveryCount"))?);
                    }
                    "DeadLetteringOnMessageExpiration" => {
                        description.dead_letter_on_expiry = text == "true";
                    }
                    _ => {}
                }
            }
            Ok(Event::End(_)) => current.clear(),
            Ok(Event::Eof) => break,
            Err(e) => return Err(format!("malformed XML: {e}")),
            Ok(_) => {}
        }
        buf.clear();
    }
    if description.element.is_empty() {
        return Err("the body has no entity description".into());
    }
    Ok(description)
}

pub(super) fn http_date(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
    // RFC 1123, as the service writes it: "Wed, 02 Dec 2026 10:00:00 GMT".
    t.format(&Rfc2822)
        .map(|s| s.replace(" +0000", " GMT"))
        .unwrap_or_default()
}

impl Namespace {
    /// Expire locks and messages, dead-letter what ran out of deliveries.
    pub(super) fn sweep(&mut self, path: &str) {
        let now = Instant::now();
        let Some(queue) = self.queues.get_mut(path) else {
            return;
        };
        let mut exhausted = Vec::new();
        let mut expired = Vec::new();
        for message in queue.messages.values_mut() {
            if message
                .lock
                .as_ref()
                .is_some_and(|(_, until, _)| *until <= now)
            {
                message.lock = None;
                if message.delivery_count >= queue.max_delivery {
                    exhausted.push(message.sequence);
                    continue;
                }
            }
            if message.lock.is_none() && message.expires_at.is_some_and(|at| at <= now) {
                expired.push(message.sequence);
            }
        }
        let dead_letter_on_expiry = queue.dead_letter_on_expiry;
        let expired: Vec<Message> = expired
            .into_iter()
            .filter_map(|sequence| queue.messages.remove(&sequence))
            .collect();
        for sequence in exhausted {
            self.move_to_dlq(path, sequence);
        }
        if dead_letter_on_expiry {
            for message in expired {
                self.dead_letter(path, message, "TTLExpiredException", "The message expired");
            }
        }
    }

    pub(super) fn move_to_dlq(&mut self, path: &str, sequence: i64) {
        let Some(queue) = self.queues.get_mut(path) else {
            return;
        };
        let Some(message) = queue.messages.remove(&sequence) else {
            return;
        };
        let description = format!(
            "Message could not be consumed after {} delivery attempts.",
            message.delivery_count
        );
        self.dead_letter(path, message, "MaxDeliveryCountExceeded", &description);
    }

    pub(super) fn dead_letter(
        &mut self,
        path: &str,
        mut message: Message,
        reason: &str,
        description: &str,
    ) {
        message.lock = None;
        message.expires_at = None;
        message.delivery_count = 0;
        message
            .properties
            .push(("DeadLetterReason".into(), format!("\"{reason}\"")));
        message.properties.push((
            "DeadLetterErrorDescription".into(),
            format!("\"{description}\""),
        ));
        let dlq = self
            .queues
            .entry(format!("{path}/{DLQ}"))
            .or_insert_with(Queue::dead_letter_queue);
        dlq.messages.insert(message.sequence, message);
    }

    /// Lock the first deliverable message of `path`.
    pub(super) fn lock_next(&mut self, path: &str) -> Option<Message> {
        self.sweep(path);
        let now = Instant::now();
        let queue = self.queues.get_mut(path)?;
        let lock_duration = queue.lock_duration;
        let message = queue
            .messages
            .values_mut()
            .find(|m| m.lock.is_none() && m.visible_at <= now)?;
        message.delivery_count += 1;
        message.lock = Some((
            uuid::Uuid::new_v4().to_string(),
            now + lock_duration,
            SystemTime::now() + lock_duration,
        ));
        Some(message.clone())
    }

    pub(super) fn take_next(&mut self, path: &str) -> Option<Message> {
        self.sweep(path);
        let now = Instant::now();
        let queue = self.queues.get_mut(path)?;
        let sequence = queue
            .messages
            .values()
            .find(|m| m.lock.is_none() && m.visible_at <= now)?
            .sequence;
        let mut message = queue.messages.remove(&sequence)?;
        message.delivery_count += 1;
        Some(message)
    }

    /// The locked message of `path` whose lock token is `token`.
    pub(super) fn locked(&mut self, path: &str, token: &str) -> Result<&mut Message, StatusCode> {
        self.sweep(path);
        let queue = self.queues.get_mut(path).ok_or(StatusCode::GONE)?;
        queue
            .messages
            .values_mut()
            .find(|m| m.lock.as_ref().is_some_and(|(t, _, _)| t == token))
            .ok_or(StatusCode::NOT_FOUND)
    }
}
