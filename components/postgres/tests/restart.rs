//! Restarting PostgreSQL under a steady write load: calls made while the
//! server is down fail with a clear `Unavailable`, the component reconnects
//! by itself once it is back, and every write it acknowledged is there.
//!
//! The test runs its own throwaway server (it must stop it), with the
//! binaries `scripts/test.sh` exports as `OUTRIGGER_PG_BIN`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use outrigger_component_sdk::ComponentServer;
use outrigger_proto::components as pb;
use tonic::Code;

/// How to drive one throwaway server (cheap to clone into a thread).
#[derive(Clone)]
struct Ctl {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Ctl {
    fn run(&self, tool: &str, args: &[&str]) {
        let tool = self.bin.join(tool);
        let output = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&tool)
                .args(args)
                .output()
        } else {
            Command::new(&tool).args(args).output()
        }
        .unwrap();
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}\n{}",
            tool.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-t",
                "30",
                "-o",
                &options,
                "start",
            ],
        );
    }

    fn stop(&self, mode: &str) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

/// The server's folder; dropping it stops the server.
struct Server {
    ctl: Ctl,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.ctl.data();
        let pg_ctl = self.ctl.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if self.ctl.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg_ctl)
                .args(args)
                .output()
        } else {
            Command::new(pg_ctl).args(args).output()
        };
    }
}

fn own_server() -> Option<Server> {
    let Some(bin) = std::env::var_os("OUTRIGGER_PG_BIN") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "OUTRIGGER_PG_BIN is not set under CI: scripts/test.sh exports it"
        );
        eprintln!("SKIPPED: OUTRIGGER_PG_BIN is not set; run `bash scripts/test.sh`");
        return None;
    };
    // initdb refuses root: run the server as the postgres user then.
    let as_postgres = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let dir = tempfile::tempdir().unwrap();
    if as_postgres {
        assert!(
            Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .unwrap()
                .success()
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctl = Ctl {
        bin: PathBuf::from(bin),
        dir: dir.path().to_path_buf(),
        port,
        as_postgres,
    };
    ctl.run(
        "initdb",
        &[
            "-D",
            &ctl.data(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ],
    );
    ctl.start();
    Some(Server { ctl, _dir: dir })
}

fn request<T>(m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.metadata_mut()
        .insert("x-component-instance", "store".parse().unwrap());
    r
}

async fn client(dir: &Path) -> pb::state_store_client::StateStoreClient<tonic::transport::Channel> {
    tokio::spawn(
        outrigger_postgres::services(ComponentServer::new(dir)).serve(std::future::pending()),
    );
    let socket = dir.join("postgres.sock");
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let channel = tonic::transport::Endpoint::from_static("http://pg.invalid")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap();
    pb::state_store_client::StateStoreClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_under_load_loses_no_acknowledged_write() {
    let Some(server) = own_server() else { return };
    let sockets = tempfile::tempdir().unwrap();
    let mut c = client(sockets.path()).await;
    let properties = HashMap::from([
        ("connectionString".to_owned(), server.ctl.url()),
        ("tableName".to_owned(), "restart_load".to_owned()),
        ("timeout".to_owned(), "1s".to_owned()),
    ]);
    c.init(request(pb::InitRequest {
        metadata: Some(pb::MetadataRequest { properties }),
    }))
    .await
    .unwrap();

    let mut acked: Vec<u64> = Vec::new();
    let mut failures: Vec<(Code, String)> = Vec::new();
    let mut restarted_at = None;
    let mut acked_after = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut restart = None;
    for i in 0u64.. {
        if acked.len() == 200 && restart.is_none() {
            // Stop, stay down for a moment, start again, in the background.
            let ctl = server.ctl.clone();
            restart = Some(std::thread::spawn(move || {
                ctl.stop("fast");
                std::thread::sleep(Duration::from_secs(3));
                ctl.start();
            }));
        }
        if let Some(handle) = &restart
            && handle.is_finished()
            && restarted_at.is_none()
        {
            restarted_at = Some(Instant::now());
        }
        if acked_after >= 200 || Instant::now() > deadline {
            break;
        }
        let set = pb::SetRequest {
            key: format!("k{i}"),
            value: i.to_string().into_bytes(),
            ..Default::default()
        };
        match tokio::time::timeout(Duration::from_secs(10), c.set(request(set))).await {
            Ok(Ok(_)) => {
                acked.push(i);
                if restarted_at.is_some() {
                    acked_after += 1;
                }
            }
            Ok(Err(status)) => {
                failures.push((status.code(), status.message().to_owned()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => panic!("a write hung for 10 s while PostgreSQL restarted"),
        }
    }
    restart.expect("the restart happened").join().unwrap();
    eprintln!(
        "acknowledged {} writes ({acked_after} after the restart), {} failed while the server was down",
        acked.len(),
        failures.len()
    );
    assert!(
        !failures.is_empty(),
        "no write failed: the outage was not observed"
    );
    for (code, message) in &failures {
        assert_eq!(*code, Code::Unavailable, "{message}");
        assert!(
            message.contains("PostgreSQL"),
            "the error names the backend: {message}"
        );
    }
    assert!(
        acked_after >= 200,
        "the component did not recover: {acked_after} writes after the restart"
    );

    // Every acknowledged write is there, with its value.
    for i in &acked {
        let got = c
            .get(request(pb::GetRequest {
                key: format!("k{i}"),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            got.data,
            i.to_string().into_bytes(),
            "acknowledged write k{i} lost"
        );
    }
    server.ctl.stop("fast");
}
