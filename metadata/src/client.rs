//! Client of the metadata service over RPC, with the same operations as [`crate::MetadataStore`]:
//! compare-and-set key-value, leases, watches. Used by brokers and by the bookie registration.
use std::time::Duration;

use bytes::Bytes;
use stratalog_protocol::internal::metadata::{
    self as msg, ExpectData, KeyValueData, MetaCode, MetaStatus, OpData,
};
use stratalog_runtime::rpc::{RpcClient, RpcError, RpcOptions};

use crate::{Expect, KeyValue, Op, RangeQuery, MAX_RANGE_KEYS};

fn expect_data(e: Expect) -> ExpectData {
    match e {
        Expect::Any => ExpectData {
            kind: 0,
            revision: 0,
        },
        Expect::Absent => ExpectData {
            kind: 1,
            revision: 0,
        },
        Expect::Revision(revision) => ExpectData { kind: 2, revision },
    }
}

fn key_value(kv: KeyValueData) -> KeyValue {
    KeyValue {
        key: kv.key,
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        lease: kv.lease,
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("compare-and-set on {key} failed")]
    Conflict {
        key: String,
        current: Option<Box<KeyValue>>,
    },
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(u64),
    #[error("watch history compacted; oldest revision is {oldest}")]
    Compacted { oldest: u64 },
    #[error("metadata service error {code:?}: {message}")]
    Service { code: MetaCode, message: String },
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

fn check(status: MetaStatus) -> Result<(), ClientError> {
    match status.code() {
        MetaCode::Ok => Ok(()),
        MetaCode::Conflict => Err(ClientError::Conflict {
            key: status.key,
            current: status.current.map(|kv| Box::new(key_value(kv))),
        }),
        MetaCode::LeaseNotFound => Err(ClientError::LeaseNotFound(status.hint.unwrap_or(0))),
        MetaCode::Compacted => Err(ClientError::Compacted {
            oldest: status.hint.unwrap_or(0),
        }),
        code => Err(ClientError::Service {
            code,
            message: status.message,
        }),
    }
}

#[derive(Clone)]
pub struct MetadataClient {
    rpc: RpcClient,
}

impl MetadataClient {
    pub fn new(addr: impl Into<String>) -> MetadataClient {
        MetadataClient {
            rpc: RpcClient::new(addr, RpcOptions::default()),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, ClientError> {
        let resp = self
            .rpc
            .call::<msg::Get>(&msg::KeyRequest { key: key.into() })
            .await?;
        check(resp.status)?;
        Ok(resp.kv.map(key_value))
    }

    /// Every key under `prefix`, sorted, read page by page (each page is linearizable on
    /// its own; the whole listing is not one snapshot).
    pub async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>, ClientError> {
        let mut out = Vec::new();
        let mut start = String::new();
        loop {
            let (page, more) = self
                .range(&RangeQuery {
                    prefix: prefix.into(),
                    start: start.clone(),
                    limit: MAX_RANGE_KEYS,
                    ..RangeQuery::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            start = format!("{}\0", last.key);
            out.extend(page);
            if !more {
                break;
            }
        }
        Ok(out)
    }

    /// One page of keys (see [`RangeQuery`]) and whether more lie past it.
    pub async fn range(&self, q: &RangeQuery) -> Result<(Vec<KeyValue>, bool), ClientError> {
        let resp = self
            .rpc
            .call::<msg::Range>(&msg::RangeRequest {
                prefix: q.prefix.clone(),
                start: q.start.clone(),
                end: q.end.clone(),
                limit: q.limit.min(u32::MAX as usize) as u32,
                reverse: q.reverse,
            })
            .await?;
        check(resp.status)?;
        Ok((resp.kvs.into_iter().map(key_value).collect(), resp.more))
    }

    pub async fn put(
        &self,
        key: &str,
        value: Bytes,
        expect: Expect,
        lease: Option<u64>,
    ) -> Result<KeyValue, ClientError> {
        let req = msg::PutRequest {
            key: key.into(),
            value,
            expect: expect_data(expect),
            lease,
        };
        let resp = self.rpc.call::<msg::Put>(&req).await?;
        check(resp.status)?;
        resp.kv.map(key_value).ok_or_else(|| ClientError::Service {
            code: MetaCode::Other,
            message: "put returned no value".into(),
        })
    }

    pub async fn delete(&self, key: &str, expect: Expect) -> Result<bool, ClientError> {
        let resp = self
            .rpc
            .call::<msg::Delete>(&msg::DeleteRequest {
                key: key.into(),
                expect: expect_data(expect),
            })
            .await?;
        check(resp.status)?;
        Ok(resp.count > 0)
    }

    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, ClientError> {
        let resp = self
            .rpc
            .call::<msg::DeletePrefix>(&msg::KeyRequest { key: prefix.into() })
            .await?;
        check(resp.status)?;
        Ok(resp.count)
    }

    /// Applies every op or none; the result of each put is its new key-value.
    pub async fn batch(&self, ops: Vec<Op>) -> Result<Vec<Option<KeyValue>>, ClientError> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                Op::Put {
                    key,
                    value,
                    expect,
                    lease,
                } => OpData {
                    delete: false,
                    key,
                    value,
                    expect: expect_data(expect),
                    lease,
                },
                Op::Delete { key, expect } => OpData {
                    delete: true,
                    key,
                    value: Bytes::new(),
                    expect: expect_data(expect),
                    lease: None,
                },
            })
            .collect();
        let resp = self
            .rpc
            .call::<msg::Batch>(&msg::BatchRequest { ops })
            .await?;
        check(resp.status)?;
        Ok(resp
            .results
            .into_iter()
            .map(|kv| kv.map(key_value))
            .collect())
    }

    pub async fn grant_lease(&self, ttl: Duration) -> Result<u64, ClientError> {
        let resp = self
            .rpc
            .call::<msg::GrantLease>(&msg::LeaseRequest {
                lease: 0,
                ttl_ms: ttl.as_millis() as u64,
            })
            .await?;
        check(resp.status)?;
        Ok(resp.lease)
    }

    pub async fn keep_alive(&self, lease: u64) -> Result<Duration, ClientError> {
        let resp = self
            .rpc
            .call::<msg::KeepAlive>(&msg::LeaseRequest { lease, ttl_ms: 0 })
            .await?;
        check(resp.status)?;
        Ok(Duration::from_millis(resp.ttl_ms))
    }

    pub async fn revoke_lease(&self, lease: u64) -> Result<(), ClientError> {
        let resp = self
            .rpc
            .call::<msg::RevokeLease>(&msg::LeaseRequest { lease, ttl_ms: 0 })
            .await?;
        check(resp.status)
    }

    /// Long-polls for changes under `prefix` after `after`; returns the events and the
    /// revision to pass next time.
    pub async fn watch(
        &self,
        prefix: &str,
        after: u64,
        timeout: Duration,
    ) -> Result<(Vec<msg::EventData>, u64), ClientError> {
        let req = msg::WatchRequest {
            prefix: prefix.into(),
            after_revision: after,
            timeout_ms: timeout.as_millis() as u64,
        };
        let resp = self
            .rpc
            .call_with_timeout::<msg::Watch>(&req, timeout + Duration::from_secs(10))
            .await?;
        check(resp.status)?;
        Ok((resp.events, resp.revision))
    }
}
