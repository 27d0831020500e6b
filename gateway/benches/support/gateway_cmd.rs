//! The real `outrigger` binary as the benchmarks start it.

/// The gateway for `app_id`, logging warnings and errors only, with no
/// metrics port, killed when its handle drops. Callers add ports and
/// folders.
pub(crate) fn command(app_id: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_outrigger"));
    command
        .args([
            "--app-id",
            app_id,
            "--log-level",
            "warn",
            "--metrics-port",
            "0",
        ])
        .kill_on_drop(true);
    command
}
