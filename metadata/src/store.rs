//! [`MetadataStore`]: the client-facing handle. Each call becomes a proposal (writes) or a
//! ReadIndex round followed by a local read (reads) on the node's loop; see [`crate::node`].
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::command::{Command, Response};
use crate::error::MetadataError;
use crate::shared::{Request, Shared};
use crate::types::{Event, Expect, KeyValue, LeaseId, Op, Revision};

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;
/// Largest value accepted, in bytes (like etcd's request limit, metadata is not a blob store).
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most ops in one `batch`.
pub const MAX_BATCH_OPS: usize = 1024;
/// Most keys one [`MetadataStore::range`] page returns.
pub const MAX_RANGE_KEYS: usize = 1024;

/// One page of a key range: keys under `prefix` within `[start, end)` (empty = open),
/// at most `limit` of them (clamped to `1..=MAX_RANGE_KEYS`), from the low end or, with
/// `reverse`, from the high end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeQuery {
    pub prefix: String,
    pub start: String,
    pub end: String,
    pub limit: usize,
    pub reverse: bool,
}

/// Handle to a running node. Cheap to clone; every method may be called concurrently.
///
/// Writes and reads must be sent to the leader: a follower answers
/// `NotLeader { leader }`. `watch` and `revision` are served by any node from what it has
/// applied.
#[derive(Clone)]
pub struct MetadataStore {
    shared: Arc<Shared>,
}

