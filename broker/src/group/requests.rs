//! JoinGroup and SyncGroup as the state machine sees them: the parsed JoinGroup request
//! ([`JoinArgs`]), the outcomes ([`JoinResult`], [`SyncResult`]) and the oneshot channels a
//! parked request waits on. Plain data; encoding the versioned Kafka responses is
//! `group_api.rs`'s, deciding the outcomes the state machine's (`state/`).

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

/// A member as listed to the leader in its JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// Outcome of a JoinGroup request, converted to the versioned response by the caller.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinResult {
    pub error: i16,
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub fn error(member_id: impl Into<String>, error: i16) -> Self {
        JoinResult {
            error,
            member_id: member_id.into(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// Outcome of a SyncGroup request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: i16) -> Self {
        SyncResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

pub(crate) type JoinTx = oneshot::Sender<JoinResult>;
pub(crate) type SyncTx = oneshot::Sender<SyncResult>;

/// Answers a parked JoinGroup (if there is one).
pub(crate) fn send_join(tx: Option<JoinTx>, result: JoinResult) {
    if let Some(tx) = tx {
        // The requester may be gone (client disconnected); nothing to do then.
        let _ = tx.send(result);
    }
}

/// Answers a parked SyncGroup (if there is one).
pub(crate) fn send_sync(tx: Option<SyncTx>, result: SyncResult) {
    if let Some(tx) = tx {
        let _ = tx.send(result);
    }
}

/// The parsed JoinGroup request.
pub(crate) struct JoinArgs {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ without a group instance id (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+ (KIP-814).
    pub supports_skip_assignment: bool,
    pub reason: Option<String>,
}
