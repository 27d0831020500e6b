//! The configuration block: read items, and subscribe to their changes.
//!
//! A subscription is one `Subscribe` stream on the component, opened and
//! confirmed ("listening") before its id is handed out, so a change made
//! after the caller has the id always reaches it. gRPC callers get the
//! changes on their own response stream; HTTP callers get them as
//! `POST /configuration/{store}/{key}` calls to the app, one per changed key,
//! each with the whole update `{"id","items"}` as daprd sends it. Either kind
//! ends with `unsubscribe`; a gRPC one also when its caller goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Streaming;

use outrigger_proto::common::ConfigurationItem;
use outrigger_proto::outrigger::components::v1 as pb;

use super::component;
use crate::app_channel::HttpApp;
use crate::components::{Component, Registry};
use crate::error::{ApiError, codes};
use crate::resources::Block;

/// Items by key, as both APIs return them.
pub type Items = HashMap<String, ConfigurationItem>;

#[derive(Debug)]
struct Live {
    store: String,
    stop: CancellationToken,
}

/// The configuration API of one gateway.
#[derive(Debug, Clone)]
pub struct ConfigurationApi {
    registry: Arc<Registry>,
    app: Option<HttpApp>,
    live: Arc<Mutex<HashMap<String, Live>>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

/// A subscription's changes; dropping it ends the subscription.
pub struct Updates {
    /// The subscription id.
    pub id: String,
    stream: Streaming<pb::ConfigurationUpdate>,
    stop: CancellationToken,
    guard: Forget,
    tracker: TaskTracker,
}

/// Removes a subscription from the live table when its consumer is gone.
struct Forget {
    live: Arc<Mutex<HashMap<String, Live>>>,
    id: String,
}

impl Drop for Forget {
    fn drop(&mut self) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&self.id);
        }
    }
}

