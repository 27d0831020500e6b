//! What the engine stores in the actor state store, per app id:
//!
//! | key | value |
//! |---|---|
//! | `outrigger\|\|wf\|\|{app}\|\|{instance}\|\|meta` | [`Meta`] (JSON): status, input/output, inbox, outbox, timers |
//! | `outrigger\|\|wf\|\|{app}\|\|{instance}\|\|h\|\|{n}` | history event `n` (encoded `HistoryEvent`) |
//! | `outrigger\|\|wf\|\|{app}\|\|index\|\|{p}` | partition `p` of instance id → status |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Index partitions (instance ids hash into one).
pub(crate) const INDEX_PARTITIONS: u32 = 8;

/// An instance's runtime status (`OrchestrationStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Scheduled, no step run yet.
    Pending,
    /// Running.
    Running,
    /// Finished with an output.
    Completed,
    /// Restarted with new input (transient).
    ContinuedAsNew,
    /// Finished with a failure.
    Failed,
    /// Canceled.
    Canceled,
    /// Terminated by a client.
    Terminated,
    /// Suspended by a client.
    Suspended,
    /// Stalled (e.g. history too large).
    Stalled,
}

impl Status {
    /// The Durable Task enum value.
    pub fn proto(self) -> i32 {
        use outrigger_proto::durabletask::OrchestrationStatus as S;
        (match self {
            Self::Pending => S::Pending,
            Self::Running => S::Running,
            Self::Completed => S::Completed,
            Self::ContinuedAsNew => S::ContinuedAsNew,
            Self::Failed => S::Failed,
            Self::Canceled => S::Canceled,
            Self::Terminated => S::Terminated,
            Self::Suspended => S::Suspended,
            Self::Stalled => S::Stalled,
        }) as i32
    }

    /// From the Durable Task enum value (`None` for unknown values).
    pub fn from_proto(value: i32) -> Option<Self> {
        use outrigger_proto::durabletask::OrchestrationStatus as S;
        Some(match S::try_from(value).ok()? {
            S::Pending => Self::Pending,
            S::Running => Self::Running,
            S::Completed => Self::Completed,
            S::ContinuedAsNew => Self::ContinuedAsNew,
            S::Failed => Self::Failed,
            S::Canceled => Self::Canceled,
            S::Terminated => Self::Terminated,
            S::Suspended => Self::Suspended,
            S::Stalled => Self::Stalled,
        })
    }

    /// As Dapr's workflow API spells it: `RUNNING`, `COMPLETED`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::ContinuedAsNew => "CONTINUED_AS_NEW",
            Self::Failed => "FAILED",
            Self::Canceled => "CANCELED",
            Self::Terminated => "TERMINATED",
            Self::Suspended => "SUSPENDED",
            Self::Stalled => "STALLED",
        }
    }

    /// Parse [`Status::name`] (case-insensitive).
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Running,
            Self::Completed,
            Self::ContinuedAsNew,
            Self::Failed,
            Self::Canceled,
            Self::Terminated,
            Self::Suspended,
            Self::Stalled,
        ]
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(raw))
    }

    /// Whether the instance is done (nothing more will run).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Canceled | Self::Terminated
        )
    }
}

/// Why an instance or task failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// Error type (e.g. the exception class).
    pub error_type: String,
    /// Message.
    pub message: String,
    /// Stack trace, if the SDK sent one.
    pub stack_trace: Option<String>,
}

/// An instance as the APIs report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Its id.
    pub instance_id: String,
    /// Workflow name.
    pub name: String,
    /// Status.
    pub status: Status,
    /// Created (Unix ms).
    pub created_ms: i64,
    /// Last changed (Unix ms).
    pub updated_ms: i64,
    /// Input (JSON text).
    pub input: Option<String>,
    /// Output (JSON text).
    pub output: Option<String>,
    /// Custom status (JSON text).
    pub custom_status: Option<String>,
    /// Failure details.
    pub failure: Option<Failure>,
    /// Current execution id.
    pub execution_id: String,
    /// Parent instance, for a child workflow.
    pub parent_instance_id: Option<String>,
    /// History length (events).
    pub history_events: u64,
}

