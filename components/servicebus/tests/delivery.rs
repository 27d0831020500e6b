//! Delivery guarantees through the component, against the loopback Service
//! Bus: redelivery after a nack, dead-lettering after `maxDeliveryCount`,
//! lock renewal for a slow handler (and, as a control, what happens without
//! it), the queue binding's round trip with broker properties, scheduled
//! messages, and clear errors for bad publishes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use azure_messaging_servicebus::service_bus::TopicClient;
use outrigger_servicebus::Transport;
use support::client::Component;
use support::{KEY, KEY_NAME, NAMESPACE, fake, serve_fake, unique};

fn count(m: &std::collections::HashMap<String, String>) -> &str {
    m.get("metadata.DeliveryCount").map_or("", String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_message_is_redelivered_with_a_higher_delivery_count() {
    let bus = fake().await;
    let (_dir, socket) = serve_fake(&bus).await;
    let c = Component::connect(&socket, "redelivery").await;
    c.init_pubsub(&[("connectionString", &bus.connection_string())])
        .await;
    let (topic, group) = (unique("orders"), "billing");
    let mut sub = c.subscribe(&topic, group).await;
    c.publish(&topic, "charge 10", &[]).await.unwrap();
    let first = sub.next().await;
    assert_eq!(first.data, b"charge 10");
    assert_eq!(count(&first.metadata), "1", "{:?}", first.metadata);
    sub.nack(&first).await;
    let again = sub.next().await;
    assert_eq!(again.data, b"charge 10");
    assert_eq!(count(&again.metadata), "2", "{:?}", again.metadata);
    sub.ack(&again).await;
    assert!(sub.next_within(Duration::from_millis(1500)).await.is_none());
    assert_eq!(bus.depth(&format!("{topic}/subscriptions/{group}")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_nacked_max_delivery_count_times_is_dead_lettered_by_the_broker() {
    let bus = fake().await;
    let (_dir, socket) = serve_fake(&bus).await;
    let c = Component::connect(&socket, "dead-letter").await;
    c.init_pubsub(&[
        ("connectionString", &bus.connection_string()),
        ("maxDeliveryCount", "3"),
    ])
    .await;
    let (topic, group) = (unique("payments"), "ledger");
    let path = format!("{topic}/subscriptions/{group}");
    let mut sub = c.subscribe(&topic, group).await;
    assert_eq!(
        bus.settings(&path).map(|s| s.1),
        Some(3),
        "maxDeliveryCount not applied"
    );
    c.publish(&topic, "poison", &[("Priority", "high")])
        .await
        .unwrap();
    for attempt in 1..=3 {
        let m = sub.next().await;
        assert_eq!(m.data, b"poison");
        assert_eq!(count(&m.metadata), attempt.to_string());
        sub.nack(&m).await;
    }
    assert!(
        sub.next_within(Duration::from_secs(2)).await.is_none(),
        "delivered a fourth time"
    );
    assert_eq!(bus.depth(&path), 0);
    // Read the dead-letter queue over the REST API, as an operator would.
    let transport = Transport::redirected(bus.url.parse().unwrap()).shared();
    let dlq = TopicClient::new(transport, NAMESPACE, &topic, KEY_NAME, KEY)
        .unwrap()
        .subscription_receiver(&format!("{group}/$DeadLetterQueue"));
    let dead = dlq
        .peek_lock_message2(Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(dead.body(), "poison");
    let headers = dead
        .custom_properties::<azure_core::headers::Headers>()
        .unwrap();
    let reason = headers.get_optional_str(&azure_core::headers::HeaderName::from_static(
        "deadletterreason",
    ));
    assert_eq!(reason, Some("\"MaxDeliveryCountExceeded\""));
    let priority =
        headers.get_optional_str(&azure_core::headers::HeaderName::from_static("priority"));
    assert_eq!(
        priority,
        Some("\"high\""),
        "application properties lost on the way"
    );
}

/// Consumer A takes a message and sits on it for 6 s with a 3 s broker lock;
/// consumer B of the same group polls meanwhile. Returns whether B got it.
async fn slow_handler(lock_renewal: &str) -> (bool, usize) {
    let bus = fake().await;
    let (_dir, socket) = serve_fake(&bus).await;
    let c = Component::connect(&socket, "slow").await;
    c.init_pubsub(&[
        ("connectionString", &bus.connection_string()),
        ("lockDurationInSec", "3"),
        ("lockRenewalInSec", lock_renewal),
        // A holds one message at a time, so only B can take it back.
        ("maxActiveMessages", "1"),
    ])
    .await;
    let (topic, group) = (unique("reports"), "renderer");
    let path = format!("{topic}/subscriptions/{group}");
    let mut a = c.subscribe(&topic, group).await;
    assert_eq!(
        bus.settings(&path).map(|s| s.0),
        Some(Duration::from_secs(3))
    );
    c.publish(&topic, "render me", &[]).await.unwrap();
    let m = a.next().await;
    let mut b = c.subscribe(&topic, group).await;
    let stolen = b.next_within(Duration::from_secs(6)).await;
    a.ack(&m).await;
    if let Some(stolen) = &stolen {
        assert_eq!(count(&stolen.metadata), "2");
        b.ack(stolen).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    (stolen.is_some(), bus.depth(&path))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_renewal_keeps_a_slow_handlers_message_from_other_consumers() {
    let (stolen, left) = slow_handler("1").await;
    assert!(
        !stolen,
        "the lock lapsed although it was renewed every second"
    );
    assert_eq!(left, 0, "the ack after 6 s did not complete the message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_renewal_the_lock_lapses_and_another_consumer_gets_the_message() {
    // The control for the test above: it can fail.
    let (stolen, left) = slow_handler("60").await;
    assert!(stolen, "the 3 s lock did not lapse within 6 s");
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_binding_round_trips_broker_and_application_properties() {
    let bus = fake().await;
    let (_dir, socket) = serve_fake(&bus).await;
    let queue = unique("invoices");
    let conn = bus.connection_string();
    let metadata = [
        ("connectionString", conn.as_str()),
        ("queueName", queue.as_str()),
    ];
    let c = Component::connect(&socket, "queue").await;
    c.init_output(&metadata).await.unwrap();
    c.init_input(&metadata).await.unwrap();
    c.create(
        "{\"invoice\":7}",
        &[
            ("MessageId", "inv-7"),
            ("CorrelationId", "order-7"),
            ("SessionId", "customer-1"),
            ("ttlInSeconds", "60"),
            ("tenant", "acme"),
            ("ContentType", "application/json"),
        ],
    )
    .await
    .unwrap();
    let mut events = c.read().await;
    let e = events.next().await;
    assert_eq!(e.data, b"{\"invoice\":7}");
    let md = &e.metadata;
    assert_eq!(
        md.get("metadata.MessageId").map(String::as_str),
        Some("inv-7"),
        "{md:?}"
    );
    assert_eq!(
        md.get("metadata.CorrelationId").map(String::as_str),
        Some("order-7")
    );
    assert_eq!(
        md.get("metadata.SessionId").map(String::as_str),
        Some("customer-1")
    );
    assert_eq!(md.get("tenant").map(String::as_str), Some("acme"));
    assert_eq!(e.content_type, "application/json");
    assert_eq!(count(md), "1");
    events.nack(&e).await;
    let again = events.next().await;
    assert_eq!(count(&again.metadata), "2");
    events.ack(&again).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bus.depth(&queue),
        0,
        "the app's success did not complete the message"
    );
    assert!(events.next_within(Duration::from_secs(1)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_messages_arrive_at_their_time() {
    let bus = fake().await;
    let (_dir, socket) = serve_fake(&bus).await;
    let queue = unique("reminders");
    let conn = bus.connection_string();
    let metadata = [
        ("connectionString", conn.as_str()),
        ("queueName", queue.as_str()),
    ];
    let c = Component::connect(&socket, "scheduled").await;
    c.init_output(&metadata).await.unwrap();
    c.init_input(&metadata).await.unwrap();
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let at = at
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap()
        .replace(" +0000", " GMT");
    c.create("later", &[("ScheduledEnqueueTimeUtc", &at)])
        .await
        .unwrap();
    let mut events = c.read().await;
    assert!(
        events
            .next_within(Duration::from_millis(1500))
            .await
            .is_none(),
        "a message scheduled 3 s ahead came early"
    );
    let e = events.next().await;
    assert_eq!(e.data, b"later");
    events.ack(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_publishes_get_clear_errors() {
    let bus = fake().await;
    let (_dir, socket) = serve_fake(&bus).await;
    let c = Component::connect(&socket, "bad").await;
    c.init_pubsub(&[("connectionString", &bus.connection_string())])
        .await;
    let err = c.publish("no spaces allowed", "x", &[]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("topic"), "{}", err.message());
    let err = c
        .publish(&unique("t"), "x", &[("ttlInSeconds", "soon")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("ttlInSeconds"), "{}", err.message());
    let big = "x".repeat(300 * 1024);
    let err = c.publish(&unique("t"), &big, &[]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("data"), "{}", err.message());

    let strict = Component::connect(&socket, "strict").await;
    strict
        .init_pubsub(&[
            ("connectionString", &bus.connection_string()),
            ("disableEntityManagement", "true"),
        ])
        .await;
    let topic = unique("absent");
    let err = strict.publish(&topic, "x", &[]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(
        err.message().contains(&topic) && err.message().contains("disableEntityManagement"),
        "{}",
        err.message()
    );
    assert!(
        !bus.exists(&topic),
        "a topic was created although management is off"
    );
}
