//! The official Dapr Python SDK (`dapr==1.19.0`) against a real gateway and
//! real components, without and with an API token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::Stack;

async fn run_script(stack: &Stack, token: Option<&str>) {
    let python = std::env::var("OUTRIGGER_PYTHON").expect(
        "OUTRIGGER_PYTHON is not set: run `bash scripts/test.sh`, which installs the Dapr SDK venv and sets it",
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/state_sdk.py");
    let mut command = tokio::process::Command::new(python);
    command
        .arg(script)
        .env("DAPR_HTTP_PORT", stack.gateway.http_addr.port().to_string())
        .env("DAPR_GRPC_PORT", stack.gateway.grpc_addr.port().to_string())
        .env("DAPR_HEALTH_TIMEOUT", "10")
        .env_remove("DAPR_API_TOKEN")
        .env_remove("OUTRIGGER_EXPECT_TOKEN")
        .kill_on_drop(true);
    if let Some(token) = token {
        command
            .env("DAPR_API_TOKEN", token)
            .env("OUTRIGGER_EXPECT_TOKEN", token);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("python finishes within 120 s")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python SDK checks failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("python sdk checks passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_state_secrets_bindings_metadata() {
    let stack = Stack::start(None).await;
    run_script(&stack, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_with_api_token() {
    let stack = Stack::start(Some("s3cr3t-token")).await;
    run_script(&stack, Some("s3cr3t-token")).await;
}
