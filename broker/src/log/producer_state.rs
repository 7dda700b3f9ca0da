//! Idempotent-producer bookkeeping for one partition (Kafka's ProducerStateManager).
//!
//! For each producer id we remember its epoch and its last five batches' sequence ranges,
//! which is what Kafka clients rely on: at most five requests in flight, so a retry of any of
//! them is recognised as a duplicate and answered with the offset it was first written at.
//!
//! What is remembered is bounded two ways, so it cannot grow with the number of short-lived
//! producers: a producer not heard from for `expiration` (Kafka's
//! `producer.id.expiration.ms`) is forgotten, and past `max_producers` the least recently
//! active one is. A forgotten producer that comes back is accepted as new, as Kafka does for
//! an unknown producer id. Changes since the last [`ProducerStates::take_changes`] are
//! tracked so only they are written to the metadata store.
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use stratalog_protocol::kafka::record_batch::BatchInfo;

use crate::catalog::{BatchSeq, ProducerEntry};

const BATCHES_KEPT: usize = 5;

/// What to do with an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already written at this base offset: acknowledge without writing.
    Duplicate { base_offset: i64 },
    /// Reject with this Kafka error code.
    Reject(i16),
}

pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;

#[derive(Debug, Clone, Default)]
struct Producer {
    epoch: i16,
    batches: VecDeque<BatchSeq>,
    last_append_ms: i64,
}

/// Bounds on remembered producers.
#[derive(Debug, Clone, Copy)]
pub struct ProducerLimits {
    pub expiration: Duration,
    pub max_producers: usize,
}

impl Default for ProducerLimits {
    fn default() -> Self {
        ProducerLimits {
            expiration: Duration::from_millis(86_400_000),
            max_producers: 10_000,
        }
    }
}

/// What changed since the last [`ProducerStates::take_changes`]: producers to write, and
/// producer ids to delete.
#[derive(Debug, Default)]
pub struct ProducerChanges {
    pub upserts: Vec<(i64, ProducerEntry)>,
    pub removals: Vec<i64>,
}

impl ProducerChanges {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removals.is_empty()
    }
}

#[derive(Debug, Default, Clone)]
pub struct ProducerStates {
    limits: ProducerLimits,
    producers: HashMap<i64, Producer>,
    /// (last append time, producer id): the eviction order.
    by_age: BTreeSet<(i64, i64)>,
    changed: HashSet<i64>,
    removed: HashSet<i64>,
}

impl ProducerStates {
    pub fn new(limits: ProducerLimits) -> ProducerStates {
        ProducerStates {
            limits,
            ..ProducerStates::default()
        }
    }

    /// Restores producers as stored; expired ones are dropped (and deleted on the next
    /// [`take_changes`](Self::take_changes)).
    pub fn restore(&mut self, stored: impl IntoIterator<Item = (i64, ProducerEntry)>, now_ms: i64) {
        for (producer_id, entry) in stored {
            let p = Producer {
                epoch: entry.epoch,
                batches: entry.batches.into_iter().collect(),
                last_append_ms: entry.last_append_ms,
            };
            self.by_age.insert((p.last_append_ms, producer_id));
            self.producers.insert(producer_id, p);
        }
        self.expire(now_ms);
        while self.producers.len() > self.limits.max_producers {
            self.evict_oldest();
        }
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn check(&self, batch: &BatchInfo) -> SequenceCheck {
        if !batch.is_idempotent() {
            return SequenceCheck::Append;
        }
        let Some(p) = self.producers.get(&batch.producer_id) else {
            // A producer we have no state for (new, or expired): accept its sequence as is.
            return SequenceCheck::Append;
        };
        if batch.producer_epoch < p.epoch {
            return SequenceCheck::Reject(INVALID_PRODUCER_EPOCH);
        }
        if batch.producer_epoch > p.epoch {
            // A bumped epoch restarts sequences at zero.
            return if batch.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        }
        let last_seq = batch.last_sequence();
        if let Some(dup) = p
            .batches
            .iter()
            .find(|b| b.first_seq == batch.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            };
        }
        let expected = match p.batches.back() {
            Some(last) if last.last_seq == i32::MAX => 0,
            Some(last) => last.last_seq + 1,
            None => batch.base_sequence,
        };
        if batch.base_sequence == expected {
            SequenceCheck::Append
        } else {
            SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        }
    }

    /// Records a batch that was appended at `base_offset`, at wall-clock time `now_ms`.
    /// Recording the same batch twice (replay over state that already has it) is a no-op.
    pub fn update(&mut self, batch: &BatchInfo, base_offset: i64, now_ms: i64) {
        if !batch.is_idempotent() {
            return;
        }
        let id = batch.producer_id;
        let seq = BatchSeq {
            first_seq: batch.base_sequence,
            last_seq: batch.last_sequence(),
            base_offset,
        };
        if !self.producers.contains_key(&id) && self.producers.len() >= self.limits.max_producers {
            self.evict_oldest();
        }
        let p = self.producers.entry(id).or_default();
        if batch.producer_epoch == p.epoch && p.batches.contains(&seq) {
            return;
        }
        self.by_age.remove(&(p.last_append_ms, id));
        if batch.producer_epoch != p.epoch {
            p.epoch = batch.producer_epoch;
            p.batches.clear();
        }
        p.batches.push_back(seq);
        while p.batches.len() > BATCHES_KEPT {
            p.batches.pop_front();
        }
        p.last_append_ms = p.last_append_ms.max(now_ms);
        self.by_age.insert((p.last_append_ms, id));
        self.changed.insert(id);
        self.removed.remove(&id);
    }

