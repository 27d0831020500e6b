//! What the workflows benchmark prints beside its rates: CPU per activity
//! by process, store calls per activity, and the worker's hand-off times.

use std::collections::BTreeMap;
use std::time::Duration;

use super::counted_store::Counts;
use super::wf_worker::Hops;
use crate::{CHAIN, GATEWAY_THREAD, ms, percentile};

/// `p50 / p99 (n)` of `times`, in ms.
fn spread(mut times: Vec<Duration>) -> String {
    times.sort();
    format!(
        "p50 {:>7.2} ms  p99 {:>7.2} ms  (n={})",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        times.len()
    )
}

// === CPU ===

/// CPU time of the live threads of process `pid` (`self` for this one),
/// only those named `name` when given: the run time in
/// `/proc/<pid>/task/*/schedstat` (ns; `/proc/<pid>/stat` counts 10 ms ticks,
/// too coarse for the latency rows). Threads that exited are not counted.
pub(crate) fn threads_cpu(pid: &str, name: Option<&str>) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let mut ns = 0u64;
    for task in tasks.flatten() {
        if let Some(name) = name {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim() != name {
                continue;
            }
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(ns)
}

/// CPU of: the gateway's threads, the rest of this process (worker and
/// clients), the components process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cpu {
    gateway: Duration,
    bench: Duration,
    components: Duration,
}

pub(crate) fn cpu(components: Option<u32>) -> Cpu {
    let gateway = threads_cpu("self", Some(GATEWAY_THREAD));
    let all = threads_cpu("self", None);
    Cpu {
        gateway,
        bench: all.saturating_sub(gateway),
        components: components.map_or(Duration::ZERO, |pid| threads_cpu(&pid.to_string(), None)),
    }
}

// === printing ===

pub(crate) fn print_hops(what: &str, hops: Hops) {
    println!("  hand-offs, {what} (worker's clock):");
    println!(
        "    StartInstance sent → first workflowRequest           {}",
        spread(hops.start_to_step)
    );
    println!(
        "    CompleteActivityTask sent → next workflowRequest     {}",
        spread(hops.activity_to_step)
    );
    println!(
        "    CompleteOrchestratorTask sent → its activityRequest  {}",
        spread(hops.step_to_activity)
    );
    println!(
        "    CompleteActivityTask round trip (until recorded)     {}",
        spread(hops.complete_activity)
    );
    println!(
        "    CompleteOrchestratorTask round trip (until committed) {}",
        spread(hops.complete_step)
    );
}

/// Store calls per activity, by record (`history+instance` transactions
/// count as the instance's), with the mean value size of a call, and how
/// long a call took in the store on average (under load mostly waiting for
/// the database's write lock).
pub(crate) fn print_store_calls(counts: &Counts, activities: usize) {
    let per = activities.max(1) as f64;
    let (mut calls, mut us) = (0u64, 0u64);
    let mut records: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (what, (n, took, bytes)) in counts {
        let mut words = what.split(' ');
        let op = words.next().unwrap_or_default();
        let record = words.next().unwrap_or_default();
        let record = if record.ends_with("+instance") {
            "instance"
        } else {
            record
        };
        let outcome = words.next();
        if outcome.is_none() {
            calls += n;
            us += took;
        }
        let label = match outcome {
            Some(outcome) => format!("({:.2} of the {op}s: {outcome})", *n as f64 / per),
            None if *bytes > 0 => format!(
                "{op} {:.2} × {:.1} KiB",
                *n as f64 / per,
                *bytes as f64 / 1024.0 / *n as f64
            ),
            None => format!("{op} {:.2}", *n as f64 / per),
        };
        records.entry(record).or_default().push(label);
    }
    println!(
        "  store calls per activity: {:.2} ({:.1} per workflow), {:.2} ms per call on average",
        calls as f64 / per,
        calls as f64 / per * CHAIN as f64,
        us as f64 / 1e3 / calls.max(1) as f64
    );
    for (record, labels) in records {
        println!("    {record:<10} {}", labels.join("  "));
    }
}

pub(crate) fn print_cpu(before: Cpu, after: Cpu, activities: usize) {
    let per = |a: Duration, b: Duration| {
        a.saturating_sub(b).as_secs_f64() * 1e6 / activities.max(1) as f64
    };
    println!(
        "  CPU per activity: gateway {:.0} µs, components process {:.0} µs, worker + clients {:.0} µs",
        per(after.gateway, before.gateway),
        per(after.components, before.components),
        per(after.bench, before.bench),
    );
}
