//! The in-memory state that journal records are applied to, and the queue in front of
//! the journal.
//!
//! One function, [`State::apply`], turns a durable record into state changes. The
//! committer calls it after each group's `fdatasync`, replay calls it at open, so a
//! restarted bookie ends up exactly where the crashed one was. Entries become readable
//! (and count towards the LAC) only when applied, i.e. only once durable.
//!
//! Everything here sits behind one mutex: the adds' admission checks (fenced? deleted?
//! duplicate?) and their enqueueing happen atomically with respect to fences and
//! deletes, which is what makes "after `fence` returns, no non-recovery add can succeed"
//! hold. Critical sections are map lookups and inserts.
//!
//! ## The ledger-state cache
//!
//! The index (`'l'` keys, written by every checkpoint for the ledgers that changed) is
//! the source of truth for ledger states; `ledgers` holds only *hot* ones. A ledger
//! closed long ago, or deleted (its tombstone stays in the index so a zombie writer's
//! late add cannot resurrect it), costs no memory. Rules:
//!
//! - Every read or creation of a state goes through [`State::lookup`] (via `ledger`,
//!   `ledger_or_create`, `readable`): admission of adds, fences and deletes, `apply` (live
//!   and at replay), LAC lookups, read planning, checkpoint capture. A miss reads the
//!   ledger's key from the index **while holding the lock**. That is the one I/O done
//!   under the lock — a sled point lookup of a 9-byte key, normally answered from sled's
//!   page cache — and it is what makes loading safe: no thread can see the ledger as
//!   "not in memory" and act on that (take a fenced ledger for a new one, admit an add
//!   behind a fence) between the miss and the load. A lock-free load would need a
//!   per-ledger "loading" placeholder and a second round of checks; not worth it for a
//!   lookup that is rare (first use after being cold) and short.
//! - A state leaves memory only in [`State::evict_cold`], at the end of a successful
//!   checkpoint, and only if it is not dirty (the index holds exactly it), has no record
//!   queued or being written (`pending`; this also covers `fence_pending`,
//!   `delete_pending` and `writer_lac_queued`, which are never persisted), has no entries
//!   in either write-cache generation, and was not touched since the previous
//!   checkpoint. A ledger that stops being used leaves memory within two checkpoints.
//!   Beyond `BookieConfig::ledger_cache_max` states, safe ones go even if recently used.
//! - A failed checkpoint evicts nothing (and the bookie stops checkpointing), so a state
//!   whose index write failed is never dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::index::Index;
use crate::journal::JournalPos;
use crate::ledger::LedgerState;
use crate::record::{Record, ADD_FRAME_LEN, LAC_RECORD_LEN, LEDGER_OP_RECORD_LEN};
use crate::write_cache::{CacheGen, CachedEntry};
use crate::BookieError;

/// What an applied record answers: the LAC for a fence, nothing otherwise.
pub(crate) type Reply = oneshot::Sender<Result<Option<u64>, BookieError>>;

/// A record waiting for the committer.
pub(crate) struct Request {
    pub record: Record,
    pub reply: Reply,
}

impl Record {
    /// The ledger this record is about.
    pub fn ledger_id(&self) -> u64 {
        match self {
            Record::Add { ledger_id, .. }
            | Record::Fence { ledger_id }
            | Record::Lac { ledger_id, .. }
            | Record::Delete { ledger_id } => *ledger_id,
        }
    }

    /// Bytes this record takes in the journal.
    pub fn journal_len(&self) -> usize {
        match self {
            Record::Add { payload, .. } => ADD_FRAME_LEN + payload.len(),
            Record::Fence { .. } | Record::Delete { .. } => LEDGER_OP_RECORD_LEN,
            Record::Lac { .. } => LAC_RECORD_LEN,
        }
    }
}

pub(crate) struct State {
    /// The ledger-state cache: every ledger that is hot, i.e. may differ from the index
    /// or was used recently. Private: all access goes through [`State::ledger`],
    /// [`State::ledger_or_create`] and [`State::readable`], which load on a miss.
    ledgers: HashMap<u64, LedgerState>,
    /// Where cold ledger states live (`'l'` keys); a clone sharing the bookie's sled db.
    index: Index,
    /// Ledgers changed since the last checkpoint captured them. A cached state not in
    /// this set is exactly what the index holds for it.
    pub dirty: HashSet<u64>,
    /// Per ledger, the records accepted (queued or in the journal group being written)
    /// and not yet applied. Only ledgers with such records have an entry.
    pending: HashMap<u64, u32>,
    /// Write cache generation being filled.
    pub active: CacheGen,
    /// Write cache generation being checkpointed (empty between checkpoints).
    pub flushing: Arc<CacheGen>,
    /// Records accepted but not yet written by the committer.
    pub queue: VecDeque<Request>,
    /// Journal bytes of `queue`; counted against the write cache budget so that many
    /// concurrent adds cannot all be admitted before any of them is applied.
    pub queue_bytes: usize,
    /// Journal position after the last applied record.
    pub applied: JournalPos,
    /// Ledgers whose Delete was applied since the last checkpoint; the checkpoint removes
    /// their index keys and releases their entry log space.
    pub pending_deletes: Vec<u64>,
    /// Set by shutdown/drop: no new records are accepted, the committer drains and exits.
    pub closing: bool,
    /// Set after a fatal journal or checkpoint I/O error.
    pub failed: Option<Arc<str>>,
    /// Ledger states read from the index on a miss / dropped from memory, since open.
    pub ledger_loads: u64,
    pub ledger_evictions: u64,
    /// Bumped whenever states are evicted; lets [`crate::Bookie::ledgers`] scan the
    /// index without the lock and detect that the cache changed under it.
    pub eviction_epoch: u64,
    scratch_points: Vec<(i64, u64)>,
}

