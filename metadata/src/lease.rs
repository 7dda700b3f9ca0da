//! Lease deadlines, kept in memory only (the etcd way).
//!
//! Whether a lease exists is replicated state ([`crate::state_machine`]); *when* it expires is
//! not, because clocks differ between nodes and a keep-alive per client per second must not
//! cost a log write. Every node mirrors the set of leases from what it applies, but only the
//! leader enforces deadlines: it proposes `ExpireLease` once a deadline passes. A node that
//! becomes leader (including a restarted single node) first gives every lease a fresh full
//! TTL, since it cannot know when the previous leader last heard a keep-alive.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::types::LeaseId;

/// How long the leader waits before proposing `ExpireLease` again for the same lease (the
/// first proposal may be lost to a leadership change).
const EXPIRE_RETRY: Duration = Duration::from_secs(1);

struct Tracked {
    ttl: Duration,
    deadline: Instant,
    /// Set once an `ExpireLease` is proposed: the lease is as good as gone, keep-alives fail.
    expiring_since: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct LeaseTracker {
    leases: Mutex<HashMap<LeaseId, Tracked>>,
}

impl LeaseTracker {
    /// Replaces the tracked set (at open and after a snapshot install).
    pub(crate) fn load(&self, leases: impl IntoIterator<Item = (LeaseId, Duration)>, now: Instant) {
        let mut map = self.leases.lock();
        map.clear();
        for (id, ttl) in leases {
            map.insert(
                id,
                Tracked {
                    ttl,
                    deadline: now + ttl,
                    expiring_since: None,
                },
            );
        }
    }

    pub(crate) fn granted(&self, id: LeaseId, ttl: Duration, now: Instant) {
        self.leases.lock().insert(
            id,
            Tracked {
                ttl,
                deadline: now + ttl,
                expiring_since: None,
            },
        );
    }

    pub(crate) fn removed(&self, id: LeaseId) {
        self.leases.lock().remove(&id);
    }

    /// A new leader's amnesty: every lease gets a full TTL from now.
    pub(crate) fn refresh_all(&self, now: Instant) {
        for t in self.leases.lock().values_mut() {
            t.deadline = now + t.ttl;
            t.expiring_since = None;
        }
    }

    /// Extends the lease to `now + ttl`; `None` if it is unknown or already expiring.
    pub(crate) fn keep_alive(&self, id: LeaseId, now: Instant) -> Option<Duration> {
        let mut map = self.leases.lock();
        let t = map.get_mut(&id)?;
        if t.expiring_since.is_some() {
            return None;
        }
        t.deadline = now + t.ttl;
        Some(t.ttl)
    }

    /// Leases whose deadline has passed and that need an `ExpireLease` proposal now; they are
    /// marked as expiring.
    pub(crate) fn due(&self, now: Instant) -> Vec<LeaseId> {
        let mut out = Vec::new();
        for (id, t) in self.leases.lock().iter_mut() {
            let retry = t
                .expiring_since
                .is_none_or(|since| now.duration_since(since) >= EXPIRE_RETRY);
            if t.deadline <= now && retry {
                t.expiring_since = Some(now);
                out.push(*id);
            }
        }
        out.sort_unstable();
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.leases.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_keep_alive_and_retry() {
        let t = LeaseTracker::default();
        let t0 = Instant::now();
        let ttl = Duration::from_millis(300);
        t.granted(7, ttl, t0);
        assert!(t.due(t0 + Duration::from_millis(299)).is_empty());
        assert_eq!(t.keep_alive(7, t0 + Duration::from_millis(200)), Some(ttl));
        assert!(t.due(t0 + Duration::from_millis(450)).is_empty());
        let late = t0 + Duration::from_millis(500);
        assert_eq!(t.due(late), vec![7]);
        // Marked as expiring: no keep-alive, no immediate re-proposal, a retry later.
        assert_eq!(t.keep_alive(7, late), None);
        assert!(t.due(late + Duration::from_millis(10)).is_empty());
        assert_eq!(t.due(late + EXPIRE_RETRY), vec![7]);
        // A new leader forgives.
        t.refresh_all(late + EXPIRE_RETRY);
        assert_eq!(t.keep_alive(7, late + EXPIRE_RETRY), Some(ttl));
        t.removed(7);
        assert_eq!(t.keep_alive(7, late), None);
        assert_eq!(t.len(), 0);
    }
}
