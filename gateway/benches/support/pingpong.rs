//! The machine's floor for one cross-process round trip: a child process
//! echoes 64 bytes over a Unix socket pair, with blocking reads on both
//! sides. On a VM whose idle vCPUs halt, most of this is the wake-up of the
//! other side; every process boundary the gateway adds costs about this.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Set in the child: the socket path it echoes on.
const ECHO_MODE: &str = "OUTRIGGER_BENCH_ECHO_SOCKET";

/// In the child (when [`ECHO_MODE`] is set): echo until the peer closes,
/// then return `true` so `main` exits.
pub(crate) fn serve_if_child() -> bool {
    let Some(path) = std::env::var_os(ECHO_MODE) else {
        return false;
    };
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

/// p50 of `n` round trips to a child process (run on a blocking thread).
pub(crate) fn round_trip_p50(n: usize) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("echo.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind echo socket");
    let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env(ECHO_MODE, &path)
        .spawn()
        .expect("start the echo child");
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
