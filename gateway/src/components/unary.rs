//! Unary component calls, straight on a channel's HTTP/2 connection.
//!
//! tonic's generated clients send a unary call as a one-message stream:
//! the request goes through an interceptor (which turns the HTTP request
//! into a `tonic::Request` and back), an encoder stream with an 8 KiB
//! buffer, and the answer through a streaming decoder with another. Per
//! state get that was ~10 000 instructions, about a tenth of the gateway's
//! whole cost (BENCHMARKS.md). The calls made on every request (state reads
//! and writes, publishing) go through [`call`] instead: the message is
//! encoded once into a buffer of its exact size, leaves with its HEADERS in
//! one write, and the answer is decoded from the frame it came in. Errors
//! come back as tonic would give them: the component's `grpc-status` (with
//! its details), or the transport's error as a `Status`.

use std::future::poll_fn;
use std::marker::PhantomData;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderMap, HeaderValue};
use prost::Message;
use tonic::{Code, Status};

use super::channel::UdsChannel;

/// A unary rpc of a component service: its path, request and reply types.
pub struct Method<Request, Reply> {
    path: &'static str,
    /// The absolute URI of the path, parsed on first use (parsing it for
    /// each call was ~900 instructions).
    uri: OnceLock<http::Uri>,
    types: PhantomData<fn(Request) -> Reply>,
}

impl<Request, Reply> Method<Request, Reply> {
    const fn new(path: &'static str) -> Self {
        Self {
            path,
            uri: OnceLock::new(),
            types: PhantomData,
        }
    }

    /// `/<package>.<Service>/<Method>`.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// The URI a call is sent to.
    fn uri(&self) -> Result<http::Uri, Status> {
        if let Some(uri) = self.uri.get() {
            return Ok(uri.clone());
        }
        let uri = super::channel::absolute(self.path)
            .map_err(|e| Status::internal(format!("{}: not a usable path: {e}", self.path)))?;
        Ok(self.uri.get_or_init(|| uri).clone())
    }
}

/// The rpcs the gateway makes through [`call`].
pub mod methods {
    use super::Method;
    use outrigger_proto::components as pb;
    use outrigger_proto::outrigger::internal::v1 as peer;

    /// `StateStore/Get`.
    pub static STATE_GET: Method<pb::GetRequest, pb::GetResponse> =
        Method::new("/dapr.proto.components.v1.StateStore/Get");
    /// `StateStore/Set`.
    pub static STATE_SET: Method<pb::SetRequest, pb::SetResponse> =
        Method::new("/dapr.proto.components.v1.StateStore/Set");
    /// `StateStore/Delete`.
    pub static STATE_DELETE: Method<pb::DeleteRequest, pb::DeleteResponse> =
        Method::new("/dapr.proto.components.v1.StateStore/Delete");
    /// `StateStore/BulkGet`.
    pub static STATE_BULK_GET: Method<pb::BulkGetRequest, pb::BulkGetResponse> =
        Method::new("/dapr.proto.components.v1.StateStore/BulkGet");
    /// `StateStore/BulkSet`.
    pub static STATE_BULK_SET: Method<pb::BulkSetRequest, pb::BulkSetResponse> =
        Method::new("/dapr.proto.components.v1.StateStore/BulkSet");
    /// `TransactionalStateStore/Transact`.
    pub static STATE_TRANSACT: Method<
        pb::TransactionalStateRequest,
        pb::TransactionalStateResponse,
    > = Method::new("/dapr.proto.components.v1.TransactionalStateStore/Transact");
    /// `PubSub/Publish`.
    pub static PUBLISH: Method<pb::PublishRequest, pb::PublishResponse> =
        Method::new("/dapr.proto.components.v1.PubSub/Publish");
    /// Between gateways: `GatewayInvoke/CallLocal`.
    pub static PEER_CALL_LOCAL: Method<peer::LocalCall, peer::LocalReply> =
        Method::new("/outrigger.internal.v1.GatewayInvoke/CallLocal");
    /// Between gateways: `GatewayInvoke/CallActor`.
    pub static PEER_CALL_ACTOR: Method<peer::ActorCall, peer::ActorReply> =
        Method::new("/outrigger.internal.v1.GatewayInvoke/CallActor");
    /// Between gateways: `GatewayInvoke/ListActors`.
    pub static PEER_LIST_ACTORS: Method<peer::ListActorsCall, peer::ListActorsReply> =
        Method::new("/outrigger.internal.v1.GatewayInvoke/ListActors");
}

/// The five bytes before each gRPC message: a compression flag and the
/// message's length.
pub(crate) const PREFIX: usize = 5;

/// The header of a call's status (a lookup by `&str` parses the name again).
static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The largest answer accepted, as tonic's clients default to (4 MiB).
const MAX_REPLY: usize = 4 * 1024 * 1024;

