//! A second pass of a benchmark with every process on one vCPU.
//!
//! On this VM a process woken on the *other* vCPU costs ~45 µs (the vCPU
//! is halted and the hypervisor must interrupt it), while one woken on the
//! same vCPU costs a context switch (~3 µs). Which case a benchmark sees is
//! the kernel's choice, and it changes from run to run: the "floor" of one
//! process round trip read 6 µs in some runs and 90 µs in others. A chain
//! of processes (client → gateway → component) pays that toll at every
//! boundary, so the unpinned figures mostly measure where the scheduler put
//! the processes. The pass under `taskset -c 0` puts every process of the
//! run (benchmark, gateways, components, apps) on vCPU 0: wake-ups are
//! cheap and equal for every row, and the difference between rows is the
//! work each path does. Its throughput rows run on one vCPU, not two, and
//! a server the benchmark does not start (PostgreSQL) stays unpinned.

/// The argument that marks the one-vCPU pass.
const FLAG: &str = "--one-cpu";

/// Whether this process is the one-vCPU pass.
pub(crate) fn is_pass() -> bool {
    std::env::args().any(|a| a == FLAG)
}

/// Which pass this is, for the benchmark's first line.
pub(crate) fn label() -> &'static str {
    if is_pass() {
        "pass 2 of 2: every process on vCPU 0 (taskset -c 0)"
    } else {
        "pass 1 of 2: processes where the kernel puts them"
    }
}

/// Runs this benchmark again with its own arguments and [`FLAG`], under
/// `taskset -c 0`, its output going to ours. Call at the end of pass 1.
pub(crate) async fn run_pass() {
    if is_pass() {
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let status = tokio::process::Command::new("taskset")
        .args(["-c", "0"])
        .arg(exe)
        .args(std::env::args().skip(1))
        .arg(FLAG)
        .status()
        .await;
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("the one-vCPU pass failed: {status}"),
        Err(err) => println!("\n(no one-vCPU pass: cannot run taskset: {err})"),
    }
}
