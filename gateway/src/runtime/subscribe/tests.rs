use super::*;

#[test]
fn dapr_subscriber_rules() {
    assert_eq!(verdict(200, b""), Verdict::Success);
    assert_eq!(verdict(204, b"garbage"), Verdict::Success);
    assert_eq!(verdict(200, br#"{"status":"SUCCESS"}"#), Verdict::Success);
    assert_eq!(verdict(200, br#"{"status":"RETRY"}"#), Verdict::Retry);
    assert_eq!(verdict(200, br#"{"status":"DROP"}"#), Verdict::Drop);
    assert_eq!(verdict(200, br#"{"status":"MAYBE"}"#), Verdict::Retry);
    assert_eq!(verdict(404, b""), Verdict::Drop);
    assert_eq!(verdict(500, b""), Verdict::Retry);
}

#[test]
fn programmatic_subscriptions() {
    let body = br#"[{"pubsubname":"pubsub","topic":"a","route":"/a"},
                    {"pubsubname":"pubsub","topic":"b","routes":{"default":"/b"},"deadLetterTopic":"poison"}]"#;
    let subs = parse_programmatic(body).unwrap();
    assert_eq!(
        (subs[0].route.as_deref(), subs[1].route.as_deref()),
        (Some("/a"), Some("/b"))
    );
    assert_eq!(subs[1].dead_letter_topic.as_deref(), Some("poison"));
    assert!(
        parse_programmatic(br#"[{"pubsubname":"p","topic":"t"}]"#)
            .unwrap_err()
            .contains("no route")
    );
    let bad = br#"[{"pubsubname":"p","topic":"t","routes":{"rules":[{"match":"event.type ==","path":"/x"}]}}]"#;
    assert!(parse_programmatic(bad).unwrap_err().contains("not CEL"));
}

#[test]
fn cel_rules_route_in_order() {
    let body = br#"[{"pubsubname":"p","topic":"t","routes":{"rules":[
        {"match":"event.type == \"widget\"","path":"/widgets"},
        {"match":"event.data.amount > 100","path":"/big"}],"default":"/other"}}]"#;
    let sub = parse_programmatic(body).unwrap().remove(0);
    let widget = serde_json::json!({"type": "widget", "data": {"amount": 500}});
    let big = serde_json::json!({"type": "order", "data": {"amount": 500}});
    let small = serde_json::json!({"type": "order", "data": {"amount": 5}});
    assert_eq!(
        route_for(&sub, &widget).as_deref(),
        Some("/widgets"),
        "first match wins"
    );
    assert_eq!(route_for(&sub, &big).as_deref(), Some("/big"));
    assert_eq!(route_for(&sub, &small).as_deref(), Some("/other"));
}