    /// Forgets producers whose last append is older than the expiration.
    pub fn expire(&mut self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(self.limits.expiration.as_millis() as i64);
        while let Some(&(last, id)) = self.by_age.first() {
            if last >= cutoff {
                break;
            }
            self.forget(last, id);
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(&(last, id)) = self.by_age.first() {
            self.forget(last, id);
        }
    }

    fn forget(&mut self, last: i64, id: i64) {
        self.by_age.remove(&(last, id));
        self.producers.remove(&id);
        self.changed.remove(&id);
        self.removed.insert(id);
    }

    /// What changed since the last call: to be written to the metadata store.
    pub fn take_changes(&mut self) -> ProducerChanges {
        let upserts = self
            .changed
            .drain()
            .filter_map(|id| {
                let p = self.producers.get(&id)?;
                Some((
                    id,
                    ProducerEntry {
                        epoch: p.epoch,
                        batches: p.batches.iter().copied().collect(),
                        last_append_ms: p.last_append_ms,
                    },
                ))
            })
            .collect();
        ProducerChanges {
            upserts,
            removals: self.removed.drain().collect(),
        }
    }

    /// Puts changes that could not be written back, so the next attempt writes them.
    pub fn restore_changes(&mut self, changes: &ProducerChanges) {
        for (id, _) in &changes.upserts {
            if self.producers.contains_key(id) {
                self.changed.insert(*id);
            }
        }
        for id in &changes.removals {
            if !self.producers.contains_key(id) {
                self.removed.insert(*id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchInfo {
        BatchInfo {
            base_offset: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
            size: 0,
        }
    }

    #[test]
    fn in_order_duplicate_gap_and_epochs() {
        let mut s = ProducerStates::default();
        let b0 = batch(1, 0, 0, 3);
        assert_eq!(s.check(&b0), SequenceCheck::Append);
        s.update(&b0, 100, 0);
        assert_eq!(s.check(&b0), SequenceCheck::Duplicate { base_offset: 100 });
        let b1 = batch(1, 0, 3, 2);
        assert_eq!(s.check(&b1), SequenceCheck::Append);
        s.update(&b1, 103, 0);
        assert_eq!(
            s.check(&batch(1, 0, 9, 1)),
            SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(
            s.check(&batch(1, 1, 5, 1)),
            SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(s.check(&batch(1, 1, 0, 1)), SequenceCheck::Append);
        s.update(&batch(1, 1, 0, 1), 200, 0);
        assert_eq!(
            s.check(&batch(1, 0, 5, 1)),
            SequenceCheck::Reject(INVALID_PRODUCER_EPOCH)
        );
        // Non-idempotent batches are never checked.
        assert_eq!(s.check(&batch(-1, -1, -1, 1)), SequenceCheck::Append);
    }

    #[test]
    fn stored_changes_restore_duplicate_detection() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.update(&batch(9, 0, i * 2, 2), i as i64 * 2, 0);
        }
        let changes = s.take_changes();
        assert!(s.take_changes().is_empty(), "changes are taken once");
        let mut restored = ProducerStates::default();
        restored.restore(changes.upserts, 0);
        assert_eq!(
            restored.check(&batch(9, 0, 12, 2)),
            SequenceCheck::Duplicate { base_offset: 12 }
        );
        // Only the last five batches are remembered.
        assert_eq!(
            restored.check(&batch(9, 0, 0, 2)),
            SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(restored.check(&batch(9, 0, 14, 1)), SequenceCheck::Append);
        // Replaying a batch the state already has changes nothing.
        restored.update(&batch(9, 0, 12, 2), 12, 5);
        assert!(restored.take_changes().is_empty());
    }

    #[test]
    fn producers_expire_and_are_bounded() {
        let limits = ProducerLimits {
            expiration: Duration::from_millis(1_000),
            max_producers: 3,
        };
        let mut s = ProducerStates::new(limits);
        for pid in 0..5 {
            s.update(&batch(pid, 0, 0, 1), pid, 100 + pid);
        }
        // The two least recently active were evicted.
        assert_eq!(s.len(), 3);
        assert_eq!(s.check(&batch(0, 0, 7, 1)), SequenceCheck::Append);
        assert_eq!(
            s.check(&batch(4, 0, 0, 1)),
            SequenceCheck::Duplicate { base_offset: 4 }
        );
        let changes = s.take_changes();
        let mut ids: Vec<i64> = changes.upserts.iter().map(|(id, _)| *id).collect();
        ids.sort();
        assert_eq!(ids, vec![2, 3, 4]);
        let mut gone = changes.removals.clone();
        gone.sort();
        assert_eq!(gone, vec![0, 1]);
        // Producer 4 stays active; the others expire a second later.
        s.update(&batch(4, 0, 1, 1), 5, 1_500);
        s.expire(2_050);
        assert_eq!(s.len(), 1);
        let mut gone = s.take_changes().removals;
        gone.sort();
        assert_eq!(gone, vec![2, 3]);
        // Restoring stored state drops what expired meanwhile.
        let mut r = ProducerStates::new(limits);
        r.restore(changes.upserts, 1_200);
        assert_eq!(r.len(), 0);
        assert_eq!(r.take_changes().removals.len(), 3);
    }
}
