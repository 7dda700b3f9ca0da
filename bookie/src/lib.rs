//! The Stratalog bookie: a storage node for *ledgers*, modelled on Apache BookKeeper.
//!
//! A ledger is an append-only sequence of entries `(ledger_id, entry_id) -> bytes`. Each
//! entry carries a small [`EntryMeta`] tag supplied by the writer (the broker puts Kafka
//! offsets and timestamps there); the bookie treats those numbers as opaque except to
//! answer lookups by offset and by timestamp.
//!
//! What the bookie **is**: a single node's durable store. An add is acknowledged only
//! after the journal record holding it has been `fdatasync`ed (group commit: concurrent
//! adds share one `fdatasync`). Entries are then kept in the write cache and, from the
//! next checkpoint on, in entry log files indexed by sled. Restart replays the journal,
//! so everything acknowledged survives `kill -9`. Every entry carries a CRC32C that is
//! checked on every read from disk. Ledgers can be fenced (no more non-recovery adds)
//! and deleted (space reclaimed file by file). An add may carry the writer's
//! last-add-confirmed (BookKeeper's piggybacked LAC); the bookie journals it with the add
//! and reports the highest one on fence, which is what recovery trusts.
//!
//! What it **is not**: it does no networking (the RPC layer wraps [`Bookie`]), no
//! replication (the broker writes each entry to an ensemble of bookies and decides
//! quorums), holds no ledger metadata beyond fence/delete state (ensembles, ledger
//! lists and LAC agreement live in the metadata service) and knows nothing of Kafka.
//!
//! # Layout
//!
//! - `lib.rs` — [`Bookie`]: the public API, open/replay, shutdown.
//! - `config.rs` — [`BookieConfig`].
//! - `error.rs` — [`BookieError`].
//! - `record.rs` — the record codec shared by journal and entry logs (layout documented there).
//! - `journal.rs` — journal files: group write + `fdatasync`, rolling, replay, torn-tail truncation.
//! - `committer.rs` — the group-commit thread that owns the journal.
//! - `state.rs` — in-memory state, the queue in front of the journal, and `apply`, used both
//!   live and on replay; the ledger-state cache (hot ledgers in memory, cold ones only in
//!   the index, loaded on demand, evicted by checkpoints).
//! - `ledger.rs` — per-ledger fence/delete flags, last-add-confirmed, running max timestamp.
//! - `write_cache.rs` — entries durable in the journal but not yet in an entry log.
//! - `entry_log.rs` — entry log files: append, roll, positioned reads, space accounting.
//! - `index.rs` — the sled index (key layout documented there).
//! - `checkpoint.rs` — flushing the write cache into entry logs + index, and reclaiming files.
//! - `read.rs` — the read path (cache, then coalesced `pread`s).
//! - `metrics.rs` — Prometheus metrics (`stratalog_bookie_*`).
//! - `fsutil.rs` — vectored writes, directory fsync, numbered file names.
//! - `service.rs` — the RPC adapter (internal protocol <-> [`Bookie`]); no storage logic.
//! - `tests.rs` — behaviour tests on real files, including a real `kill -9` test.
//!
//! On disk, under `data_dir`: `journal/<id>.jnl`, `entrylogs/<id>.log`, `index/` (sled).
//!
//! # Memory per ledger
//!
//! The index holds every ledger's state (flags, LACs; a 30-byte tombstone once deleted).
//! Memory holds only hot ones: a ledger's state is loaded from the index on first use and
//! dropped by the checkpoint after the one that found it unused and fully checkpointed
//! (see `state.rs`), so a closed or deleted ledger costs nothing in memory once cold, and
//! open loads only the states that journal replay touches. [`BookieStats::cached_ledgers`]
//! and the `stratalog_bookie_cached_ledger_states` gauge show how many are in memory.
//!
//! # Threads
//!
//! Two OS threads per bookie: the committer (journal writes and `fdatasync`) and the
//! checkpointer. Reads that miss the write cache run on tokio's blocking pool. The async
//! methods never block a worker thread on disk I/O; the synchronous lookups
//! (`find_entry_by_*`, `last_add_confirmed`, `writer_lac`) touch only memory and sled's
//! in-memory cache (a cold ledger's state is one sled point lookup), and `ledgers` scans
//! the index's ledger keys.