/// The parent of a child workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Parent {
    pub(crate) instance_id: String,
    pub(crate) execution_id: String,
    pub(crate) task_id: i32,
    pub(crate) name: String,
}

/// An activity scheduled and not yet answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PendingActivity {
    pub(crate) name: String,
    pub(crate) input: Option<String>,
}

/// A child workflow started and not yet finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PendingChild {
    pub(crate) instance_id: String,
    pub(crate) name: String,
    pub(crate) input: Option<String>,
}

/// Everything about one instance except its history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Meta {
    pub(crate) name: String,
    pub(crate) status: Option<Status>,
    pub(crate) created_ms: i64,
    pub(crate) updated_ms: i64,
    pub(crate) input: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) custom_status: Option<String>,
    pub(crate) failure: Option<Failure>,
    pub(crate) execution_id: String,
    pub(crate) parent: Option<Parent>,
    /// Events in the stored history.
    pub(crate) history_len: u64,
    /// Their total encoded size.
    pub(crate) history_bytes: u64,
    /// The most events any execution of this instance stored (continue-as-new
    /// restarts at 0; purge deletes up to here).
    #[serde(default)]
    pub(crate) history_high: u64,
    /// New events (base64 `HistoryEvent`s) not yet shown to the workflow.
    pub(crate) inbox: Vec<String>,
    /// Activities scheduled, by task id, not yet answered.
    pub(crate) activities: BTreeMap<i32, PendingActivity>,
    /// Durable timers, by timer id: fire time (Unix ms).
    pub(crate) timers: BTreeMap<i32, i64>,
    /// Child workflows, by task id, not yet finished.
    pub(crate) children: BTreeMap<i32, PendingChild>,
    /// Every child ever started (for recursive terminate and purge).
    pub(crate) all_children: Vec<String>,
    /// Suspended: steps wait until resumed.
    pub(crate) suspended: bool,
    /// A scheduled start (Unix ms): no step runs before it.
    #[serde(default)]
    pub(crate) start_at_ms: Option<i64>,
}

impl Meta {
    pub(crate) fn status(&self) -> Status {
        self.status.unwrap_or(Status::Pending)
    }

    pub(crate) fn view(&self, instance_id: &str) -> Instance {
        Instance {
            instance_id: instance_id.to_owned(),
            name: self.name.clone(),
            status: if self.suspended && !self.status().is_terminal() {
                Status::Suspended
            } else {
                self.status()
            },
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            input: self.input.clone(),
            output: self.output.clone(),
            custom_status: self.custom_status.clone(),
            failure: self.failure.clone(),
            execution_id: self.execution_id.clone(),
            parent_instance_id: self.parent.as_ref().map(|p| p.instance_id.clone()),
            history_events: self.history_len,
        }
    }
}

/// One index partition: instance id → status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Index {
    pub(crate) instances: BTreeMap<String, Status>,
}

/// Key of everything of one app's workflows.
pub(crate) fn prefix(app_id: &str) -> String {
    format!("outrigger||wf||{app_id}")
}

pub(crate) fn meta_key(app_id: &str, instance_id: &str) -> String {
    format!("{}||{instance_id}||meta", prefix(app_id))
}

pub(crate) fn event_key(app_id: &str, instance_id: &str, n: u64) -> String {
    format!("{}||{instance_id}||h||{n}", prefix(app_id))
}

pub(crate) fn index_key(app_id: &str, partition: u32) -> String {
    format!("{}||index||{partition}", prefix(app_id))
}

/// Which index partition an instance id is in.
pub(crate) fn partition(instance_id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in instance_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % INDEX_PARTITIONS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_name_like_dapr() {
        for raw in 0..9 {
            let status = Status::from_proto(raw).unwrap();
            assert_eq!(status.proto(), raw);
            assert_eq!(Status::parse(status.name()), Some(status));
        }
        assert_eq!(Status::parse("running"), Some(Status::Running));
        assert!(Status::Completed.is_terminal() && !Status::Suspended.is_terminal());
    }
}
