//! History events as the SDK replays them, and their storage encoding.

use base64::Engine as _;
use prost::Message;

use dt::history_event::EventType;
use outrigger_proto::durabletask as dt;

use super::records::Failure;

pub(crate) fn now() -> prost_types::Timestamp {
    timestamp(chrono::Utc::now().timestamp_millis())
}

pub(crate) fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

pub(crate) fn millis(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos) / 1_000_000)
}

fn event(id: i32, kind: EventType) -> dt::HistoryEvent {
    dt::HistoryEvent {
        event_id: id,
        timestamp: Some(now()),
        event_type: Some(kind),
        router: None,
    }
}

/// An event the workflow did not schedule (id -1, as the SDK expects).
pub(crate) fn unscheduled(kind: EventType) -> dt::HistoryEvent {
    event(-1, kind)
}

/// An event confirming action `id` (the SDK matches them by id).
pub(crate) fn confirming(id: i32, kind: EventType) -> dt::HistoryEvent {
    event(id, kind)
}

pub(crate) fn text(value: Option<String>) -> Option<String> {
    value
}

pub(crate) fn started(
    name: &str,
    instance_id: &str,
    execution_id: &str,
    input: Option<String>,
    parent: Option<&super::records::Parent>,
) -> dt::HistoryEvent {
    unscheduled(EventType::ExecutionStarted(dt::ExecutionStartedEvent {
        name: name.to_owned(),
        input: text(input),
        workflow_instance: Some(dt::WorkflowInstance {
            instance_id: instance_id.to_owned(),
            execution_id: Some(execution_id.to_owned()),
        }),
        parent_instance: parent.map(|p| dt::ParentInstanceInfo {
            task_scheduled_id: p.task_id,
            name: Some(p.name.clone()),
            workflow_instance: Some(dt::WorkflowInstance {
                instance_id: p.instance_id.clone(),
                execution_id: Some(p.execution_id.clone()),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub(crate) fn step_started() -> dt::HistoryEvent {
    unscheduled(EventType::WorkflowStarted(dt::WorkflowStartedEvent {
        version: None,
    }))
}

pub(crate) fn failure_details(failure: &Failure) -> dt::TaskFailureDetails {
    dt::TaskFailureDetails {
        error_type: failure.error_type.clone(),
        error_message: failure.message.clone(),
        stack_trace: failure.stack_trace.clone(),
        ..Default::default()
    }
}

pub(crate) fn failure_of(details: Option<&dt::TaskFailureDetails>) -> Failure {
    details.map_or_else(
        || Failure {
            error_type: "Unknown".into(),
            message: "the workflow failed without details".into(),
            stack_trace: None,
        },
        |d| Failure {
            error_type: d.error_type.clone(),
            message: d.error_message.clone(),
            stack_trace: d.stack_trace.clone(),
        },
    )
}

/// Base64 of the encoded event (how inbox events are kept in JSON).
pub(crate) fn pack(event: &dt::HistoryEvent) -> String {
    base64::engine::general_purpose::STANDARD.encode(event.encode_to_vec())
}

/// The event [`pack`] made, if it decodes.
pub(crate) fn unpack(packed: &str) -> Option<dt::HistoryEvent> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(packed)
        .ok()?;
    dt::HistoryEvent::decode(bytes.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_packing_and_timestamps_convert() {
        let e = started("wf", "i1", "e1", Some("\"x\"".into()), None);
        assert_eq!(unpack(&pack(&e)), Some(e));
        assert!(unpack("not base64!").is_none());
        assert_eq!(millis(&timestamp(1_234_567)), 1_234_567);
        assert_eq!(timestamp(-1).nanos, 999_000_000);
    }
}
