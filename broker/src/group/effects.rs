//! What a state transition leaves to the coordinator: store writes ([`Effect`]) and what the
//! state machine does once such a write is durable or failed ([`AfterPersist`]). Data only:
//! the writes run in `writer.rs`/`mod.rs`, the continuations in `state/persist.rs`.

use std::time::Duration;

use bytes::Bytes;

use super::store::PersistedGroup;

/// Work for the caller after a transition.
pub(crate) enum Effect {
    Persist {
        snapshot: PersistedGroup,
        then: AfterPersist,
    },
}

/// What to do once a persisted snapshot is durable (or failed to be).
pub(crate) enum AfterPersist {
    Nothing,
    /// The leader's assignment for `generation`: deliver it, or fail the sync and rebalance.
    SyncAssignment {
        generation: i32,
    },
    /// A static member replaced its member id in Stable without a rebalance (KIP-345).
    StaticReplace(StaticReplace),
}

/// A static member's replacement in Stable, kept until it is durable: what to answer the
/// new member id with, and what to restore if the write failed.
pub(crate) struct StaticReplace {
    pub(crate) instance_id: String,
    pub(crate) old_member_id: String,
    pub(crate) new_member_id: String,
    pub(crate) old_protocols: Vec<(String, Bytes)>,
    pub(crate) old_rebalance_timeout: Duration,
    pub(crate) old_session_timeout: Duration,
    pub(crate) leader_before: Option<String>,
    pub(crate) supports_skip_assignment: bool,
}
