//! The deterministic state machine: applies committed commands to the `state` tree (see
//! [`crate::layout`]), keeps the store revision, and owns the persistent side of leases.
//!
//! Every replica applies the same entries in the same order and must reach the same state,
//! so nothing here looks at clocks, leadership or anything else outside the entry and the
//! tree. Lease deadlines therefore live elsewhere ([`crate::lease`]): here a lease is only a
//! record with a TTL, and it dies through an explicit `RevokeLease`/`ExpireLease` entry.
//!
//! A run of entries (all those committed in one raft Ready) is one `sled::Batch`, including
//! the new applied index, so a crash leaves the state at an entry boundary. The write half of `lock` is held while a batch applies and the
//! read half by multi-key readers (`list`, `snapshot`), because sled makes a batch atomic on
//! disk but not to concurrent iterators.
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use tracing::warn;

use crate::codec::{put_bytes, put_u64, put_u8, Reader};
use crate::command::{Command, Response};
use crate::error::MetadataError;
use crate::layout::{self, APPLIED_KEY, REVISION_KEY};
use crate::types::{Event, EventKind, KeyValue, LeaseId, Op, Revision};

/// What applying one entry produced.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The command's outcome for its proposer (a failed expectation is an `Err` here, but the
    /// entry is still applied: it just changes nothing but the applied index).
    pub result: Result<Response, MetadataError>,
    pub events: Vec<Event>,
    pub lease_changes: Vec<LeaseChange>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum LeaseChange {
    Granted { id: LeaseId, ttl: Duration },
    Removed(LeaseId),
}

pub(crate) struct StateMachine {
    tree: sled::Tree,
    lock: RwLock<()>,
    applied: AtomicU64,
    revision: AtomicU64,
    keys: AtomicU64,
}

impl StateMachine {
    pub(crate) fn open(tree: sled::Tree) -> Result<Self, MetadataError> {
        let sm = StateMachine {
            tree,
            lock: RwLock::new(()),
            applied: AtomicU64::new(0),
            revision: AtomicU64::new(0),
            keys: AtomicU64::new(0),
        };
        sm.reload()?;
        Ok(sm)
    }

    /// Re-reads the counters cached in memory from the tree (at open and after a restore).
    fn reload(&self) -> Result<(), MetadataError> {
        let read_u64 = |key: &[u8]| -> Result<u64, MetadataError> {
            match self.tree.get(key)? {
                Some(v) => Ok(layout::decode_u64(&v)?),
                None => Ok(0),
            }
        };
        self.applied
            .store(read_u64(APPLIED_KEY)?, Ordering::Release);
        self.revision
            .store(read_u64(REVISION_KEY)?, Ordering::Release);
        let mut keys = 0u64;
        for item in self.tree.scan_prefix([layout::KV_PREFIX]) {
            item?;
            keys += 1;
        }
        self.keys.store(keys, Ordering::Release);
        Ok(())
    }

    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Raft index of the last applied entry.
    pub(crate) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    pub(crate) fn revision(&self) -> Revision {
        self.revision.load(Ordering::Acquire)
    }

    pub(crate) fn key_count(&self) -> u64 {
        self.keys.load(Ordering::Acquire)
    }

    /// Applies an entry that carries no command (the leader's empty entry, a conf change):
    /// only the applied index moves.
    pub(crate) fn apply_noop(&self, index: u64) -> Result<(), MetadataError> {
        let _w = self.lock.write();
        self.tree
            .insert(APPLIED_KEY, &layout::encode_u64(index))
            .map_err(MetadataError::from)?;
        self.applied.store(index, Ordering::Release);
        Ok(())
    }

    /// Applies a run of committed entries (`data` is `None` for entries without a command)
    /// as one sled batch, together with the new applied index: far cheaper than a batch per
    /// entry, and just as atomic (after a crash the state is at the start or the end of the
    /// run, never inside an entry). Commands see the effects of earlier ones in the run.
    /// Returns one item per entry, `None` for those without a command. The outer `Err` is a
    /// local storage failure (the node cannot go on); command-level failures are in
    /// [`Applied::result`].
    pub(crate) fn apply_entries(
        &self,
        entries: &[(u64, Option<&[u8]>)],
    ) -> Result<Vec<Option<Applied>>, MetadataError> {
        let Some(&(last_index, _)) = entries.last() else {
            return Ok(Vec::new());
        };
        let _w = self.lock.write();
        let start_revision = self.revision();
        let mut changes = Changes::new(&self.tree, start_revision);
        let mut out = Vec::with_capacity(entries.len());
        for &(index, data) in entries {
            out.push(match data {
                Some(data) => Some(changes.apply_command(index, data)?),
                None => None,
            });
        }
        let Changes {
            mut batch,
            revision,
            keys_delta,
            ..
        } = changes;
        if revision != start_revision {
            batch.insert(REVISION_KEY, &layout::encode_u64(revision));
        }
        batch.insert(APPLIED_KEY, &layout::encode_u64(last_index));
        self.tree.apply_batch(batch)?;
        self.applied.store(last_index, Ordering::Release);
        self.revision.store(revision, Ordering::Release);
        let keys = self.key_count().saturating_add_signed(keys_delta);
        self.keys.store(keys, Ordering::Release);
        Ok(out)
    }