impl State {
    pub fn new(index: Index) -> State {
        State {
            ledgers: HashMap::new(),
            index,
            dirty: HashSet::new(),
            pending: HashMap::new(),
            active: CacheGen::default(),
            flushing: Arc::new(CacheGen::default()),
            queue: VecDeque::new(),
            queue_bytes: 0,
            applied: JournalPos {
                file_id: 0,
                offset: 0,
            },
            pending_deletes: Vec::new(),
            closing: false,
            failed: None,
            ledger_loads: 0,
            ledger_evictions: 0,
            eviction_epoch: 0,
            scratch_points: Vec::new(),
        }
    }

    /// The one way to a ledger's state: from the cache, else loaded from the index (and
    /// cached), else — with `create` — a new, empty state (dirty, so the next checkpoint
    /// records it). `None` only if the ledger is unknown and `create` is false. `touch`
    /// marks it recently used (see [`State::evict_cold`]).
    ///
    /// The load happens under the state lock, so no other thread can observe the gap
    /// between "not cached" and "cached": a fenced or deleted ledger whose state is only
    /// in the index is never mistaken for a new one.
    fn lookup(
        &mut self,
        ledger_id: u64,
        create: bool,
        touch: bool,
    ) -> Result<Option<&mut LedgerState>, BookieError> {
        if !self.ledgers.contains_key(&ledger_id) {
            match self.index.ledger_state(ledger_id)? {
                Some(l) => {
                    self.ledger_loads += 1;
                    crate::metrics::metrics().ledger_loads.inc();
                    self.ledgers.insert(ledger_id, l);
                }
                None if create => {
                    self.ledgers.insert(ledger_id, LedgerState::default());
                    self.dirty.insert(ledger_id);
                }
                None => return Ok(None),
            }
        }
        let l = self.ledgers.get_mut(&ledger_id);
        if let Some(l) = l {
            l.touched |= touch;
            return Ok(Some(l));
        }
        Ok(None)
    }

    /// The ledger's state, loading it on a miss; `None` if this bookie never saw it.
    pub fn ledger(&mut self, ledger_id: u64) -> Result<Option<&mut LedgerState>, BookieError> {
        self.lookup(ledger_id, false, true)
    }

    /// [`State::ledger`], without marking it used (checkpoint capture).
    pub fn ledger_untouched(
        &mut self,
        ledger_id: u64,
    ) -> Result<Option<&mut LedgerState>, BookieError> {
        self.lookup(ledger_id, false, false)
    }

    /// The ledger's state, loading it on a miss and creating it if unknown.
    pub fn ledger_or_create(&mut self, ledger_id: u64) -> Result<&mut LedgerState, BookieError> {
        match self.lookup(ledger_id, true, true)? {
            Some(l) => Ok(l),
            // lookup with `create` always yields a state.
            None => Err(BookieError::NoSuchLedger { ledger_id }),
        }
    }

    /// The state of a ledger that can be read: `NoSuchLedger` / `LedgerDeleted` otherwise.
    pub fn readable(&mut self, ledger_id: u64) -> Result<&mut LedgerState, BookieError> {
        match self.ledger(ledger_id)? {
            None => Err(BookieError::NoSuchLedger { ledger_id }),
            Some(l) if l.is_deleted() => Err(BookieError::LedgerDeleted { ledger_id }),
            Some(l) => Ok(l),
        }
    }

    /// The cached state, without loading: for use right after [`State::readable`] (or
    /// another loading accessor) under the same lock guard, when a shared borrow is needed.
    pub fn cached(&self, ledger_id: u64) -> Option<&LedgerState> {
        self.ledgers.get(&ledger_id)
    }

    /// Counts a record of `ledger_id` accepted for the journal; [`State::apply`] uncounts it.
    pub fn note_pending(&mut self, ledger_id: u64) {
        *self.pending.entry(ledger_id).or_default() += 1;
    }

