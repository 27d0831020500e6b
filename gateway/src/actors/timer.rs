//! Timers as clients define them, validated.

use super::duration;

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
