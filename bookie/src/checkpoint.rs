//! Checkpoints: move the write cache into entry logs and the index, then let go of the
//! journal files that are no longer needed.
//!
//! A checkpoint, on its own thread:
//! 1. under the state lock: swap the active write-cache generation out as the flushing
//!    one, capture the changed ledgers' state, the ledgers deleted since the last
//!    checkpoint, and the journal position `P` after the last applied record — all
//!    consistent with each other because the committer applies records under that lock;
//! 2. append the flushing entries to the current entry log, sorted by (ledger, entry),
//!    and `fdatasync` it;
//! 3. build one sled batch — entry locations, offset and time index points, ledger
//!    states, removal of deleted ledgers' keys, entry log byte counters, and `P` — and
//!    apply it atomically, then flush sled;
//! 4. drop the flushing generation (readers now find those entries through the index),
//!    and evict the ledger states that are cold and exactly in the index (state.rs);
//! 5. unlink entry log files with no live bytes left and journal files before `P`.
//!
//! A crash anywhere before step 3 completes leaves the index at the previous checkpoint
//! and replay starts from the previous position; entry log bytes written in step 2 are
//! then unreferenced garbage (the orphan files are removed at open). A crash after step 3
//! leaves only files to unlink, which open also does.
//!
//! Triggers: every `checkpoint_interval`, when the active generation reaches half of
//! `write_cache_max_bytes`, on [`crate::Bookie::checkpoint`], at open (after replay) and
//! at shutdown, and when `ledger_cache_max` ledgers changed since the last one. An idle
//! checkpoint (nothing changed) only evicts cold ledger states.
//!
//! A failed checkpoint puts the bookie in the failed state (writes refused; the flushing
//! generation stays in memory so reads keep working): retrying on top of an entry log
//! writer in an unknown state could index bytes that are not there.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;
use tracing::{debug, error, info};

use crate::entry_log::{self, EntryLogWriter, FileStats};
use crate::index::IndexBatch;
use crate::journal::{self, JournalPos};
use crate::write_cache::{CacheGen, CachedEntry};
use crate::{BookieError, Inner};

/// Requests to the checkpoint thread.
#[derive(Default)]
pub(crate) struct Control {
    pub requested: bool,
    pub stop: bool,
    pub waiters: Vec<oneshot::Sender<Result<(), BookieError>>>,
}

/// The checkpoint thread's own state.
pub(crate) struct Checkpointer {
    writer: EntryLogWriter,
    files: HashMap<u64, FileStats>,
    last: Option<JournalPos>,
}

impl Checkpointer {
    pub fn new(writer: EntryLogWriter, files: HashMap<u64, FileStats>) -> Checkpointer {
        Checkpointer {
            writer,
            files,
            last: None,
        }
    }

    /// Runs one checkpoint. On error the bookie is put in the failed state.
    pub fn run_once(&mut self, inner: &Inner) -> Result<(), BookieError> {
        let res = self.checkpoint(inner);
        match &res {
            Ok(()) | Err(BookieError::Failed { .. }) => {} // already reported when it failed
            Err(e) => {
                error!(error = %e, "checkpoint failed; the bookie refuses writes until restarted");
                let mut st = inner.state.lock();
                if st.failed.is_none() {
                    st.failed = Some(Arc::from(format!("checkpoint failed: {e}")));
                }
            }
        }
        inner.space.notify_waiters();
        res
    }