mod checkpoint;
mod committer;
mod config;
mod entry_log;
mod error;
mod fsutil;
mod index;
mod journal;
mod ledger;
mod metrics;
mod read;
mod record;
mod state;
mod write_cache;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::{oneshot, Notify};
use tracing::{error, info};

pub mod service;
pub use config::BookieConfig;
pub use error::BookieError;

use checkpoint::{Checkpointer, Control};
use entry_log::{EntryLogReader, EntryLogWriter};
use index::{Index, IndexBatch};
use journal::JournalWriter;
use metrics::Metrics;
use read::{Budget, Slot};
use record::Record;
use state::{Request, State};

/// Largest payload accepted by [`Bookie::add_entry`] (64 MiB). Also bounds what replay
/// and reads will allocate for a record whose length field is garbage.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024 * 1024;

/// Writer-supplied tag of an entry. Opaque to the bookie except for lookups: entries of a
/// ledger are expected to cover increasing, non-overlapping `[base_offset, last_offset]`
/// ranges in entry-id order (as the broker writes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// An entry as read back.
#[derive(Clone, Debug)]
pub struct Entry {
    pub ledger_id: u64,
    pub entry_id: u64,
    pub meta: EntryMeta,
    pub payload: Bytes,
}

/// Counters of this bookie instance (the Prometheus metrics are process-wide).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BookieStats {
    /// Journal `fdatasync`s since open (one per group commit).
    pub journal_fsyncs: u64,
    /// Checkpoints completed since open (idle ones not counted).
    pub checkpoints: u64,
    /// Entries and bytes now in the write cache (both generations).
    pub write_cache_entries: usize,
    pub write_cache_bytes: usize,
    /// Ledger states in memory now (the hot ones; the index holds all of them).
    pub cached_ledgers: usize,
    /// Ledger states read back from the index on a miss, and dropped from memory, since open.
    pub ledger_loads: u64,
    pub ledger_evictions: u64,
}

pub(crate) struct Dirs {
    pub journal: PathBuf,
    pub entry_logs: PathBuf,
    pub index: PathBuf,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub journal_fsyncs: AtomicU64,
    pub checkpoints: AtomicU64,
}

/// Everything the background threads share with the handles.
pub(crate) struct Inner {
    pub config: BookieConfig,
    pub dirs: Dirs,
    pub state: Mutex<State>,
    /// Wakes the committer when the queue gets a record (or on close).
    pub journal_cv: Condvar,
    pub index: Index,
    pub readers: EntryLogReader,
    /// Wakes adds waiting for write-cache space (after a checkpoint, a failure or close).
    pub space: Notify,
    pub checkpoint_ctl: Mutex<Control>,
    pub checkpoint_cv: Condvar,
    pub counters: Counters,
    pub metrics: &'static Metrics,
}

impl Inner {
    pub(crate) fn request_checkpoint(&self) {
        let mut c = self.checkpoint_ctl.lock();
        if !c.requested {
            c.requested = true;
            self.checkpoint_cv.notify_one();
        }
    }

    /// Queues a record for the committer. Must be called with the state locked, after
    /// the admission checks, so that checks and queue order agree. The record counts as
    /// pending for its ledger (which keeps the ledger's state in memory) until applied.
    fn enqueue(
        &self,
        st: &mut State,
        record: Record,
    ) -> oneshot::Receiver<Result<Option<u64>, BookieError>> {
        let (reply, rx) = oneshot::channel();
        st.queue_bytes += record.journal_len();
        st.note_pending(record.ledger_id());
        st.queue.push_back(Request { record, reply });
        self.journal_cv.notify_one();
        rx
    }
}

