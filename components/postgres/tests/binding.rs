//! `bindings.postgresql` over the socket against a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use outrigger_component_sdk::ComponentServer;
use outrigger_proto::components as pb;
use tonic::Code;

fn request<T>(m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.metadata_mut()
        .insert("x-component-instance", "db".parse().unwrap());
    r
}

fn invoke(operation: &str, pairs: &[(&str, &str)]) -> pb::InvokeRequest {
    pb::InvokeRequest {
        data: Vec::new(),
        metadata: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        operation: operation.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_query_close_and_errors() {
    let Ok(url) = std::env::var("OUTRIGGER_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "OUTRIGGER_POSTGRES_URL is not set under CI"
        );
        eprintln!("SKIPPED: OUTRIGGER_POSTGRES_URL is not set; run `bash scripts/test.sh`");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    tokio::spawn(
        outrigger_postgres::services(ComponentServer::new(dir.path()))
            .serve(std::future::pending()),
    );
    let socket = dir.path().join("postgres.sock");
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
    let mut c = pb::output_binding_client::OutputBindingClient::new(channel);
    let init = pb::OutputBindingInitRequest {
        metadata: Some(pb::MetadataRequest {
            properties: HashMap::from([("connectionString".to_owned(), url)]),
        }),
    };
    c.init(request(init)).await.unwrap();
    let ops = c
        .list_operations(request(pb::ListOperationsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .operations;
    assert_eq!(ops, ["exec", "query", "close"]);

    let table = format!("orders_{}", std::process::id());
    let create = format!("CREATE TABLE {table} (id INT PRIMARY KEY, customer TEXT, price NUMERIC)");
    c.invoke(request(invoke("exec", &[("sql", &create)])))
        .await
        .unwrap();
    let insert = format!("INSERT INTO {table} VALUES ($1, $2, $3), ($4, $5, $6)");
    let done = c
        .invoke(request(invoke(
            "exec",
            &[
                ("sql", &insert),
                ("params", r#"[1, "John", 100.5, 2, "Jane", 15]"#),
            ],
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.metadata["rows-affected"], "2");

    let select = format!("SELECT id, customer FROM {table} WHERE id >= $1 ORDER BY id");
    let rows = c
        .invoke(request(invoke(
            "query",
            &[("sql", &select), ("params", "[1]")],
        )))
        .await
        .unwrap()
        .into_inner();
    let rows: serde_json::Value = serde_json::from_slice(&rows.data).unwrap();
    assert_eq!(rows, serde_json::json!([[1, "John"], [2, "Jane"]]));

    let bad = c
        .invoke(request(invoke("query", &[("sql", "SELEC nonsense")])))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("metadata.sql"), "{}", bad.message());
    let missing = c.invoke(request(invoke("exec", &[]))).await.unwrap_err();
    assert!(
        missing.message().contains("metadata.sql"),
        "{}",
        missing.message()
    );
    let params = c
        .invoke(request(invoke(
            "exec",
            &[("sql", "SELECT 1"), ("params", "{")],
        )))
        .await
        .unwrap_err();
    assert!(
        params.message().contains("metadata.params"),
        "{}",
        params.message()
    );

    c.invoke(request(invoke("close", &[]))).await.unwrap();
    let again = c
        .invoke(request(invoke(
            "query",
            &[("sql", &format!("SELECT count(*) FROM {table}"))],
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&again.data).unwrap(),
        serde_json::json!([[2]]),
        "reconnects after close"
    );
    c.invoke(request(invoke(
        "exec",
        &[("sql", &format!("DROP TABLE {table}"))],
    )))
    .await
    .unwrap();
}
