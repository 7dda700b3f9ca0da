//! What the node's loop shares with the [`crate::MetadataStore`] handles: the request inbox
//! and the state both read. A leaf module, so the loop (`node`) and the handles (`store`)
//! depend on it and not on each other.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raft::eraftpb::Message;
use raft::SnapshotStatus;
use tokio::sync::{mpsc, oneshot, watch};

use crate::command::Response;
use crate::error::MetadataError;
use crate::lease::LeaseTracker;
use crate::state_machine::StateMachine;
use crate::watch::WatchHub;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, MetadataError>>;

pub(crate) enum Request {
    Propose {
        data: Vec<u8>,
        reply: Reply<Response>,
    },
    /// Answered with an index; once the state machine has applied it, a local read is
    /// linearizable.
    ReadIndex {
        reply: Reply<u64>,
    },
    Raft(Box<Message>),
    Unreachable(u64),
    SnapshotStatus(u64, SnapshotStatus),
}

/// State shared between the loop and the [`MetadataStore`] handles.
pub(crate) struct Shared {
    pub(crate) node_id: u64,
    pub(crate) requests: mpsc::Sender<Request>,
    pub(crate) sm: Arc<StateMachine>,
    pub(crate) leases: LeaseTracker,
    pub(crate) watch: WatchHub,
    pub(crate) applied: watch::Receiver<u64>,
    pub(crate) is_leader: AtomicBool,
    /// Raft's idea of the leader; 0 when unknown.
    pub(crate) leader: AtomicU64,
    pub(crate) request_timeout: Duration,
}

impl Shared {
    pub(crate) fn leader_hint(&self) -> Option<u64> {
        match self.leader.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    pub(crate) fn not_leader(&self) -> MetadataError {
        MetadataError::NotLeader {
            leader: self.leader_hint(),
        }
    }
}
