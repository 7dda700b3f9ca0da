//! ApiVersions: the first request of every client.
use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};

use super::{encode, RequestContext};
use crate::kafka::versions::SUPPORTED;

const UNSUPPORTED_VERSION: i16 = 35;

pub fn handle(ctx: &RequestContext) -> Result<BytesMut, String> {
    let api_keys = SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    let response = ApiVersionsResponse::default().with_api_keys(api_keys);
    if ctx.version < 0 {
        // A version we do not know: answer in v0 so any client can read it (KIP-511).
        let v0 = RequestContext {
            version: 0,
            ..copy(ctx)
        };
        return encode(&v0, &response.with_error_code(UNSUPPORTED_VERSION));
    }
    encode(ctx, &response)
}

fn copy(ctx: &RequestContext) -> RequestContext {
    RequestContext {
        api_key: ctx.api_key,
        version: ctx.version,
        correlation_id: ctx.correlation_id,
        client_id: ctx.client_id.clone(),
        peer: ctx.peer,
    }
}
