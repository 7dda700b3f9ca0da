//! The read path: write cache first, then index + entry logs.
//!
//! A read is planned under the state lock (ledger checks, write-cache hits, which ids
//! exist) and executed without it: index lookups and `pread`s run on tokio's blocking
//! pool, and only when something actually has to come from disk. Runs of entries that
//! sit back to back in one entry log — the normal case, since checkpoints write a
//! ledger's entries contiguously — are fetched with a single `pread` and sliced without
//! copying. Every record read from disk has its CRC32C checked before it is returned.

use crate::entry_log::{check_location, decode_entry, Location};
use crate::record::ADD_FRAME_LEN;
use crate::{BookieError, Entry, Inner};

/// One planned entry.
pub(crate) enum Slot {
    /// Served from the write cache.
    Mem(Entry),
    /// Present (per the ledger state) but only on disk.
    Disk(u64),
}

impl Slot {
    pub fn is_disk(&self) -> bool {
        matches!(self, Slot::Disk(_))
    }
}

/// Byte/entry budget of one `read_entries` call, carried across chunks.
#[derive(Clone, Copy)]
pub(crate) struct Budget {
    pub max_entries: usize,
    pub max_bytes: usize,
    pub entries: usize,
    pub bytes: usize,
    /// The first entry fits whatever its size.
    pub first_may_exceed: bool,
}

impl Budget {
    /// Whether an entry of `len` payload bytes still fits.
    fn admits(&self, len: usize) -> bool {
        self.entries < self.max_entries
            && ((self.entries == 0 && self.first_may_exceed)
                || self.bytes.saturating_add(len) <= self.max_bytes)
    }
}

/// What executing a plan produced.
pub(crate) struct Resolved {
    pub entries: Vec<Entry>,
    /// The plan was cut short (budget, or an entry vanished): stop reading.
    pub stopped: bool,
    /// An entry could not be read; entries before it are in `entries`.
    pub error: Option<BookieError>,
}

enum Pending {
    Mem(Entry),
    Disk(u64, Location),
}

impl Inner {
    /// Plans up to `max` consecutive entries from `first`, stopping at the first id this
    /// bookie does not have.
    pub(crate) fn plan_reads(
        &self,
        ledger_id: u64,
        first: u64,
        max: usize,
    ) -> Result<Vec<Slot>, BookieError> {
        let mut guard = self.state.lock();
        guard.readable(ledger_id)?; // loads the state if it is cold
        let st = &*guard;
        let l = st
            .cached(ledger_id)
            .ok_or(BookieError::NoSuchLedger { ledger_id })?;
        let mut slots = Vec::new();
        for i in 0..max as u64 {
            let Some(entry_id) = first.checked_add(i) else {
                break;
            };
            let cached = st
                .active
                .get(ledger_id, entry_id)
                .or_else(|| st.flushing.get(ledger_id, entry_id));
            if let Some(c) = cached {
                slots.push(Slot::Mem(Entry {
                    ledger_id,
                    entry_id,
                    meta: c.meta,
                    payload: c.payload.clone(),
                }));
            } else if l.contains(entry_id) {
                slots.push(Slot::Disk(entry_id));
            } else {
                break;
            }
        }
        Ok(slots)
    }

    /// Executes a plan within `budget`. Blocking (sled lookups and `pread`) when the plan
    /// has disk slots; call it from a blocking thread then.
    pub(crate) fn resolve(
        &self,
        ledger_id: u64,
        slots: Vec<Slot>,
        budget: &mut Budget,
    ) -> Resolved {
        let mut out = Resolved {
            entries: Vec::with_capacity(slots.len()),
            stopped: false,
            error: None,
        };
        // Phase 1: locations and budget.
        let mut pending = Vec::with_capacity(slots.len());
        for slot in slots {
            let (p, len) = match slot {
                Slot::Mem(e) => {
                    let len = e.payload.len();
                    (Pending::Mem(e), len)
                }
                Slot::Disk(entry_id) => match self.index.location(ledger_id, entry_id) {
                    Ok(Some(loc)) => {
                        if let Err(e) = check_location(&loc, ledger_id, entry_id) {
                            out.error = Some(e);
                            break;
                        }
                        (
                            Pending::Disk(entry_id, loc),
                            loc.len as usize - ADD_FRAME_LEN,
                        )
                    }
                    // Only possible if the ledger was deleted meanwhile.
                    Ok(None) => {
                        out.stopped = true;
                        break;
                    }
                    Err(e) => {
                        out.error = Some(e);
                        break;
                    }
                },
            };
            if !budget.admits(len) {
                out.stopped = true;
                break;
            }
            budget.entries += 1;
            budget.bytes += len;
            pending.push(p);
        }

        // Phase 2: coalesced reads, in order.
        let mut i = 0;
        while i < pending.len() && out.error.is_none() {
            match &pending[i] {
                Pending::Mem(e) => {
                    self.metrics.read_cache_hits.inc();
                    out.entries.push(e.clone());
                    i += 1;
                }
                Pending::Disk(entry_id, first) => {
                    // Extend the run while the next record follows this one in the file.
                    let mut j = i + 1;
                    let mut end = first.offset + u64::from(first.len);
                    while let Some(Pending::Disk(_, next)) = pending.get(j) {
                        if next.file_id != first.file_id || next.offset != end {
                            break;
                        }
                        end += u64::from(next.len);
                        j += 1;
                    }
                    let span = self.readers.read_span(
                        first.file_id,
                        first.offset,
                        (end - first.offset) as usize,
                        (ledger_id, *entry_id),
                    );
                    let span = match span {
                        Ok(s) => s,
                        Err(e) => {
                            out.error = Some(e);
                            break;
                        }
                    };
                    for p in &pending[i..j] {
                        let Pending::Disk(entry_id, loc) = p else {
                            continue;
                        };
                        let at = (loc.offset - first.offset) as usize;
                        match decode_entry(
                            ledger_id,
                            *entry_id,
                            span.slice(at..at + loc.len as usize),
                        ) {
                            Ok(e) => out.entries.push(e),
                            Err(e) => {
                                out.error = Some(e);
                                break;
                            }
                        }
                    }
                    i = j;
                }
            }
        }
        if out.error.is_some() {
            out.stopped = true;
        }
        out
    }
}
