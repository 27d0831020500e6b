//! A black-box conformance suite for Dapr pluggable components.
//!
//! It talks to a component over its Unix socket with the
//! `dapr.proto.components.v1` protocol only, so it tests components written
//! in any language. Cases are small async functions named
//! `<block>/<operation>/<case>`, each gated on the capability it needs.
//! Capabilities the config declares *and* those the component advertises are
//! tested (an advertised feature must work), and a case checks that every
//! declared capability is advertised.
//!
//! ```no_run
//! # async fn f() {
//! use outrigger_conformance::{Block, SuiteConfig, Target, run, assert_pass};
//! let target = Target::new("/tmp/dapr-components-sockets/memory.sock", Block::State);
//! let config = SuiteConfig::with_operations(["etag", "transaction"]);
//! assert_pass(&run(&target, &config).await);
//! # }
//! ```
//!
//! # Layout
//! - [`config`]: [`Target`], [`SuiteConfig`], [`Block`], YAML loading.
//! - `harness`: connection, instance header, the per-case context.
//! - `cases/*`: one file per block.
//! - [`report`]: results, the table and JSON.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod cases;
pub mod config;
mod harness;
pub mod report;

use std::time::{Duration, Instant};

pub use config::{Block, SuiteConfig, Target};
pub use report::{Outcome, Report, Result as CaseResult};

/// Run every case of `target.block` that `config` selects. Never panics: a
/// misbehaving component fails cases, with reasons.
pub async fn run(target: &Target, config: &SuiteConfig) -> Report {
    let started = Instant::now();
    let mut report = Report::new(target);
    let ctx = match harness::Ctx::connect(target, config).await {
        Ok(ctx) => ctx,
        Err(reason) => {
            report.push(
                format!("{}/init/connect-and-init", target.block.name()),
                Outcome::Fail(reason),
                Duration::ZERO,
            );
            return report;
        }
    };
    let advertised = ctx.features.clone();
    for case in cases::for_block(target.block) {
        if let Some(filter) = &config.filter
            && !case.name.contains(filter.as_str())
        {
            continue;
        }
        if case.needs == Some(cases::WRITER) {
            if config.writer.is_none() {
                report.push(
                    case.name.to_owned(),
                    Outcome::Skip(
                        "needs a writer command (`writer:` / --writer) to change items".into(),
                    ),
                    Duration::ZERO,
                );
                continue;
            }
        } else if let Some(op) = case.needs
            && !config.operations.contains(op)
            && !cases::advertised_as(target.block, op, &advertised)
        {
            report.push(
                case.name.to_owned(),
                Outcome::Skip(format!("operation {op:?} not declared or advertised")),
                Duration::ZERO,
            );
            continue;
        }
        let began = Instant::now();
        let outcome = match tokio::time::timeout(config.case_timeout, (case.run)(ctx.clone())).await
        {
            Ok(Ok(())) => Outcome::Pass,
            Ok(Err(reason)) => Outcome::Fail(reason),
            Err(_) => Outcome::Fail(format!("no result within {:?}", config.case_timeout)),
        };
        report.push(case.name.to_owned(), outcome, began.elapsed());
    }
    report.elapsed = started.elapsed();
    report
}

/// Panic with the report table when any case failed (for `cargo test`).
///
/// # Panics
/// When the report has a failure: that is its purpose.
pub fn assert_pass(report: &Report) {
    if report.failed() > 0 {
        #[allow(clippy::panic)]
        {
            panic!("conformance failures:\n{}", report.table());
        }
    }
}
