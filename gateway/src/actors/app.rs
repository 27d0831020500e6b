//! How the gateway reaches the app's actors: daprd's HTTP callbacks
//! (`PUT /actors/{type}/{id}/method/...`, `DELETE /actors/{type}/{id}`) or
//! the app's actor stream.

use std::sync::Arc;

use super::host::{Turn, TurnKind};
use super::stream::StreamApp;
use crate::app_channel::HttpApp;
use crate::runtime::invoke::Reply;

/// How the gateway reaches the app's actors.
#[derive(Debug, Clone)]
pub(crate) enum ActorApp {
    /// daprd's HTTP callbacks (`PUT /actors/...`).
    Http(Box<HttpApp>),
    /// The app's `SubscribeActorEventsAlpha1` stream.
    Stream(Arc<StreamApp>),
}

impl ActorApp {
    /// Run `turn` of actor `actor_type`/`id` in the app: its answer.
    pub(super) async fn turn(
        &self,
        actor_type: &str,
        id: &str,
        turn: &Turn,
    ) -> Result<Reply, String> {
        match self {
            Self::Http(app) => {
                let path = turn.kind.http_path(actor_type, id);
                let mut headers = crate::runtime::invoke::header_map(
                    turn.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
                headers
                    .entry(http::header::CONTENT_TYPE)
                    .or_insert(http::HeaderValue::from_static("application/json"));
                let (status, headers, body) = app
                    .call_full("PUT", &path, headers, turn.body.clone().into())
                    .await?;
                Ok(Reply {
                    status,
                    headers,
                    body,
                })
            }
            Self::Stream(app) => app.turn(actor_type, id, turn).await,
        }
    }

    /// Tell the app that actor `actor_type`/`id` is deactivated.
    pub(super) async fn deactivate(&self, actor_type: &str, id: &str) -> Result<(), String> {
        match self {
            Self::Http(app) => {
                let mut path = String::from("/actors/");
                encode_into(&mut path, actor_type);
                path.push('/');
                encode_into(&mut path, id);
                let reply = app
                    .call("DELETE", &path, "application/json", Vec::new())
                    .await?;
                match reply.status {
                    200 => Ok(()),
                    status => Err(format!("the app answered deactivation with {status}")),
                }
            }
            Self::Stream(app) => app.deactivate(actor_type, id).await,
        }
    }
}

impl TurnKind {
    /// `/actors/{type}/{id}/method/...`: the path of daprd's HTTP callback.
    fn http_path(&self, actor_type: &str, id: &str) -> String {
        let (kind, name) = match self {
            Self::Method(name) => ("", name),
            Self::Timer(name) => ("timer/", name),
            Self::Reminder(name) => ("remind/", name),
        };
        let mut path =
            String::with_capacity(24 + actor_type.len() + id.len() + kind.len() + name.len());
        path.push_str("/actors/");
        encode_into(&mut path, actor_type);
        path.push('/');
        encode_into(&mut path, id);
        path.push_str("/method/");
        path.push_str(kind);
        encode_into(&mut path, name);
        path
    }
}

/// Append `segment` to `out`, percent-encoded as a path segment (actor ids
/// may hold any character).
pub(crate) fn encode_into(out: &mut String, segment: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            other => {
                out.push('%');
                out.push(char::from(HEX[usize::from(other >> 4)]));
                out.push(char::from(HEX[usize::from(other & 0xf)]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TurnKind;

    #[test]
    fn callback_paths_percent_encode_every_segment() {
        let method = TurnKind::Method("do it".into());
        assert_eq!(
            method.http_path("Bench", "a b/ü~"),
            "/actors/Bench/a%20b%2F%C3%BC~/method/do%20it"
        );
        assert_eq!(
            TurnKind::Timer("t/1".into()).http_path("T", "i"),
            "/actors/T/i/method/timer/t%2F1"
        );
        assert_eq!(
            TurnKind::Reminder("r".into()).http_path("T", "i-0.x_y"),
            "/actors/T/i-0.x_y/method/remind/r"
        );
    }
}