async fn await_reply(
    rx: oneshot::Receiver<Result<Option<u64>, BookieError>>,
) -> Result<Option<u64>, BookieError> {
    // A dropped sender means the committer exited without answering (shutdown).
    rx.await.unwrap_or(Err(BookieError::ShuttingDown))
}

fn join_error(e: tokio::task::JoinError) -> BookieError {
    if e.is_cancelled() {
        BookieError::ShuttingDown
    } else {
        BookieError::Failed {
            reason: Arc::from(format!("bookie task panicked: {e}")),
        }
    }
}

#[derive(Default)]
struct Threads {
    committer: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<Checkpointer>>,
    stopped: bool,
}

/// Owns the background threads. Dropping the last [`Bookie`] handle drops this, which
/// stops the threads *without* a final checkpoint — exactly what a crash leaves behind,
/// minus torn writes — so the next open replays the journal.
struct Lifecycle {
    inner: Arc<Inner>,
    threads: Mutex<Threads>,
}

impl Lifecycle {
    fn stop(&self, final_checkpoint: bool) {
        let mut t = self.threads.lock();
        if t.stopped {
            return;
        }
        t.stopped = true;
        let inner = &self.inner;
        inner.state.lock().closing = true;
        inner.journal_cv.notify_all();
        inner.space.notify_waiters();
        // The committer drains the queue (every accepted record gets written and
        // answered), then exits.
        if let Some(h) = t.committer.take() {
            if h.join().is_err() {
                error!("bookie journal thread panicked");
            }
        }
        inner.checkpoint_ctl.lock().stop = true;
        inner.checkpoint_cv.notify_all();
        let cp = match t.checkpointer.take().map(JoinHandle::join) {
            Some(Ok(cp)) => Some(cp),
            Some(Err(_)) => {
                error!("bookie checkpoint thread panicked");
                None
            }
            None => None,
        };
        if final_checkpoint {
            if let Some(mut cp) = cp {
                // Errors are logged inside; the journal still holds everything.
                let _ = cp.run_once(inner);
            }
        }
        if let Err(e) = inner.index.flush() {
            error!(error = %e, "flushing the index at shutdown failed");
        }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        self.stop(false);
    }
}

/// A bookie. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Bookie {
    inner: Arc<Inner>,
    lifecycle: Arc<Lifecycle>,
}

impl std::fmt::Debug for Bookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bookie")
            .field("data_dir", &self.inner.config.data_dir)
            .finish()
    }
}

impl Bookie {
    /// Opens (creating if needed) the bookie in `config.data_dir`: replays the journal
    /// from the last checkpoint, checkpoints the result, and starts the committer and
    /// checkpoint threads.
    pub async fn open(config: BookieConfig) -> Result<Bookie, BookieError> {
        tokio::task::spawn_blocking(move || open_blocking(config))
            .await
            .map_err(join_error)?
    }

    /// Adds an entry. Resolves once the entry is durable (its journal group has been
    /// `fdatasync`ed) and readable.
    ///
    /// - A fenced ledger refuses adds with [`BookieError::Fenced`] unless `recovery`.
    /// - Adds to one ledger may arrive in any order.
    /// - Adding an id already stored succeeds without changing it (the first copy wins);
    ///   if the first copy is still in flight, the duplicate resolves no earlier than it.
    /// - Creates the ledger on its first entry.
    pub async fn add_entry(
        &self,
        ledger_id: u64,
        entry_id: u64,
        meta: EntryMeta,
        payload: Bytes,
        recovery: bool,
    ) -> Result<(), BookieError> {
        self.add_entry_with_lac(ledger_id, entry_id, meta, payload, recovery, None)
            .await
    }

