//! How raft messages leave this node. The network layer implements [`Transport`]; incoming
//! messages go the other way through [`crate::RaftInbox::step`].
use raft::eraftpb::Message;

/// Sends raft messages to peers (`msg.to`).
///
/// Called from the node's Ready loop, so it must not block: queue the messages and return.
/// Delivery may be lossy, reordered or duplicated; raft tolerates all three. If a message
/// cannot be delivered the implementation may report it with
/// [`crate::RaftInbox::report_unreachable`]; a failed `MsgSnapshot` should be reported with
/// [`crate::RaftInbox::report_snapshot`] so the leader retries it.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, msgs: Vec<Message>);
}

/// For a single voter, which never has anyone to talk to.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopTransport;

impl Transport for NoopTransport {
    fn send(&self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            tracing::trace!(count = msgs.len(), "no-op transport dropping raft messages");
        }
    }
}
