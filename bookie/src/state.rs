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
//! hold. Critical sections are map lookups and inserts; no I/O is done under the lock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::oneshot;

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
    pub ledgers: HashMap<u64, LedgerState>,
    /// Ledgers changed since the last checkpoint captured them.
    pub dirty: HashSet<u64>,
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
    scratch_points: Vec<(i64, u64)>,
}

impl State {
    pub fn new(ledgers: HashMap<u64, LedgerState>) -> State {
        State {
            ledgers,
            dirty: HashSet::new(),
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
            scratch_points: Vec::new(),
        }
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

    /// Applies one durable record.
    pub fn apply(&mut self, record: Record) -> Result<Option<u64>, BookieError> {
        match record {
            Record::Add {
                ledger_id,
                entry_id,
                meta,
                crc,
                payload,
            } => {
                let l = self.ledgers.entry(ledger_id).or_default();
                if l.deleted {
                    // Admitted before the Delete was applied, journaled after it: the
                    // ledger is gone, the entry is dropped.
                    return Err(BookieError::LedgerDeleted { ledger_id });
                }
                let mut points = std::mem::take(&mut self.scratch_points);
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
                let l = self.ledgers.entry(ledger_id).or_default();
                if l.deleted {
                    return Err(BookieError::LedgerDeleted { ledger_id });
                }
                if !l.fenced {
                    l.fenced = true;
                    self.dirty.insert(ledger_id);
                }
                l.fence_pending = false;
                Ok(l.lac())
            }
            Record::Lac { ledger_id, lac } => {
                let l = self.ledgers.entry(ledger_id).or_default();
                if !l.deleted {
                    l.raise_writer_lac(lac);
                    if l.dirty {
                        self.dirty.insert(ledger_id);
                    }
                }
                Ok(None)
            }
            Record::Delete { ledger_id } => {
                let l = self.ledgers.entry(ledger_id).or_default();
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

    /// (live ledgers, fenced live ledgers), for the gauges.
    pub fn ledger_counts(&self) -> (usize, usize) {
        let live = self.ledgers.values().filter(|l| !l.is_deleted());
        live.fold((0, 0), |(n, f), l| (n + 1, f + usize::from(l.fenced)))
    }
}
