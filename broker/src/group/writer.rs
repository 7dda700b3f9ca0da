//! Per-group write queue. Store writes of one group run one at a time, in the order they
//! were queued (queued under the group lock, so in the order of the state changes), which
//! keeps the store and the in-memory state in the same order without holding any lock
//! across an await. Consecutive offset commits are merged into one store call, so a group
//! under heavy commit load costs one store round trip per batch, not per request.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::effects::AfterPersist;
use super::store::{CommittedOffset, PersistedGroup, StoreError};

/// Most commit requests merged into one store call.
const MAX_MERGED_COMMITS: usize = 512;

/// Most offsets in one store call: the metadata store applies at most
/// `stratalog_metadata::MAX_BATCH_OPS` (1,024) ops atomically. Commits are merged only up to
/// this many offsets, and one commit of more partitions is written in several calls, in
/// order (see `Inner::drain`).
pub(crate) const MAX_OFFSETS_PER_WRITE: usize = 1024;
const _: () = assert!(MAX_OFFSETS_PER_WRITE <= stratalog_metadata::MAX_BATCH_OPS);

pub(crate) type Done = oneshot::Sender<Result<(), StoreError>>;

pub(crate) enum WriteOp {
    Commit {
        offsets: Vec<CommittedOffset>,
        done: Done,
    },
    Save(Box<PendingSave>),
    DeleteOffsets {
        partitions: Vec<(String, i32)>,
    },
    DeleteGroup {
        done: Done,
    },
}

/// A group snapshot to store, and what to do once it is stored.
pub(crate) struct PendingSave {
    pub(crate) snapshot: PersistedGroup,
    pub(crate) then: AfterPersist,
}

pub(crate) enum Batch {
    Commits(Vec<(Vec<CommittedOffset>, Done)>),
    One(WriteOp),
}

#[derive(Default)]
pub(crate) struct WriteQueue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    ops: VecDeque<WriteOp>,
    running: bool,
}

impl WriteQueue {
    /// Queues `op`; returns true if the caller must start a drainer.
    pub(crate) fn push(&self, op: WriteOp) -> bool {
        let mut s = self.state.lock();
        s.ops.push_back(op);
        if s.running {
            false
        } else {
            s.running = true;
            true
        }
    }

    /// The next batch for the drainer, or `None` (and the drainer must stop) when empty.
    pub(crate) fn next_batch(&self) -> Option<Batch> {
        let mut s = self.state.lock();
        match s.ops.pop_front() {
            None => {
                s.running = false;
                None
            }
            Some(WriteOp::Commit { offsets, done }) => {
                let mut count = offsets.len();
                let mut commits = vec![(offsets, done)];
                while commits.len() < MAX_MERGED_COMMITS {
                    let fits = matches!(s.ops.front(), Some(WriteOp::Commit { offsets, .. })
                        if count + offsets.len() <= MAX_OFFSETS_PER_WRITE);
                    if !fits {
                        break;
                    }
                    if let Some(WriteOp::Commit { offsets, done }) = s.ops.pop_front() {
                        count += offsets.len();
                        commits.push((offsets, done));
                    }
                }
                Some(Batch::Commits(commits))
            }
            Some(op) => Some(Batch::One(op)),
        }
    }

    /// No write queued or running.
    pub(crate) fn is_idle(&self) -> bool {
        let s = self.state.lock();
        !s.running && s.ops.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(n: usize) -> (WriteOp, oneshot::Receiver<Result<(), StoreError>>) {
        let (done, rx) = oneshot::channel();
        let offsets = (0..n)
            .map(|p| CommittedOffset {
                topic: "t".into(),
                partition: p as i32,
                offset: 1,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp_ms: 0,
            })
            .collect();
        (WriteOp::Commit { offsets, done }, rx)
    }

    #[test]
    fn commits_merge_only_up_to_the_offsets_per_write() {
        let q = WriteQueue::default();
        let mut rxs = Vec::new();
        for n in [600, 400, 100, 2000, 1] {
            let (op, rx) = commit(n);
            q.push(op);
            rxs.push(rx);
        }
        let sizes = |b: Batch| match b {
            Batch::Commits(c) => c.iter().map(|(o, _)| o.len()).collect::<Vec<_>>(),
            Batch::One(_) => panic!("expected commits"),
        };
        assert_eq!(sizes(q.next_batch().unwrap()), vec![600, 400]);
        assert_eq!(sizes(q.next_batch().unwrap()), vec![100]);
        // A single commit larger than the limit is one batch; the drainer splits it.
        assert_eq!(sizes(q.next_batch().unwrap()), vec![2000]);
        assert_eq!(sizes(q.next_batch().unwrap()), vec![1]);
        assert!(q.next_batch().is_none());
    }
}
