//! The values the public API speaks in: keys with their revisions, compare-and-set
//! expectations, batch operations and watch events.
use bytes::Bytes;

/// A point in the store's history. Every applied command that changes at least one key gets
/// the next revision (etcd style): all keys written by one batch share it. Persisted, so it
/// never goes backwards across restarts.
pub type Revision = u64;

/// A lease handle. Leases are granted through the log; the id is the raft index of the grant,
/// which makes it unique for the life of the cluster without a separate counter.
pub type LeaseId = u64;

/// A key and its current value.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision at which the key was last created (a delete followed by a put starts over).
    pub create_revision: Revision,
    /// Revision of the last write to the key; the key's version for compare-and-set. Never 0
    /// for an existing key, which is why `Expect::Revision(0)` means "absent".
    pub mod_revision: Revision,
    /// The lease the key is attached to: it is deleted when that lease is revoked or expires.
    pub lease: Option<LeaseId>,
}

/// The compare half of compare-and-set, checked against the key's state right before the
/// command applies (in log order, so it is linearizable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No condition.
    Any,
    /// The key must not exist.
    Absent,
    /// The key's `mod_revision` must equal this. `Revision(0)` is the same as `Absent`.
    Revision(Revision),
}

impl Expect {
    /// Whether a key currently in state `current` satisfies the expectation.
    pub(crate) fn matches(&self, current: Option<&KeyValue>) -> bool {
        let current_rev = current.map_or(0, |kv| kv.mod_revision);
        match *self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Revision(rev) => current_rev == rev,
        }
    }
}

/// One operation of an atomic batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Put {
        key: String,
        value: Bytes,
        expect: Expect,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
        expect: Expect,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// A change to one key, as delivered by `watch`.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    /// For `Put`, the key's new state. For `Delete`, the key and the revision of the deletion
    /// in `mod_revision`; `value` is empty, `create_revision` is 0 and `lease` is `None`.
    pub kv: KeyValue,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}