impl Updates {
    /// The changes, until unsubscribed, the component ends the stream, or
    /// the gateway shuts down. An `Err` is the last item.
    pub fn into_stream(self) -> impl Stream<Item = Result<Items, ApiError>> + Send + 'static {
        let Updates {
            id,
            mut stream,
            stop,
            guard,
            tracker,
        } = self;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tracker.spawn(async move {
            let _guard = guard;
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = stream.next() => next,
                };
                let item = match next {
                    Some(Ok(update)) => Ok(update.items),
                    Some(Err(status)) => Err(ApiError::new(
                        codes::ERR_CONFIGURATION_SUBSCRIBE,
                        format!("subscription {id} ended: {}", status.message()),
                    )),
                    None => return,
                };
                let last = item.is_err();
                let stopped = tokio::select! {
                    () = stop.cancelled() => true,
                    sent = tx.send(item) => sent.is_err(),
                };
                if stopped || last {
                    return;
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

fn check_keys(keys: &[String]) -> Result<(), ApiError> {
    if keys.iter().any(|k| k.trim().is_empty()) {
        return Err(ApiError::new(
            codes::ERR_MALFORMED_REQUEST,
            "keys: a key must not be empty",
        ));
    }
    Ok(())
}

impl ConfigurationApi {
    /// Over `registry`; `app` receives HTTP subscriptions' updates. Update
    /// pumps run on `tracker` until `shutdown`.
    pub fn new(
        registry: Arc<Registry>,
        app: Option<HttpApp>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            registry,
            app,
            live: Arc::new(Mutex::new(HashMap::new())),
            tracker,
            shutdown,
        }
    }

    fn store(&self, name: &str) -> Result<Arc<Component>, ApiError> {
        component(
            &self.registry,
            Block::Configuration,
            name,
            codes::ERR_CONFIGURATION_STORE_NOT_CONFIGURED,
            codes::ERR_CONFIGURATION_STORE_NOT_FOUND,
        )
    }

    /// Items for `keys` (all when empty); keys the store lacks are absent.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "configuration", op = "get", store = store_name))]
    pub async fn get(
        &self,
        store_name: &str,
        keys: Vec<String>,
        metadata: HashMap<String, String>,
    ) -> Result<Items, ApiError> {
        crate::metrics::timed("configuration", "get", async {
            let store = self.store(store_name)?;
            check_keys(&keys)?;
            let reply = store
                .configuration()
                .get(pb::GetConfigurationRequest { keys, metadata })
                .await
                .map_err(|s| {
                    ApiError::new(
                        codes::ERR_CONFIGURATION_GET,
                        format!(
                            "failed to get configuration from store {store_name}: {}",
                            s.message()
                        ),
                    )
                })?;
            Ok(reply.into_inner().items)
        })
        .await
    }

    /// Open a subscription: the component is listening when this returns.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "configuration", op = "subscribe", store = store_name))]
    pub async fn subscribe(
        &self,
        store_name: &str,
        keys: Vec<String>,
        metadata: HashMap<String, String>,
    ) -> Result<Updates, ApiError> {
        crate::metrics::timed("configuration", "subscribe", async {
            let store = self.store(store_name)?;
            check_keys(&keys)?;
            let failed = |message: &str| {
                ApiError::new(
                    codes::ERR_CONFIGURATION_SUBSCRIBE,
                    format!("failed to subscribe {keys:?} from store {store_name}: {message}"),
                )
            };
            let mut stream = store
                .configuration()
                .subscribe(pb::SubscribeConfigurationRequest {
                    keys: keys.clone(),
                    metadata,
                })
                .await
                .map_err(|s| failed(s.message()))?
                .into_inner();
            // The first message is the component's "listening" marker.
            match stream.next().await {
                Some(Ok(_)) => {}
                Some(Err(s)) => return Err(failed(s.message())),
                None => return Err(failed("the component closed the subscription")),
            }
            let id = uuid::Uuid::new_v4().to_string();
            let stop = self.shutdown.child_token();
            if let Ok(mut live) = self.live.lock() {
                live.insert(
                    id.clone(),
                    Live {
                        store: store_name.to_owned(),
                        stop: stop.clone(),
                    },
                );
            }
            Ok(Updates {
                guard: Forget {
                    live: Arc::clone(&self.live),
                    id: id.clone(),
                },
                id,
                stream,
                stop,
                tracker: self.tracker.clone(),
            })
        })
        .await
    }

    /// Subscribe on behalf of the HTTP app: each change is POSTed to it.
    ///
    /// # Errors
    /// As for [`ConfigurationApi::subscribe`], and `ERR_APP_CHANNEL_NIL`
    /// when the gateway has no HTTP app to call.
    pub async fn subscribe_app(
        &self,
        store_name: &str,
        keys: Vec<String>,
        metadata: HashMap<String, String>,
    ) -> Result<String, ApiError> {
        self.store(store_name)?;
        let Some(app) = self.app.clone() else {
            return Err(ApiError::new(
                codes::ERR_APP_CHANNEL_NIL,
                "configuration updates are delivered to the app, but no HTTP app channel is configured (--app-port)",
            ));
        };
        let updates = self.subscribe(store_name, keys, metadata).await?;
        let id = updates.id.clone();
        let (store, sub_id) = (store_name.to_owned(), id.clone());
        self.tracker.spawn(async move {
            let stream = updates.into_stream();
            tokio::pin!(stream);
            while let Some(update) = stream.next().await {
                let items = match update {
                    Ok(items) => items,
                    Err(err) => {
                        tracing::warn!(subscription = %sub_id, error = %err, "configuration subscription ended");
                        return;
                    }
                };
                deliver(&app, &store, &sub_id, &items).await;
            }
        });
        Ok(id)
    }

    /// End subscription `id` of `store_name`.
    ///
    /// # Errors
    /// `ERR_CONFIGURATION_UNSUBSCRIBE` for an id this gateway does not hold.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "configuration", op = "unsubscribe", store = store_name))]
    pub fn unsubscribe(&self, store_name: &str, id: &str) -> Result<(), ApiError> {
        self.store(store_name)?;
        let removed = self.live.lock().ok().and_then(|mut live| {
            let matches = live.get(id).is_some_and(|l| l.store == store_name);
            if matches { live.remove(id) } else { None }
        });
        match removed {
            Some(live) => {
                live.stop.cancel();
                Ok(())
            }
            None => Err(ApiError::new(
                codes::ERR_CONFIGURATION_UNSUBSCRIBE,
                format!("subscription {id} of store {store_name} does not exist"),
            )),
        }
    }
}

/// POST one update to the app, once per changed key (daprd's shape).
async fn deliver(app: &HttpApp, store: &str, id: &str, items: &Items) {
    let body = serde_json::json!({
        "id": id,
        "items": items.iter().map(|(k, item)| (k.clone(), serde_json::json!({
            "value": item.value,
            "version": item.version,
            "metadata": item.metadata,
        }))).collect::<serde_json::Map<_, _>>(),
    });
    let bytes = body.to_string().into_bytes();
    for key in items.keys() {
        let path = format!("/configuration/{store}/{key}");
        match app
            .call("POST", &path, "application/json", bytes.clone())
            .await
        {
            Ok(reply) if (200..300).contains(&reply.status) => {}
            Ok(reply) => {
                tracing::warn!(%path, status = reply.status, "app refused a configuration update")
            }
            Err(why) => tracing::warn!(%path, reason = %why, "configuration update not delivered"),
        }
    }
}
