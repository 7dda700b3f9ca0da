//! Client of the metadata service: compare-and-set key-value, leases, watches.
use std::time::Duration;

use bytes::Bytes;
use stratalog_protocol::internal::metadata::{
    self as msg, ExpectData, KeyValueData, MetaCode, MetaStatus, OpData,
};
use stratalog_runtime::rpc::{RpcClient, RpcError, RpcOptions};

pub type KeyValue = KeyValueData;

/// A compare-and-set condition on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Any,
    Absent,
    /// The key exists with exactly this `mod_revision`.
    Revision(u64),
}

impl From<Expect> for ExpectData {
    fn from(e: Expect) -> ExpectData {
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
}

/// One write of an atomic batch.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        key: String,
        value: Bytes,
        expect: Expect,
        lease: Option<u64>,
    },
    Delete {
        key: String,
        expect: Expect,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
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

fn check(status: MetaStatus) -> Result<(), MetaError> {
    match status.code() {
        MetaCode::Ok => Ok(()),
        MetaCode::Conflict => Err(MetaError::Conflict {
            key: status.key,
            current: status.current.map(Box::new),
        }),
        MetaCode::LeaseNotFound => Err(MetaError::LeaseNotFound(status.hint.unwrap_or(0))),
        MetaCode::Compacted => Err(MetaError::Compacted {
            oldest: status.hint.unwrap_or(0),
        }),
        code => Err(MetaError::Service {
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

    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetaError> {
        let resp = self
            .rpc
            .call::<msg::Get>(&msg::KeyRequest { key: key.into() })
            .await?;
        check(resp.status)?;
        Ok(resp.kv)
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>, MetaError> {
        let resp = self
            .rpc
            .call::<msg::List>(&msg::KeyRequest { key: prefix.into() })
            .await?;
        check(resp.status)?;
        Ok(resp.kvs)
    }

    pub async fn put(
        &self,
        key: &str,
        value: Bytes,
        expect: Expect,
        lease: Option<u64>,
    ) -> Result<KeyValue, MetaError> {
        let req = msg::PutRequest {
            key: key.into(),
            value,
            expect: expect.into(),
            lease,
        };
        let resp = self.rpc.call::<msg::Put>(&req).await?;
        check(resp.status)?;
        resp.kv.ok_or_else(|| MetaError::Service {
            code: MetaCode::Other,
            message: "put returned no value".into(),
        })
    }

    pub async fn delete(&self, key: &str, expect: Expect) -> Result<bool, MetaError> {
        let resp = self
            .rpc
            .call::<msg::Delete>(&msg::DeleteRequest {
                key: key.into(),
                expect: expect.into(),
            })
            .await?;
        check(resp.status)?;
        Ok(resp.count > 0)
    }

    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, MetaError> {
        let resp = self
            .rpc
            .call::<msg::DeletePrefix>(&msg::KeyRequest { key: prefix.into() })
            .await?;
        check(resp.status)?;
        Ok(resp.count)
    }

    /// Applies every op or none; the result of each put is its new key-value.
    pub async fn batch(&self, ops: Vec<Op>) -> Result<Vec<Option<KeyValue>>, MetaError> {
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
                    expect: expect.into(),
                    lease,
                },
                Op::Delete { key, expect } => OpData {
                    delete: true,
                    key,
                    value: Bytes::new(),
                    expect: expect.into(),
                    lease: None,
                },
            })
            .collect();
        let resp = self
            .rpc
            .call::<msg::Batch>(&msg::BatchRequest { ops })
            .await?;
        check(resp.status)?;
        Ok(resp.results)
    }

    pub async fn grant_lease(&self, ttl: Duration) -> Result<u64, MetaError> {
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

    pub async fn keep_alive(&self, lease: u64) -> Result<Duration, MetaError> {
        let resp = self
            .rpc
            .call::<msg::KeepAlive>(&msg::LeaseRequest { lease, ttl_ms: 0 })
            .await?;
        check(resp.status)?;
        Ok(Duration::from_millis(resp.ttl_ms))
    }

    pub async fn revoke_lease(&self, lease: u64) -> Result<(), MetaError> {
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
    ) -> Result<(Vec<msg::EventData>, u64), MetaError> {
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
