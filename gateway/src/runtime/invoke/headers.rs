//! Headers of a call: which are passed on, and how they cross between
//! gateways. They stay a `HeaderMap` from the caller's request to the
//! callee's app (no copies into strings and parsing back on each side);
//! between gateways each is a `bytes` name and value, read as slices of
//! the frame it arrived in.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use outrigger_proto::outrigger::internal::v1 as pb;

/// Request headers never forwarded: hop-by-hop ones and the caller's token.
static DROPPED: [HeaderName; 9] = [
    header::HOST,
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TE,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static(crate::api::http::TOKEN_HEADER),
    HeaderName::from_static("dapr-app-id"),
];

/// Answer headers not passed back: the hop-by-hop ones.
pub(super) static HOP_BY_HOP: [HeaderName; 4] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::CONTENT_LENGTH,
    HeaderName::from_static("keep-alive"),
];

/// `headers` as a call between gateways carries them: one entry per value,
/// so a name sent more than once keeps each of its values.
pub(crate) fn wire_headers(headers: HeaderMap) -> Vec<pb::Header> {
    let mut wire = Vec::with_capacity(headers.len());
    let mut name = None;
    for (key, value) in headers {
        // A name comes once, before the first of its values.
        if let Some(key) = key {
            name = Some(Bytes::copy_from_slice(key.as_str().as_bytes()));
        }
        if let Some(key) = &name {
            wire.push(pb::Header {
                key: key.clone(),
                value: Bytes::copy_from_slice(value.as_bytes()),
            });
        }
    }
    wire
}

/// The headers of a call between gateways; one that is not a valid HTTP
/// header is left out.
pub(crate) fn map_headers(headers: Vec<pb::Header>) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for pb::Header { key, value } in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&key),
            HeaderValue::from_maybe_shared(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Headers from name and value strings; a pair that is not a valid HTTP
/// header is left out.
pub fn header_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            map.append(name, value);
        }
    }
    map
}

/// `headers` as name and value strings; a value that is not text is left out.
pub fn header_pairs(headers: &HeaderMap) -> impl Iterator<Item = (String, String)> + '_ {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
}

pub(super) fn forwarded(mut headers: HeaderMap) -> HeaderMap {
    for name in &DROPPED {
        headers.remove(name);
    }
    headers
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use prost::Message;

    use super::{HeaderMap, header_map, map_headers, pb, wire_headers};

    /// `LocalReply` as gateways before repeated headers declared it.
    #[derive(Clone, PartialEq, prost::Message)]
    struct MapReply {
        #[prost(uint32, tag = "1")]
        status: u32,
        #[prost(map = "string, string", tag = "2")]
        headers: HashMap<String, String>,
        #[prost(bytes = "vec", tag = "3")]
        body: Vec<u8>,
    }

    #[test]
    fn repeated_headers_are_read_as_a_map_and_the_other_way_round() {
        let pairs = [("content-type", "text/plain"), ("set-cookie", "a=1")];
        let new = pb::LocalReply {
            status: 201,
            headers: wire_headers(header_map(pairs)),
            body: "hi".into(),
        };
        let old = MapReply::decode(new.encode_to_vec().as_slice()).unwrap();
        assert_eq!(old.status, 201);
        let expected: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(old.headers, expected);
        assert_eq!(old.body, b"hi");
        let back = pb::LocalReply::decode(old.encode_to_vec().as_slice()).unwrap();
        assert_eq!(map_headers(back.headers), header_map(pairs));
    }

    #[test]
    fn headers_cross_between_gateways_with_repeated_names_and_raw_bytes() {
        let mut headers = header_map([
            ("set-cookie", "a=1"),
            ("x-tag", "one"),
            ("set-cookie", "b=2"),
        ]);
        // HTTP allows bytes beyond ASCII in a value (obs-text).
        headers.append("x-raw", http::HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let wire = wire_headers(headers.clone());
        let names: Vec<&[u8]> = wire.iter().map(|h| h.key.as_ref()).collect();
        assert_eq!(
            names,
            [&b"set-cookie"[..], b"set-cookie", b"x-tag", b"x-raw"]
        );
        assert_eq!(map_headers(wire), headers);
        // A header a peer sent that HTTP does not allow is left out.
        let odd = vec![
            pb::Header {
                key: "bad name".into(),
                value: "v".into(),
            },
            pb::Header {
                key: "x-ok".into(),
                value: "line\nbreak".into(),
            },
            pb::Header {
                key: "x-ok".into(),
                value: "fine".into(),
            },
        ];
        assert_eq!(map_headers(odd), header_map([("x-ok", "fine")]));
        assert_eq!(map_headers(Vec::new()), HeaderMap::new());
    }
}