impl MetadataStore {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        MetadataStore { shared }
    }

    /// Linearizable read of one key.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        self.with_timeout(async {
            self.read_barrier().await?;
            self.shared.sm.get(key)
        })
        .await
    }

    /// Linearizable read of every key starting with `prefix`, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>, MetadataError> {
        Ok(self.list_with_revision(prefix).await?.0)
    }

    /// Like [`MetadataStore::list`], plus the revision the listing reflects: pass it to
    /// [`MetadataStore::watch`] to follow changes from exactly there.
    pub async fn list_with_revision(
        &self,
        prefix: &str,
    ) -> Result<(Vec<KeyValue>, Revision), MetadataError> {
        self.with_timeout(async {
            self.read_barrier().await?;
            self.shared.sm.list(prefix)
        })
        .await
    }

    /// Linearizable read of one page of keys under `prefix` (see [`RangeQuery`]), and whether
    /// more keys lie past the page.
    pub async fn range(&self, q: &RangeQuery) -> Result<(Vec<KeyValue>, bool), MetadataError> {
        let limit = q.limit.clamp(1, MAX_RANGE_KEYS);
        self.with_timeout(async {
            self.read_barrier().await?;
            self.shared
                .sm
                .range(&q.prefix, &q.start, &q.end, limit, q.reverse)
        })
        .await
    }

    /// Writes `key` if `expect` holds; returns the key's new state (its `mod_revision` is the
    /// version for the next compare-and-set). `lease` attaches the key to a lease.
    pub async fn put(
        &self,
        key: &str,
        value: Bytes,
        expect: Expect,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue, MetadataError> {
        let op = Op::Put {
            key: key.to_owned(),
            value,
            expect,
            lease,
        };
        match self.batch(vec![op]).await?.pop() {
            Some(Some(kv)) => Ok(kv),
            _ => Err(internal("put returned no key")),
        }
    }

    /// Deletes `key` if `expect` holds; `Ok(false)` if there was nothing to delete.
    pub async fn delete(&self, key: &str, expect: Expect) -> Result<bool, MetadataError> {
        let op = Op::Delete {
            key: key.to_owned(),
            expect,
        };
        match self.batch(vec![op]).await?.pop() {
            Some(prev) => Ok(prev.is_some()),
            None => Err(internal("delete returned no result")),
        }
    }

    /// Applies all `ops` atomically. Every expectation is checked against the state before
    /// the batch; if one fails nothing is applied and `Conflict` names the first failing key
    /// (in op order). A put with an unknown lease fails the whole batch with
    /// `LeaseNotFound`. Ops apply in order, so a later op on the same key sees the earlier
    /// one. Results, per op: `Put` gives `Some(new state)`; `Delete` gives the deleted key's
    /// previous state, or `None` if it did not exist. All writes share one revision.
    pub async fn batch(&self, ops: Vec<Op>) -> Result<Vec<Option<KeyValue>>, MetadataError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        if ops.len() > MAX_BATCH_OPS {
            return Err(invalid(format!(
                "batch of {} ops exceeds {MAX_BATCH_OPS}",
                ops.len()
            )));
        }
        for op in &ops {
            validate_key(op.key())?;
            if let Op::Put { value, .. } = op {
                if value.len() > MAX_VALUE_BYTES {
                    return Err(invalid(format!(
                        "value of {} bytes exceeds {MAX_VALUE_BYTES}",
                        value.len()
                    )));
                }
            }
        }
        match self.propose(Command::Txn(ops)).await? {
            Response::Txn(results) => Ok(results),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes every key starting with `prefix` (all of them if it is empty) in one
    /// revision; returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, MetadataError> {
        if prefix.len() > MAX_KEY_BYTES {
            return Err(invalid("prefix too long".into()));
        }
        match self
            .propose(Command::DeletePrefix(prefix.to_owned()))
            .await?
        {
            Response::Deleted(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// Creates a lease that expires `ttl` after the last keep-alive (rounded to whole
    /// milliseconds; expiry is checked every raft tick, so it can be up to one tick late).
    pub async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ttl_ms == 0 {
            return Err(invalid("lease TTL must be at least 1 ms".into()));
        }
        match self.propose(Command::GrantLease { ttl_ms }).await? {
            Response::Lease(id) => Ok(id),
            other => Err(unexpected(&other)),
        }
    }

    /// Pushes the lease's deadline to now + TTL and returns the TTL. Costs no log write (the
    /// deadline lives in the leader's memory), only a ReadIndex round so that the answer is
    /// current. `LeaseNotFound` once the lease is revoked, expired, or being expired.
    pub async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, MetadataError> {
        self.with_timeout(async {
            self.read_barrier().await?;
            if !self
                .shared
                .is_leader
                .load(std::sync::atomic::Ordering::Acquire)
            {
                return Err(self.shared.not_leader());
            }
            self.shared
                .leases
                .keep_alive(lease, Instant::now())
                .ok_or(MetadataError::LeaseNotFound(lease))
        })
        .await
    }

    /// Revokes the lease and deletes every key attached to it (with `Delete` events).
    pub async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        match self.propose(Command::RevokeLease(lease)).await? {
            Response::LeaseGone => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Long-poll: events under `prefix` with revision `> after`, in revision order, waiting up
    /// to `timeout` for at least one. Returns them with the revision the caller is now caught
    /// up to: call again with it as `after`. An empty result means the timeout passed.
    /// `Compacted { oldest }` if events after `after` are no longer in memory: re-list with
    /// [`MetadataStore::list_with_revision`] and watch from its revision. Served from this
    /// node's applied state (any node, not only the leader).
    pub async fn watch(
        &self,
        prefix: &str,
        after: Revision,
        timeout: Duration,
    ) -> Result<(Vec<Event>, Revision), MetadataError> {
        self.shared.watch.wait(prefix, after, timeout).await
    }

    /// The latest revision this node has applied (not a linearizable read).
    pub fn revision(&self) -> Revision {
        self.shared.sm.revision()
    }

    /// This node's own copy of a key, without a read barrier (tests look at followers).
    #[cfg(test)]
    pub(crate) fn local_get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        self.shared.sm.get(key)
    }

    async fn propose(&self, cmd: Command) -> Result<Response, MetadataError> {
        let data = cmd.encode();
        self.with_timeout(self.call(|reply| Request::Propose { data, reply }))
            .await
    }

    /// Waits until this node has applied everything committed when the call started, as
    /// confirmed by the leader's quorum (ReadIndex): local reads after it are linearizable.
    async fn read_barrier(&self) -> Result<(), MetadataError> {
        let index = self.call(|reply| Request::ReadIndex { reply }).await?;
        let mut applied = self.shared.applied.clone();
        applied
            .wait_for(|a| *a >= index)
            .await
            .map_err(|_| MetadataError::ShuttingDown)?;
        Ok(())
    }

    async fn call<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, MetadataError>>) -> Request,
    ) -> Result<T, MetadataError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .requests
            .send(request(tx))
            .await
            .map_err(|_| MetadataError::ShuttingDown)?;
        rx.await.map_err(|_| MetadataError::ShuttingDown)?
    }

    async fn with_timeout<T>(
        &self,
        fut: impl Future<Output = Result<T, MetadataError>>,
    ) -> Result<T, MetadataError> {
        tokio::time::timeout(self.shared.request_timeout, fut)
            .await
            .unwrap_or(Err(MetadataError::Timeout))
    }
}

fn validate_key(key: &str) -> Result<(), MetadataError> {
    if key.is_empty() {
        return Err(invalid("empty key".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid(format!(
            "key of {} bytes exceeds {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

fn invalid(msg: String) -> MetadataError {
    MetadataError::InvalidArgument(msg)
}

fn internal(msg: &str) -> MetadataError {
    MetadataError::Storage(format!("internal: {msg}"))
}

fn unexpected(resp: &Response) -> MetadataError {
    internal(&format!("unexpected response {resp:?}"))
}