    /// One command as its own run (tests drive the state machine entry by entry).
    #[cfg(test)]
    pub(crate) fn apply(&self, index: u64, data: &[u8]) -> Result<Applied, MetadataError> {
        self.apply_entries(&[(index, Some(data))])?
            .pop()
            .flatten()
            .ok_or_else(|| MetadataError::Storage("no result".into()))
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        get_kv(&self.tree, key)
    }

    /// All keys under `prefix`, sorted, and the revision they reflect.
    pub(crate) fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), MetadataError> {
        let _r = self.lock.read();
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(layout::kv_key(prefix)) {
            let (k, v) = item?;
            out.push(layout::decode_kv(layout::user_key(&k)?, &v)?);
        }
        Ok((out, self.revision()))
    }

    /// At most `limit` keys under `prefix` in `[start, end)` (an empty `start`/`end` leaves
    /// that side open), in key order or `reverse`d, and whether more keys lie past the last
    /// one returned. `start` and `end` are whole keys, so callers page by passing the last
    /// key they got (with `\0` appended going forward, as the new `end` going backward).
    pub(crate) fn range(
        &self,
        prefix: &str,
        start: &str,
        end: &str,
        limit: usize,
        reverse: bool,
    ) -> Result<(Vec<KeyValue>, bool), MetadataError> {
        let _r = self.lock.read();
        let lower = layout::kv_key(if start.is_empty() || *start < *prefix {
            prefix
        } else {
            start
        });
        let prefix_upper = prefix_end(&layout::kv_key(prefix));
        let upper = match (end.is_empty(), prefix_upper) {
            (true, upper) => upper,
            (false, Some(p)) => Some(p.min(layout::kv_key(end))),
            (false, None) => Some(layout::kv_key(end)),
        };
        let iter = match upper {
            Some(upper) => self.tree.range(lower..upper),
            None => self.tree.range(lower..),
        };
        let wanted = layout::kv_key(prefix);
        let mut iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if reverse
        {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        let mut out = Vec::new();
        for item in iter.by_ref() {
            let (k, v) = item?;
            if !k.starts_with(&wanted) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(layout::decode_kv(layout::user_key(&k)?, &v)?);
        }
        Ok((out, false))
    }

    /// Every lease and its TTL.
    pub(crate) fn leases(&self) -> Result<Vec<(LeaseId, Duration)>, MetadataError> {
        let _r = self.lock.read();
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([layout::LEASE_PREFIX]) {
            let (k, v) = item?;
            let ttl_ms = layout::decode_lease(&v)?;
            out.push((layout::lease_id(&k)?, Duration::from_millis(ttl_ms)));
        }
        Ok(out)
    }

    /// Serializes the whole tree, returning it with the applied index it reflects.
    pub(crate) fn snapshot(&self) -> Result<(u64, Vec<u8>), MetadataError> {
        let _r = self.lock.read();
        let mut pairs = Vec::new();
        let mut count = 0u64;
        for item in self.tree.iter() {
            let (k, v) = item?;
            put_bytes(&mut pairs, &k);
            put_bytes(&mut pairs, &v);
            count += 1;
        }
        let mut data = Vec::with_capacity(pairs.len() + 9);
        put_u8(&mut data, layout::SNAPSHOT_VERSION);
        put_u64(&mut data, count);
        data.extend_from_slice(&pairs);
        Ok((self.applied(), data))
    }

    /// Replaces the whole state with a snapshot taken at raft index `index`. The batch that
    /// does it is handed to `commit`, which applies it (together with the raft tree's side of
    /// the install) atomically; in-memory counters are reloaded afterwards.
    pub(crate) fn restore(
        &self,
        data: &[u8],
        index: u64,
        commit: impl FnOnce(&sled::Batch) -> Result<(), MetadataError>,
    ) -> Result<(), MetadataError> {
        let mut r = Reader::new(data);
        let version = r.u8("snapshot version")?;
        if version != layout::SNAPSHOT_VERSION {
            return Err(crate::codec::CodecError::UnsupportedVersion {
                what: "snapshot",
                version,
            }
            .into());
        }
        let count = r.u64("snapshot count")?;
        let mut pairs = Vec::with_capacity(r.capacity_hint(count, 8));
        for _ in 0..count {
            let k = r.bytes("snapshot key")?;
            let v = r.bytes("snapshot value")?;
            pairs.push((k, v));
        }
        r.finish()?;

        let _w = self.lock.write();
        let mut batch = sled::Batch::default();
        // Later writes to the same key win within a batch, so clearing first and then
        // inserting the snapshot yields exactly the snapshot's contents.
        for item in self.tree.iter() {
            let (k, _) = item?;
            batch.remove(k);
        }
        for (k, v) in pairs {
            batch.insert(k, v);
        }
        batch.insert(APPLIED_KEY, &layout::encode_u64(index));
        commit(&batch)?;
        self.reload()
    }
}

