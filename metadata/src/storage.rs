//! `raft::Storage` over the sled `raft` tree (layout in [`crate::layout`]).
//!
//! raft-rs reads the log through this trait; the Ready loop ([`crate::node`]) writes it with
//! [`SledStorage::append`] (entries and hard state of one Ready in one batch; the loop then
//! flushes once), [`SledStorage::compact`] and [`SledStorage::apply_snapshot`]. Snapshots are
//! not files: [`raft::Storage::snapshot`] serializes the state machine tree on demand.
//!
//! Small, hot values (hard state, conf state, the log's bounds) are cached in memory; the
//! cache is only updated after the corresponding sled write succeeded.
use std::sync::Arc;

use parking_lot::RwLock;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use tracing::{info, warn};

use crate::durability::DurableSync;
use crate::error::MetadataError;
use crate::layout::{self, CONF_STATE_KEY, ENTRY_PREFIX, HARD_STATE_KEY, SNAPSHOT_META_KEY};
use crate::state_machine::StateMachine;

struct Cached {
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the entry just before the first one in the log.
    snapshot_meta: SnapshotMetadata,
    last_index: u64,
}

impl Cached {
    fn first_index(&self) -> u64 {
        self.snapshot_meta.index + 1
    }
}

pub(crate) struct SledStorage {
    db: sled::Db,
    durable: Arc<DurableSync>,
    tree: sled::Tree,
    sm: Arc<StateMachine>,
    cache: RwLock<Cached>,
}

