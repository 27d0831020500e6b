//! Policy values: retries (with status-code matching), circuit breakers
//! (with their trip condition) and what a target uses, with Dapr's defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::breaker::CircuitBreaker;

/// Dapr's default wait between constant retries.
pub const DEFAULT_RETRY_DURATION: Duration = Duration::from_secs(5);
/// Dapr's default first wait of an exponential back-off.
pub const DEFAULT_INITIAL_INTERVAL: Duration = Duration::from_millis(500);
/// Dapr's default longest wait of an exponential back-off.
pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_secs(60);
/// Growth of each exponential wait (Dapr's back-off multiplier).
const MULTIPLIER: f64 = 1.5;

/// A retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `exponential` (growing from `duration`) rather than `constant`.
    pub exponential: bool,
    /// Wait between attempts (the first wait, when exponential).
    pub duration: Duration,
    /// Longest wait when exponential.
    pub max_interval: Duration,
    /// Retries after the first attempt; `None` retries forever (`-1`).
    pub max_retries: Option<u32>,
    /// `matching.httpStatusCodes`: the error statuses worth retrying.
    pub http_status_codes: CodeRanges,
    /// `matching.gRPCStatusCodes`: the gRPC codes worth retrying.
    pub grpc_status_codes: CodeRanges,
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based). Exponential waits
    /// grow by 1.5 each retry up to `max_interval`, as Dapr's back-off does
    /// (without its random jitter, so waits are predictable).
    pub fn wait(&self, attempt: u32) -> Duration {
        if !self.exponential {
            return self.duration;
        }
        let exponent = i32::try_from(attempt.saturating_sub(1).min(64)).unwrap_or(64);
        let nanos = self.duration.as_nanos() as f64 * MULTIPLIER.powi(exponent);
        // Compared as floats first, so a long series cannot overflow a Duration.
        if nanos >= self.max_interval.as_nanos() as f64 {
            return self.max_interval;
        }
        Duration::from_nanos(nanos.round() as u64)
    }

    /// Whether another attempt may follow `retries_done` retries.
    pub fn allows(&self, retries_done: u32) -> bool {
        self.max_retries.is_none_or(|max| retries_done < max)
    }

    /// Whether an answer with HTTP status `status` (already known to be an
    /// error) is worth retrying under `matching.httpStatusCodes`.
    pub fn retries_http(&self, status: u16) -> bool {
        self.http_status_codes.matches(u32::from(status))
    }
}

/// A set of status codes written as Dapr does: `"429,500-504"`. Empty
/// matches everything (Dapr: "not set retries on all errors").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeRanges(Vec<(u32, u32)>);

/// Why a code list is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} {1}")]
pub struct CodeRangeError(String, String);

impl CodeRanges {
    /// Parse `text`, each code within `valid` (100–599 for HTTP, 0–16 for gRPC).
    ///
    /// # Errors
    /// A part that is not a number or `start-end`, out of `valid`, or reversed.
    pub fn parse(text: &str, valid: (u32, u32)) -> Result<Self, CodeRangeError> {
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let fail = |why: String| CodeRangeError(part.to_owned(), why);
            let (start, end) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let number = |s: &str| {
                s.parse::<u32>()
                    .map_err(|_| fail(format!("is not a code or a range start-end ({s:?})")))
            };
            let (start, end) = (number(start)?, number(end)?);
            for code in [start, end] {
                if code < valid.0 || code > valid.1 {
                    return Err(fail(format!(
                        "has code {code} outside {}-{}",
                        valid.0, valid.1
                    )));
                }
            }
            if end < start {
                return Err(fail("starts after it ends".to_owned()));
            }
            ranges.push((start, end));
        }
        Ok(Self(ranges))
    }

    /// Whether `code` is listed (always, when the list is empty).
    pub fn matches(&self, code: u32) -> bool {
        self.0.is_empty() || self.0.iter().any(|(a, b)| (*a..=*b).contains(&code))
    }
}

/// A circuit-breaker policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitBreakerPolicy {
    /// Its name in `spec.policies.circuitBreakers`.
    pub name: String,
    /// Trial calls let through while half-open (default 1).
    pub max_requests: u32,
    /// How often the closed breaker forgets its counts (0: never, the default).
    pub interval: Duration,
    /// How long it stays open before going half-open (default 60 s).
    pub timeout: Duration,
    /// When a failure opens it (default `consecutiveFailures > 5`).
    pub trip: Trip,
}

/// A count the trip condition can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// `requests`: calls in this period.
    Requests,
    /// `totalSuccesses`.
    TotalSuccesses,
    /// `totalFailures`.
    TotalFailures,
    /// `consecutiveSuccesses`.
    ConsecutiveSuccesses,
    /// `consecutiveFailures`.
    ConsecutiveFailures,
}

/// A comparison in a trip condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `==`
    Equal,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `!=`
    NotEqual,
}

/// A trip condition, `<counter> <comparison> <number>`: the subset of Dapr's
/// CEL expressions that compare one count with a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trip {
    /// The count read.
    pub counter: Counter,
    /// How it is compared.
    pub comparison: Comparison,
    /// With what.
    pub value: u64,
}

impl Default for Trip {
    fn default() -> Self {
        Self {
            counter: Counter::ConsecutiveFailures,
            comparison: Comparison::Greater,
            value: 5,
        }
    }
}

/// The counts a circuit breaker keeps (gobreaker's, which Dapr exposes to `trip`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls let through.
    pub requests: u64,
    /// Successful calls.
    pub total_successes: u64,
    /// Failed calls.
    pub total_failures: u64,
    /// Successes since the last failure.
    pub consecutive_successes: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
}