fn get_kv(tree: &sled::Tree, key: &str) -> Result<Option<KeyValue>, MetadataError> {
    match tree.get(layout::kv_key(key))? {
        Some(v) => Ok(Some(layout::decode_kv(key.to_owned(), &v)?)),
        None => Ok(None),
    }
}

/// The writes staged by a run of entries, plus overlays so that each command sees the
/// effects of the earlier ones before anything reaches the tree.
///
/// Invariant that makes a single overlay enough: a command either fails before staging
/// anything (expectations, lease existence and decoding are all checked first) or succeeds;
/// only storage errors can interrupt it midway, and those abandon the whole run.
struct Changes<'a> {
    tree: &'a sled::Tree,
    batch: sled::Batch,
    /// Keys written in this run: `None` = deleted.
    kv: HashMap<String, Option<KeyValue>>,
    /// Leases granted (`true`) or dropped (`false`) in this run.
    leases: HashMap<LeaseId, bool>,
    /// Keys attached to a lease in this run (candidates; `current` has the final word).
    attached: HashMap<LeaseId, BTreeSet<String>>,
    /// Revision of the last write in this run (or before it).
    revision: Revision,
    keys_delta: i64,
    /// Output of the command being executed.
    events: Vec<Event>,
    lease_changes: Vec<LeaseChange>,
}

impl<'a> Changes<'a> {
    fn new(tree: &'a sled::Tree, revision: Revision) -> Self {
        Changes {
            tree,
            batch: sled::Batch::default(),
            kv: HashMap::new(),
            leases: HashMap::new(),
            attached: HashMap::new(),
            revision,
            keys_delta: 0,
            events: Vec::new(),
            lease_changes: Vec::new(),
        }
    }

    fn apply_command(&mut self, index: u64, data: &[u8]) -> Result<Applied, MetadataError> {
        let result = match Command::decode(data) {
            Ok(cmd) => execute(self, index, cmd)?,
            Err(e) => {
                // Same bytes on every replica, so every replica rejects it the same way.
                warn!(index, error = %e, "undecodable command in raft log; skipping it");
                Err(MetadataError::Storage(format!(
                    "undecodable command at index {index}: {e}"
                )))
            }
        };
        let events = std::mem::take(&mut self.events);
        let lease_changes = std::mem::take(&mut self.lease_changes);
        if !events.is_empty() {
            self.revision += 1;
        }
        Ok(Applied {
            result,
            events,
            lease_changes,
        })
    }

    /// The revision the current command writes at.
    fn write_revision(&self) -> Revision {
        self.revision + 1
    }

    fn current(&self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        match self.kv.get(key) {
            Some(staged) => Ok(staged.clone()),
            None => get_kv(self.tree, key),
        }
    }

    fn lease_exists(&self, id: LeaseId) -> Result<bool, MetadataError> {
        match self.leases.get(&id) {
            Some(exists) => Ok(*exists),
            None => Ok(self.tree.contains_key(layout::lease_key(id))?),
        }
    }

    fn put(
        &mut self,
        key: &str,
        value: bytes::Bytes,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue, MetadataError> {
        let prev = self.current(key)?;
        let rev = self.write_revision();
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            lease,
        };
        self.batch
            .insert(layout::kv_key(key), layout::encode_kv(&kv));
        let prev_lease = prev.as_ref().and_then(|p| p.lease);
        if prev_lease != lease {
            if let Some(old) = prev_lease {
                self.batch.remove(layout::attach_key(old, key));
            }
            if let Some(new) = lease {
                self.batch.insert(layout::attach_key(new, key), &[]);
                self.attached.entry(new).or_default().insert(key.to_owned());
            }
        }
        if prev.is_none() {
            self.keys_delta += 1;
        }
        self.events.push(Event {
            kind: EventKind::Put,
            kv: kv.clone(),
        });
        self.kv.insert(key.to_owned(), Some(kv.clone()));
        Ok(kv)
    }

