//! The group-commit thread: the only writer of the journal.
//!
//! Loop: wait for queued records; take as many as fit in `journal_group_max_bytes`
//! (at least one); write them with one `writev` (frames from a reused buffer, payloads
//! straight from the callers' `Bytes`); one `fdatasync`; apply them to the state; answer
//! every caller. Records that arrive during the `fdatasync` form the next group, so the
//! group size adapts to the load without any timer: one add alone is synced at once,
//! many concurrent adds share a sync.
//!
//! It is a dedicated OS thread, not a tokio task: it spends its life in blocking
//! `writev`/`fdatasync` calls that must not occupy async worker threads.
//!
//! A failed write or `fdatasync` is fatal: after a failed `fdatasync` the kernel may have
//! dropped the dirty pages, so retrying could acknowledge data that is not on disk. The
//! bookie enters the failed state, fails every queued record and refuses writes until
//! restarted; restart replays what the journal really holds.

use std::io::IoSlice;
use std::sync::Arc;

use tracing::error;

use crate::journal::JournalWriter;
use crate::record::{put_add_frame, put_lac, put_ledger_op, Record, KIND_DELETE, KIND_FENCE};
use crate::state::Request;
use crate::{BookieError, Inner};

pub(crate) fn run(inner: Arc<Inner>, mut journal: JournalWriter) {
    let group_max = inner.config.journal_group_max_bytes;
    let cache_trigger = inner.config.write_cache_max_bytes / 2;
    let dirty_trigger = inner.config.ledger_cache_max.max(1);
    let mut group: Vec<Request> = Vec::new();
    let mut frames: Vec<u8> = Vec::new();
    let mut frame_ends: Vec<usize> = Vec::new();
    loop {
        // 1. Take a group.
        let mut group_bytes = 0usize;
        {
            let mut st = inner.state.lock();
            while st.queue.is_empty() && !st.closing {
                inner.journal_cv.wait(&mut st);
            }
            while let Some(r) = st.queue.front() {
                let len = r.record.journal_len();
                if !group.is_empty() && group_bytes + len > group_max {
                    break;
                }
                group_bytes += len;
                if let Some(r) = st.queue.pop_front() {
                    group.push(r);
                }
            }
            if group.is_empty() {
                return; // closing and drained
            }
        }

        // 2. Frame it and write it: one writev sequence, one fdatasync.
        frames.clear();
        frame_ends.clear();
        for r in &group {
            match &r.record {
                Record::Add {
                    ledger_id,
                    entry_id,
                    meta,
                    crc,
                    payload,
                } => put_add_frame(
                    &mut frames,
                    *ledger_id,
                    *entry_id,
                    meta,
                    payload.len(),
                    *crc,
                ),
                Record::Fence { ledger_id } => put_ledger_op(&mut frames, KIND_FENCE, *ledger_id),
                Record::Delete { ledger_id } => put_ledger_op(&mut frames, KIND_DELETE, *ledger_id),
                Record::Lac { ledger_id, lac } => put_lac(&mut frames, *ledger_id, *lac),
            }
            frame_ends.push(frames.len());
        }
        let result = {
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(group.len() * 2);
            let mut start = 0;
            for (r, &end) in group.iter().zip(&frame_ends) {
                slices.push(IoSlice::new(&frames[start..end]));
                start = end;
                if let Record::Add { payload, .. } = &r.record {
                    slices.push(IoSlice::new(payload));
                }
            }
            journal.write_group(&mut slices, group_bytes as u64)
        };
        let fsync_time = match result {
            Ok(t) => t,
            Err(e) => {
                fail(&inner, &mut group, e);
                return;
            }
        };

        // 3. Apply and answer.
        let m = inner.metrics;
        m.fsync_seconds.observe(fsync_time.as_secs_f64());
        m.group_entries.observe(group.len() as f64);
        m.group_bytes.observe(group_bytes as f64);
        inner
            .counters
            .journal_fsyncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut adds = 0u64;
        let mut add_bytes = 0u64;
        let mut replies = Vec::with_capacity(group.len());
        let request_checkpoint = {
            let mut st = inner.state.lock();
            // The group's bytes leave the queue only now that they are in the write cache,
            // so admission control never loses sight of them while they are being fsynced.
            st.queue_bytes -= group_bytes;
            for r in group.drain(..) {
                if let Record::Add { payload, .. } = &r.record {
                    adds += 1;
                    add_bytes += payload.len() as u64;
                }
                let res = st.apply(r.record);
                replies.push((r.reply, res));
            }
            st.applied = journal.position();
            // Changed ledger states stay in memory until a checkpoint writes them.
            st.active.bytes >= cache_trigger || st.dirty.len() >= dirty_trigger
        };
        for (reply, res) in replies.drain(..) {
            let _ = reply.send(res); // the caller may have given up waiting; fine
        }
        m.adds.inc_by(adds);
        m.add_bytes.inc_by(add_bytes);
        if request_checkpoint {
            inner.request_checkpoint();
        }

        // 4. Roll between groups.
        if let Err(e) = journal.maybe_roll() {
            fail(&inner, &mut group, e);
            return;
        }
    }
}

/// Enters the failed state and fails `group` and everything queued.
fn fail(inner: &Inner, group: &mut Vec<Request>, e: BookieError) {
    error!(error = %e, "journal write failed; the bookie refuses writes until restarted");
    let reason: Arc<str> = Arc::from(e.to_string());
    let queued: Vec<Request> = {
        let mut st = inner.state.lock();
        st.failed = Some(reason.clone());
        st.queue_bytes = 0;
        st.queue.drain(..).collect()
    };
    for r in group.drain(..).chain(queued) {
        let _ = r.reply.send(Err(BookieError::Failed {
            reason: reason.clone(),
        }));
    }
    inner.space.notify_waiters();
}
