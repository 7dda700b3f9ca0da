//! Idempotent-producer bookkeeping for one partition (Kafka's ProducerStateManager).
//!
//! For each producer id we remember its epoch and its last five batches' sequence ranges,
//! which is what Kafka clients rely on: at most five requests in flight, so a retry of any of
//! them is recognised as a duplicate and answered with the offset it was first written at.
use std::collections::{HashMap, VecDeque};

use stratalog_protocol::kafka::record_batch::BatchInfo;

use crate::catalog::{BatchSeq, ProducerSnapshot};

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
}

#[derive(Debug, Default, Clone)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
}

impl ProducerStates {
    pub fn from_snapshots(snapshots: &[ProducerSnapshot]) -> ProducerStates {
        let producers = snapshots
            .iter()
            .map(|s| {
                (
                    s.producer_id,
                    Producer {
                        epoch: s.epoch,
                        batches: s.batches.iter().copied().collect(),
                    },
                )
            })
            .collect();
        ProducerStates { producers }
    }

    pub fn snapshots(&self) -> Vec<ProducerSnapshot> {
        let mut out: Vec<_> = self
            .producers
            .iter()
            .map(|(&producer_id, p)| ProducerSnapshot {
                producer_id,
                epoch: p.epoch,
                batches: p.batches.iter().copied().collect(),
            })
            .collect();
        out.sort_by_key(|s| s.producer_id);
        out
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

    /// Records a batch that was appended at `base_offset`.
    pub fn update(&mut self, batch: &BatchInfo, base_offset: i64) {
        if !batch.is_idempotent() {
            return;
        }
        let p = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != p.epoch {
            p.epoch = batch.producer_epoch;
            p.batches.clear();
        }
        p.batches.push_back(BatchSeq {
            first_seq: batch.base_sequence,
            last_seq: batch.last_sequence(),
            base_offset,
        });
        while p.batches.len() > BATCHES_KEPT {
            p.batches.pop_front();
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
        s.update(&b0, 100);
        assert_eq!(s.check(&b0), SequenceCheck::Duplicate { base_offset: 100 });
        let b1 = batch(1, 0, 3, 2);
        assert_eq!(s.check(&b1), SequenceCheck::Append);
        s.update(&b1, 103);
        assert_eq!(
            s.check(&batch(1, 0, 9, 1)),
            SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(
            s.check(&batch(1, 1, 5, 1)),
            SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(s.check(&batch(1, 1, 0, 1)), SequenceCheck::Append);
        s.update(&batch(1, 1, 0, 1), 200);
        assert_eq!(
            s.check(&batch(1, 0, 5, 1)),
            SequenceCheck::Reject(INVALID_PRODUCER_EPOCH)
        );
        // Non-idempotent batches are never checked.
        assert_eq!(s.check(&batch(-1, -1, -1, 1)), SequenceCheck::Append);
    }

    #[test]
    fn snapshots_restore_duplicate_detection() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.update(&batch(9, 0, i * 2, 2), i as i64 * 2);
        }
        let restored = ProducerStates::from_snapshots(&s.snapshots());
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
    }
}