/// Call `method` on `channel` with `request` and `headers` (the component's
/// `x-component-instance`, or a peer gateway's token), carrying the current
/// trace context.
pub async fn call<Request: Message, Reply: Message + Default>(
    channel: &UdsChannel,
    mut headers: HeaderMap,
    method: &Method<Request, Reply>,
    request: Request,
) -> Result<tonic::Response<Reply>, Status> {
    crate::telemetry::propagation::inject_http(&opentelemetry::Context::current(), &mut headers);
    call_untraced(channel, headers, method, &request).await
}

/// [`call`] without the trace context in the call's metadata: for a
/// message that carries it itself (a peer's `CallLocal` forwards the
/// caller's headers, `traceparent` among them). A `traceparent` changes on
/// every call, so over HTTP/2 it is Huffman-coded and decoded each time.
pub async fn call_untraced<Request: Message, Reply: Message + Default>(
    channel: &UdsChannel,
    mut headers: HeaderMap,
    method: &Method<Request, Reply>,
    request: &Request,
) -> Result<tonic::Response<Reply>, Status> {
    let body = encode(request)?;
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    let (status, headers, recv) = channel
        .send_unary(method.uri()?, headers, body)
        .await
        .map_err(Status::from_error)?;
    answer(status, headers, recv).await
}

/// `message` with its prefix, in a buffer of exactly its size.
pub(crate) fn encode(message: &impl Message) -> Result<Bytes, Status> {
    let len = message.encoded_len();
    let prefix = u32::try_from(len)
        .map_err(|_| Status::out_of_range(format!("a {len}-byte message is too large for gRPC")))?;
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    buf.put_u32(prefix);
    message
        .encode(&mut buf)
        .map_err(|e| Status::internal(format!("encoding the message failed: {e}")))?;
    Ok(buf.freeze())
}

/// The `grpc-status` in `map`, if any: `Ok` for 0, else the status as
/// tonic reads it. A call that succeeded is told from its bytes alone;
/// `Status::from_header_map` would also copy every other header into the
/// status's metadata, only for it to be dropped.
fn status_in(map: &HeaderMap) -> Option<Result<(), Status>> {
    if map.get(&GRPC_STATUS)?.as_bytes() == b"0" {
        return Some(Ok(()));
    }
    let status = Status::from_header_map(map)?;
    Some(if status.code() == Code::Ok {
        Ok(())
    } else {
        Err(status)
    })
}

/// The reply in an answer, or the status it ended with.
async fn answer<Reply: Message + Default>(
    status: http::StatusCode,
    headers: HeaderMap,
    mut recv: h2::RecvStream,
) -> Result<tonic::Response<Reply>, Status> {
    // A component that fails a call at once answers with headers only
    // ("trailers-only"), the status among them.
    if let Some(Err(failed)) = status_in(&headers) {
        return Err(failed);
    }
    if status != http::StatusCode::OK {
        return Err(http_status(status));
    }
    let mut first: Option<Bytes> = None;
    let mut more = BytesMut::new();
    while let Some(data) = poll_fn(|cx| recv.poll_data(cx)).await {
        let data = data.map_err(h2_status)?;
        let _ = recv.flow_control().release_capacity(data.len());
        match &first {
            None => first = Some(data),
            Some(_) => more.extend_from_slice(&data),
        }
    }
    let trailers = poll_fn(|cx| recv.poll_trailers(cx))
        .await
        .map_err(h2_status)?;
    match trailers.as_ref().and_then(status_in) {
        Some(Ok(())) => {}
        Some(Err(failed)) => return Err(failed),
        None if headers.contains_key(&GRPC_STATUS) => {}
        None => {
            return Err(Status::unknown(
                "the component's answer ended without a grpc-status",
            ));
        }
    }
    let message = match first {
        Some(first) if more.is_empty() => first,
        Some(first) => {
            let mut whole = BytesMut::with_capacity(first.len() + more.len());
            whole.extend_from_slice(&first);
            whole.extend_from_slice(&more);
            whole.freeze()
        }
        None => return Err(Status::internal("Missing response message.")),
    };
    let reply = decode(&message)?;
    Ok(tonic::Response::from_parts(
        tonic::metadata::MetadataMap::from_headers(headers),
        reply,
        http::Extensions::default(),
    ))
}

/// The one message of a unary answer's body.
fn decode<Reply: Message + Default>(body: &Bytes) -> Result<Reply, Status> {
    let Some((prefix, rest)) = body.split_first_chunk::<PREFIX>() else {
        return Err(Status::internal(format!(
            "the component's answer is {} bytes, too short for a gRPC message",
            body.len()
        )));
    };
    let [flag, length @ ..] = *prefix;
    if flag != 0 {
        return Err(Status::internal(format!(
            "the component's answer is compressed (flag {flag}), which was not asked for"
        )));
    }
    let len = u32::from_be_bytes(length) as usize;
    if len > MAX_REPLY {
        return Err(Status::out_of_range(format!(
            "Error, decoded message length too large: found {len} bytes, the limit is: {MAX_REPLY} bytes"
        )));
    }
    if rest.len() < len {
        return Err(Status::internal(format!(
            "the component's answer ended {} bytes into a {len}-byte message",
            rest.len()
        )));
    }
    // A slice of the answer's buffer: `Bytes` fields of the reply share it.
    Reply::decode(body.slice(PREFIX..PREFIX + len))
        .map_err(|e| Status::internal(format!("the component's answer does not decode: {e}")))
}

