//! Unary calls answered without tonic's server codec.
//!
//! tonic's generated server reads a unary call through its streaming
//! decoder (an 8 KiB buffer, a state machine, a boxed body) and writes the
//! answer through its streaming encoder. For calls on the hot path this
//! reads the one message from the frames as they come, calls the service's
//! method, and answers with one DATA frame and the trailers, as tonic does.
//!
//! Only the plain case is taken here: one uncompressed message within the
//! size limit, then the end of the stream. Anything else (a `grpc-encoding`,
//! a message over the limit, a second message, a body cut short, a message
//! that does not decode) goes to tonic's server with the frames already
//! read put back in front, so every error stays exactly tonic's.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame};
use prost::Message;
use tonic::body::Body;

use crate::components::channel::RecvBody;
use crate::components::unary::{PREFIX, encode};

/// Answer `request` with `handler` when it is a plain unary call of at most
/// `limit` bytes, else with `fallback` (tonic's server for the same
/// service), given the request with its frames intact.
pub(super) async fn serve<Req, Reply, Answer, Fallback>(
    request: http::Request<RecvBody>,
    limit: usize,
    handler: impl FnOnce(tonic::Request<Req>) -> Answer,
    fallback: impl FnOnce(http::Request<Replay>) -> Fallback,
) -> http::Response<Body>
where
    Req: Message + Default,
    Reply: Message,
    Answer: Future<Output = Result<tonic::Response<Reply>, tonic::Status>>,
    Fallback: Future<Output = http::Response<Body>>,
{
    let (parts, mut body) = request.into_parts();
    static GRPC_ENCODING: http::HeaderName = http::HeaderName::from_static("grpc-encoding");
    let compressed = parts
        .headers
        .get(&GRPC_ENCODING)
        .is_some_and(|e| e.as_bytes() != b"identity");
    let mut read = VecDeque::new();
    let message = if compressed {
        None
    } else {
        one_message(&mut body, limit, &mut read).await
    };
    let Some(message) = message else {
        let replay = Replay { read, rest: body };
        return fallback(http::Request::from_parts(parts, replay)).await;
    };
    let request = tonic::Request::from_parts(
        tonic::metadata::MetadataMap::from_headers(parts.headers),
        parts.extensions,
        message,
    );
    match handler(request).await {
        Ok(reply) => reply_response(reply),
        Err(status) => status.into_http(),
    }
}

/// The call's one message, when the body is exactly one uncompressed message
/// of at most `limit` bytes; every frame read is kept in `read`.
async fn one_message<Req: Message + Default>(
    body: &mut RecvBody,
    limit: usize,
    read: &mut VecDeque<Frame<Bytes>>,
) -> Option<Req> {
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        let is_data = frame.is_data();
        if let Some(data) = frame.data_ref() {
            len += data.len();
        }
        read.push_back(frame);
        if !is_data || len > PREFIX + limit {
            return None;
        }
    }
    let whole = match read.len() {
        1 => read.front()?.data_ref()?.clone(),
        _ => {
            let mut whole = BytesMut::with_capacity(len);
            for frame in read.iter() {
                whole.extend_from_slice(frame.data_ref()?);
            }
            whole.freeze()
        }
    };
    let (prefix, rest) = whole.split_first_chunk::<PREFIX>()?;
    let [flag, length @ ..] = *prefix;
    let length = usize::try_from(u32::from_be_bytes(length)).ok()?;
    if flag != 0 || length != rest.len() || length > limit {
        return None;
    }
    // From the frame's own buffer: `bytes` fields typed `Bytes` are slices
    // of it, not copies.
    Req::decode(whole.slice(PREFIX..)).ok()
}

/// A successful answer: its metadata, one message, `grpc-status: 0`.
fn reply_response<Reply: Message>(reply: tonic::Response<Reply>) -> http::Response<Body> {
    let (metadata, message, extensions) = reply.into_parts();
    let data = match encode(&message) {
        Ok(data) => data,
        Err(status) => return status.into_http(),
    };
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut response = http::Response::new(Body::new(Answer {
        data: Some(data),
        trailers: Some(trailers),
    }));
    *response.extensions_mut() = extensions;
    let headers = response.headers_mut();
    *headers = metadata.into_headers();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// A unary answer's body: its message, then its trailers.
struct Answer {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let frame = match this.data.take() {
            Some(data) => Some(Frame::data(data)),
            None => this.trailers.take().map(Frame::trailers),
        };
        Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

/// A request body whose first frames were already read: those, then the
/// rest of the stream.
pub(super) struct Replay {
    read: VecDeque<Frame<Bytes>>,
    rest: RecvBody,
}

impl HttpBody for Replay {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        match this.read.pop_front() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => Pin::new(&mut this.rest).poll_frame(cx),
        }
    }
}
