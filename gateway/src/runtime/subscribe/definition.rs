//! What a subscription is and where its events go: subscriptions from the
//! app (`GET /dapr/subscribe`, `ListTopicSubscriptions`) and from
//! `Subscription` resources, and their routing rules.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Pub/sub component name.
    pub pubsub: String,
    /// Topic.
    pub topic: String,
    /// Routing rules in order: a CEL expression over `event`, and its path.
    /// The first rule whose expression is true wins.
    pub rules: Vec<(String, String)>,
    /// Route when no rule matches (`routes.default`, or v1alpha1 `route`).
    pub route: Option<String>,
    /// Subscription metadata (passed to the component).
    pub metadata: HashMap<String, String>,
    /// Where dropped messages go.
    pub dead_letter_topic: Option<String>,
    /// Deliver in batches (`bulkSubscribe.enabled`).
    pub bulk: Option<BulkSubscribe>,
}

/// Batching of a bulk subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSubscribe {
    /// Most messages in one batch (`maxMessagesCount`, default 100).
    pub max_messages: usize,
    /// Longest wait to fill a batch (`maxAwaitDurationMs`, default 1 s).
    pub max_await: Duration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBulk {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    max_messages_count: Option<i64>,
    #[serde(default)]
    max_await_duration_ms: Option<i64>,
}

impl WireBulk {
    fn config(self) -> Option<BulkSubscribe> {
        self.enabled.then(|| BulkSubscribe {
            max_messages: self
                .max_messages_count
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(100),
            max_await: Duration::from_millis(
                self.max_await_duration_ms
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .unwrap_or(1000),
            ),
        })
    }
}

#[derive(Deserialize)]
struct Rule {
    #[serde(default, rename = "match")]
    matches: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize, Default)]
struct Routes {
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    default: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(alias = "pubsubName")]
    pubsubname: String,
    topic: String,
    #[serde(default)]
    route: String,
    #[serde(default)]
    routes: Option<Routes>,
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    dead_letter_topic: Option<String>,
    #[serde(default)]
    bulk_subscribe: Option<WireBulk>,
}

impl Wire {
    fn into_subscription(self, empty_route_ok: bool) -> Result<Subscription, String> {
        let routes = self.routes.unwrap_or_default();
        let at = format!("subscription to {}/{}", self.pubsubname, self.topic);
        let mut rules = Vec::new();
        let mut catch_all = None;
        for rule in routes.rules {
            if rule.path.is_empty() {
                return Err(format!("{at}: a routing rule has no path"));
            }
            if rule.matches.trim().is_empty() {
                // A rule without a condition always matches; later rules never run.
                catch_all.get_or_insert(rule.path);
                continue;
            }
            cel::Program::compile(&rule.matches)
                .map_err(|e| format!("{at}: match {:?} is not CEL: {e}", rule.matches))?;
            rules.push((rule.matches, rule.path));
        }
        let route = [Some(routes.default), catch_all, Some(self.route)]
            .into_iter()
            .flatten()
            .find(|r| !r.is_empty());
        let route = if empty_route_ok {
            Some(route.unwrap_or_default())
        } else {
            route
        };
        if rules.is_empty() && route.is_none() {
            return Err(format!("{at} has no route"));
        }
        Ok(Subscription {
            pubsub: self.pubsubname,
            topic: self.topic,
            rules,
            route,
            metadata: self.metadata,
            dead_letter_topic: self.dead_letter_topic.filter(|t| !t.is_empty()),
            bulk: self.bulk_subscribe.and_then(WireBulk::config),
        })
    }
}

/// The path for `event` under `sub`'s rules; `None` when nothing matches.
pub fn route_for(sub: &Subscription, event: &serde_json::Value) -> Option<String> {
    for (expression, path) in &sub.rules {
        let Ok(program) = cel::Program::compile(expression) else {
            continue;
        };
        let mut context = cel::Context::default();
        if context.add_variable("event", event.clone()).is_err() {
            continue;
        }
        if matches!(program.execute(&context), Ok(cel::Value::Bool(true))) {
            return Some(path.clone());
        }
    }
    sub.route.clone()
}

/// Parse the app's `GET /dapr/subscribe` answer.
///
/// # Errors
/// Not a JSON list of subscriptions; entries without a route are reported.
pub fn parse_programmatic(body: &[u8]) -> Result<Vec<Subscription>, String> {
    let list: Vec<Wire> = serde_json::from_slice(body)
        .map_err(|e| format!("GET /dapr/subscribe: not a subscription list: {e}"))?;
    list.into_iter()
        .map(|w| w.into_subscription(false))
        .collect()
}

/// Subscriptions a gRPC app lists with `ListTopicSubscriptions`; without a
/// route, events go to the empty path (the app's default handler).
///
/// # Errors
/// A routing rule that is not CEL, or has no path.
pub fn from_grpc(
    list: Vec<outrigger_proto::runtime::TopicSubscription>,
) -> Result<Vec<Subscription>, String> {
    list.into_iter()
        .map(|t| {
            let routes = t.routes.unwrap_or_default();
            Wire {
                pubsubname: t.pubsub_name,
                topic: t.topic,
                route: String::new(),
                routes: Some(Routes {
                    rules: routes
                        .rules
                        .into_iter()
                        .map(|r| Rule {
                            matches: r.r#match,
                            path: r.path,
                        })
                        .collect(),
                    default: routes.default,
                }),
                metadata: t.metadata,
                dead_letter_topic: Some(t.dead_letter_topic),
                bulk_subscribe: t.bulk_subscribe.map(|b| WireBulk {
                    enabled: b.enabled,
                    max_messages_count: Some(i64::from(b.max_messages_count)),
                    max_await_duration_ms: Some(i64::from(b.max_await_duration_ms)),
                }),
            }
            .into_subscription(true)
        })
        .collect()
}

/// Parse a `Subscription` resource's `spec` (v1alpha1 `route` or v2alpha1 `routes`).
///
/// # Errors
/// A malformed spec, or one without a route.
pub fn parse_declarative(spec: serde_yaml_ng::Value) -> Result<Subscription, String> {
    let wire: Wire =
        serde_yaml_ng::from_value(spec).map_err(|e| format!("Subscription spec: {e}"))?;
    wire.into_subscription(false)
}
