//! One module per Kafka API (or family of APIs). Each handler takes the decoded request and
//! returns the response message; [`dispatch`] decodes, routes and encodes.
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use stratalog_protocol::kafka::header::encode_response;

use crate::Broker;

mod admin;
mod api_versions;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod produce;
mod producer_id;

pub struct RequestContext {
    pub api_key: ApiKey,
    /// -1 for an ApiVersions request of a version we do not know.
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: String,
    pub peer: SocketAddr,
}

pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Option<BytesMut>, String>> + Send>>;

/// How a request is answered.
pub enum Reply {
    /// Encoded response, ready to send.
    Now(BytesMut),
    /// Completes later (bookie acks, a fetch's long poll, the group coordinator). `Ok(None)`
    /// means no response (Produce with acks=0); `Err` closes the connection.
    Later(ResponseFuture),
    /// No response at all.
    None,
}

pub(crate) fn encode<M: Encodable>(ctx: &RequestContext, message: &M) -> Result<BytesMut, String> {
    let mut out = BytesMut::new();
    encode_response(
        ctx.api_key,
        ctx.version,
        ctx.correlation_id,
        message,
        &mut out,
    )
    .map_err(|e| format!("encoding the v{} response failed: {e}", ctx.version))?;
    Ok(out)
}

fn decode<M: Decodable>(ctx: &RequestContext, mut body: Bytes) -> Result<M, String> {
    M::decode(&mut body, ctx.version)
        .map_err(|e| format!("malformed v{} request body: {e}", ctx.version))
}

/// Runs `work` after the reader moves on, encoding its result.
fn later<M, F>(ctx: RequestContext, work: F) -> Reply
where
    M: Encodable + Send,
    F: Future<Output = M> + Send + 'static,
{
    Reply::Later(Box::pin(async move {
        let response = work.await;
        encode(&ctx, &response).map(Some)
    }))
}

pub(crate) fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

pub async fn dispatch(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    body: Bytes,
) -> Result<Reply, String> {
    let b = broker.clone();
    let v = ctx.version;
    Ok(match ctx.api_key {
        ApiKey::ApiVersions => Reply::Now(api_versions::handle(&ctx)?),
        ApiKey::Metadata => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { metadata::metadata(&b, req, v).await })
        }
        ApiKey::DescribeCluster => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { metadata::describe_cluster(&b, req) })
        }
        ApiKey::CreateTopics => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { admin::create_topics(&b, req).await })
        }
        ApiKey::DeleteTopics => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { admin::delete_topics(&b, req, v).await })
        }
        ApiKey::CreatePartitions => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { admin::create_partitions(&b, req).await })
        }
        ApiKey::DescribeConfigs => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { admin::describe_configs(&b, req).await })
        }
        ApiKey::IncrementalAlterConfigs => {
            let req = decode(&ctx, body)?;
            later(ctx, async move {
                admin::incremental_alter_configs(&b, req).await
            })
        }
        ApiKey::Produce => {
            let req = decode(&ctx, body)?;
            produce::handle(broker, ctx, req).await
        }
        ApiKey::Fetch => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { fetch::fetch(&b, req, v).await })
        }
        ApiKey::ListOffsets => {
            let req = decode(&ctx, body)?;
            later(
                ctx,
                async move { list_offsets::list_offsets(&b, req).await },
            )
        }
        ApiKey::InitProducerId => {
            let req = decode(&ctx, body)?;
            later(
                ctx,
                async move { producer_id::init_producer_id(&b, req).await },
            )
        }
        ApiKey::FindCoordinator => {
            let req = decode(&ctx, body)?;
            Reply::Now(encode(&ctx, &groups::find_coordinator(broker, req, v))?)
        }
        ApiKey::JoinGroup => {
            let req = decode(&ctx, body)?;
            let (client_id, host) = (ctx.client_id.clone(), ctx.peer.ip().to_string());
            later(ctx, async move {
                b.groups.join_group(req, v, &client_id, &host).await
            })
        }
        ApiKey::SyncGroup => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { b.groups.sync_group(req, v).await })
        }
        ApiKey::Heartbeat => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { b.groups.heartbeat(req, v).await })
        }
        ApiKey::LeaveGroup => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { b.groups.leave_group(req, v).await })
        }
        ApiKey::OffsetCommit => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { groups::offset_commit(&b, req, v).await })
        }
        ApiKey::OffsetFetch => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { b.groups.offset_fetch(req, v).await })
        }
        ApiKey::ListGroups => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { b.groups.list_groups(req, v).await })
        }
        ApiKey::DescribeGroups => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { b.groups.describe_groups(req, v).await })
        }
        ApiKey::DeleteGroups => {
            let req = decode(&ctx, body)?;
            later(ctx, async move { b.groups.delete_groups(req, v).await })
        }
        other => return Err(format!("API {other:?} is not served")),
    })
}