    fn delete(&mut self, key: &str) -> Result<Option<KeyValue>, MetadataError> {
        let Some(prev) = self.current(key)? else {
            return Ok(None);
        };
        self.batch.remove(layout::kv_key(key));
        if let Some(lease) = prev.lease {
            self.batch.remove(layout::attach_key(lease, key));
        }
        self.keys_delta -= 1;
        self.events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_owned(),
                value: bytes::Bytes::new(),
                create_revision: 0,
                mod_revision: self.write_revision(),
                lease: None,
            },
        });
        self.kv.insert(key.to_owned(), None);
        Ok(Some(prev))
    }

    /// Keys under `prefix` as of now (tree plus this run's writes), sorted.
    fn keys_with_prefix(&self, prefix: &str) -> Result<BTreeSet<String>, MetadataError> {
        let mut keys = BTreeSet::new();
        for item in self.tree.scan_prefix(layout::kv_key(prefix)) {
            let (k, _) = item?;
            keys.insert(layout::user_key(&k)?);
        }
        for (k, v) in &self.kv {
            if k.starts_with(prefix) && v.is_some() {
                keys.insert(k.clone());
            }
        }
        Ok(keys)
    }

    /// Deletes every key attached to `lease`, then the lease itself.
    fn drop_lease(&mut self, lease: LeaseId) -> Result<(), MetadataError> {
        let mut candidates = self.attached.remove(&lease).unwrap_or_default();
        for item in self.tree.scan_prefix(layout::attach_prefix(lease)) {
            let (k, _) = item?;
            candidates.insert(layout::attached_key(&k)?);
        }
        for key in candidates {
            if self
                .current(&key)?
                .is_some_and(|kv| kv.lease == Some(lease))
            {
                self.delete(&key)?;
            } else {
                // Detached earlier (or a stale index entry): never delete a key that now
                // belongs to someone else, just make sure the index entry is gone.
                self.batch.remove(layout::attach_key(lease, &key));
            }
        }
        self.batch.remove(&layout::lease_key(lease));
        self.leases.insert(lease, false);
        self.lease_changes.push(LeaseChange::Removed(lease));
        Ok(())
    }
}

/// Runs one command against the staged changes. Outer `Err`: storage failure.
fn execute(
    changes: &mut Changes<'_>,
    index: u64,
    cmd: Command,
) -> Result<Result<Response, MetadataError>, MetadataError> {
    match cmd {
        Command::Txn(ops) => {
            // All expectations against the state before the command, in op order, so the
            // conflict names the first failing key.
            for op in &ops {
                let expect = match op {
                    Op::Put { expect, .. } | Op::Delete { expect, .. } => *expect,
                };
                let current = changes.current(op.key())?;
                if !expect.matches(current.as_ref()) {
                    return Ok(Err(MetadataError::Conflict {
                        key: op.key().to_owned(),
                        current,
                    }));
                }
            }
            for op in &ops {
                if let Op::Put {
                    lease: Some(lease), ..
                } = op
                {
                    if !changes.lease_exists(*lease)? {
                        return Ok(Err(MetadataError::LeaseNotFound(*lease)));
                    }
                }
            }
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                results.push(match op {
                    Op::Put {
                        key, value, lease, ..
                    } => Some(changes.put(&key, value, lease)?),
                    Op::Delete { key, .. } => changes.delete(&key)?,
                });
            }
            Ok(Ok(Response::Txn(results)))
        }
        Command::DeletePrefix(prefix) => {
            let keys = changes.keys_with_prefix(&prefix)?;
            let mut deleted = 0;
            for key in keys {
                if changes.delete(&key)?.is_some() {
                    deleted += 1;
                }
            }
            Ok(Ok(Response::Deleted(deleted)))
        }
        Command::GrantLease { ttl_ms } => {
            // The entry index is unique and identical on every replica: a natural lease id.
            let id = index;
            changes
                .batch
                .insert(&layout::lease_key(id), layout::encode_lease(ttl_ms));
            changes.leases.insert(id, true);
            changes.lease_changes.push(LeaseChange::Granted {
                id,
                ttl: Duration::from_millis(ttl_ms),
            });
            Ok(Ok(Response::Lease(id)))
        }
        Command::RevokeLease(id) | Command::ExpireLease(id) => {
            if !changes.lease_exists(id)? {
                return Ok(Err(MetadataError::LeaseNotFound(id)));
            }
            changes.drop_lease(id)?;
            Ok(Ok(Response::LeaseGone))
        }
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
