//! The write cache: entries that are durable in the journal but not yet copied into an
//! entry log, plus the time-index points derived from them.
//!
//! The bookie keeps two generations (as BookKeeper's `DbLedgerStorage` does): adds go
//! into the *active* one; a checkpoint swaps it out as the *flushing* one, writes it to
//! an entry log sorted by (ledger, entry) — so a ledger's entries end up contiguous on
//! disk and sequential reads of it become large sequential reads — updates the index,
//! and only then drops it. Readers look in active, then flushing, then the index, so an
//! entry is visible somewhere at every instant.
//!
//! Payloads are `Bytes` shared with the caller's buffer: caching costs a reference count,
//! not a copy. Recent reads (tailing consumers) are served from here.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::record::ADD_FRAME_LEN;
use crate::EntryMeta;

/// One cached entry. `crc` is the record CRC computed when the add arrived; the entry
/// log record reuses it.
#[derive(Clone, Debug)]
pub(crate) struct CachedEntry {
    pub meta: EntryMeta,
    pub crc: u32,
    pub payload: Bytes,
}

impl CachedEntry {
    /// Bytes this entry takes in an entry log (and, roughly, in memory).
    pub fn record_len(&self) -> usize {
        ADD_FRAME_LEN + self.payload.len()
    }
}

/// The cached part of one ledger.
#[derive(Debug, Default)]
pub(crate) struct LedgerCache {
    pub entries: BTreeMap<u64, CachedEntry>,
    /// Time-index points `(running_max_timestamp, entry_id)` not yet in the index, in
    /// increasing order of both fields.
    pub time_points: Vec<(i64, u64)>,
}

/// One generation of the write cache.
#[derive(Debug, Default)]
pub(crate) struct CacheGen {
    pub ledgers: HashMap<u64, LedgerCache>,
    pub bytes: usize,
    pub entries: usize,
}

impl CacheGen {
    pub fn is_empty(&self) -> bool {
        self.ledgers.is_empty()
    }

    pub fn insert(&mut self, ledger_id: u64, entry_id: u64, e: CachedEntry) {
        let len = e.record_len();
        if let Some(old) = self
            .ledgers
            .entry(ledger_id)
            .or_default()
            .entries
            .insert(entry_id, e)
        {
            self.bytes -= old.record_len();
            self.entries -= 1;
        }
        self.bytes += len;
        self.entries += 1;
    }

    pub fn add_time_points(&mut self, ledger_id: u64, points: &[(i64, u64)]) {
        if !points.is_empty() {
            self.ledgers
                .entry(ledger_id)
                .or_default()
                .time_points
                .extend_from_slice(points);
        }
    }

    pub fn remove_ledger(&mut self, ledger_id: u64) {
        if let Some(l) = self.ledgers.remove(&ledger_id) {
            for e in l.entries.values() {
                self.bytes -= e.record_len();
            }
            self.entries -= l.entries.len();
        }
    }

    pub fn get(&self, ledger_id: u64, entry_id: u64) -> Option<&CachedEntry> {
        self.ledgers.get(&ledger_id)?.entries.get(&entry_id)
    }

    /// The cached entry with the smallest `(last_offset, entry_id)` such that
    /// `last_offset >= offset`. A linear scan: a ledger holds at most a few thousand
    /// cached entries and offset lookups are rare (consumer start/seek).
    pub fn find_by_offset(&self, ledger_id: u64, offset: i64) -> Option<(i64, u64)> {
        self.ledgers
            .get(&ledger_id)?
            .entries
            .iter()
            .filter(|(_, e)| e.meta.last_offset >= offset)
            .map(|(id, e)| (e.meta.last_offset, *id))
            .min()
    }

    /// The first cached time point with running max `>= ts`.
    pub fn find_by_time(&self, ledger_id: u64, ts: i64) -> Option<(i64, u64)> {
        let pts = &self.ledgers.get(&ledger_id)?.time_points;
        let i = pts.partition_point(|(r, _)| *r < ts);
        pts.get(i).copied()
    }
}
