//! Secret stores and the cron binding over their sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use outrigger_proto::components as pb;
use support::{Local, props, to};
use tokio_stream::StreamExt;
use tonic::Code;

#[tokio::test]
async fn file_secrets_flatten_and_multi_value() {
    let local = Local::start().await;
    let file = local.dir.path().join("secrets.json");
    std::fs::write(
        &file,
        r#"{"db":{"user":"ada","password":"s3cret"},"token":"t0k"}"#,
    )
    .unwrap();
    let file = file.display().to_string();
    let mut c = pb::secret_store_client::SecretStoreClient::new(local.channel.clone());
    c.init(to(
        "flat",
        pb::SecretStoreInitRequest {
            metadata: props(&[("secretsFile", &file)]),
        },
    ))
    .await
    .unwrap();
    let get = |key: &str| pb::GetSecretRequest {
        key: key.into(),
        metadata: HashMap::new(),
    };
    assert_eq!(
        c.get(to("flat", get("db:password")))
            .await
            .unwrap()
            .into_inner()
            .data["db:password"],
        "s3cret"
    );
    assert_eq!(
        c.get(to("flat", get("token")))
            .await
            .unwrap()
            .into_inner()
            .data["token"],
        "t0k"
    );
    assert_eq!(
        c.get(to("flat", get("db"))).await.unwrap_err().code(),
        Code::NotFound
    );

    c.init(to(
        "multi",
        pb::SecretStoreInitRequest {
            metadata: props(&[("secretsFile", &file), ("multiValued", "true")]),
        },
    ))
    .await
    .unwrap();
    let db = c
        .get(to("multi", get("db")))
        .await
        .unwrap()
        .into_inner()
        .data;
    assert_eq!(
        (db["user"].as_str(), db["password"].as_str()),
        ("ada", "s3cret")
    );
    let all = c
        .bulk_get(to("multi", pb::BulkGetSecretRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .data;
    assert_eq!(all["token"].secrets["token"], "t0k");

    for (pairs, key) in [
        (
            vec![("secretsFile", "/nowhere/secrets.json")],
            "secretsFile",
        ),
        (vec![], "secretsFile"),
        (
            vec![("secretsFile", file.as_str()), ("multiValued", "perhaps")],
            "multiValued",
        ),
    ] {
        let err = c
            .init(to(
                "bad",
                pb::SecretStoreInitRequest {
                    metadata: props(&pairs),
                },
            ))
            .await
            .unwrap_err();
        assert!(err.message().contains(key), "{pairs:?}: {}", err.message());
    }
}

#[tokio::test]
async fn env_secrets_with_prefix() {
    let local = Local::start().await;
    let channel = support::channel(&local.socket("local-env")).await;
    let mut c = pb::secret_store_client::SecretStoreClient::new(channel);
    c.init(to(
        "env",
        pb::SecretStoreInitRequest {
            metadata: props(&[("prefix", "CARGO_PKG_")]),
        },
    ))
    .await
    .unwrap();
    // cargo sets CARGO_PKG_NAME for test processes: no environment mutation needed.
    let got = c
        .get(to(
            "env",
            pb::GetSecretRequest {
                key: "NAME".into(),
                metadata: HashMap::new(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(got.into_inner().data["NAME"], "outrigger-local");
    let missing = c
        .get(to(
            "env",
            pb::GetSecretRequest {
                key: "NOPE_NOT_SET".into(),
                metadata: HashMap::new(),
            },
        ))
        .await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn cron_fires_into_the_read_stream() {
    let local = Local::start().await;
    let mut c = pb::input_binding_client::InputBindingClient::new(local.channel.clone());
    let bad = c
        .init(to(
            "bad",
            pb::InputBindingInitRequest {
                metadata: props(&[("schedule", "every so often")]),
            },
        ))
        .await;
    assert!(bad.unwrap_err().message().contains("schedule"));
    c.init(to(
        "tick",
        pb::InputBindingInitRequest {
            metadata: props(&[("schedule", "@every 200ms")]),
        },
    ))
    .await
    .unwrap();
    let (_answers, rx) = tokio::sync::mpsc::channel::<pb::ReadRequest>(4);
    let mut events = c
        .read(to("tick", tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(event.metadata.contains_key("readTimeUTC"));
    }
}