/// The status of an answer that is not HTTP 200, as gRPC maps them.
fn http_status(status: http::StatusCode) -> Status {
    let code = match status {
        http::StatusCode::BAD_REQUEST => Code::Internal,
        http::StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        http::StatusCode::FORBIDDEN => Code::PermissionDenied,
        http::StatusCode::NOT_FOUND => Code::Unimplemented,
        http::StatusCode::TOO_MANY_REQUESTS
        | http::StatusCode::BAD_GATEWAY
        | http::StatusCode::SERVICE_UNAVAILABLE
        | http::StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("the component answered HTTP {status}"))
}

fn h2_status(err: h2::Error) -> Status {
    Status::from_error(Box::new(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrigger_proto::components as pb;
    use prost_types::FileDescriptorSet;

    /// Each method's path names an rpc of our protos whose request and reply
    /// types are the ones the constant declares.
    #[test]
    fn every_method_is_an_rpc_of_the_protos() {
        fn check<Request, Reply>(set: &FileDescriptorSet, method: &Method<Request, Reply>) {
            let short = |name: &str| name.rsplit(['.', ':']).next().unwrap_or("").to_owned();
            let (service, rpc) = method.path()[1..].split_once('/').expect("a path");
            let (package, service) = service.rsplit_once('.').expect("a package");
            let found = set
                .file
                .iter()
                .filter(|file| file.package() == package)
                .flat_map(|file| &file.service)
                .filter(|s| s.name() == service)
                .flat_map(|s| &s.method)
                .find(|m| m.name() == rpc)
                .unwrap_or_else(|| panic!("{} is not in the protos", method.path()));
            assert_eq!(
                short(found.input_type()),
                short(std::any::type_name::<Request>()),
                "{}",
                method.path()
            );
            assert_eq!(
                short(found.output_type()),
                short(std::any::type_name::<Reply>()),
                "{}",
                method.path()
            );
        }
        let set = FileDescriptorSet::decode(outrigger_proto::FILE_DESCRIPTOR_SET).expect("set");
        check(&set, &methods::STATE_GET);
        check(&set, &methods::STATE_SET);
        check(&set, &methods::STATE_DELETE);
        check(&set, &methods::STATE_BULK_GET);
        check(&set, &methods::STATE_BULK_SET);
        check(&set, &methods::STATE_TRANSACT);
        check(&set, &methods::PUBLISH);
        check(&set, &methods::PEER_CALL_LOCAL);
        check(&set, &methods::PEER_CALL_ACTOR);
        check(&set, &methods::PEER_LIST_ACTORS);
    }

    #[test]
    fn a_message_encodes_with_its_prefix_and_decodes_back() {
        let request = pb::GetRequest {
            key: "k".into(),
            ..Default::default()
        };
        let body = encode(&request).expect("encodes");
        assert_eq!(body.len(), PREFIX + request.encoded_len());
        assert_eq!(body[0], 0);
        let back: pb::GetRequest = decode(&body).expect("decodes");
        assert_eq!(back, request);
    }

    #[test]
    fn bad_answers_are_errors_that_say_why() {
        let short =
            decode::<pb::GetResponse>(&Bytes::from_static(&[0, 0, 0])).expect_err("too short");
        assert_eq!(short.code(), Code::Internal);
        assert!(short.message().contains("too short"), "{short:?}");
        let compressed = decode::<pb::GetResponse>(&Bytes::from_static(&[1, 0, 0, 0, 0]))
            .expect_err("compressed");
        assert!(
            compressed.message().contains("compressed"),
            "{compressed:?}"
        );
        let cut = decode::<pb::GetResponse>(&Bytes::from_static(&[0, 0, 0, 0, 9, 1]))
            .expect_err("cut short");
        assert!(cut.message().contains("9-byte"), "{cut:?}");
        let huge = decode::<pb::GetResponse>(&Bytes::from_static(&[0, 0xff, 0, 0, 0]))
            .expect_err("too large");
        assert_eq!(huge.code(), Code::OutOfRange);
        let garbage = decode::<pb::GetResponse>(&Bytes::from_static(&[0, 0, 0, 0, 2, 0xff, 0xff]))
            .expect_err("bad");
        assert!(garbage.message().contains("does not decode"), "{garbage:?}");
        assert_eq!(
            http_status(http::StatusCode::NOT_FOUND).code(),
            Code::Unimplemented
        );
        assert_eq!(
            http_status(http::StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
    }
}
