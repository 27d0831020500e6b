//! `outrigger run -f` end to end: the real binary runs a two-app template;
//! app A calls app B through its own gateway (service invocation over the
//! shared registry folder) and writes the answer to a file; SIGINT to
//! `outrigger run -f` then stops everything, leaving no process behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn outrigger() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outrigger"))
}

const APP_A: &str = r#"
import os, time, urllib.request
url = "http://127.0.0.1:%s/v1.0/invoke/app-b/method/greet" % os.environ["DAPR_HTTP_PORT"]
deadline = time.time() + 60
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
            break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(0.2)
with open(os.environ["RESULT_FILE"], "w") as f:
    f.write(text)
print("a got: " + text, flush=True)
time.sleep(3600)
"#;

const APP_B: &str = r#"
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from b at " + self.path).encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("b listening", flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler).serve_forever()
"#;

/// Processes whose environment holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| {
            std::fs::read(p.path().join("environ"))
                .is_ok_and(|env| String::from_utf8_lossy(&env).contains(marker))
        })
        .map(|p| {
            std::fs::read_to_string(p.path().join("cmdline"))
                .unwrap_or_default()
                .replace('\0', " ")
        })
        .collect()
}

fn write_template(root: &Path, marker: &str, result: &Path) -> PathBuf {
    for (dir, name, code) in [("a", "app_a.py", APP_A), ("b", "app_b.py", APP_B)] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        std::fs::write(root.join(dir).join(name), code).unwrap();
    }
    std::fs::create_dir_all(root.join("resources")).unwrap();
    let template = root.join("apps.yaml");
    std::fs::write(
        &template,
        format!(
            r#"version: 1
common:
  resourcesPath: ./resources
  logLevel: info
  env:
    RESULT_FILE: "{result}"
    MULTI_RUN_MARKER: "{marker}"
apps:
- appID: app-a
  appDirPath: ./a
  command: ["python3", "app_a.py"]
- appID: app-b
  appDirPath: ./b
  appPort: {port}
  command: ["python3", "app_b.py"]
- appID: app-c
  appDirPath: ./b
  command: ["python3", "-c", "print('c is done')"]
"#,
            result = result.display(),
            port = support::free_port(),
        ),
    )
    .unwrap();
    template
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_invoke_each_other_and_stop_together() {
    let root = tempfile::tempdir().unwrap();
    let marker = format!("multi-run-{}", std::process::id());
    let result = root.path().join("result.txt");
    let template = write_template(root.path(), &marker, &result);
    let mut run = tokio::process::Command::new(outrigger())
        .arg("run")
        .arg("-f")
        .arg(&template)
        .env("OUTRIGGER_REGISTRY_FOLDER", root.path().join("registry"))
        .env("XDG_RUNTIME_DIR", root.path())
        .env_remove("DAPR_HTTP_PORT")
        .env_remove("DAPR_GRPC_PORT")
        .env_remove("APP_ID")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !result.exists() {
        if let Ok(Some(status)) = run.try_wait() {
            let output = run.wait_with_output().await.unwrap();
            panic!(
                "outrigger run -f exited early ({status:?})\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "app A wrote no result"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The file may be seen before its content is written.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        std::fs::read_to_string(&result).unwrap(),
        "hello from b at /greet"
    );
    assert!(
        processes_with(&marker).len() >= 4,
        "both runs and apps are up"
    );

    let pid = Pid::from_raw(i32::try_from(run.id().unwrap()).unwrap());
    kill(pid, Signal::SIGINT).unwrap();
    let output = tokio::time::timeout(Duration::from_secs(40), run.wait_with_output())
        .await
        .expect("outrigger run -f stops within 40 s of SIGINT")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("== APP - app-a == a got: hello from b at /greet"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("== APP - app-b == b listening"), "{stdout}");
    // app-c exited at once; the others kept running until SIGINT.
    assert!(stdout.contains("== APP - app-c == c is done"), "{stdout}");

    let survivors = processes_with(&marker);
    assert!(survivors.is_empty(), "left running: {survivors:?}");
}

#[tokio::test]
async fn template_mistakes_exit_64_naming_the_file_and_key() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("a")).unwrap();
    let template = root.path().join("apps.yaml");
    std::fs::write(
        &template,
        "version: 1\napps:\n- appDirPath: ./a\n  appId: typo\n",
    )
    .unwrap();
    let output = tokio::process::Command::new(outrigger())
        .args(["run", "-f"])
        .arg(&template)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("apps.yaml") && stderr.contains("apps[0].appId"),
        "{stderr}"
    );
}

/// The run ends by itself once every app has exited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_ends_when_every_app_has_exited() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("one")).unwrap();
    std::fs::create_dir_all(root.path().join("resources")).unwrap();
    std::fs::write(
        root.path().join("dapr.yaml"),
        "version: 1\ncommon: {resourcesPath: resources}\napps:\n- appDirPath: one\n  command: [python3, -c, \"print('first')\"]\n- appID: two\n  appDirPath: one\n  command: [python3, -c, \"print('second')\"]\n",
    )
    .unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(outrigger())
            .args(["run", "-f"])
            .arg(root.path())
            .env("OUTRIGGER_REGISTRY_FOLDER", root.path().join("registry"))
            .env("XDG_RUNTIME_DIR", root.path())
            .env_remove("DAPR_HTTP_PORT")
            .env_remove("DAPR_GRPC_PORT")
            .env_remove("APP_ID")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("outrigger run -f ends once its apps have exited")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    // The folder's dapr.yaml; the first app's id is its folder's name.
    assert!(stdout.contains("== APP - one == first"), "{stdout}");
    assert!(stdout.contains("== APP - two == second"), "{stdout}");
}
