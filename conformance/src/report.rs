//! Results: one line per case, printed as a table or JSON.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Target;

/// What happened to a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Pass,
    /// It failed, and why.
    Fail(String),
    /// It did not run, and why.
    Skip(String),
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Result {
    /// `<block>/<operation>/<case>`.
    pub name: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Time taken.
    pub elapsed: Duration,
}

/// Every case of one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Socket tested.
    pub socket: String,
    /// Block tested.
    pub block: &'static str,
    /// Results in run order.
    pub results: Vec<Result>,
    /// Whole run time.
    pub elapsed: Duration,
}

impl Report {
    pub(crate) fn new(target: &Target) -> Self {
        Self {
            socket: target.socket.display().to_string(),
            block: target.block.name(),
            results: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub(crate) fn push(&mut self, name: String, outcome: Outcome, elapsed: Duration) {
        self.results.push(Result {
            name,
            outcome,
            elapsed,
        });
    }

    /// Number of failed cases.
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
            .count()
    }

    /// Number of passed cases.
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome == Outcome::Pass)
            .count()
    }

    /// Number of skipped cases.
    pub fn skipped(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Skip(_)))
            .count()
    }

    /// The result of case `name`, if it ran.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.results
            .iter()
            .find(|r| r.name == name)
            .map(|r| &r.outcome)
    }

    /// Why `Init` failed, when the run stopped there (the
    /// `{block}/init/connect-and-init` case): for tests of bad metadata.
    pub fn init_failure(&self) -> Option<&str> {
        self.results
            .iter()
            .find(|r| r.name.ends_with("/init/connect-and-init"))
            .and_then(|r| match &r.outcome {
                Outcome::Fail(why) => Some(why.as_str()),
                _ => None,
            })
    }

    /// A table: case, result, time, reason; then a summary line.
    pub fn table(&self) -> String {
        let width = self
            .results
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!("conformance: {} on {}\n", self.block, self.socket);
        let _ = writeln!(
            out,
            "{:<width$}  {:<6}  {:>9}  reason",
            "case", "result", "time"
        );
        for r in &self.results {
            let (result, reason) = match &r.outcome {
                Outcome::Pass => ("pass", ""),
                Outcome::Fail(why) => ("FAIL", why.as_str()),
                Outcome::Skip(why) => ("skip", why.as_str()),
            };
            let _ = writeln!(
                out,
                "{:<width$}  {result:<6}  {:>7.1}ms  {reason}",
                r.name,
                r.elapsed.as_secs_f64() * 1e3
            );
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        );
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> serde_json::Value {
        let results: Vec<serde_json::Value> = self
            .results
            .iter()
            .map(|r| {
                let (result, reason) = match &r.outcome {
                    Outcome::Pass => ("pass", None),
                    Outcome::Fail(why) => ("fail", Some(why.clone())),
                    Outcome::Skip(why) => ("skip", Some(why.clone())),
                };
                serde_json::json!({ "case": r.name, "result": result, "millis": r.elapsed.as_millis() as u64, "reason": reason })
            })
            .collect();
        serde_json::json!({
            "socket": self.socket, "block": self.block, "results": results,
            "passed": self.passed(), "failed": self.failed(), "skipped": self.skipped(),
        })
    }
}
