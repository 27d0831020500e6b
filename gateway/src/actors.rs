//! Virtual actors without a placement service: the actor state store is the
//! only shared part (see `docs/actors.md` for the algorithm).
//!
//! - [`placement`]: the host directory, leases and fencing.
//! - [`host`]: turns, reentrancy, activation, idle deactivation, timers.
//! - [`reminders`]: durable reminders and their firing.
//! - [`store`]: raw-key access to the actor state store.
//!
//! A call is routed to the gateway holding the actor's lease (forwarded over
//! `outrigger.internal.v1.GatewayInvoke/CallActor`); an actor nobody holds
//! goes to the live host of its type that rendezvous hashing picks, which
//! takes the lease.

mod app;
mod client;
mod config;
mod duration;
mod host;
mod hosting;
pub(crate) mod placement;
mod reminders;
mod routing;
pub(crate) mod store;
mod stream;
mod timer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use outrigger_proto::components as pb;
use outrigger_proto::outrigger::internal::v1 as internal_pb;

use crate::components::Registry;
use crate::error::{ApiError, codes};
use crate::resources::{Block, MetadataValue};
use crate::runtime::invoke::{InvokeApi, Reply};
use host::{Host, Turn, TurnKind};
use placement::Placement;
pub use reminders::ReminderRequest;
use reminders::{Reminder, Reminders};
use routing::{Action, resolve};
use store::{Store, StoreError};

pub use host::REENTRANCY_HEADER;
use timer::Timer;
pub use timer::TimerRequest;

/// The actor state store, as workflows use it too.
pub(crate) type ActorStore = store::Store;

/// The header an app sets on an actor method's answer to mark it an error.
pub const ERROR_HEADER: &str = "x-daprerrorresponseheader";

/// How long a found route to another gateway is reused.
const ROUTE_CACHE: Duration = Duration::from_secs(2);

/// Header carrying an [`ApiError`]'s code across a forwarded call.
const FORWARDED_ERROR: &str = "x-outrigger-error-code";

/// Header carrying that error's gRPC code.
const FORWARDED_GRPC_CODE: &str = "x-outrigger-grpc-code";

/// A stored actor state value and its metadata.
pub type StateValue = (Vec<u8>, HashMap<String, String>);

/// One operation of an actor state transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOperation {
    /// Write `value` (with `ttlInSeconds` etc. in `metadata`).
    Upsert {
        /// The actor's key.
        key: String,
        /// Bytes to store.
        value: Vec<u8>,
        /// Item metadata.
        metadata: HashMap<String, String>,
    },
    /// Remove a key.
    Delete {
        /// The actor's key.
        key: String,
    },
}

/// A reminder as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReminderInfo {
    /// Actor id.
    pub actor_id: String,
    /// Name.
    pub name: String,
    /// As registered.
    pub due_time: String,
    /// As registered.
    pub period: String,
    /// As registered.
    pub ttl: String,
    /// As registered.
    pub data: serde_json::Value,
    /// Next firing, RFC 3339.
    pub next_due: String,
}

impl From<Reminder> for ReminderInfo {
    fn from(r: Reminder) -> Self {
        Self {
            next_due: chrono::DateTime::from_timestamp_millis(r.next_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
            actor_id: r.actor_id,
            name: r.name,
            due_time: r.due_time,
            period: r.period,
            ttl: r.ttl,
            data: r.data,
        }
    }
}

/// The actor runtime as the metadata API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorsInfo {
    /// `RUNNING`, `INITIALIZING` or `ERROR: <why>`.
    pub status: String,
    /// Active actors here, per hosted type.
    pub active: Vec<(String, usize)>,
    /// Whether this gateway hosts actors and renewed its placement entry.
    pub host_ready: bool,
    /// How placement works here.
    pub placement: String,
}

/// The actor API of one gateway.
#[derive(Debug)]
pub struct Actors {
    app_id: String,
    store: Result<Store, String>,
    caller: Option<Arc<Placement>>,
    host: std::sync::RwLock<Option<Arc<Host>>>,
    hosting: OnceLock<hosting::Context>,
    failure: OnceLock<String>,
    reminders: Option<Arc<Reminders>>,
    invoke: InvokeApi,
    routes: Mutex<HashMap<(String, String), (String, Instant)>>,
    lease_ttl: Duration,
    wake: Arc<tokio::sync::Notify>,
}

fn missing(what: &str) -> ApiError {
    ApiError::new(
        codes::ERR_ACTOR_INSTANCE_MISSING,
        format!("{what}: must not be empty"),
    )
}

