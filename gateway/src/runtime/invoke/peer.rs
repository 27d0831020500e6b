//! Calls to peer gateways: one pooled HTTP/2 channel per peer, the call a
//! peer is sent, and its answer.

use std::net::SocketAddr;

use http::header::HeaderMap;

use outrigger_proto::outrigger::internal::v1 as pb;

use super::{Call, InvokeApi, Reply, map_headers, wire_headers};
use crate::components::unary;

impl InvokeApi {
    /// The pooled HTTP/2 channel to the peer gateway at `addr`.
    pub(crate) fn peer_channel(
        &self,
        addr: SocketAddr,
    ) -> Result<crate::components::channel::UdsChannel, tonic::Status> {
        let mut peers = self
            .peers
            .lock()
            .map_err(|_| tonic::Status::internal("peer table poisoned"))?;
        Ok(match peers.get(&addr) {
            Some(channel) => channel.clone(),
            None => {
                // The same HTTP/2 channel as for components: a call's
                // message leaves in the write that carries its HEADERS.
                let channel = crate::components::channel::lazy_tcp(addr);
                peers.insert(addr, channel.clone());
                channel
            }
        })
    }

    /// Call `method` of the peer gateway at `addr` with `message`, carrying
    /// this gateway's token and the current trace context.
    pub(crate) async fn call_peer_rpc<Request, Reply>(
        &self,
        addr: SocketAddr,
        method: &unary::Method<Request, Reply>,
        message: Request,
    ) -> Result<Reply, tonic::Status>
    where
        Request: prost::Message,
        Reply: prost::Message + Default,
    {
        let channel = self.peer_channel(addr)?;
        Ok(unary::call(&channel, self.peer_headers(), method, message)
            .await?
            .into_inner())
    }

    /// The metadata of a call to a peer gateway: this gateway's token.
    fn peer_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(4);
        if let Some(token) = &self.token {
            headers.insert(crate::api::http::TOKEN_HEADER, token.clone());
        }
        headers
    }

    /// `call` as a peer gateway is sent it (its `app_id` is set per peer).
    pub(super) fn local_call(&self, call: Call) -> pb::LocalCall {
        let identity = self.security.get().map(|s| &s.identity);
        pb::LocalCall {
            app_id: String::new(),
            method: call.method,
            verb: call.verb,
            query: call.query,
            headers: wire_headers(call.headers),
            body: call.body,
            caller_app_id: self.app_id.clone(),
            caller_namespace: identity.map(|i| i.namespace.clone()).unwrap_or_default(),
            caller_trust_domain: identity.map(|i| i.trust_domain.clone()).unwrap_or_default(),
        }
    }

    /// Send `message` to the peer gateway at `addr`. The trace context
    /// travels in the message's headers, where the callee reads it, and
    /// not in the call's metadata as well.
    pub(super) async fn call_peer(
        &self,
        addr: SocketAddr,
        message: &pb::LocalCall,
    ) -> Result<Reply, tonic::Status> {
        let channel = self.peer_channel(addr)?;
        let reply = unary::call_untraced(
            &channel,
            self.peer_headers(),
            &unary::methods::PEER_CALL_LOCAL,
            message,
        )
        .await?
        .into_inner();
        Ok(Reply {
            status: u16::try_from(reply.status).unwrap_or(500),
            headers: map_headers(reply.headers),
            body: reply.body.into(),
        })
    }
}
