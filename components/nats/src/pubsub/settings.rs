//! `pubsub.jetstream` metadata: every key Dapr documents, parsed and
//! checked once at `Init` into [`Settings`].

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::consumer;
use outrigger_component_sdk::{ComponentError, Metadata};

use crate::connect::sanitize;

pub(super) const KEYS: &[&str] = &[
    "streamName",
    "durableName",
    "queueGroupName",
    "startSequence",
    "startTime",
    "deliverAll",
    "flowControl",
    "ackWait",
    "maxDeliver",
    "backOff",
    "maxAckPending",
    "replicas",
    "memoryStorage",
    "rateLimit",
    "hearbeat",
    "deliverPolicy",
    "ackPolicy",
];

#[derive(Clone)]
pub(super) struct Settings {
    pub(super) stream: String,
    pub(super) durable: Option<String>,
    pub(super) consumer_id: Option<String>,
    pub(super) deliver_policy: consumer::DeliverPolicy,
    pub(super) ack_policy: consumer::AckPolicy,
    pub(super) ack_wait: Duration,
    pub(super) max_deliver: i64,
    pub(super) backoff: Vec<Duration>,
    pub(super) max_ack_pending: i64,
    pub(super) replicas: usize,
    pub(super) memory_storage: bool,
    /// Bits per second handed to the host; 0 for no limit.
    pub(super) rate_limit: u64,
    pub(super) heartbeat: Duration,
}

fn deliver_policy(metadata: &Metadata) -> Result<consumer::DeliverPolicy, ComponentError> {
    let start_sequence = metadata.parse::<u64>("startSequence")?.filter(|s| *s > 0);
    let start_time = metadata
        .parse::<i64>("startTime")?
        .map(|secs| {
            time::OffsetDateTime::from_unix_timestamp(secs)
                .map_err(|e| ComponentError::invalid_argument("startTime", format!("{secs}: {e}")))
        })
        .transpose()?;
    let by_sequence = || {
        start_sequence
            .map(|start_sequence| consumer::DeliverPolicy::ByStartSequence { start_sequence })
            .ok_or_else(|| {
                ComponentError::invalid_argument(
                    "startSequence",
                    "deliverPolicy sequence needs startSequence > 0",
                )
            })
    };
    let by_time = || {
        start_time
            .map(|start_time| consumer::DeliverPolicy::ByStartTime { start_time })
            .ok_or_else(|| {
                ComponentError::invalid_argument(
                    "startTime",
                    "deliverPolicy time needs startTime (unix seconds)",
                )
            })
    };
    match metadata.get("deliverPolicy").map(str::to_ascii_lowercase) {
        Some(p) => match p.as_str() {
            "all" => Ok(consumer::DeliverPolicy::All),
            "last" => Ok(consumer::DeliverPolicy::Last),
            "new" => Ok(consumer::DeliverPolicy::New),
            "lastpersubject" | "last_per_subject" => Ok(consumer::DeliverPolicy::LastPerSubject),
            "sequence" => by_sequence(),
            "time" => by_time(),
            other => Err(ComponentError::invalid_argument(
                "deliverPolicy",
                format!("{other:?}: use all, last, new, sequence, time or lastPerSubject"),
            )),
        },
        None if start_sequence.is_some() => by_sequence(),
        None if start_time.is_some() => by_time(),
        // `deliverAll` and the default agree: a new group starts at the beginning.
        None => {
            metadata.bool_or("deliverAll", true)?;
            Ok(consumer::DeliverPolicy::All)
        }
    }
}

fn ack_policy(metadata: &Metadata) -> Result<consumer::AckPolicy, ComponentError> {
    match metadata
        .get("ackPolicy")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("explicit") => Ok(consumer::AckPolicy::Explicit),
        Some("all") => Ok(consumer::AckPolicy::All),
        Some("none") => Ok(consumer::AckPolicy::None),
        Some(other) => Err(ComponentError::invalid_argument(
            "ackPolicy",
            format!("{other:?}: use explicit, all or none"),
        )),
    }
}

pub(super) fn backoff(metadata: &Metadata) -> Result<Vec<Duration>, ComponentError> {
    let Some(raw) = metadata.get("backOff") else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Metadata::new(HashMap::from([("backOff".to_owned(), s.to_owned())]))
                .duration("backOff")?
                .ok_or_else(|| ComponentError::invalid_argument("backOff", "empty duration"))
        })
        .collect()
}

pub(super) fn settings(metadata: &Metadata) -> Result<Settings, ComponentError> {
    // flowControl applies to push consumers only; checked for a boolean, no effect on pull.
    metadata.bool_or("flowControl", false)?;
    let stream = metadata.get("streamName").unwrap_or("outrigger").to_owned();
    if stream.is_empty() || sanitize(&stream) != stream {
        return Err(ComponentError::invalid_argument(
            "streamName",
            format!("{stream:?}: use letters, digits, '-' and '_'"),
        ));
    }
    Ok(Settings {
        stream,
        durable: metadata
            .get("durableName")
            .or_else(|| metadata.get("queueGroupName"))
            .map(str::to_owned),
        consumer_id: metadata.get("consumerID").map(str::to_owned),
        deliver_policy: deliver_policy(metadata)?,
        ack_policy: ack_policy(metadata)?,
        ack_wait: metadata
            .duration("ackWait")?
            .unwrap_or(Duration::from_secs(30)),
        max_deliver: metadata.parse::<i64>("maxDeliver")?.unwrap_or(-1),
        backoff: backoff(metadata)?,
        max_ack_pending: metadata.parse::<i64>("maxAckPending")?.unwrap_or(1000),
        replicas: metadata.parse::<usize>("replicas")?.unwrap_or(1),
        memory_storage: metadata.bool_or("memoryStorage", false)?,
        rate_limit: metadata.parse::<u64>("rateLimit")?.unwrap_or(0),
        heartbeat: metadata
            .duration("hearbeat")?
            .unwrap_or(Duration::from_secs(2))
            .max(Duration::from_millis(100)),
    })
}
