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

mod config;
mod duration;
mod host;
mod placement;
mod reminders;
mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use outrigger_proto::components as pb;
use outrigger_proto::outrigger::internal::v1 as internal_pb;

use crate::app_channel::HttpApp;
use crate::components::Registry;
use crate::error::{ApiError, codes};
use crate::resources::{Block, MetadataValue};
use crate::runtime::invoke::{InvokeApi, Reply};
use host::{Activation, Host, Outcome, Slot, Turn};
use placement::Placement;
pub use reminders::ReminderRequest;
use reminders::{Reminder, Reminders};
use store::{Store, StoreError};

pub use host::REENTRANCY_HEADER;

/// `null` or a missing string field: empty.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(<Option<String> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

/// The header an app sets on an actor method's answer to mark it an error.
pub const ERROR_HEADER: &str = "X-Daprerrorresponseheader";

/// How long a found route to another gateway is reused.
const ROUTE_CACHE: Duration = Duration::from_secs(2);

/// Header carrying an [`ApiError`]'s code across a forwarded call.
const FORWARDED_ERROR: &str = "x-outrigger-error-code";

/// Header carrying that error's gRPC code.
const FORWARDED_GRPC_CODE: &str = "x-outrigger-grpc-code";

/// A timer as a client defines it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerRequest {
    /// First firing: a duration from now, or an RFC 3339 time.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub due_time: String,
    /// Period (Go, ISO 8601, or `R<n>/<period>`); empty: fire once.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub period: String,
    /// Expiry: a duration from the due time, or an RFC 3339 time.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ttl: String,
    /// The callback method the SDK runs.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub callback: String,
    /// Data passed back on each firing.
    #[serde(default)]
    pub data: serde_json::Value,
}

/// A validated timer.
#[derive(Debug, Clone)]
pub(crate) struct Timer {
    due: chrono::DateTime<chrono::Utc>,
    schedule: duration::Schedule,
    expires: Option<chrono::DateTime<chrono::Utc>>,
    request: TimerRequest,
}

impl Timer {
    fn parse(request: TimerRequest) -> Result<Self, String> {
        let due = duration::parse_due_time(&request.due_time, chrono::Utc::now())
            .map_err(|e| format!("dueTime: {e}"))?;
        Ok(Self {
            due,
            schedule: duration::parse_period(&request.period)
                .map_err(|e| format!("period: {e}"))?,
            // As daprd, a TTL duration counts from the first due time.
            expires: duration::parse_ttl(&request.ttl, due).map_err(|e| format!("ttl: {e}"))?,
            request,
        })
    }

    /// What the app gets on each firing.
    fn callback_body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "callback": self.request.callback,
            "data": self.request.data,
            "dueTime": self.request.due_time,
            "period": self.request.period,
        }))
        .unwrap_or_default()
    }
}

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

enum Route {
    Local(Arc<Slot>),
    Remote(String),
}

/// What a routed call does once it reaches the actor's host.
#[derive(Debug, Clone)]
enum Action {
    Method(Turn, Option<String>),
    TimerCreate(String, Timer),
    TimerDelete(String),
}

/// The actor API of one gateway.
#[derive(Debug)]
pub struct Actors {
    app_id: String,
    store: Result<Store, String>,
    caller: Option<Arc<Placement>>,
    host: OnceLock<Arc<Host>>,
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
            host: OnceLock::new(),
            failure: OnceLock::new(),
            invoke,
            routes: Mutex::new(HashMap::new()),
            lease_ttl,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Why the actor store is unusable, if it is (a start-up check).
    pub fn store_problem(&self) -> Option<String> {
        match &self.store {
            Ok(_) => None,
            Err(why) if why.contains("all have") => Some(why.clone()),
            Err(_) => None,
        }
    }

    fn store(&self) -> Result<&Store, ApiError> {
        self.store
            .as_ref()
            .map_err(|why| ApiError::new(codes::ERR_ACTOR_RUNTIME_NOT_FOUND, why.clone()))
    }