    fn checkpoint(&mut self, inner: &Inner) -> Result<(), BookieError> {
        let started = Instant::now();

        // 1. Swap and capture.
        let (gen, ledger_states, deletes, skip, pos) = {
            let mut st = inner.state.lock();
            if let Some(reason) = &st.failed {
                return Err(BookieError::Failed {
                    reason: reason.clone(),
                });
            }
            if st.active.is_empty()
                && st.dirty.is_empty()
                && st.pending_deletes.is_empty()
                && Some(st.applied) == self.last
            {
                // Idle, and the index is as of the last checkpoint: cold states can
                // still go (e.g. ones loaded by reads).
                let evicted = st.evict_cold(inner.config.ledger_cache_max);
                let cached = st.cached_ledgers();
                drop(st);
                self.report_cache(inner, cached, evicted);
                return Ok(());
            }
            // Lookups first (they could fail on an index error), changes after. Dirty
            // states and those with cached entries are never evicted, so these lookups
            // find them in memory; the accessor would load them if not.
            let dirty: Vec<u64> = st.dirty.iter().copied().collect();
            let mut ledger_states: Vec<(u64, Vec<u8>)> = Vec::with_capacity(dirty.len());
            for id in dirty {
                if let Some(l) = st.ledger_untouched(id)? {
                    ledger_states.push((id, l.encode()));
                }
            }
            // Entries of ledgers deleted (or being deleted) are not copied. A ledger
            // deleted after this point is copied and then cleaned by the next checkpoint.
            let cached: Vec<u64> = st.active.ledgers.keys().copied().collect();
            let mut skip: HashSet<u64> = HashSet::new();
            for id in cached {
                if st.ledger_untouched(id)?.is_none_or(|l| l.is_deleted()) {
                    skip.insert(id);
                }
            }
            st.dirty.clear();
            let gen = Arc::new(std::mem::take(&mut st.active));
            st.flushing = gen.clone();
            let deletes = std::mem::take(&mut st.pending_deletes);
            (gen, ledger_states, deletes, skip, st.applied)
        };

        // 2. Entry logs.
        let mut ledger_ids: Vec<u64> = gen
            .ledgers
            .keys()
            .filter(|id| !skip.contains(id))
            .copied()
            .collect();
        ledger_ids.sort_unstable();
        let mut items: Vec<(u64, u64, &CachedEntry)> = Vec::with_capacity(gen.entries);
        for id in &ledger_ids {
            if let Some(l) = gen.ledgers.get(id) {
                items.extend(l.entries.iter().map(|(e, c)| (*id, *e, c)));
            }
        }
        let locations = self.writer.append(&items)?;
        let written = started.elapsed();
        self.writer.sync()?;
        let synced = started.elapsed();

        // 3. Index batch.
        let mut batch = IndexBatch::default();
        let mut touched: HashSet<u64> = HashSet::new();
        for ((ledger_id, entry_id, c), loc) in items.iter().zip(&locations) {
            batch.put_entry(*ledger_id, *entry_id, c.meta.last_offset, loc);
            let s = self.files.entry(loc.file_id).or_default();
            s.total += u64::from(loc.len);
            s.live += u64::from(loc.len);
            touched.insert(loc.file_id);
        }
        for id in &ledger_ids {
            if let Some(l) = gen.ledgers.get(id) {
                for (running_max, entry_id) in &l.time_points {
                    batch.put_time_point(*id, *running_max, *entry_id);
                }
            }
        }
        let mut released = 0u64;
        for ledger_id in &deletes {
            for loc in inner.index.remove_ledger(&mut batch, *ledger_id)? {
                if let Some(s) = self.files.get_mut(&loc.file_id) {
                    s.live = s.live.saturating_sub(u64::from(loc.len));
                    released += u64::from(loc.len);
                    touched.insert(loc.file_id);
                }
            }
        }
        for (id, encoded) in &ledger_states {
            batch.put_ledger_raw(*id, encoded);
        }
        let current = self.writer.current_id();
        let mut dead: Vec<u64> = self
            .files
            .iter()
            .filter(|(id, s)| s.live == 0 && Some(**id) != current)
            .map(|(id, _)| *id)
            .collect();
        dead.sort_unstable();
        for id in &dead {
            self.files.remove(id);
            touched.remove(id);
            batch.remove_file_stats(*id);
        }
        for id in &touched {
            if let Some(s) = self.files.get(id) {
                batch.put_file_stats(*id, s);
            }
        }
        batch.put_checkpoint(pos);
        let indexed = started.elapsed();
        inner.index.commit(batch)?;
        let committed = started.elapsed();

        // 4. The index now has everything: drop the flushing generation.
        // Then drop the ledger states that are cold and now exactly in the index.
        let (cached, evicted, cache_bytes) = {
            let mut st = inner.state.lock();
            st.flushing = Arc::new(CacheGen::default());
            let evicted = st.evict_cold(inner.config.ledger_cache_max);
            (st.cached_ledgers(), evicted, st.active.bytes)
        };
        inner.space.notify_waiters();
        let (entries, bytes) = (items.len(), gen.bytes);
        drop(items);
        drop(gen);

        // 5. Reclaim files.
        for id in &dead {
            inner.readers.forget(*id);
            entry_log::remove_file(&inner.dirs.entry_logs, *id)?;
        }
        let journals_removed = journal::remove_before(&inner.dirs.journal, pos.file_id)?;
        self.last = Some(pos);

        let m = inner.metrics;
        m.checkpoints.inc();
        m.checkpoint_seconds
            .observe(started.elapsed().as_secs_f64());
        self.report_cache(inner, cached, evicted);
        m.write_cache_bytes.set(cache_bytes as i64);
        m.entry_logs_deleted.inc_by(dead.len() as u64);
        inner
            .counters
            .checkpoints
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !dead.is_empty() || !deletes.is_empty() {
            info!(
                deleted_ledgers = deletes.len(),
                released_bytes = released,
                entry_logs_deleted = dead.len(),
                "checkpoint reclaimed space"
            );
        }
        debug!(
            entries,
            bytes,
            ledgers_changed = ledger_states.len(),
            ledger_states_evicted = evicted,
            ledger_states_cached = cached,
            journals_removed,
            write_ms = written.as_millis() as u64,
            sync_ms = (synced - written).as_millis() as u64,
            index_build_ms = (indexed - synced).as_millis() as u64,
            index_commit_ms = (committed - indexed).as_millis() as u64,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "checkpoint done"
        );
        Ok(())
    }
}

impl Checkpointer {
    fn report_cache(&self, inner: &Inner, cached: usize, evicted: usize) {
        inner.metrics.cached_ledgers.set(cached as i64);
        if evicted > 0 {
            debug!(evicted, cached, "ledger states evicted");
        }
    }
}

/// The checkpoint thread: runs on a timer, on request, until told to stop. Returns its
/// state so that shutdown can run the final checkpoint itself.
pub(crate) fn run(inner: Arc<Inner>, mut cp: Checkpointer) -> Checkpointer {
    // A zero interval would spin; 10 ms is plenty for "as often as possible".
    let interval = inner
        .config
        .checkpoint_interval
        .max(std::time::Duration::from_millis(10));
    loop {
        let waiters = {
            let mut c = inner.checkpoint_ctl.lock();
            if !c.requested && !c.stop {
                let _ = inner.checkpoint_cv.wait_for(&mut c, interval);
            }
            if c.stop {
                // Pending waiters get their sender dropped: they see ShuttingDown.
                return cp;
            }
            c.requested = false;
            std::mem::take(&mut c.waiters)
        };
        let res = cp.run_once(&inner);
        let reason = res.as_ref().err().map(|e| Arc::<str>::from(e.to_string()));
        for w in waiters {
            let _ = w.send(match &reason {
                None => Ok(()),
                Some(r) => Err(BookieError::Failed { reason: r.clone() }),
            });
        }
    }
}