fn check(actor_type: &str, id: &str) -> Result<(), ApiError> {
    if actor_type.is_empty() {
        return Err(missing("actor type"));
    }
    if id.is_empty() {
        return Err(missing("actor id"));
    }
    Ok(())
}

fn store_error(entry: codes::Entry) -> impl Fn(StoreError) -> ApiError {
    move |err| ApiError::new(entry, err.to_string())
}

/// The one state store marked `actorStateStore: "true"`.
fn actor_store(registry: &Arc<Registry>) -> Result<Store, String> {
    let marked: Vec<String> = registry
        .of_block(Block::State)
        .filter(|c| {
            c.spec.metadata.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("actorStateStore")
                    && matches!(v, MetadataValue::Plain(v) if v.eq_ignore_ascii_case("true"))
            })
        })
        .map(|c| c.spec.name.clone())
        .collect();
    match marked.as_slice() {
        [one] => Ok(Store::new(Arc::clone(registry), one.clone())),
        [] => {
            Err("no state store has the metadata actorStateStore: \"true\"; actors need one".into())
        }
        many => Err(format!(
            "state stores {} all have actorStateStore: \"true\"; exactly one may",
            many.join(", ")
        )),
    }
}

impl Actors {
    /// The actor API for `app_id`; `invoke` reaches peer gateways.
    pub fn new(
        app_id: String,
        registry: &Arc<Registry>,
        invoke: InvokeApi,
        lease_ttl: Duration,
    ) -> Self {
        let store = actor_store(registry);
        Self {
            caller: store
                .as_ref()
                .ok()
                .map(|s| Arc::new(Placement::caller(s.clone(), lease_ttl))),
            reminders: store
                .as_ref()
                .ok()
                .map(|s| Arc::new(Reminders::new(s.clone()))),
            store,
            app_id,
            host: std::sync::RwLock::new(None),
            hosting: OnceLock::new(),
            failure: OnceLock::new(),
            invoke,
            routes: Mutex::new(HashMap::new()),
            lease_ttl,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// A placement host for one more (internal) type, joined with its own
    /// directory entry: workflows use it to own instances. `None` until the
    /// gateway has started hosting (or without an actor store).
    pub(crate) fn internal_host(&self, kind: &str) -> Option<Arc<Placement>> {
        let store = self.store.as_ref().ok()?.clone();
        let context = self.hosting.get()?;
        Some(Arc::new(Placement::host(
            store,
            self.lease_ttl,
            &self.app_id,
            context.address().to_owned(),
            vec![kind.to_owned()],
        )))
    }

    /// The actor state store, or why there is none.
    pub(crate) fn actor_store(&self) -> Result<ActorStore, String> {
        self.store.clone()
    }

    /// Why the actor store is unusable, if it is (a start-up check).
    pub fn store_problem(&self) -> Option<String> {
        match &self.store {
            Ok(_) => None,
            Err(why) if why.contains("all have") => Some(why.clone()),
            Err(_) => None,
        }
    }

    /// The actor host, while this gateway's app hosts actors.
    fn host(&self) -> Option<Arc<Host>> {
        self.host.read().ok().and_then(|h| h.clone())
    }

    /// Serve an app's `SubscribeActorEventsAlpha1` stream (a gRPC app hosting actors).
    ///
    /// # Errors
    /// A status for a malformed registration, or when this gateway already hosts actors.
    pub async fn subscribe(
        self: &Arc<Self>,
        inbound: tonic::Streaming<outrigger_proto::runtime::SubscribeActorEventsRequestAlpha1>,
    ) -> Result<
        tonic::codegen::BoxStream<outrigger_proto::runtime::SubscribeActorEventsResponseAlpha1>,
        tonic::Status,
    > {
        stream::serve(Arc::clone(self), inbound).await
    }

    fn store(&self) -> Result<&Store, ApiError> {
        self.store
            .as_ref()
            .map_err(|why| ApiError::new(codes::ERR_ACTOR_RUNTIME_NOT_FOUND, why.clone()))
    }

    fn placement(&self) -> Result<Arc<Placement>, ApiError> {
        self.store()?;
        match (self.host(), &self.caller) {
            (Some(host), _) => Ok(Arc::clone(&host.placement)),
            (None, Some(caller)) => Ok(Arc::clone(caller)),
            (None, None) => Err(ApiError::new(
                codes::ERR_ACTOR_RUNTIME_NOT_FOUND,
                "the actor runtime is not initialised",
            )),
        }
    }

    fn reminders(&self) -> Result<&Arc<Reminders>, ApiError> {
        self.store()?;
        self.reminders.as_ref().ok_or_else(|| {
            ApiError::new(codes::ERR_ACTOR_RUNTIME_NOT_FOUND, "no actor state store")
        })
    }

    // === the client API ===

    /// Call `method` of an actor. An app answer of 200 is the result; one
    /// with [`ERROR_HEADER`] comes back as 500 with the app's body; any other
    /// status is `ERR_ACTOR_INVOKE_METHOD`.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "actors", op = "invoke", actor_type, actor_id = id, method))]
    pub async fn invoke(
        &self,
        actor_type: &str,
        id: &str,
        method: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<Reply, ApiError> {
        if method.is_empty() {
            return Err(ApiError::new(
                codes::ERR_MALFORMED_REQUEST,
                "method: must not be empty",
            ));
        }
        let chain = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(REENTRANCY_HEADER))
            .map(|(_, v)| v.clone());
        let headers = headers
            .into_iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case(REENTRANCY_HEADER)
                    && ![
                        "host",
                        "connection",
                        "content-length",
                        "transfer-encoding",
                        "dapr-api-token",
                        "te",
                    ]
                    .iter()
                    .any(|d| k.eq_ignore_ascii_case(d))
            })
            .collect();
        let turn = Turn {
            kind: TurnKind::Method(method.to_owned()),
            headers,
            body,
        };
        let reply = crate::metrics::timed(
            "actors",
            "invoke",
            self.dispatch(actor_type, id, Action::Method(turn, chain)),
        )
        .await?;
        let app_error = reply.headers.contains_key(ERROR_HEADER);
        match reply.status {
            200 if !app_error => Ok(reply),
            _ if app_error => Ok(Reply {
                status: 500,
                ..reply
            }),
            status => Err(ApiError::new(
                codes::ERR_ACTOR_INVOKE_METHOD,
                format!(
                    "error invoke actor method {method} of {actor_type}/{id}: the app answered {status}: {}",
                    String::from_utf8_lossy(&reply.body)
                ),
            )),
        }
    }

