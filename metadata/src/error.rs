//! The one error type of the public API. Every variant maps to a status the RPC layer can send
//! back, so it is `Clone` and carries only plain data.
use crate::types::{KeyValue, LeaseId, Revision};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MetadataError {
    /// A compare-and-set expectation failed. `key` is the first failing key of the command;
    /// `current` its state when the command applied.
    #[error("compare-and-set failed on key {key:?}")]
    Conflict {
        key: String,
        current: Option<KeyValue>,
    },
    /// This node cannot serve the request because it is not the Raft leader; `leader` is the
    /// node it believes to be leader, if any. Also returned when a proposal was lost to a
    /// leadership change (it was certainly not applied).
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),
    /// A watch asked for events after a revision older than the in-memory history;
    /// `oldest` is the smallest `after` that can still be served. Re-list and watch again.
    #[error("revision compacted: watch history starts after revision {oldest}")]
    Compacted { oldest: Revision },
    /// The request did not finish within the configured request timeout. A write's outcome is
    /// then unknown: it may or may not have been applied.
    #[error("request timed out (outcome unknown)")]
    Timeout,
    /// The disk failed, or its contents (or a raft message) could not be decoded.
    #[error("storage error: {0}")]
    Storage(String),
    #[error("metadata node is shutting down")]
    ShuttingDown,
    /// The request is malformed (empty key, oversized value, zero TTL, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// raft-rs refused an operation for a reason other than leadership.
    #[error("raft error: {0}")]
    Raft(String),
}

impl From<sled::Error> for MetadataError {
    fn from(e: sled::Error) -> Self {
        MetadataError::Storage(e.to_string())
    }
}

impl From<crate::codec::CodecError> for MetadataError {
    fn from(e: crate::codec::CodecError) -> Self {
        MetadataError::Storage(format!("corrupt data: {e}"))
    }
}

impl From<protobuf::ProtobufError> for MetadataError {
    fn from(e: protobuf::ProtobufError) -> Self {
        MetadataError::Storage(format!("corrupt protobuf: {e}"))
    }
}
