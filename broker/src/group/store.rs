//! Durable storage for the group coordinator: the [`GroupStore`] trait the broker implements
//! over the metadata store, the values it stores ([`CommittedOffset`], [`PersistedGroup`]) and
//! their versioned binary encodings.
//!
//! # Encodings
//!
//! All integers are big-endian. A string is an `i32` byte length followed by UTF-8 bytes; a
//! nullable string uses length `-1` for null. A byte array is an `i32` length followed by the
//! bytes. Every value starts with a `u16` format version; a decoder rejects versions it does
//! not know and trailing bytes.
//!
//! `CommittedOffset` (version 1):
//! `u16 version=1, string topic, i32 partition, i64 offset, i32 leader_epoch,
//! nullable-string metadata, i64 commit_timestamp_ms`.
//!
//! `PersistedGroup` (version 1):
//! `u16 version=1, nullable-string protocol_type, i32 generation, nullable-string
//! protocol_name, nullable-string leader, i64 current_state_timestamp_ms, i32 member_count`,
//! then per member: `string member_id, nullable-string group_instance_id, string client_id,
//! string client_host, i32 rebalance_timeout_ms, i32 session_timeout_ms, bytes subscription,
//! bytes assignment`.
//!
//! The group id is not inside either value: the store keys values by group (and by
//! topic/partition for offsets) and hands the group id back from `load_*`.

use std::future::Future;

use bytes::Bytes;

/// Why a store operation failed. The coordinator maps these to Kafka error codes the way
/// Kafka maps log-append failures of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Transient: the store cannot take writes now (no quorum, timeout). Clients get
    /// `COORDINATOR_NOT_AVAILABLE` and retry.
    #[error("group store unavailable: {0}")]
    Unavailable(String),
    /// This broker may no longer write for the group (lease lost, fenced). Clients get
    /// `NOT_COORDINATOR` and look the coordinator up again.
    #[error("not the group coordinator: {0}")]
    NotCoordinator(String),
    /// The value is too large for the store. Offset commits get
    /// `INVALID_COMMIT_OFFSET_SIZE`, group writes `UNKNOWN_SERVER_ERROR`.
    #[error("value too large for the group store: {0}")]
    TooLarge(String),
    /// A stored value could not be decoded.
    #[error("corrupt group store value: {0}")]
    Corrupt(String),
    /// Anything else (`UNKNOWN_SERVER_ERROR`).
    #[error("group store error: {0}")]
    Other(String),
}

/// One committed offset of a group, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// `-1` when the client did not send one.
    pub leader_epoch: i32,
    /// `None` when the client committed a null metadata string.
    pub metadata: Option<String>,
    /// Wall-clock time of the commit on the coordinator, in ms since the Unix epoch.
    pub commit_timestamp_ms: i64,
}

/// A group member as persisted (Kafka's `GroupMetadataValue` member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's protocol metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// The durable part of a classic group: what survives a coordinator restart. Written when a
/// generation's assignment is stored (SyncGroup from the leader), when the group becomes
/// empty, and when a static member is replaced without a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedGroup {
    /// `None` for groups that only store offsets (simple consumers).
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state, ms since the Unix epoch (offset retention
    /// of empty groups counts from here).
    pub current_state_timestamp_ms: i64,
    pub members: Vec<PersistedMember>,
}

/// Durable storage for groups; the broker implements it over the Raft metadata store.
///
/// Calls for one group are issued one at a time, in order (the coordinator serialises
/// writes per group), so an implementation may batch calls of different groups freely.
pub trait GroupStore: Send + Sync + 'static {
    /// Stores the offsets of one request (possibly several merged requests) atomically,
    /// replacing earlier values of the same (topic, partition).
    fn commit_offsets(
        &self,
        group: &str,
        offsets: Vec<CommittedOffset>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every stored offset of every group.
    fn load_offsets(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, CommittedOffset)>, StoreError>> + Send;
    /// Removes the offsets of some partitions of a group (offset retention).
    fn delete_offsets(
        &self,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes a group: its metadata and all its offsets.
    fn delete_group(&self, group: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replaces the persisted metadata of a group.
    fn save_group(
        &self,
        group: &str,
        state: PersistedGroup,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every persisted group.
    fn load_groups(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, PersistedGroup)>, StoreError>> + Send;
}

/// Current format version of [`CommittedOffset::to_bytes`].
pub const COMMITTED_OFFSET_VERSION: u16 = 1;
/// Current format version of [`PersistedGroup::to_bytes`].
pub const PERSISTED_GROUP_VERSION: u16 = 1;

impl CommittedOffset {
    /// Encodes the value (format described in the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(
            32 + self.topic.len() + self.metadata.as_ref().map_or(0, String::len),
        );
        w.u16(COMMITTED_OFFSET_VERSION);
        w.str(&self.topic);
        w.i32(self.partition);
        w.i64(self.offset);
        w.i32(self.leader_epoch);
        w.opt_str(self.metadata.as_deref());
        w.i64(self.commit_timestamp_ms);
        w.buf
    }

    /// Decodes a value written by [`CommittedOffset::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(bytes);
        let version = r.u16()?;
        if version != COMMITTED_OFFSET_VERSION {
            return Err(StoreError::Corrupt(format!(
                "unsupported committed offset version {version}"
            )));
        }
        let value = CommittedOffset {
            topic: r.str()?,
            partition: r.i32()?,
            offset: r.i64()?,
            leader_epoch: r.i32()?,
            metadata: r.opt_str()?,
            commit_timestamp_ms: r.i64()?,
        };
        r.finish()?;
        Ok(value)
    }
}