    /// [`Bookie::add_entry`] carrying the writer's last-add-confirmed: the highest entry id
    /// the writer has seen acknowledged by an ack quorum when it sent this add
    /// (BookKeeper's piggybacked LAC). It is journaled no later than the entry, and
    /// [`Bookie::writer_lac`] reports the highest one durable here.
    pub async fn add_entry_with_lac(
        &self,
        ledger_id: u64,
        entry_id: u64,
        meta: EntryMeta,
        payload: Bytes,
        recovery: bool,
        writer_lac: Option<u64>,
    ) -> Result<(), BookieError> {
        if payload.len() > MAX_ENTRY_BYTES {
            return Err(BookieError::EntryTooLarge {
                ledger_id,
                entry_id,
                size: payload.len(),
                max: MAX_ENTRY_BYTES,
            });
        }
        // Computed once here, on the caller's task, and reused by the entry log.
        let crc = record::add_crc(ledger_id, entry_id, &meta, &payload);
        let inner = &*self.inner;
        let cache_max = inner.config.write_cache_max_bytes;
        let rx = loop {
            // Registered before checking, so a wake-up between check and await is not lost.
            let space = inner.space.notified();
            {
                let mut st = inner.state.lock();
                st.check_writable()?;
                if let Some(l) = st.ledger(ledger_id)? {
                    if l.is_deleted() {
                        return Err(BookieError::LedgerDeleted { ledger_id });
                    }
                    if l.is_fenced() && !recovery {
                        return Err(BookieError::Fenced { ledger_id });
                    }
                    if l.contains(entry_id) {
                        return Ok(()); // durable duplicate
                    }
                }
                // Backpressure: the write cache holds everything not yet checkpointed.
                if st.active.bytes + st.flushing.bytes + st.queue_bytes < cache_max {
                    if let Some(lac) = writer_lac {
                        let l = st.ledger_or_create(ledger_id)?;
                        let known = l.writer_lac().max(l.writer_lac_queued);
                        if known.is_none_or(|k| lac > k) {
                            l.writer_lac_queued = Some(lac);
                            // Queued ahead of the add, so durable no later than it; nobody
                            // waits for its answer.
                            drop(inner.enqueue(&mut st, Record::Lac { ledger_id, lac }));
                        }
                    }
                    break inner.enqueue(
                        &mut st,
                        Record::Add {
                            ledger_id,
                            entry_id,
                            meta,
                            crc,
                            payload,
                        },
                    );
                }
            }
            inner.request_checkpoint();
            space.await;
        };
        await_reply(rx).await.map(|_| ())
    }

    /// Reads one entry.
    pub async fn read_entry(&self, ledger_id: u64, entry_id: u64) -> Result<Entry, BookieError> {
        let mut got = self
            .read_entries(ledger_id, entry_id, 1, usize::MAX)
            .await?;
        match got.pop() {
            Some(e) => Ok(e),
            None => Err(BookieError::NoSuchEntry {
                ledger_id,
                entry_id,
            }),
        }
    }