impl Trip {
    /// Parse `consecutiveFailures > 5` and the like.
    ///
    /// # Errors
    /// Anything but one known counter, one comparison and a whole number.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let supported = "supported: <counter> <op> <number> with counter one of consecutiveFailures, \
             consecutiveSuccesses, totalFailures, totalSuccesses, requests and op one of >, >=, ==, <, <=, !=";
        let at = text
            .find(['>', '<', '=', '!'])
            .ok_or_else(|| format!("{text:?} has no comparison ({supported})"))?;
        let (name, rest) = text.split_at(at);
        let (comparison, number) = [
            (">=", Comparison::GreaterOrEqual),
            ("<=", Comparison::LessOrEqual),
            ("==", Comparison::Equal),
            ("!=", Comparison::NotEqual),
            (">", Comparison::Greater),
            ("<", Comparison::Less),
        ]
        .into_iter()
        .find_map(|(op, c)| rest.strip_prefix(op).map(|n| (c, n.trim())))
        .ok_or_else(|| format!("{text:?} has an unknown comparison ({supported})"))?;
        let counter = match name.trim() {
            "consecutiveFailures" => Counter::ConsecutiveFailures,
            "consecutiveSuccesses" => Counter::ConsecutiveSuccesses,
            "totalFailures" => Counter::TotalFailures,
            "totalSuccesses" => Counter::TotalSuccesses,
            "requests" => Counter::Requests,
            other => return Err(format!("{text:?}: unknown counter {other:?} ({supported})")),
        };
        let value = number
            .parse::<u64>()
            .map_err(|_| format!("{text:?}: {number:?} is not a whole number ({supported})"))?;
        Ok(Self {
            counter,
            comparison,
            value,
        })
    }

    /// Whether `counts` meet the condition.
    pub fn holds(&self, counts: &Counts) -> bool {
        let count = match self.counter {
            Counter::Requests => counts.requests,
            Counter::TotalSuccesses => counts.total_successes,
            Counter::TotalFailures => counts.total_failures,
            Counter::ConsecutiveSuccesses => counts.consecutive_successes,
            Counter::ConsecutiveFailures => counts.consecutive_failures,
        };
        match self.comparison {
            Comparison::Greater => count > self.value,
            Comparison::GreaterOrEqual => count >= self.value,
            Comparison::Equal => count == self.value,
            Comparison::Less => count < self.value,
            Comparison::LessOrEqual => count <= self.value,
            Comparison::NotEqual => count != self.value,
        }
    }
}

impl fmt::Display for Trip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counter = match self.counter {
            Counter::Requests => "requests",
            Counter::TotalSuccesses => "totalSuccesses",
            Counter::TotalFailures => "totalFailures",
            Counter::ConsecutiveSuccesses => "consecutiveSuccesses",
            Counter::ConsecutiveFailures => "consecutiveFailures",
        };
        let op = match self.comparison {
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Equal => "==",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::NotEqual => "!=",
        };
        write!(f, "{counter} {op} {}", self.value)
    }
}

/// What one target (an app, or a component's outbound calls) uses.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// Time each attempt may take.
    pub timeout: Option<Duration>,
    /// Retries.
    pub retry: Option<RetryPolicy>,
    /// This target's own breaker (state shared by all its calls).
    pub circuit_breaker: Option<Arc<CircuitBreaker>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP: (u32, u32) = (100, 599);

    #[test]
    fn code_ranges() {
        let r = CodeRanges::parse("500,502-504, 429 ,", HTTP).unwrap();
        assert!(r.matches(500) && r.matches(503) && r.matches(429));
        assert!(!r.matches(501) && !r.matches(505) && !r.matches(404));
        assert!(CodeRanges::parse("", HTTP).unwrap().matches(418));
        let grpc = CodeRanges::parse("14,4", (0, 16)).unwrap();
        assert!(grpc.matches(14) && grpc.matches(4) && !grpc.matches(2));
        for (bad, why) in [
            ("5xx", "not a code"),
            ("600", "outside 100-599"),
            ("504-500", "starts after it ends"),
            ("500-502-504", "not a code"),
            ("-3", "not a code"),
        ] {
            let err = CodeRanges::parse(bad, HTTP).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(CodeRanges::parse("17", (0, 16)).is_err());
    }

    #[test]
    fn trips() {
        let t = Trip::parse("consecutiveFailures >= 3").unwrap();
        let counts = |f| Counts {
            consecutive_failures: f,
            ..Counts::default()
        };
        assert!(!t.holds(&counts(2)) && t.holds(&counts(3)));
        let t = Trip::parse("consecutiveFailures>3").unwrap();
        assert!(!t.holds(&counts(3)) && t.holds(&counts(4)));
        assert_eq!(t.to_string(), "consecutiveFailures > 3");
        assert!(Trip::parse("totalFailures == 2").unwrap().holds(&Counts {
            total_failures: 2,
            ..Counts::default()
        }));
        assert_eq!(Trip::default().to_string(), "consecutiveFailures > 5");
        for bad in [
            "consecutiveFailures",
            "failures > 3",
            "consecutiveFailures > three",
            "consecutiveFailures > 3 && requests > 1",
            "consecutiveFailures => 3",
        ] {
            assert!(Trip::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn waits() {
        let p = RetryPolicy {
            exponential: true,
            duration: Duration::from_millis(100),
            max_interval: Duration::from_millis(300),
            max_retries: Some(2),
            http_status_codes: CodeRanges::default(),
            grpc_status_codes: CodeRanges::default(),
        };
        assert_eq!(p.wait(1), Duration::from_millis(100));
        assert_eq!(p.wait(2), Duration::from_millis(150));
        assert_eq!(p.wait(3), Duration::from_millis(225));
        assert_eq!(p.wait(40), Duration::from_millis(300));
        assert!(p.allows(1) && !p.allows(2));
    }
}
