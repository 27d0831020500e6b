//! The machine's floor for one cross-process round trip: a child process
//! echoes 64 bytes over a Unix socket pair, with blocking reads on both
//! sides, once with both on one vCPU and once on two. On a VM whose idle
//! vCPUs halt, the second is mostly the wake-up of the other vCPU; every
//! process boundary the gateway adds costs one or the other.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Set in the child: the socket path it echoes on.
const ECHO_MODE: &str = "OUTRIGGER_BENCH_ECHO_SOCKET";
/// Set in the child: the vCPU it echoes on.
const ECHO_CPU: &str = "OUTRIGGER_BENCH_ECHO_CPU";

/// In the child (when [`ECHO_MODE`] is set): echo until the peer closes,
/// then return `true` so `main` exits.
pub(crate) fn serve_if_child() -> bool {
    let Some(path) = std::env::var_os(ECHO_MODE) else {
        return false;
    };
    if let Some(cpu) = std::env::var(ECHO_CPU).ok().and_then(|c| c.parse().ok()) {
        // The parent checked that this vCPU can be used.
        let _ = pin_thread(cpu);
    }
    let Ok(mut stream) = UnixStream::connect(path) else {
        return true;
    };
    let mut buf = [0u8; 64];
    while stream.read_exact(&mut buf).is_ok() {
        if stream.write_all(&buf).is_err() {
            break;
        }
    }
    true
}

/// Pins the calling thread to vCPU `cpu`.
fn pin_thread(cpu: usize) -> nix::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
}

/// The floor both ways: one round trip to a child process on the same
/// vCPU, and to one on the other vCPU (`None` where a vCPU cannot be
/// used). On this VM the second wakes a halted vCPU.
pub(crate) struct Floors {
    pub(crate) same: Option<Duration>,
    pub(crate) other: Option<Duration>,
}

impl Floors {
    /// Both floors, `n` round trips each, on a thread of their own.
    pub(crate) fn measure(n: usize) -> Self {
        let run = move |child_cpu: usize| {
            std::thread::spawn(move || {
                // Can this process use `child_cpu` at all?
                pin_thread(child_cpu).ok()?;
                pin_thread(0).ok()?;
                Some(round_trip(n, child_cpu))
            })
            .join()
            .ok()
            .flatten()
        };
        Self {
            same: run(0),
            other: run(1),
        }
    }

    /// For a report line: `same vCPU 6.1 µs, other vCPU 91.0 µs`.
    pub(crate) fn describe(&self) -> String {
        let us = |d: Option<Duration>| {
            d.map_or_else(
                || "n/a".to_owned(),
                |d| format!("{:.1} µs", d.as_secs_f64() * 1e6),
            )
        };
        format!("same vCPU {}, other vCPU {}", us(self.same), us(self.other))
    }
}

/// p50 of `n` round trips to a child process on vCPU `child_cpu`.
fn round_trip(n: usize, child_cpu: usize) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("echo.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind echo socket");
    let mut command = std::process::Command::new(std::env::current_exe().expect("own path"));
    command
        .env(ECHO_MODE, &path)
        .env(ECHO_CPU, child_cpu.to_string());
    let mut child = command.spawn().expect("start the echo child");
    let (mut stream, _) = listener.accept().expect("echo child connects");
    let mut buf = [7u8; 64];
    let mut times = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t = Instant::now();
        stream.write_all(&buf).expect("write");
        stream.read_exact(&mut buf).expect("read");
        if i >= n / 10 {
            times.push(t.elapsed());
        }
    }
    drop(stream);
    let _ = child.wait();
    times.sort();
    times[times.len() / 2]
}