    /// Reads consecutive entries starting at `first_entry_id`: at most `max_entries`, and
    /// no more than `max_bytes` of payload — except that the first entry is always
    /// returned if it exists, whatever its size. Stops at the first id this bookie does
    /// not have; returns an empty vector if it does not have `first_entry_id`.
    ///
    /// Errors: `NoSuchLedger`/`LedgerDeleted`, or the error of the first entry if it
    /// cannot be read (e.g. `Corrupt`). If a later entry cannot be read, the entries
    /// before it are returned and the next read starting at it gets the error.
    pub async fn read_entries(
        &self,
        ledger_id: u64,
        first_entry_id: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, BookieError> {
        self.read_entries_within(ledger_id, first_entry_id, max_entries, max_bytes, true)
            .await
    }

    /// [`Bookie::read_entries`]; with `first_may_exceed` false even the first entry must
    /// fit `max_bytes` (nothing is read otherwise), for a reader that continues a read
    /// begun elsewhere and must not fetch an entry it would have to drop.
    pub async fn read_entries_within(
        &self,
        ledger_id: u64,
        first_entry_id: u64,
        max_entries: usize,
        max_bytes: usize,
        first_may_exceed: bool,
    ) -> Result<Vec<Entry>, BookieError> {
        /// Entries planned per round: bounds lock hold time and over-reading of the index.
        const CHUNK: usize = 64;
        let mut budget = Budget {
            max_entries,
            max_bytes,
            entries: 0,
            bytes: 0,
            first_may_exceed,
        };
        let mut out: Vec<Entry> = Vec::new();
        let mut next = first_entry_id;
        while out.len() < max_entries {
            let want = (max_entries - out.len()).min(CHUNK);
            let slots = match self.inner.plan_reads(ledger_id, next, want) {
                Ok(s) => s,
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break, // deleted meanwhile: return what was read
            };
            if slots.is_empty() {
                break;
            }
            let planned = slots.len();
            let resolved = if slots.iter().any(Slot::is_disk) {
                let inner = self.inner.clone();
                let mut b = budget;
                let (r, b) = tokio::task::spawn_blocking(move || {
                    let r = inner.resolve(ledger_id, slots, &mut b);
                    (r, b)
                })
                .await
                .map_err(join_error)?;
                budget = b;
                r
            } else {
                self.inner.resolve(ledger_id, slots, &mut budget)
            };
            let got = resolved.entries.len();
            let m = self.inner.metrics;
            m.reads.inc_by(got as u64);
            m.read_bytes.inc_by(
                resolved
                    .entries
                    .iter()
                    .map(|e| e.payload.len() as u64)
                    .sum(),
            );
            out.extend(resolved.entries);
            if let Some(e) = resolved.error {
                if out.is_empty() {
                    return Err(e);
                }
                break;
            }
            if resolved.stopped || got < planned || planned < want {
                break;
            }
            match next.checked_add(got as u64) {
                Some(n) => next = n,
                None => break,
            }
        }
        Ok(out)
    }

    /// The entry whose `[base_offset, last_offset]` contains `offset`, else the first
    /// entry with `base_offset > offset`, else `None`. Considers every entry stored here
    /// (including ones above the LAC).
    pub fn find_entry_by_offset(
        &self,
        ledger_id: u64,
        offset: i64,
    ) -> Result<Option<u64>, BookieError> {
        let inner = &*self.inner;
        // Memory before index: an entry moves cache -> index (index written first), so
        // looking in this order cannot miss one that is being moved.
        let mem = {
            let mut st = inner.state.lock();
            st.readable(ledger_id)?;
            let a = st.active.find_by_offset(ledger_id, offset);
            let b = st.flushing.find_by_offset(ledger_id, offset);
            a.into_iter().chain(b).min()
        };
        let disk = inner.index.find_by_offset(ledger_id, offset)?;
        Ok(mem
            .into_iter()
            .chain(disk)
            .min()
            .map(|(_, entry_id)| entry_id))
    }

    /// The first entry (lowest id) whose `max_timestamp >= timestamp`, among the entries
    /// `0..=last_add_confirmed` (the time index is built over the contiguous prefix,
    /// where the running maximum is defined).
    pub fn find_entry_by_timestamp(
        &self,
        ledger_id: u64,
        timestamp: i64,
    ) -> Result<Option<u64>, BookieError> {
        let inner = &*self.inner;
        let mem = {
            let mut st = inner.state.lock();
            st.readable(ledger_id)?;
            let a = st.active.find_by_time(ledger_id, timestamp);
            let b = st.flushing.find_by_time(ledger_id, timestamp);
            a.into_iter().chain(b).min()
        };
        let disk = inner.index.find_by_time(ledger_id, timestamp)?;
        Ok(mem
            .into_iter()
            .chain(disk)
            .min()
            .map(|(_, entry_id)| entry_id))
    }

    /// The highest id such that entries `0..=id` are all durable here; `None` if the
    /// ledger has no entry 0.
    pub fn last_add_confirmed(&self, ledger_id: u64) -> Result<Option<u64>, BookieError> {
        let mut st = self.inner.state.lock();
        Ok(st.readable(ledger_id)?.lac())
    }

    /// The highest last-add-confirmed the writer piggybacked on an add durable here:
    /// every entry up to it was acknowledged by the writer's ack quorum. Read it after
    /// [`Bookie::fence`] returns to know what recovery need not re-replicate.
    pub fn writer_lac(&self, ledger_id: u64) -> Result<Option<u64>, BookieError> {
        let mut st = self.inner.state.lock();
        Ok(st.readable(ledger_id)?.writer_lac())
    }

    /// Fences the ledger (creating it if unknown) and returns its LAC. The fence is
    /// journaled: it is durable when this returns, and every non-recovery add accepted
    /// after this call started is refused. Idempotent.
    pub async fn fence(&self, ledger_id: u64) -> Result<Option<u64>, BookieError> {
        let inner = &*self.inner;
        let rx = {
            let mut st = inner.state.lock();
            st.check_writable()?;
            let l = st.ledger_or_create(ledger_id)?;
            if l.is_deleted() {
                return Err(BookieError::LedgerDeleted { ledger_id });
            }
            if l.fenced {
                return Ok(l.lac()); // already durable
            }
            l.fence_pending = true;
            inner.enqueue(&mut st, Record::Fence { ledger_id })
        };
        await_reply(rx).await
    }

    /// Deletes the ledger. When this returns the deletion is durable (journaled), reads
    /// and adds of the ledger fail with `LedgerDeleted`, and it is gone from
    /// [`Bookie::ledgers`]. Index keys are removed and entry log files whose bytes are all
    /// dead are unlinked by the next checkpoint (at most `checkpoint_interval` later; call
    /// [`Bookie::checkpoint`] to force it). Entry logs are not compacted: a file shared with
    /// live ledgers keeps its space until they are deleted too. A deleted ledger id stays
    /// as a 30-byte tombstone in the index (in memory only while hot), so a late add from
    /// a zombie writer cannot resurrect it. Idempotent; deleting an
    /// unknown ledger just records the tombstone.
    pub async fn delete_ledger(&self, ledger_id: u64) -> Result<(), BookieError> {
        let inner = &*self.inner;
        let rx = {
            let mut st = inner.state.lock();
            st.check_writable()?;
            let l = st.ledger_or_create(ledger_id)?;
            if l.deleted {
                return Ok(());
            }
            l.delete_pending = true;
            inner.enqueue(&mut st, Record::Delete { ledger_id })
        };
        await_reply(rx).await.map(|_| ())
    }

    /// Ids of the ledgers stored here (not deleted), sorted.
    ///
    /// Scans the index (where every ledger checkpointed so far has its state) without
    /// holding the state lock, then overlays the cached states, which are the same or
    /// newer (created, fenced or deleted since the last checkpoint). If states were
    /// evicted meanwhile (a checkpoint ran), the scan may predate what they held, so it
    /// is redone; after a few tries it runs under the lock.
    pub fn ledgers(&self) -> Result<Vec<u64>, BookieError> {
        let inner = &*self.inner;
        let merge = |scanned: Vec<(u64, bool)>, st: &State| {
            let mut live: std::collections::BTreeMap<u64, bool> = scanned.into_iter().collect();
            for (id, deleted) in st.cached_ids() {
                live.insert(id, deleted);
            }
            live.into_iter()
                .filter(|(_, deleted)| !deleted)
                .map(|(id, _)| id)
                .collect()
        };
        for _ in 0..3 {
            let epoch = inner.state.lock().eviction_epoch;
            let scanned = inner.index.scan_ledgers()?;
            let st = inner.state.lock();
            if st.eviction_epoch == epoch {
                return Ok(merge(scanned, &st));
            }
        }
        let st = inner.state.lock();
        let scanned = inner.index.scan_ledgers()?;
        Ok(merge(scanned, &st))
    }

    /// Runs a checkpoint now and waits for it: everything acknowledged before the call is
    /// in entry logs and the index afterwards, pending deletions are reclaimed and old
    /// journal files removed. (Addition to the brief: for tests, admin and deletion.)
    pub async fn checkpoint(&self) -> Result<(), BookieError> {
        let inner = &*self.inner;
        let (tx, rx) = oneshot::channel();
        {
            let mut c = inner.checkpoint_ctl.lock();
            if c.stop {
                return Err(BookieError::ShuttingDown);
            }
            c.waiters.push(tx);
            c.requested = true;
        }
        inner.checkpoint_cv.notify_one();
        rx.await.unwrap_or(Err(BookieError::ShuttingDown))
    }

    /// Counters of this instance.
    pub fn stats(&self) -> BookieStats {
        let c = &self.inner.counters;
        let st = self.inner.state.lock();
        BookieStats {
            journal_fsyncs: c.journal_fsyncs.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            write_cache_entries: st.active.entries + st.flushing.entries,
            write_cache_bytes: st.active.bytes + st.flushing.bytes,
            cached_ledgers: st.cached_ledgers(),
            ledger_loads: st.ledger_loads,
            ledger_evictions: st.ledger_evictions,
        }
    }

    /// Stops accepting writes, lets queued adds complete, runs a final checkpoint and
    /// stops the background threads. Reads keep working afterwards; writes fail with
    /// `ShuttingDown`. Idempotent.
    pub async fn shutdown(&self) {
        let lifecycle = self.lifecycle.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || lifecycle.stop(true)).await {
            error!(error = %e, "bookie shutdown task failed");
        }
    }
}