impl PersistedGroup {
    /// Encodes the value (format described in the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        w.u16(PERSISTED_GROUP_VERSION);
        w.opt_str(self.protocol_type.as_deref());
        w.i32(self.generation);
        w.opt_str(self.protocol_name.as_deref());
        w.opt_str(self.leader.as_deref());
        w.i64(self.current_state_timestamp_ms);
        w.len(self.members.len());
        for m in &self.members {
            w.str(&m.member_id);
            w.opt_str(m.group_instance_id.as_deref());
            w.str(&m.client_id);
            w.str(&m.client_host);
            w.i32(m.rebalance_timeout_ms);
            w.i32(m.session_timeout_ms);
            w.bytes(&m.subscription);
            w.bytes(&m.assignment);
        }
        w.buf
    }

    /// Decodes a value written by [`PersistedGroup::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(bytes);
        let version = r.u16()?;
        if version != PERSISTED_GROUP_VERSION {
            return Err(StoreError::Corrupt(format!(
                "unsupported persisted group version {version}"
            )));
        }
        let protocol_type = r.opt_str()?;
        let generation = r.i32()?;
        let protocol_name = r.opt_str()?;
        let leader = r.opt_str()?;
        let current_state_timestamp_ms = r.i64()?;
        // Each member takes at least 4 * 8 bytes, which bounds the count by the input size.
        let count = r.count(32)?;
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            members.push(PersistedMember {
                member_id: r.str()?,
                group_instance_id: r.opt_str()?,
                client_id: r.str()?,
                client_host: r.str()?,
                rebalance_timeout_ms: r.i32()?,
                session_timeout_ms: r.i32()?,
                subscription: Bytes::from(r.bytes()?),
                assignment: Bytes::from(r.bytes()?),
            });
        }
        r.finish()?;
        Ok(PersistedGroup {
            protocol_type,
            generation,
            protocol_name,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn len(&mut self, n: usize) {
        // Lengths come from Kafka strings/arrays, which are bounded far below i32::MAX.
        self.i32(i32::try_from(n).unwrap_or(i32::MAX));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.i32(-1),
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.buf.len() < n {
            return Err(StoreError::Corrupt("value truncated".into()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, StoreError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    /// An element count, checked against the bytes left (each element at least `min_size`).
    fn count(&mut self, min_size: usize) -> Result<usize, StoreError> {
        let n = self.i32()?;
        let n = usize::try_from(n).map_err(|_| StoreError::Corrupt("negative count".into()))?;
        if n.saturating_mul(min_size) > self.buf.len() {
            return Err(StoreError::Corrupt("count exceeds value size".into()));
        }
        Ok(n)
    }
    fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, StoreError> {
        let n = self.i32()?;
        if n == -1 {
            return Ok(None);
        }
        let n = usize::try_from(n).map_err(|_| StoreError::Corrupt("negative length".into()))?;
        Ok(Some(self.take(n)?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, StoreError> {
        match self.opt_bytes()? {
            Some(b) => Ok(b.to_vec()),
            None => Err(StoreError::Corrupt("unexpected null bytes".into())),
        }
    }
    fn opt_str(&mut self) -> Result<Option<String>, StoreError> {
        match self.opt_bytes()? {
            Some(b) => std::str::from_utf8(b)
                .map(|s| Some(s.to_owned()))
                .map_err(|_| StoreError::Corrupt("invalid UTF-8".into())),
            None => Ok(None),
        }
    }
    fn str(&mut self) -> Result<String, StoreError> {
        self.opt_str()?
            .ok_or_else(|| StoreError::Corrupt("unexpected null string".into()))
    }
    fn finish(&self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "{} trailing bytes",
                self.buf.len()
            )))
        }
    }
}

#[cfg(test)]
pub(crate) use memory::MemoryGroupStore;

#[cfg(test)]
mod memory {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::{CommittedOffset, GroupStore, PersistedGroup, StoreError};

    /// In-memory store for unit tests. Values go through the real encodings. Cloning shares
    /// the contents, so a second coordinator over a clone sees what the first one wrote.
    #[derive(Clone, Default)]
    pub(crate) struct MemoryGroupStore {
        inner: Arc<Inner>,
    }

    #[derive(Default)]
    struct Inner {
        offsets: Mutex<BTreeMap<(String, String, i32), Vec<u8>>>,
        groups: Mutex<BTreeMap<String, Vec<u8>>>,
        fail_writes: AtomicBool,
        commit_calls: AtomicUsize,
        save_calls: AtomicUsize,
    }

    impl MemoryGroupStore {
        pub(crate) fn new() -> Self {
            Self::default()
        }
        /// Makes every later write fail with `StoreError::Unavailable` (or succeed again).
        pub(crate) fn set_fail_writes(&self, fail: bool) {
            self.inner.fail_writes.store(fail, Ordering::SeqCst);
        }
        pub(crate) fn commit_calls(&self) -> usize {
            self.inner.commit_calls.load(Ordering::SeqCst)
        }
        pub(crate) fn save_calls(&self) -> usize {
            self.inner.save_calls.load(Ordering::SeqCst)
        }
        pub(crate) fn group(&self, group: &str) -> Option<PersistedGroup> {
            let groups = self.inner.groups.lock();
            groups
                .get(group)
                .and_then(|v| PersistedGroup::from_bytes(v).ok())
        }
        pub(crate) fn offset_count(&self, group: &str) -> usize {
            self.inner
                .offsets
                .lock()
                .keys()
                .filter(|(g, _, _)| g == group)
                .count()
        }
        fn check(&self) -> Result<(), StoreError> {
            if self.inner.fail_writes.load(Ordering::SeqCst) {
                Err(StoreError::Unavailable("injected failure".into()))
            } else {
                Ok(())
            }
        }
    }

    impl GroupStore for MemoryGroupStore {
        async fn commit_offsets(
            &self,
            group: &str,
            offsets: Vec<CommittedOffset>,
        ) -> Result<(), StoreError> {
            self.inner.commit_calls.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            let mut map = self.inner.offsets.lock();
            for o in offsets {
                map.insert(
                    (group.to_owned(), o.topic.clone(), o.partition),
                    o.to_bytes(),
                );
            }
            Ok(())
        }

        async fn load_offsets(&self) -> Result<Vec<(String, CommittedOffset)>, StoreError> {
            let map = self.inner.offsets.lock();
            map.iter()
                .map(|((g, _, _), v)| Ok((g.clone(), CommittedOffset::from_bytes(v)?)))
                .collect()
        }

        async fn delete_offsets(
            &self,
            group: &str,
            partitions: Vec<(String, i32)>,
        ) -> Result<(), StoreError> {
            self.check()?;
            let mut map = self.inner.offsets.lock();
            for (topic, partition) in partitions {
                map.remove(&(group.to_owned(), topic, partition));
            }
            Ok(())
        }

        async fn delete_group(&self, group: &str) -> Result<(), StoreError> {
            self.check()?;
            self.inner.offsets.lock().retain(|(g, _, _), _| g != group);
            self.inner.groups.lock().remove(group);
            Ok(())
        }

        async fn save_group(&self, group: &str, state: PersistedGroup) -> Result<(), StoreError> {
            self.inner.save_calls.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            self.inner
                .groups
                .lock()
                .insert(group.to_owned(), state.to_bytes());
            Ok(())
        }

        async fn load_groups(&self) -> Result<Vec<(String, PersistedGroup)>, StoreError> {
            let groups = self.inner.groups.lock();
            groups
                .iter()
                .map(|(g, v)| Ok((g.clone(), PersistedGroup::from_bytes(v)?)))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_offset_round_trip() {
        for metadata in [None, Some(String::new()), Some("abc \u{e9}".to_owned())] {
            let o = CommittedOffset {
                topic: "t".into(),
                partition: 7,
                offset: 1 << 40,
                leader_epoch: -1,
                metadata,
                commit_timestamp_ms: 1_700_000_000_000,
            };
            let b = o.to_bytes();
            assert_eq!(&b[..2], &[0, 1]);
            assert_eq!(CommittedOffset::from_bytes(&b), Ok(o));
        }
    }

    #[test]
    fn persisted_group_round_trip_and_corruption() {
        let g = PersistedGroup {
            protocol_type: Some("consumer".into()),
            generation: 3,
            protocol_name: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 42,
            members: vec![PersistedMember {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 1000,
                session_timeout_ms: 6000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::new(),
            }],
        };
        let b = g.to_bytes();
        assert_eq!(PersistedGroup::from_bytes(&b), Ok(g.clone()));
        // Every truncation is an error, never a panic.
        for n in 0..b.len() {
            assert!(PersistedGroup::from_bytes(&b[..n]).is_err());
        }
        let mut extra = b.clone();
        extra.push(0);
        assert!(PersistedGroup::from_bytes(&extra).is_err());
        let mut bad_version = b;
        bad_version[1] = 9;
        assert!(PersistedGroup::from_bytes(&bad_version).is_err());
        // A huge member count does not allocate.
        let empty = PersistedGroup {
            members: vec![],
            ..g
        };
        let mut huge = empty.to_bytes();
        let n = huge.len();
        huge[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(PersistedGroup::from_bytes(&huge).is_err());
    }
}