fn other(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

fn read_pb<M: protobuf::Message>(
    tree: &sled::Tree,
    key: &[u8],
) -> Result<Option<M>, MetadataError> {
    match tree.get(key)? {
        Some(v) => Ok(Some(M::parse_from_bytes(&v)?)),
        None => Ok(None),
    }
}

fn pb_bytes(m: &impl protobuf::Message) -> Result<Vec<u8>, MetadataError> {
    Ok(m.write_to_bytes()?)
}

impl SledStorage {
    /// Opens the raft tree, initializing it with `voters` if it is empty.
    ///
    /// A fresh log pretends a snapshot at index 1, term 1 holding the initial configuration
    /// (as raft-rs's `MemStorage::initialize_with_conf_state` does): every member of a new
    /// cluster starts from the identical, empty state without exchanging a snapshot.
    pub(crate) fn open(
        db: sled::Db,
        durable: Arc<DurableSync>,
        tree: sled::Tree,
        sm: Arc<StateMachine>,
        voters: &[u64],
    ) -> Result<Self, MetadataError> {
        let conf_state: Option<ConfState> = read_pb(&tree, CONF_STATE_KEY)?;
        let (hard_state, conf_state, snapshot_meta) = match conf_state {
            Some(cs) => {
                let hs: HardState = read_pb(&tree, HARD_STATE_KEY)?.unwrap_or_default();
                let meta: SnapshotMetadata = read_pb(&tree, SNAPSHOT_META_KEY)?.unwrap_or_default();
                let mut configured = voters.to_vec();
                configured.sort_unstable();
                let mut stored = cs.voters.clone();
                stored.sort_unstable();
                if configured != stored {
                    warn!(
                        ?configured,
                        ?stored,
                        "configured voters differ from the persisted configuration; using the persisted one"
                    );
                }
                (hs, cs, meta)
            }
            None => {
                let cs = ConfState {
                    voters: voters.to_vec(),
                    ..Default::default()
                };
                let mut meta = SnapshotMetadata {
                    index: 1,
                    term: 1,
                    ..Default::default()
                };
                meta.set_conf_state(cs.clone());
                let hs = HardState {
                    term: 1,
                    commit: 1,
                    ..Default::default()
                };
                let mut batch = sled::Batch::default();
                batch.insert(CONF_STATE_KEY, pb_bytes(&cs)?);
                batch.insert(SNAPSHOT_META_KEY, pb_bytes(&meta)?);
                batch.insert(HARD_STATE_KEY, pb_bytes(&hs)?);
                tree.apply_batch(batch)?;
                info!(?voters, "initialized a new raft log");
                (hs, cs, meta)
            }
        };
        let last_index = match tree.scan_prefix([ENTRY_PREFIX]).next_back() {
            Some(item) => layout::entry_index(&item?.0)?,
            None => snapshot_meta.index,
        };
        if last_index < snapshot_meta.index {
            return Err(MetadataError::Storage(format!(
                "raft log ends at {last_index}, before its snapshot index {}",
                snapshot_meta.index
            )));
        }
        let storage = SledStorage {
            db,
            durable,
            tree,
            sm,
            cache: RwLock::new(Cached {
                hard_state,
                conf_state,
                snapshot_meta,
                last_index,
            }),
        };
        storage.reconcile_commit()?;
        Ok(storage)
    }

    /// The commit index is written without its own flush, so after a crash it may trail the
    /// applied index (which only ever covers committed entries); raft-rs refuses to start
    /// with `applied > commit`. Raise it; the entries themselves were flushed before commit.
    fn reconcile_commit(&self) -> Result<(), MetadataError> {
        let applied = self.applied_index();
        let (first, last, commit) = {
            let c = self.cache.read();
            (c.first_index(), c.last_index, c.hard_state.commit)
        };
        let sm_applied = self.sm.applied();
        let snapshot_index = first - 1;
        // A fresh state machine (0) is exactly the fresh log's pretend snapshot at 1.
        let fresh = sm_applied == 0 && snapshot_index == 1;
        if sm_applied < snapshot_index && !fresh {
            return Err(MetadataError::Storage(format!(
                "state machine applied index {sm_applied} is behind the compacted log (first index {first})"
            )));
        }
        if applied > last {
            return Err(MetadataError::Storage(format!(
                "state machine applied index {applied} is beyond the raft log's last index {last}"
            )));
        }
        if commit < applied {
            info!(
                commit,
                applied, "raising persisted commit index to the applied index"
            );
            self.set_commit(applied)?;
        }
        Ok(())
    }

    /// The applied index to hand raft-rs at start: the state machine's, but never below the
    /// log's starting point (a fresh state machine is at 0 while a fresh log starts at 1).
    pub(crate) fn applied_index(&self) -> u64 {
        self.sm.applied().max(self.cache.read().snapshot_meta.index)
    }

    pub(crate) fn conf_state(&self) -> ConfState {
        self.cache.read().conf_state.clone()
    }

    /// Persists a Ready's new entries and hard state in one batch (not yet flushed).
    /// Entries at or after the first new index that the new ones do not overwrite are
    /// removed: they belong to a superseded leader's uncommitted tail.
    pub(crate) fn append(
        &self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), MetadataError> {
        let mut batch = sled::Batch::default();
        let first_index = self.cache.read().first_index();
        let old_last = self.cache.read().last_index;
        let mut new_last = old_last;
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            if first.index < first_index {
                return Err(MetadataError::Storage(format!(
                    "append at {} overwrites the compacted log (first index {first_index})",
                    first.index
                )));
            }
            if first.index > old_last + 1 {
                return Err(MetadataError::Storage(format!(
                    "append at {} leaves a gap after last index {old_last}",
                    first.index
                )));
            }
            for e in entries {
                batch.insert(&layout::entry_key(e.index), pb_bytes(e)?);
            }
            for stale in last.index + 1..=old_last {
                batch.remove(&layout::entry_key(stale));
            }
            new_last = last.index;
        }
        if let Some(hs) = hard_state {
            batch.insert(HARD_STATE_KEY, pb_bytes(hs)?);
        }
        self.tree.apply_batch(batch)?;
        let mut c = self.cache.write();
        c.last_index = new_last;
        if let Some(hs) = hard_state {
            c.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Records a commit index learned from a `LightReady` (raft-rs does not repeat it in a
    /// later Ready's hard state).
    pub(crate) fn set_commit(&self, commit: u64) -> Result<(), MetadataError> {
        let mut hs = self.cache.read().hard_state.clone();
        if hs.commit >= commit {
            return Ok(());
        }
        hs.commit = commit;
        self.tree.insert(HARD_STATE_KEY, pb_bytes(&hs)?)?;
        self.cache.write().hard_state = hs;
        Ok(())
    }

    pub(crate) fn set_conf_state(&self, cs: ConfState) -> Result<(), MetadataError> {
        self.tree.insert(CONF_STATE_KEY, pb_bytes(&cs)?)?;
        self.cache.write().conf_state = cs;
        Ok(())
    }

    pub(crate) fn first_log_index(&self) -> u64 {
        self.cache.read().first_index()
    }

    /// Drops every entry up to and including `index`, which must already be applied and
    /// durable. Its term is kept as the new snapshot metadata so raft can still match logs.
    pub(crate) fn compact(&self, index: u64) -> Result<(), MetadataError> {
        let (first, last, conf_state) = {
            let c = self.cache.read();
            (c.first_index(), c.last_index, c.conf_state.clone())
        };
        if index < first || index > last {
            return Ok(());
        }
        if index > self.sm.applied() {
            return Err(MetadataError::Storage(format!(
                "refusing to compact to {index}, past the applied index {}",
                self.sm.applied()
            )));
        }
        let term = raft::Storage::term(self, index)
            .map_err(|e| MetadataError::Storage(format!("term of {index}: {e}")))?;
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        meta.set_conf_state(conf_state);
        let mut batch = sled::Batch::default();
        for i in first..=index {
            batch.remove(&layout::entry_key(i));
        }
        batch.insert(SNAPSHOT_META_KEY, pb_bytes(&meta)?);
        self.tree.apply_batch(batch)?;
        self.cache.write().snapshot_meta = meta;
        Ok(())
    }

    /// Installs a snapshot received from the leader: the state tree is replaced by the
    /// snapshot's contents and the log restarts right after it, both in one transaction so a
    /// crash cannot leave a state machine that disagrees with the log.
    pub(crate) fn apply_snapshot(&self, snap: &Snapshot) -> Result<(), MetadataError> {
        let meta = snap.get_metadata().clone();
        let (first, last, mut hs) = {
            let c = self.cache.read();
            (c.first_index(), c.last_index, c.hard_state.clone())
        };
        if meta.index < first {
            warn!(
                index = meta.index,
                first, "ignoring an out-of-date snapshot"
            );
            return Ok(());
        }
        hs.term = hs.term.max(meta.term);
        hs.commit = hs.commit.max(meta.index);
        let mut raft_batch = sled::Batch::default();
        for i in first..=last {
            raft_batch.remove(&layout::entry_key(i));
        }
        raft_batch.insert(SNAPSHOT_META_KEY, pb_bytes(&meta)?);
        raft_batch.insert(CONF_STATE_KEY, pb_bytes(meta.get_conf_state())?);
        raft_batch.insert(HARD_STATE_KEY, pb_bytes(&hs)?);
        let raft_tree = self.tree.clone();
        let state_tree = self.sm_tree();
        self.sm.restore(&snap.data, meta.index, |state_batch| {
            use sled::transaction::{TransactionError, Transactional};
            (&raft_tree, &state_tree)
                .transaction(|(r, s)| {
                    r.apply_batch(&raft_batch)?;
                    s.apply_batch(state_batch)?;
                    Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    TransactionError::Storage(e) => MetadataError::from(e),
                    TransactionError::Abort(()) => {
                        MetadataError::Storage("snapshot install aborted".into())
                    }
                })
        })?;
        let mut c = self.cache.write();
        c.last_index = meta.index;
        c.conf_state = meta.get_conf_state().clone();
        c.snapshot_meta = meta;
        c.hard_state = hs;
        Ok(())
    }

    fn sm_tree(&self) -> sled::Tree {
        self.sm.tree().clone()
    }

    /// Makes everything written so far durable: sled's flush, then the real fsyncs sled
    /// leaves out (see [`crate::durability`]).
    pub(crate) async fn flush(&self) -> Result<(), MetadataError> {
        self.db.flush_async().await?;
        let durable = self.durable.clone();
        tokio::task::spawn_blocking(move || durable.sync())
            .await
            .map_err(|e| MetadataError::Storage(format!("fsync task failed: {e}")))?
            .map_err(|e| MetadataError::Storage(format!("fsync: {e}")))
    }
}

impl raft::Storage for SledStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let c = self.cache.read();
        Ok(RaftState::new(c.hard_state.clone(), c.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let (first, last) = {
            let c = self.cache.read();
            (c.first_index(), c.last_index)
        };
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > last + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into();
        let mut out: Vec<Entry> = Vec::with_capacity((high - low).min(1024) as usize);
        let mut size = 0u64;
        for item in self
            .tree
            .range(layout::entry_key(low)..layout::entry_key(high))
        {
            let (_, v) = item.map_err(other)?;
            let e = Entry::parse_from_bytes(&v).map_err(other)?;
            if e.index != low + out.len() as u64 {
                return Err(raft::Error::Store(StorageError::Unavailable));
            }
            size += u64::from(e.compute_size());
            // At least one entry is always returned, as raft-rs requires.
            if !out.is_empty() && max_size.is_some_and(|m| size > m) {
                break;
            }
            out.push(e);
        }
        if out.is_empty() && low < high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let (first, last, snap_index, snap_term) = {
            let c = self.cache.read();
            (
                c.first_index(),
                c.last_index,
                c.snapshot_meta.index,
                c.snapshot_meta.term,
            )
        };
        if idx == snap_index {
            return Ok(snap_term);
        }
        if idx < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > last {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        match self.tree.get(layout::entry_key(idx)).map_err(other)? {
            Some(v) => Ok(Entry::parse_from_bytes(&v).map_err(other)?.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.cache.read().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.cache.read().last_index)
    }

    /// Serializes the state machine as it is now (at its applied index).
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let (applied, data) = self.sm.snapshot().map_err(other)?;
        if applied < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let term = self.term(applied)?;
        let mut snap = Snapshot::default();
        let meta = snap.mut_metadata();
        meta.index = applied;
        meta.term = term;
        meta.set_conf_state(self.cache.read().conf_state.clone());
        info!(
            to,
            index = applied,
            bytes = data.len(),
            "built snapshot for a follower"
        );
        snap.data = data.into();
        Ok(snap)
    }
}
