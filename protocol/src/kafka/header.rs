//! Kafka request headers and response framing.
//!
//! A request is `i32 size` then the header (`api_key i16, api_version i16, correlation_id
//! i32`, then from header v1 a nullable `client_id`, and from v2 tagged fields), then the
//! body. We read the fixed prefix ourselves so that a request with an API key or version we do
//! not know can still be answered or logged with its correlation id.
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// The fixed part every request header starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("request of {0} bytes is too short for a header")]
    TooShort(usize),
    #[error("malformed request header for api key {api_key} v{api_version}: {detail}")]
    Malformed {
        api_key: i16,
        api_version: i16,
        detail: String,
    },
}

impl HeaderPrefix {
    pub fn peek(frame: &[u8]) -> Result<HeaderPrefix, HeaderError> {
        if frame.len() < 8 {
            return Err(HeaderError::TooShort(frame.len()));
        }
        let mut b = &frame[..8];
        Ok(HeaderPrefix {
            api_key: b.get_i16(),
            api_version: b.get_i16(),
            correlation_id: b.get_i32(),
        })
    }
}

/// Decodes the full header of a request whose API key is known, leaving `frame` at the body.
pub fn decode_header(api_key: ApiKey, frame: &mut Bytes) -> Result<RequestHeader, HeaderError> {
    let prefix = HeaderPrefix::peek(frame)?;
    let header_version = api_key.request_header_version(prefix.api_version);
    RequestHeader::decode(frame, header_version).map_err(|e| HeaderError::Malformed {
        api_key: prefix.api_key,
        api_version: prefix.api_version,
        detail: e.to_string(),
    })
}

/// Encodes a complete response frame (size prefix, header, body) for `api_key` at `version`.
pub fn encode_response<M: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
    out: &mut BytesMut,
) -> anyhow::Result<()> {
    let start = out.len();
    out.put_i32(0); // size, patched below
    out.put_i32(correlation_id);
    if api_key.response_header_version(version) >= 1 {
        out.put_u8(0); // no tagged fields
    }
    body.encode(out, version)?;
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsResponse;

    #[test]
    fn peek_needs_eight_bytes() {
        assert!(HeaderPrefix::peek(&[0, 18, 0]).is_err());
        let p = HeaderPrefix::peek(&[0, 18, 0, 3, 0, 0, 0, 7]).unwrap();
        assert_eq!(
            p,
            HeaderPrefix {
                api_key: 18,
                api_version: 3,
                correlation_id: 7
            }
        );
    }

    #[test]
    fn api_versions_response_uses_header_v0() {
        let mut out = BytesMut::new();
        encode_response(
            ApiKey::ApiVersions,
            3,
            5,
            &ApiVersionsResponse::default(),
            &mut out,
        )
        .unwrap();
        let mut b = out.freeze();
        let size = b.get_i32() as usize;
        assert_eq!(size, b.len());
        assert_eq!(b.get_i32(), 5);
        // Body starts right away with error_code (no tagged-field byte in header v0).
        assert_eq!(b.get_i16(), 0);
    }
}
