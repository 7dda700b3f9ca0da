//! Watches: a bounded in-memory history of applied events, served as long-polls.
//!
//! Every node fills the history from what it applies, so a watch can be served by any node
//! (like etcd, watches are not linearizable reads; they deliver every event in revision order
//! without gaps or repeats, possibly a little behind the leader). Only the last
//! `capacity` events are kept; the history is not persisted, so after a restart or a
//! snapshot install it starts empty at the current revision. A watcher that asks for events
//! older than what is kept gets `Compacted` and must re-list. Race-free pattern:
//! `list_with_revision(prefix)` then `watch(prefix, rev, ..)` in a loop, passing each
//! returned revision to the next call.
use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::error::MetadataError;
use crate::types::{Event, Revision};

struct History {
    events: VecDeque<Event>,
    capacity: usize,
    /// Every event with a revision greater than this is in `events`.
    complete_after: Revision,
    /// Current store revision as of the last publish.
    revision: Revision,
    closed: bool,
}

pub(crate) struct WatchHub {
    history: Mutex<History>,
    /// Bumped on every publish; long-polls wait on it.
    notify: watch::Sender<Revision>,
}

impl WatchHub {
    pub(crate) fn new(revision: Revision, capacity: usize) -> Self {
        WatchHub {
            history: Mutex::new(History {
                events: VecDeque::new(),
                capacity: capacity.max(1),
                complete_after: revision,
                revision,
                closed: false,
            }),
            notify: watch::Sender::new(revision),
        }
    }

    /// Appends the events of one applied entry (all at the same, new revision).
    pub(crate) fn publish(&self, events: Vec<Event>, revision: Revision) {
        {
            let mut h = self.history.lock();
            h.revision = revision;
            for e in events {
                if h.events.len() == h.capacity {
                    if let Some(old) = h.events.pop_front() {
                        h.complete_after = h.complete_after.max(old.revision());
                    }
                }
                h.events.push_back(e);
            }
        }
        self.notify.send_replace(revision);
    }

    /// Forgets all history: the state jumped (snapshot install) and the events in between
    /// are unknown.
    pub(crate) fn reset(&self, revision: Revision) {
        {
            let mut h = self.history.lock();
            h.events.clear();
            h.complete_after = revision;
            h.revision = revision;
        }
        self.notify.send_replace(revision);
    }

    /// Wakes every waiter with `ShuttingDown`.
    pub(crate) fn close(&self) {
        self.history.lock().closed = true;
        self.notify.send_modify(|_| {});
    }

    /// Events with revision `> after` whose key starts with `prefix`, waiting up to `timeout`
    /// for at least one. Returns them with the revision up to which the caller is now
    /// caught up (pass it as the next `after`).
    pub(crate) async fn wait(
        &self,
        prefix: &str,
        after: Revision,
        timeout: Duration,
    ) -> Result<(Vec<Event>, Revision), MetadataError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribe before looking, so a publish between the look and the wait still wakes us.
        let mut rx = self.notify.subscribe();
        loop {
            rx.borrow_and_update();
            let current = {
                let h = self.history.lock();
                if h.closed {
                    return Err(MetadataError::ShuttingDown);
                }
                if after < h.complete_after {
                    return Err(MetadataError::Compacted {
                        oldest: h.complete_after,
                    });
                }
                let start = h.events.partition_point(|e| e.revision() <= after);
                let events: Vec<Event> = h
                    .events
                    .range(start..)
                    .filter(|e| e.kv.key.starts_with(prefix))
                    .cloned()
                    .collect();
                if !events.is_empty() {
                    return Ok((events, h.revision));
                }
                h.revision
            };
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(MetadataError::ShuttingDown),
                // Nothing matched: the caller is caught up to `current` (never backwards).
                Err(_) => return Ok((Vec::new(), current.max(after))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EventKind, KeyValue};

    fn ev(key: &str, rev: Revision) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.into(),
                value: bytes::Bytes::new(),
                create_revision: rev,
                mod_revision: rev,
                lease: None,
            },
        }
    }

    #[tokio::test]
    async fn history_is_bounded_and_filtered() {
        let hub = WatchHub::new(10, 3);
        for rev in 11..=15 {
            hub.publish(vec![ev(if rev % 2 == 0 { "a/x" } else { "b/y" }, rev)], rev);
        }
        // Kept: 13, 14, 15.
        let err = hub.wait("", 11, Duration::ZERO).await.unwrap_err();
        assert_eq!(err, MetadataError::Compacted { oldest: 12 });
        let (events, rev) = hub.wait("a/", 12, Duration::ZERO).await.unwrap();
        assert_eq!(
            events.iter().map(Event::revision).collect::<Vec<_>>(),
            vec![14]
        );
        assert_eq!(rev, 15);
        let (events, rev) = hub.wait("a/", 15, Duration::from_millis(10)).await.unwrap();
        assert!(events.is_empty());
        assert_eq!(rev, 15);
    }

    #[tokio::test]
    async fn close_wakes_waiters() {
        let hub = std::sync::Arc::new(WatchHub::new(0, 10));
        let h2 = hub.clone();
        let waiter = tokio::spawn(async move { h2.wait("", 0, Duration::from_secs(10)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        hub.close();
        assert_eq!(waiter.await.unwrap(), Err(MetadataError::ShuttingDown));
    }
}