    /// Active actors of `actor_type` on every live host: `(id, host app id)`.
    pub async fn list_active(&self, actor_type: &str) -> Result<Vec<(String, String)>, ApiError> {
        if actor_type.is_empty() {
            return Err(missing("actor type"));
        }
        let placement = self.placement()?;
        let hosts = placement
            .hosts_of(actor_type)
            .await
            .map_err(store_error(codes::ERR_ACTOR_INVOKE_METHOD))?;
        let mut out = Vec::new();
        for entry in hosts {
            let ids = if entry.id == placement.id() {
                self.local_ids(actor_type)
            } else {
                match self.list_remote(&entry.address, actor_type).await {
                    Ok(ids) => ids,
                    Err(status) => {
                        tracing::warn!(host = %entry.address, reason = %status.message(), "could not list a host's actors");
                        continue;
                    }
                }
            };
            out.extend(ids.into_iter().map(|id| (id, entry.app_id.clone())));
        }
        out.sort();
        Ok(out)
    }

    async fn list_remote(
        &self,
        address: &str,
        actor_type: &str,
    ) -> Result<Vec<String>, tonic::Status> {
        let call = internal_pb::ListActorsCall {
            actor_type: actor_type.to_owned(),
        };
        let reply = self
            .invoke
            .call_peer_rpc(
                resolve(address).await?,
                &crate::components::unary::methods::PEER_LIST_ACTORS,
                call,
            )
            .await?;
        Ok(reply.actor_ids)
    }

    /// For the metadata API.
    pub fn info(&self) -> ActorsInfo {
        let placement = match &self.store {
            Ok(store) => format!("leases in state store {}", store.name()),
            Err(_) => String::new(),
        };
        match (self.host(), self.failure.get(), &self.store) {
            (_, Some(why), _) => ActorsInfo {
                status: format!("ERROR: {why}"),
                active: Vec::new(),
                host_ready: false,
                placement,
            },
            (Some(host), None, _) => ActorsInfo {
                status: "RUNNING".into(),
                active: host.counts(),
                host_ready: host.placement.is_valid(),
                placement,
            },
            (None, None, Ok(_)) => ActorsInfo {
                status: "RUNNING".into(),
                active: Vec::new(),
                host_ready: false,
                placement,
            },
            (None, None, Err(_)) => ActorsInfo {
                status: "DISABLED".into(),
                active: Vec::new(),
                host_ready: false,
                placement,
            },
        }
    }
}