fn open_blocking(config: BookieConfig) -> Result<Bookie, BookieError> {
    let started = Instant::now();
    let metrics = metrics::metrics();
    let root = config.data_dir.clone();
    let dirs = Dirs {
        journal: root.join("journal"),
        entry_logs: root.join("entrylogs"),
        index: root.join("index"),
    };
    for d in [&root, &dirs.journal, &dirs.entry_logs, &dirs.index] {
        fsutil::ensure_dir(d)?;
    }
    let index = Index::open(&dirs.index)?;
    let loaded = index.load()?;

    // Reconcile entry log files with their counters.
    let mut files = loaded.files;
    let on_disk = fsutil::list_numbered(&dirs.entry_logs, entry_log::EXT)?;
    let mut fix = IndexBatch::default();
    let mut fixes = 0usize;
    let mut removed_files = 0usize;
    for id in &on_disk {
        match files.get(id) {
            // Written by a checkpoint that never committed: nothing references it.
            None => {
                entry_log::remove_file(&dirs.entry_logs, *id)?;
                removed_files += 1;
            }
            // Fully dead, deletion interrupted by a crash.
            Some(s) if s.live == 0 => {
                entry_log::remove_file(&dirs.entry_logs, *id)?;
                files.remove(id);
                fix.remove_file_stats(*id);
                fixes += 1;
                removed_files += 1;
            }
            Some(_) => {}
        }
    }
    let on_disk_set: HashSet<u64> = on_disk.iter().copied().collect();
    let missing: Vec<u64> = files
        .keys()
        .filter(|id| !on_disk_set.contains(id))
        .copied()
        .collect();
    for id in missing {
        match files.get(&id) {
            Some(s) if s.live > 0 => {
                error!(file_id = id, live_bytes = s.live, dir = ?dirs.entry_logs,
                    "entry log file is missing; reads of its entries will fail");
            }
            _ => {
                files.remove(&id);
                fix.remove_file_stats(id);
                fixes += 1;
            }
        }
    }
    if fixes > 0 {
        index.commit(fix)?;
    }
    let next_log_id = on_disk
        .last()
        .copied()
        .max(files.keys().max().copied())
        .map_or(1, |m| m + 1);

    // Replay the journal on top of the checkpointed state.
    // Ledger states are loaded on demand: replay reads those its records touch.
    let mut state = State::new(index.clone());
    let (mut adds, mut fences, mut deletes) = (0u64, 0u64, 0u64);
    let mut apply_error = None;
    let summary = journal::replay(&dirs.journal, loaded.checkpoint, |rec| {
        match &rec {
            Record::Add { .. } => adds += 1,
            Record::Fence { .. } => fences += 1,
            Record::Delete { .. } => deletes += 1,
            Record::Lac { .. } => {}
        }
        // Refusals (an add journaled after its ledger's delete) are expected; ignore.
        // Anything else (the index failed to give a ledger's state) is fatal.
        match state.apply(rec) {
            Ok(_) | Err(BookieError::LedgerDeleted { .. }) => {}
            Err(e) => {
                apply_error.get_or_insert(e);
            }
        }
    })?;
    if let Some(e) = apply_error {
        return Err(e);
    }
    if summary.truncated.is_some() {
        metrics.journal_truncations.inc();
    }
    let journal_id = summary
        .max_file_id
        .max(loaded.checkpoint.map(|c| c.file_id))
        .map_or(1, |m| m + 1);
    let journal_writer =
        JournalWriter::create(&dirs.journal, journal_id, config.journal_max_bytes)?;
    state.applied = journal_writer.position();
    let ledger_count = state.cached_ledgers();

    let entry_log_writer = EntryLogWriter::new(
        dirs.entry_logs.clone(),
        config.entry_log_max_bytes,
        next_log_id,
    );
    let readers = EntryLogReader::new(dirs.entry_logs.clone());
    let inner = Arc::new(Inner {
        config,
        dirs,
        state: Mutex::new(state),
        journal_cv: Condvar::new(),
        index,
        readers,
        space: Notify::new(),
        checkpoint_ctl: Mutex::new(Control::default()),
        checkpoint_cv: Condvar::new(),
        counters: Counters::default(),
        metrics,
    });

    // Make the replayed state durable in entry logs + index and drop replayed journals.
    let mut checkpointer = Checkpointer::new(entry_log_writer, files);
    checkpointer.run_once(&inner)?;

    let lifecycle = Arc::new(Lifecycle {
        inner: inner.clone(),
        threads: Mutex::new(Threads::default()),
    });
    let spawn_err = |e| BookieError::io("spawn bookie thread", &inner.config.data_dir, e);
    {
        let i = inner.clone();
        let h = std::thread::Builder::new()
            .name("bookie-journal".into())
            .spawn(move || committer::run(i, journal_writer))
            .map_err(spawn_err)?;
        lifecycle.threads.lock().committer = Some(h);
    }
    {
        let i = inner.clone();
        let h = std::thread::Builder::new()
            .name("bookie-checkpoint".into())
            .spawn(move || checkpoint::run(i, checkpointer))
            .map_err(spawn_err)?;
        lifecycle.threads.lock().checkpointer = Some(h);
    }

    info!(
        data_dir = ?inner.config.data_dir,
        replayed_ledgers = ledger_count,
        replayed_journal_files = summary.files,
        replayed_records = summary.records,
        replayed_bytes = summary.bytes,
        replayed_adds = adds,
        replayed_fences = fences,
        replayed_deletes = deletes,
        journal_tail_truncated = summary.truncated.is_some(),
        corrupt_journal_files = summary.corrupt_files,
        entry_log_files = on_disk.len() - removed_files,
        entry_log_files_removed = removed_files,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "bookie opened"
    );
    Ok(Bookie { inner, lifecycle })
}
