//! Per-group write queue. Store writes of one group run one at a time, in the order they
//! were queued (queued under the group lock, so in the order of the state changes), which
//! keeps the store and the in-memory state in the same order without holding any lock
//! across an await. Consecutive offset commits are merged into one store call, so a group
//! under heavy commit load costs one store round trip per batch, not per request.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::state::AfterPersist;
use super::store::{CommittedOffset, PersistedGroup, StoreError};

/// Most commit requests merged into one store call.
const MAX_MERGED_COMMITS: usize = 512;

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
                let mut commits = vec![(offsets, done)];
                while commits.len() < MAX_MERGED_COMMITS
                    && matches!(s.ops.front(), Some(WriteOp::Commit { .. }))
                {
                    if let Some(WriteOp::Commit { offsets, done }) = s.ops.pop_front() {
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
