//! outrigger-servicebus against the loopback Service Bus: publish and
//! receive+complete throughput through the component socket, beside the same
//! REST work done with the `azure_messaging_servicebus` crate directly, in
//! one run. The loopback server is in-process, so the figures measure our
//! overhead (gRPC hop, metadata mapping, lock bookkeeping), not Azure's.
//!
//! Run with:
//!     cargo bench -p outrigger-servicebus --bench throughput          (add `-- --quick` for a short run)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use azure_messaging_servicebus::service_bus::{SendMessageOptions, TopicClient};
use outrigger_servicebus::Transport;
use support::client::Component;
use support::{KEY, KEY_NAME, NAMESPACE, fake, serve_fake, unique};

struct Figures {
    publish: f64,
    receive: f64,
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

async fn direct(bus: &support::FakeServiceBus, n: usize) -> Figures {
    let http = Transport::redirected(bus.url.parse().unwrap()).shared();
    let topic = unique("direct");
    // The component's own entity management creates these in the other run.
    let setup = Component::connect(&serve_fake(bus).await.1, "setup").await;
    setup
        .init_pubsub(&[("connectionString", &bus.connection_string())])
        .await;
    drop(setup.subscribe(&topic, "g").await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = TopicClient::new(http, NAMESPACE, &topic, KEY_NAME, KEY).unwrap();
    let sender = client.topic_sender();
    let start = Instant::now();
    for i in 0..n {
        let options = SendMessageOptions {
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        sender
            .send_message(&format!("m{i}"), Some(options))
            .await
            .unwrap();
    }
    let publish = rate(n, start.elapsed());
    let receiver = client.subscription_receiver("g");
    let start = Instant::now();
    for _ in 0..n {
        let m = receiver
            .peek_lock_message2(Some(Duration::from_secs(5)))
            .await
            .unwrap();
        m.delete_message().await.unwrap();
    }
    Figures {
        publish,
        receive: rate(n, start.elapsed()),
    }
}

async fn through_component(bus: &support::FakeServiceBus, n: usize) -> Figures {
    let (_dir, socket) = serve_fake(bus).await;
    let c = Component::connect(&socket, "bench").await;
    c.init_pubsub(&[("connectionString", &bus.connection_string())])
        .await;
    let topic = unique("component");
    drop(c.subscribe(&topic, "g").await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    for i in 0..n {
        c.publish(&topic, &format!("m{i}"), &[]).await.unwrap();
    }
    let publish = rate(n, start.elapsed());
    let start = Instant::now();
    let mut sub = c.subscribe(&topic, "g").await;
    for _ in 0..n {
        let m = sub.next().await;
        sub.ack(&m).await;
    }
    // Wait until every completion reached the broker.
    let path = format!("{topic}/subscriptions/g");
    while bus.depth(&path) > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Figures {
        publish,
        receive: rate(n, start.elapsed()),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 200 } else { 2000 };
    let bus = fake().await;
    // Warm both paths (connections, allocations).
    direct(&bus, 20).await;
    through_component(&bus, 20).await;
    let d = direct(&bus, n).await;
    let c = through_component(&bus, n).await;
    println!(
        "outrigger-servicebus vs the crate directly, loopback Service Bus, {n} messages, sequential"
    );
    println!("| path | publish | receive + complete |");
    println!("|---|---|---|");
    println!(
        "| crate directly | {:.0} msg/s | {:.0} msg/s |",
        d.publish, d.receive
    );
    println!(
        "| through the component socket | {:.0} msg/s | {:.0} msg/s |",
        c.publish, c.receive
    );
    println!(
        "component / direct: publish {:.2}x, receive {:.2}x",
        c.publish / d.publish,
        c.receive / d.receive
    );
}