    fn placement(&self) -> Result<Arc<Placement>, ApiError> {
        self.store()?;
        match (self.host.get(), &self.caller) {
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

    // === routing ===

    fn cached_route(&self, actor_type: &str, id: &str) -> Option<String> {
        let routes = self.routes.lock().ok()?;
        routes
            .get(&(actor_type.to_owned(), id.to_owned()))
            .filter(|(_, at)| at.elapsed() < ROUTE_CACHE)
            .map(|(addr, _)| addr.clone())
    }

    fn remember(&self, actor_type: &str, id: &str, address: &str) {
        if let Ok(mut routes) = self.routes.lock() {
            if routes.len() > 100_000 {
                routes.retain(|_, (_, at)| at.elapsed() < ROUTE_CACHE);
            }
            routes.insert(
                (actor_type.to_owned(), id.to_owned()),
                (address.to_owned(), Instant::now()),
            );
        }
    }

    fn forget(&self, actor_type: &str, id: &str) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.remove(&(actor_type.to_owned(), id.to_owned()));
        }
    }

    async fn route(&self, actor_type: &str, id: &str) -> Result<Route, ApiError> {
        let host = self.host.get().filter(|h| h.hosts(actor_type));
        if let Some(slot) = host.and_then(|h| h.active(actor_type, id)) {
            return Ok(Route::Local(slot));
        }
        if let Some(address) = self.cached_route(actor_type, id) {
            return Ok(Route::Remote(address));
        }
        let placement = self.placement()?;
        let failed = store_error(codes::ERR_ACTOR_INVOKE_METHOD);
        let target = match placement.owner(actor_type, id).await.map_err(&failed)? {
            placement::Owner::Other(entry) => Some(entry),
            placement::Owner::Me(_) => None,
            placement::Owner::Free => {
                let chosen = placement.choose(actor_type, id).await.map_err(&failed)?;
                match chosen {
                    Some(entry) if entry.id != placement.id() => Some(entry),
                    Some(_) => None,
                    None => {
                        return Err(ApiError::new(
                            codes::ERR_ACTOR_NO_PLACEMENT,
                            format!("no live gateway hosts actor type {actor_type}"),
                        ));
                    }
                }
            }
        };
        if let Some(entry) = target {
            self.remember(actor_type, id, &entry.address);
            return Ok(Route::Remote(entry.address));
        }
        let Some(host) = host else {
            return Err(ApiError::new(
                codes::ERR_ACTOR_NO_PLACEMENT,
                format!("no live gateway hosts actor type {actor_type}"),
            ));
        };
        match host.activate(actor_type, id).await? {
            Activation::Local(slot) => Ok(Route::Local(slot)),
            Activation::Remote(entry) => {
                self.remember(actor_type, id, &entry.address);
                Ok(Route::Remote(entry.address))
            }
        }
    }