    fn settle_pending(&mut self, ledger_id: u64) {
        if let Some(n) = self.pending.get_mut(&ledger_id) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(&ledger_id);
            }
        }
    }

    /// Ledger states in memory.
    pub fn cached_ledgers(&self) -> usize {
        self.ledgers.len()
    }

    /// `(id, deleted)` of every cached state, for [`crate::Bookie::ledgers`].
    pub fn cached_ids(&self) -> impl Iterator<Item = (u64, bool)> + '_ {
        self.ledgers.iter().map(|(id, l)| (*id, l.is_deleted()))
    }

    /// Drops from memory the ledger states that are provably safe to drop and cold.
    /// Called at the end of a successful checkpoint (index committed, `flushing` empty)
    /// and by idle checkpoint ticks. A state is *safe* to drop when the index holds
    /// exactly it (not dirty), no record of it is queued or being written (so no
    /// `fence_pending`/`delete_pending`/`writer_lac_queued` knowledge is lost), and no
    /// write-cache generation holds entries of it. It is *cold* when nothing used it
    /// since the previous call, which clears every `touched` flag. If more than `cap`
    /// states remain, safe ones are dropped even if recently used (that costs a reload).
    /// Returns how many were dropped.
    pub fn evict_cold(&mut self, cap: usize) -> usize {
        let State {
            ledgers,
            dirty,
            pending,
            active,
            flushing,
            ..
        } = self;
        let safe = |id: &u64, l: &LedgerState| {
            !dirty.contains(id)
                && !pending.contains_key(id)
                && !l.fence_pending
                && !l.delete_pending
                && !active.ledgers.contains_key(id)
                && !flushing.ledgers.contains_key(id)
        };
        let before = ledgers.len();
        ledgers.retain(|id, l| {
            if !l.touched && safe(id, l) {
                return false;
            }
            l.touched = false;
            true
        });
        if ledgers.len() > cap {
            let mut excess = ledgers.len() - cap;
            ledgers.retain(|id, l| {
                if excess > 0 && safe(id, l) {
                    excess -= 1;
                    return false;
                }
                true
            });
        }
        let evicted = before - ledgers.len();
        // A HashMap keeps its capacity: give memory back after a burst of ledgers.
        if ledgers.capacity() > 4 * ledgers.len().max(256) {
            ledgers.shrink_to(2 * ledgers.len());
        }
        if dirty.capacity() > 4 * dirty.len().max(256) {
            dirty.shrink_to(2 * dirty.len());
        }
        if evicted > 0 {
            crate::metrics::metrics()
                .ledger_evictions
                .inc_by(evicted as u64);
            self.ledger_evictions += evicted as u64;
            self.eviction_epoch += 1;
        }
        evicted
    }

    /// Refuses new writes once closing or failed.
    pub fn check_writable(&self) -> Result<(), BookieError> {
        if let Some(reason) = &self.failed {
            return Err(BookieError::Failed {
                reason: reason.clone(),
            });
        }
        if self.closing {
            return Err(BookieError::ShuttingDown);
        }
        Ok(())
    }

    /// Applies one durable record. Errors: `LedgerDeleted` for a record that arrived
    /// after its ledger's deletion (the record is dropped; expected), or an index error
    /// loading the ledger's state — the state no longer matches the journal then, so the
    /// bookie is put in the failed state.
    pub fn apply(&mut self, record: Record) -> Result<Option<u64>, BookieError> {
        self.settle_pending(record.ledger_id());
        let res = self.apply_inner(record);
        if let Err(e) = &res {
            if !matches!(e, BookieError::LedgerDeleted { .. }) && self.failed.is_none() {
                self.failed = Some(Arc::from(format!("applying a journal record: {e}")));
            }
        }
        res
    }

    fn apply_inner(&mut self, record: Record) -> Result<Option<u64>, BookieError> {
        match record {
            Record::Add {
                ledger_id,
                entry_id,
                meta,
                crc,
                payload,
            } => {
                let mut points = std::mem::take(&mut self.scratch_points);
                let l = self.ledger_or_create(ledger_id)?;
                if l.deleted {
                    // Admitted before the Delete was applied, journaled after it: the
                    // ledger is gone, the entry is dropped.
                    self.scratch_points = points;
                    return Err(BookieError::LedgerDeleted { ledger_id });
                }
                if l.add(entry_id, meta.max_timestamp, &mut points) {
                    self.active
                        .insert(ledger_id, entry_id, CachedEntry { meta, crc, payload });
                    self.active.add_time_points(ledger_id, &points);
                    self.dirty.insert(ledger_id);
                }
                // else: a duplicate of an entry already here; the first copy wins.
                points.clear();
                self.scratch_points = points;
                Ok(None)
            }
            Record::Fence { ledger_id } => {
                let l = self.ledger_or_create(ledger_id)?;
                if l.deleted {
                    return Err(BookieError::LedgerDeleted { ledger_id });
                }
                l.fence_pending = false;
                let lac = l.lac();
                if !l.fenced {
                    l.fenced = true;
                    self.dirty.insert(ledger_id);
                }
                Ok(lac)
            }
            Record::Lac { ledger_id, lac } => {
                let l = self.ledger_or_create(ledger_id)?;
                if !l.deleted && l.raise_writer_lac(lac) {
                    self.dirty.insert(ledger_id);
                }
                Ok(None)
            }
            Record::Delete { ledger_id } => {
                let l = self.ledger_or_create(ledger_id)?;
                if !l.deleted {
                    l.mark_deleted();
                    self.active.remove_ledger(ledger_id);
                    self.pending_deletes.push(ledger_id);
                    self.dirty.insert(ledger_id);
                }
                Ok(None)
            }
        }
    }
}
