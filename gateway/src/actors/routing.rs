//! Where an actor runs and how a call gets there: its slot on this gateway,
//! or the gateway holding its lease (over `GatewayInvoke/CallActor`), or the
//! live host rendezvous hashing picks for an actor nobody holds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outrigger_proto::outrigger::internal::v1 as internal_pb;

use super::host::{Activation, Host, Outcome, Slot, Turn, TurnKind};
use super::timer::{Timer, TimerRequest};
use super::{
    Actors, FORWARDED_ERROR, FORWARDED_GRPC_CODE, REENTRANCY_HEADER, ROUTE_CACHE, check, placement,
    store_error,
};
use crate::components::unary::methods;
use crate::error::{ApiError, codes};
use crate::runtime::invoke::Reply;

pub(super) enum Route {
    Local(Arc<Slot>),
    Remote(String),
}

/// What a routed call does once it reaches the actor's host.
#[derive(Debug, Clone)]
pub(super) enum Action {
    Method(Turn, Option<String>),
    TimerCreate(String, Timer),
    TimerDelete(String),
}

impl Actors {
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
        let host = self.host().filter(|h| h.hosts(actor_type));
        if let Some(slot) = host.as_ref().and_then(|h| h.active(actor_type, id)) {
            return Ok(Route::Local(slot));
        }
        if let Some(address) = self.cached_route(actor_type, id) {
            return Ok(Route::Remote(address));
        }
        // Boxed: placement's store calls make this future kilobytes large,
        // and every call to an active actor would otherwise carry (and
        // move, layer by layer) that space for nothing.
        Box::pin(self.place(actor_type, id, host)).await
    }

    /// Where an actor neither active here nor cached goes: its lease's
    /// holder, else a host chosen for it (activating it here if that is us).
    async fn place(
        &self,
        actor_type: &str,
        id: &str,
        host: Option<Arc<Host>>,
    ) -> Result<Route, ApiError> {
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
    pub(super) async fn dispatch(
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
        let mut unplaced = None;
        loop {
            if !last.is_empty() {
                if Instant::now() >= deadline {
                    if let Some(err) = unplaced {
                        return Err(err);
                    }
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            let route = match self.route(actor_type, id).await {
                Ok(route) => {
                    unplaced = None;
                    route
                }
                // No host of the type yet (e.g. its app is still starting):
                // wait for one as long as for a moving actor.
                Err(err) if err.code == codes::ERR_ACTOR_NO_PLACEMENT.code => {
                    if Instant::now() >= deadline {
                        return Err(err);
                    }
                    last.clone_from(&err.message);
                    unplaced = Some(err);
                    continue;
                }
                Err(err) => return Err(err),
            };
            match route {
                Route::Local(slot) => match self.run_local(&slot, &action).await? {
                    Some(reply) => return Ok(reply),
                    None => last = "the actor was deactivated meanwhile".into(),
                },
                Route::Remote(address) => {
                    // Boxed for the same reason as `place`.
                    match Box::pin(self.forward(&address, actor_type, id, &action)).await {
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
    async fn run_local(
        &self,
        slot: &Arc<Slot>,
        action: &Action,
    ) -> Result<Option<Reply>, ApiError> {
        let host = self
            .host()
            .ok_or_else(|| ApiError::new(codes::ERR_ACTOR_INVOKE_METHOD, "no actor host here"))?;
        if slot.is_dead() {
            return Ok(None);
        }
        let done = |status: u16| Reply {
            status,
            ..Reply::default()
        };
        match action {
            Action::Method(turn, chain) => match host.turn(slot, turn, chain.clone()).await? {
                Outcome::Done(reply) => Ok(Some(reply)),
                Outcome::Moved => Ok(None),
            },
            Action::TimerCreate(name, timer) => {
                host.start_timer(slot, name, timer.clone());
                Ok(Some(done(204)))
            }
            Action::TimerDelete(name) => {
                host.stop_timer(slot, name);
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
                    match &turn.kind {
                        TurnKind::Method(name) => name.clone(),
                        other => {
                            return Err(tonic::Status::internal(format!(
                                "{other:?} is not forwarded"
                            )));
                        }
                    },
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
        let call = internal_pb::ActorCall {
            actor_type: actor_type.to_owned(),
            actor_id: id.to_owned(),
            kind: kind as i32,
            name,
            body,
            headers,
        };
        let reply = self
            .invoke
            .call_peer_rpc(addr, &methods::PEER_CALL_ACTOR, call)
            .await?;
        let status = u16::try_from(reply.status).unwrap_or(500);
        Ok(Reply {
            status,
            headers: crate::runtime::invoke::header_map(
                reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ),
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
        let Some(host) = self.host().filter(|h| h.hosts(&call.actor_type)) else {
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
                        kind: TurnKind::Method(call.name),
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
        match self.run_local(&slot, &action).await {
            Ok(Some(reply)) => Ok(internal_pb::ActorReply {
                status: u32::from(reply.status),
                headers: crate::runtime::invoke::header_pairs(&reply.headers).collect(),
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
        self.host()
            .map(|h| h.active_ids(actor_type))
            .unwrap_or_default()
    }
}

/// A forwarded call's reply, or the API error the host encoded in it.
fn forwarded_error(reply: Reply) -> Result<Reply, ApiError> {
    let header = |name: &str| {
        reply
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
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

pub(super) async fn resolve(address: &str) -> Result<SocketAddr, tonic::Status> {
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