    /// Run `action` where the actor lives, looking again when it moved.
    async fn dispatch(
        &self,
        actor_type: &str,
        id: &str,
        action: Action,
    ) -> Result<Reply, ApiError> {
        check(actor_type, id)?;
        let mut last = String::new();
        // Long enough for a dead holder's lease to lapse and the actor to move.
        let deadline = Instant::now() + self.lease_ttl + self.lease_ttl / 2;
        let mut pause = Duration::from_millis(5);
        loop {
            if !last.is_empty() {
                if Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            match self.route(actor_type, id).await? {
                Route::Local(slot) => match self.run_local(&slot, action.clone()).await? {
                    Some(reply) => return Ok(reply),
                    None => last = "the actor was deactivated meanwhile".into(),
                },
                Route::Remote(address) => {
                    match self.forward(&address, actor_type, id, &action).await {
                        Ok(reply) => return forwarded_error(reply),
                        Err(status)
                            if matches!(
                                status.code(),
                                tonic::Code::FailedPrecondition | tonic::Code::Unavailable
                            ) =>
                        {
                            self.forget(actor_type, id);
                            last = format!("gateway {address}: {}", status.message());
                        }
                        Err(status) => {
                            return Err(ApiError::new(
                                codes::ERR_ACTOR_INVOKE_METHOD,
                                format!(
                                    "actor {actor_type}/{id} on gateway {address}: {}",
                                    status.message()
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Err(ApiError::new(
            codes::ERR_ACTOR_INVOKE_METHOD,
            format!("actor {actor_type}/{id} could not be reached: {last}"),
        ))
    }

    /// `None`: the actor moved away meanwhile.
    async fn run_local(&self, slot: &Arc<Slot>, action: Action) -> Result<Option<Reply>, ApiError> {
        let host = self
            .host
            .get()
            .ok_or_else(|| ApiError::new(codes::ERR_ACTOR_INVOKE_METHOD, "no actor host here"))?;
        if slot.is_dead() {
            return Ok(None);
        }
        let done = |status: u16| Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        };
        match action {
            Action::Method(turn, chain) => match host.turn(slot, turn, chain).await? {
                Outcome::Done(reply) => Ok(Some(reply)),
                Outcome::Moved => Ok(None),
            },
            Action::TimerCreate(name, timer) => {
                host.start_timer(slot, &name, timer);
                Ok(Some(done(204)))
            }
            Action::TimerDelete(name) => {
                host.stop_timer(slot, &name);
                Ok(Some(done(204)))
            }
        }
    }

    async fn forward(
        &self,
        address: &str,
        actor_type: &str,
        id: &str,
        action: &Action,
    ) -> Result<Reply, tonic::Status> {
        let addr = resolve(address).await?;
        let (kind, name, body, headers) = match action {
            Action::Method(turn, chain) => {
                let mut headers: HashMap<String, String> = turn.headers.iter().cloned().collect();
                if let Some(chain) = chain {
                    headers.insert(REENTRANCY_HEADER.to_owned(), chain.clone());
                }
                (
                    internal_pb::ActorCallKind::Method,
                    turn.method.clone(),
                    turn.body.clone(),
                    headers,
                )
            }
            Action::TimerCreate(name, timer) => (
                internal_pb::ActorCallKind::TimerCreate,
                name.clone(),
                serde_json::to_vec(&timer.request).unwrap_or_default(),
                HashMap::new(),
            ),
            Action::TimerDelete(name) => (
                internal_pb::ActorCallKind::TimerDelete,
                name.clone(),
                Vec::new(),
                HashMap::new(),
            ),
        };
        let channel = self.invoke.peer_channel(addr)?;
        let request = self.invoke.peer_request(internal_pb::ActorCall {
            actor_type: actor_type.to_owned(),
            actor_id: id.to_owned(),
            kind: kind as i32,
            name,
            body,
            headers,
        });
        let reply = internal_pb::gateway_invoke_client::GatewayInvokeClient::new(channel)
            .call_actor(request)
            .await?
            .into_inner();
        let status = u16::try_from(reply.status).unwrap_or(500);
        Ok(Reply {
            status,
            headers: reply.headers.into_iter().collect(),
            body: reply.body,
        })
    }

    /// The receiving side of `CallActor`.
    ///
    /// # Errors
    /// `FAILED_PRECONDITION` when this gateway does not (and may not) run the actor.
    pub async fn serve_forwarded(
        &self,
        call: internal_pb::ActorCall,
    ) -> Result<internal_pb::ActorReply, tonic::Status> {
        let not_here = |why: &str| tonic::Status::failed_precondition(why.to_owned());
        let Some(host) = self.host.get().filter(|h| h.hosts(&call.actor_type)) else {
            return Err(not_here("this gateway does not host the actor type"));
        };
        let slot = match host
            .activate(&call.actor_type, &call.actor_id)
            .await
            .map_err(|e| tonic::Status::unavailable(e.message))?
        {
            Activation::Local(slot) => slot,
            Activation::Remote(_) => return Err(not_here("another gateway holds the actor")),
        };
        let action = match internal_pb::ActorCallKind::try_from(call.kind) {
            Ok(internal_pb::ActorCallKind::Method) => {
                let chain = call.headers.get(REENTRANCY_HEADER).cloned();
                let headers = call
                    .headers
                    .into_iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case(REENTRANCY_HEADER))
                    .collect();
                Action::Method(
                    Turn {
                        method: call.name,
                        headers,
                        body: call.body,
                    },
                    chain,
                )
            }
            Ok(internal_pb::ActorCallKind::TimerCreate) => {
                let request: TimerRequest = serde_json::from_slice(&call.body)
                    .map_err(|e| tonic::Status::invalid_argument(format!("timer: {e}")))?;
                let timer = Timer::parse(request).map_err(tonic::Status::invalid_argument)?;
                Action::TimerCreate(call.name, timer)
            }
            Ok(internal_pb::ActorCallKind::TimerDelete) => Action::TimerDelete(call.name),
            Err(_) => return Err(tonic::Status::invalid_argument("kind: unknown")),
        };
        match self.run_local(&slot, action).await {
            Ok(Some(reply)) => Ok(internal_pb::ActorReply {
                status: u32::from(reply.status),
                headers: reply.headers.into_iter().collect(),
                body: reply.body,
            }),
            Ok(None) => Err(not_here("the actor was deactivated meanwhile")),
            Err(err) => Ok(internal_pb::ActorReply {
                status: u32::from(err.http.as_u16()),
                headers: HashMap::from([
                    (FORWARDED_ERROR.to_owned(), err.code.to_owned()),
                    (
                        FORWARDED_GRPC_CODE.to_owned(),
                        (err.grpc as i32).to_string(),
                    ),
                ]),
                body: err.message.into_bytes(),
            }),
        }
    }

    /// The actor ids of `actor_type` active on this gateway.
    pub fn local_ids(&self, actor_type: &str) -> Vec<String> {
        self.host
            .get()
            .map(|h| h.active_ids(actor_type))
            .unwrap_or_default()
    }

    // === the client API ===

    /// Call `method` of an actor. An app answer of 200 is the result; one
    /// with [`ERROR_HEADER`] comes back as 500 with the app's body; any other
    /// status is `ERR_ACTOR_INVOKE_METHOD`.
    #[tracing::instrument(skip_all, fields(block = "actors", op = "invoke", actor_type, actor_id = id, method))]
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
            method: host::encode(method),
            headers,
            body,
        };
        let reply = crate::metrics::timed(
            "actors",
            "invoke",
            self.dispatch(actor_type, id, Action::Method(turn, chain)),
        )
        .await?;
        let app_error = reply
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(ERROR_HEADER));
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

    fn state_key(&self, actor_type: &str, id: &str, key: &str) -> String {
        format!("{}||{actor_type}||{id}||{key}", self.app_id)
    }

    /// Read one key of an actor's state: bytes and metadata, `None` when missing.
    #[tracing::instrument(skip_all, fields(block = "actors", op = "get_state", actor_type, actor_id = id))]
    pub async fn get_state(
        &self,
        actor_type: &str,
        id: &str,
        key: &str,
    ) -> Result<Option<StateValue>, ApiError> {
        check(actor_type, id)?;
        if key.is_empty() {
            return Err(missing("key"));
        }
        let store = self.store()?;
        let found = store
            .get_raw(&self.state_key(actor_type, id, key))
            .await
            .map_err(store_error(codes::ERR_ACTOR_STATE_GET))?;
        Ok(found.map(|(data, _, metadata)| (data, metadata)))
    }

    /// Apply state operations atomically. When the actor runs here, the
    /// transaction also rewrites its lease over the lease's ETag: a gateway
    /// that lost the lease cannot write (the fencing token).
    #[tracing::instrument(skip_all, fields(block = "actors", op = "transaction", actor_type, actor_id = id))]
    pub async fn transact_state(
        &self,
        actor_type: &str,
        id: &str,
        operations: Vec<StateOperation>,
    ) -> Result<(), ApiError> {
        check(actor_type, id)?;
        let store = self.store()?;
        let mut ops = Vec::with_capacity(operations.len() + 1);
        for (i, op) in operations.into_iter().enumerate() {
            use pb::transactional_state_operation::Request;
            let request = match op {
                StateOperation::Upsert {
                    key,
                    value,
                    metadata,
                } => {
                    if key.is_empty() {
                        return Err(missing(&format!("operations[{i}].key")));
                    }
                    if let Some(ttl) = metadata.get("ttlInSeconds")
                        && ttl.trim().parse::<i64>().is_err()
                    {
                        return Err(ApiError::new(
                            codes::ERR_MALFORMED_REQUEST,
                            format!(
                                "operations[{i}].metadata.ttlInSeconds: {ttl:?} is not a whole number"
                            ),
                        ));
                    }
                    Request::Set(pb::SetRequest {
                        key: self.state_key(actor_type, id, &key),
                        value,
                        etag: None,
                        content_type: metadata.get("contentType").cloned().unwrap_or_default(),
                        metadata,
                        options: None,
                    })
                }
                StateOperation::Delete { key } => {
                    if key.is_empty() {
                        return Err(missing(&format!("operations[{i}].key")));
                    }
                    Request::Delete(pb::DeleteRequest {
                        key: self.state_key(actor_type, id, &key),
                        etag: None,
                        metadata: HashMap::new(),
                        options: None,
                    })
                }
            };
            ops.push(pb::TransactionalStateOperation {
                request: Some(request),
            });
        }
        let host = self.host.get();
        let slot = host.and_then(|h| h.active(actor_type, id));
        let fenced = match (&slot, host) {
            (Some(slot), Some(host)) => slot.held().map(|held| (host, slot, held)),
            _ => None,
        };
        let failed = store_error(codes::ERR_ACTOR_STATE_TRANSACTION_SAVE);
        if let Some((host, _, held)) = &fenced {
            ops.push(
                host.placement
                    .fence(actor_type, id, held)
                    .map_err(&failed)?,
            );
        }
        match store.transact(ops).await {
            Ok(()) => {}
            Err(StoreError::Conflict) if fenced.is_some() => {
                if let Some((host, slot, _)) = fenced {
                    host.lost(slot).await;
                }
                return Err(ApiError::new(
                    codes::ERR_ACTOR_STATE_TRANSACTION_SAVE,
                    format!(
                        "actor {actor_type}/{id}: this gateway no longer holds the actor's lease; nothing was written"
                    ),
                ));
            }
            Err(err) => return Err(failed(err)),
        }
        if let Some((host, slot, _)) = fenced {
            match host.placement.reread(actor_type, id).await {
                Ok(Some(held)) => slot.set_held(held),
                Ok(None) => host.lost(slot).await,
                Err(err) => tracing::warn!(error = %err, "could not reread an actor lease"),
            }
        }
        Ok(())
    }

    /// Create or replace a reminder.
    #[tracing::instrument(skip_all, fields(block = "actors", op = "create_reminder", actor_type, actor_id = id, name))]
    pub async fn create_reminder(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
        request: ReminderRequest,
    ) -> Result<(), ApiError> {
        check(actor_type, id)?;
        if name.is_empty() {
            return Err(missing("reminder name"));
        }
        let reminders = self.reminders()?;
        let reminder = Reminders::build(id, name, request)
            .map_err(|why| ApiError::new(codes::ERR_MALFORMED_REQUEST, why))?;
        reminders
            .put(actor_type, reminder)
            .await
            .map_err(store_error(codes::ERR_ACTOR_REMINDER_CREATE))?;
        self.wake.notify_one();
        Ok(())
    }

    /// One reminder.
    pub async fn get_reminder(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
    ) -> Result<ReminderInfo, ApiError> {
        check(actor_type, id)?;
        self.reminders()?
            .get(actor_type, id, name)
            .await
            .map_err(store_error(codes::ERR_ACTOR_REMINDER_GET))?
            .map(ReminderInfo::from)
            .ok_or_else(|| {
                ApiError::new(
                    codes::ERR_ACTOR_REMINDER_NOT_FOUND,
                    format!("reminder {name} of actor {actor_type}/{id} not found"),
                )
            })
    }

    /// Delete a reminder (no error when there is none, as daprd).
    pub async fn delete_reminder(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        check(actor_type, id)?;
        self.reminders()?
            .delete(actor_type, Some(id), Some(name))
            .await
            .map(drop)
            .map_err(store_error(codes::ERR_ACTOR_REMINDER_DELETE))
    }

    /// Delete every reminder of a type, or of one actor.
    pub async fn delete_reminders(
        &self,
        actor_type: &str,
        id: Option<&str>,
    ) -> Result<usize, ApiError> {
        if actor_type.is_empty() {
            return Err(missing("actor type"));
        }
        self.reminders()?
            .delete(actor_type, id.filter(|i| !i.is_empty()), None)
            .await
            .map_err(store_error(codes::ERR_ACTOR_REMINDER_DELETE))
    }

    /// Reminders of a type, or of one actor.
    pub async fn list_reminders(
        &self,
        actor_type: &str,
        id: Option<&str>,
    ) -> Result<Vec<ReminderInfo>, ApiError> {
        if actor_type.is_empty() {
            return Err(missing("actor type"));
        }
        Ok(self
            .reminders()?
            .list(actor_type, id.filter(|i| !i.is_empty()))
            .await
            .map_err(store_error(codes::ERR_ACTOR_REMINDER_GET))?
            .into_iter()
            .map(ReminderInfo::from)
            .collect())
    }

    /// Create or replace a timer (on the gateway running the actor).
    #[tracing::instrument(skip_all, fields(block = "actors", op = "create_timer", actor_type, actor_id = id, name))]
    pub async fn create_timer(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
        request: TimerRequest,
    ) -> Result<(), ApiError> {
        if name.is_empty() {
            return Err(missing("timer name"));
        }
        let timer = Timer::parse(request)
            .map_err(|why| ApiError::new(codes::ERR_MALFORMED_REQUEST, why))?;
        self.dispatch(actor_type, id, Action::TimerCreate(name.to_owned(), timer))
            .await
            .map_err(|e| {
                if e.code == codes::ERR_ACTOR_INVOKE_METHOD.code {
                    ApiError::new(codes::ERR_ACTOR_TIMER_CREATE, e.message)
                } else {
                    e
                }
            })
            .map(drop)
    }

    /// Delete a timer.
    pub async fn delete_timer(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        check(actor_type, id)?;
        // A timer only lives on the gateway running the actor; an actor
        // active nowhere has none, and is not activated just to delete one.
        let placement = self.placement()?;
        let active_somewhere = self
            .host
            .get()
            .and_then(|h| h.active(actor_type, id))
            .is_some()
            || !matches!(
                placement.owner(actor_type, id).await,
                Ok(placement::Owner::Free)
            );
        if !active_somewhere {
            return Ok(());
        }
        self.dispatch(actor_type, id, Action::TimerDelete(name.to_owned()))
            .await
            .map_err(|e| ApiError::new(codes::ERR_ACTOR_TIMER_DELETE, e.message))
            .map(drop)
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
        let channel = self.invoke.peer_channel(resolve(address).await?)?;
        let reply = internal_pb::gateway_invoke_client::GatewayInvokeClient::new(channel)
            .list_actors(self.invoke.peer_request(internal_pb::ListActorsCall {
                actor_type: actor_type.to_owned(),
            }))
            .await?;
        Ok(reply.into_inner().actor_ids)
    }

    /// For the metadata API.
    pub fn info(&self) -> ActorsInfo {
        let placement = match &self.store {
            Ok(store) => format!("leases in state store {}", store.name()),
            Err(_) => String::new(),
        };
        match (self.host.get(), self.failure.get(), &self.store) {
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

    // === hosting ===

    /// Ask the app which actor types it hosts (`GET /dapr/config`, retried
    /// until it answers) and, if any, start hosting them: join placement,
    /// renew, sweep idle actors, fire reminders; on `shutdown`, drain.
    pub fn start_hosting(
        self: &Arc<Self>,
        app: HttpApp,
        address: String,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) {
        let (actors, inner) = (Arc::clone(self), tracker.clone());
        tracker.spawn(async move {
            let config = loop {
                match app.call("GET", "/dapr/config", "application/json", Vec::new()).await {
                    Ok(reply) if reply.status == 404 => return,
                    Ok(reply) if (200..300).contains(&reply.status) => {
                        match config::HostConfig::parse(&reply.body) {
                            Ok(config) => break config,
                            Err(why) => {
                                tracing::error!(reason = %why, "the app's actor configuration is invalid; not hosting actors");
                                let _ = actors.failure.set(why);
                                return;
                            }
                        }
                    }
                    Ok(reply) => tracing::debug!(status = reply.status, "GET /dapr/config not answered yet"),
                    Err(why) => tracing::debug!(reason = %why, "app not reachable for /dapr/config yet"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            };
            if config.entities.is_empty() {
                return;
            }
            let store = match &actors.store {
                Ok(store) => store.clone(),
                Err(why) => {
                    tracing::error!(types = ?config.entities, reason = %why, "the app hosts actor types but there is no actor state store");
                    let _ = actors.failure.set(format!(
                        "the app hosts actor types {:?} but {why}",
                        config.entities
                    ));
                    return;
                }
            };
            actors.host_until(store, config, app, address, &inner, shutdown).await;
        });
    }

    async fn host_until(
        self: Arc<Self>,
        store: Store,
        config: config::HostConfig,
        app: HttpApp,
        address: String,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) {
        let placement = Arc::new(Placement::host(
            store,
            self.lease_ttl,
            &self.app_id,
            address,
            config.entities.clone(),
        ));
        loop {
            match placement.heartbeat().await {
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "joining actor placement failed; retrying")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        if let Some(reminders) = &self.reminders {
            for actor_type in &config.entities {
                if let Err(err) = reminders
                    .declare(actor_type, config.reminder_partitions(actor_type))
                    .await
                {
                    tracing::warn!(actor_type, error = %err, "could not record reminder partitions");
                }
            }
        }
        let host = Arc::new(Host::new(config, Arc::clone(&placement), app));
        if self.host.set(Arc::clone(&host)).is_err() {
            return;
        }
        tracing::info!(types = ?host.config.entities, host_id = placement.id(), "hosting actors");
        tracker.spawn(renew(Arc::clone(&host), shutdown.clone()));
        tracker.spawn(sweep(Arc::clone(&host), shutdown.clone()));
        tracker.spawn(Arc::clone(&self).fire_reminders(Arc::clone(&host), shutdown.clone()));
        shutdown.cancelled().await;
        host.close().await;
        if let Err(err) = placement.leave().await {
            tracing::warn!(error = %err, "could not leave actor placement; the entry lapses");
        }
    }

    async fn fire_reminders(self: Arc<Self>, host: Arc<Host>, shutdown: CancellationToken) {
        let Some(reminders) = self.reminders.clone() else {
            return;
        };
        loop {
            let mut sleep = Duration::from_secs(1);
            for actor_type in &host.config.entities {
                let (due, next) = match reminders.due(actor_type).await {
                    Ok(found) => found,
                    Err(err) => {
                        tracing::warn!(actor_type, error = %err, "reading reminders failed");
                        continue;
                    }
                };
                if let Some(next) = next {
                    let wait = u64::try_from(next - placement::now_ms()).unwrap_or(0);
                    sleep = sleep.min(Duration::from_millis(wait));
                }
                for item in due {
                    let owner = host
                        .placement
                        .owner(actor_type, &item.reminder.actor_id)
                        .await;
                    if matches!(owner, Ok(placement::Owner::Other(_))) || owner.is_err() {
                        // Its holder fires it; look again soon in case it dies.
                        sleep = sleep.min(Duration::from_millis(250));
                        continue;
                    }
                    if reminders.claim(actor_type, &item.reminder) {
                        tokio::spawn(fire(
                            Arc::clone(&host),
                            Arc::clone(&reminders),
                            actor_type.clone(),
                            item,
                            Arc::clone(&self.wake),
                        ));
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep.max(Duration::from_millis(5))) => {}
            }
        }
    }
}

/// Fire one due reminder here (taking the actor's lease), then record it.
async fn fire(
    host: Arc<Host>,
    reminders: Arc<Reminders>,
    actor_type: String,
    item: reminders::Due,
    rescan: Arc<tokio::sync::Notify>,
) {
    let r = &item.reminder;
    let mut cancel = false;
    if item.calls > 0 {
        let slot = match host.activate(&actor_type, &r.actor_id).await {
            Ok(Activation::Local(slot)) => slot,
            Ok(Activation::Remote(_)) => {
                reminders.unclaim(&actor_type, r);
                return;
            }
            Err(err) => {
                tracing::warn!(actor_type, actor_id = %r.actor_id, error = %err, "cannot activate an actor for its reminder; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                reminders.unclaim(&actor_type, r);
                return;
            }
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "dueTime": r.due_time,
            "period": r.period,
            "data": r.data,
        }))
        .unwrap_or_default();
        for _ in 0..item.calls {
            let turn = Turn {
                method: format!("remind/{}", host::encode(&r.name)),
                headers: Vec::new(),
                body: body.clone(),
            };
            match host.turn(&slot, turn, None).await {
                Ok(Outcome::Done(reply)) if reply.status == 200 => {
                    cancel |= reply.headers.iter().any(|(k, v)| {
                        k.eq_ignore_ascii_case("X-Daprremindercancel")
                            && v.eq_ignore_ascii_case("true")
                    });
                    if cancel {
                        break;
                    }
                }
                outcome => {
                    let why = match outcome {
                        Ok(Outcome::Done(reply)) => format!("the app answered {}", reply.status),
                        Ok(Outcome::Moved) => "the actor moved".to_owned(),
                        Err(err) => err.to_string(),
                    };
                    tracing::warn!(actor_type, actor_id = %r.actor_id, reminder = %r.name, reason = %why, "reminder not delivered; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    reminders.unclaim(&actor_type, r);
                    return;
                }
            }
        }
    }
    if let Err(err) = reminders.fired(&actor_type, r, item.calls, cancel).await {
        tracing::warn!(actor_type, actor_id = %r.actor_id, reminder = %r.name, error = %err, "could not record a fired reminder; it may fire again");
    }
    reminders.unclaim(&actor_type, r);
    // Its next due time is known now: let the scan sleep until then.
    rescan.notify_one();
}

/// Renew this host's placement entry every quarter lease; a lapse voids
/// every actor here.
async fn renew(host: Arc<Host>, shutdown: CancellationToken) {
    let every = host.placement.ttl() / 4;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match host.placement.heartbeat().await {
            Ok(false) => {}
            Ok(true) => {
                tracing::warn!(
                    "this gateway's actor placement entry had lapsed; its actors were voided"
                );
                host.drop_all().await;
            }
            Err(err) => tracing::warn!(error = %err, "renewing the actor placement entry failed"),
        }
    }
}

/// Deactivate idle actors every `actorScanInterval`.
async fn sweep(host: Arc<Host>, shutdown: CancellationToken) {
    let every = host.config.scan_interval.max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        host.sweep_idle().await;
    }
}

/// A forwarded call's reply, or the API error the host encoded in it.
fn forwarded_error(reply: Reply) -> Result<Reply, ApiError> {
    let header = |name: &str| {
        reply
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let Some(code) = header(FORWARDED_ERROR) else {
        return Ok(reply);
    };
    let entry = codes::ALL
        .iter()
        .find(|e| e.code == code)
        .copied()
        .unwrap_or(codes::ERR_ACTOR_INVOKE_METHOD);
    let grpc = header(FORWARDED_GRPC_CODE)
        .and_then(|c| c.parse::<i32>().ok())
        .map_or(entry.grpc, tonic::Code::from_i32);
    let http = axum::http::StatusCode::from_u16(reply.status).unwrap_or(entry.http);
    Err(ApiError::new(entry, String::from_utf8_lossy(&reply.body)).with_status(http, grpc))
}

async fn resolve(address: &str) -> Result<SocketAddr, tonic::Status> {
    if let Ok(addr) = address.parse() {
        return Ok(addr);
    }
    tokio::net::lookup_host(address)
        .await
        .ok()
        .and_then(|mut found| found.next())
        .ok_or_else(|| {
            tonic::Status::unavailable(format!("cannot resolve gateway address {address}"))
        })
}
