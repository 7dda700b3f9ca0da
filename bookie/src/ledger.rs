//! Per-ledger state: fencing, deletion, last-add-confirmed (LAC) and the running maximum
//! timestamp that feeds the time index.
//!
//! Adds may arrive out of order (a pipelining client has many adds in flight and they
//! can complete in any order), so the state keeps the LAC — the highest id with every id
//! `0..=lac` present — plus the set of entries present above `lac + 1`. When a gap fills,
//! the LAC moves over every entry that is now contiguous.
//!
//! The time index needs "the first entry whose `max_timestamp >= t`", and timestamps are
//! not monotonic across entries. Like Kafka's time index, we index the *running maximum*
//! `R(e) = max(ts(0..=e))`, which is monotonic: the first entry with `ts >= t` is exactly
//! the first entry with `R >= t`, and `R` only changes at entries whose own timestamp is a
//! new maximum, so only those become index points. The running maximum can only be
//! computed over a contiguous prefix, so entries enter the time index when the LAC passes
//! them; that is why the timestamps of entries above the LAC are kept here.
//!
//! The state also keeps the writer's last-add-confirmed: the highest LAC the writer
//! piggybacked on any add here. Every entry up to it was acknowledged by an ack quorum, so
//! recovery re-replicates only what lies above it. The bookie's own LAC (contiguous prefix)
//! says nothing of the sort: an entry that reached only this bookie extends it.
//!
//! ## Persisted form (sled value of key `'l' ledger_id`, integers big-endian)
//!
//! ```text
//! u8   version (2; version 1 lacks the last field)
//! u8   flags: bit 0 = fenced, bit 1 = deleted
//! u64  lac + 1 (0 = the ledger has no entry 0 yet)
//! i64  running max timestamp over 0..=lac (unused when lac + 1 == 0)
//! u32  n = number of entries present above lac + 1
//! n x (u64 entry_id, i64 max_timestamp)
//! u64  writer lac + 1 (0 = none piggybacked yet)
//! ```
//!
//! A deleted ledger keeps this record as a tombstone (30 bytes, no entries) so that a
//! late add from a zombie writer cannot resurrect it. The index is the source of truth
//! for these records; memory holds a `LedgerState` only while the ledger is hot (see
//! the ledger-state cache in `state.rs`).

use std::collections::BTreeMap;

/// State of one ledger on this bookie.
#[derive(Clone, Debug, Default)]
pub(crate) struct LedgerState {
    /// A Fence record for this ledger is durable in the journal.
    pub fenced: bool,
    /// A Delete record for this ledger is durable in the journal.
    pub deleted: bool,
    /// A fence was accepted but its record is not applied yet. Adds are refused as soon
    /// as the fence is *accepted*, so an add can never slip in behind a fence whose
    /// LAC answer it is not part of. Not persisted.
    pub fence_pending: bool,
    /// Like `fence_pending`, for deletion. Not persisted.
    pub delete_pending: bool,
    lac: Option<u64>,
    running_max_ts: i64,
    above: BTreeMap<u64, i64>,
    /// Highest LAC the writer piggybacked on an add that is durable here.
    writer_lac: Option<u64>,
    /// Highest piggybacked LAC queued for the journal (not persisted): a Lac record is
    /// queued only when an add raises it.
    pub writer_lac_queued: Option<u64>,
    /// Accessed since the last checkpoint that considered evicting it. Not persisted.
    pub touched: bool,
}

impl LedgerState {
    pub fn is_fenced(&self) -> bool {
        self.fenced || self.fence_pending
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted || self.delete_pending
    }

    pub fn lac(&self) -> Option<u64> {
        self.lac
    }

    pub fn writer_lac(&self) -> Option<u64> {
        self.writer_lac
    }

    /// Applies a durable Lac record. Returns whether it changed the state.
    pub fn raise_writer_lac(&mut self, lac: u64) -> bool {
        if self.writer_lac.is_none_or(|w| lac > w) {
            self.writer_lac = Some(lac);
            true
        } else {
            false
        }
    }

    /// Whether entry `entry_id` is durable here.
    pub fn contains(&self, entry_id: u64) -> bool {
        self.lac.is_some_and(|l| entry_id <= l) || self.above.contains_key(&entry_id)
    }

    /// Records a durable entry. Returns `false` if it was already present (a duplicate
    /// add). New time-index points `(running_max, entry_id)` are appended to `points`.
    pub fn add(&mut self, entry_id: u64, max_ts: i64, points: &mut Vec<(i64, u64)>) -> bool {
        if self.contains(entry_id) {
            return false;
        }
        let next = match self.lac {
            None => 0,
            Some(l) => l + 1, // l < entry_id <= u64::MAX, so no overflow
        };
        if entry_id != next {
            self.above.insert(entry_id, max_ts);
            return true;
        }
        self.advance(entry_id, max_ts, points);
        while let Some(next) = self.lac.and_then(|l| l.checked_add(1)) {
            let Some(ts) = self.above.remove(&next) else {
                break;
            };
            self.advance(next, ts, points);
        }
        true
    }

    fn advance(&mut self, entry_id: u64, ts: i64, points: &mut Vec<(i64, u64)>) {
        if self.lac.is_none() || ts > self.running_max_ts {
            self.running_max_ts = ts;
            points.push((ts, entry_id));
        }
        self.lac = Some(entry_id);
    }

    /// Applies a durable Delete: keeps only the tombstone.
    pub fn mark_deleted(&mut self) {
        self.deleted = true;
        self.delete_pending = false;
        self.lac = None;
        self.above.clear();
        self.writer_lac = None;
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(30 + self.above.len() * 16);
        v.push(2);
        v.push(u8::from(self.fenced) | (u8::from(self.deleted) << 1));
        let lac1 = self.lac.map_or(0, |l| l.wrapping_add(1));
        v.extend_from_slice(&lac1.to_be_bytes());
        v.extend_from_slice(&self.running_max_ts.to_be_bytes());
        v.extend_from_slice(&(self.above.len() as u32).to_be_bytes());
        for (e, ts) in &self.above {
            v.extend_from_slice(&e.to_be_bytes());
            v.extend_from_slice(&ts.to_be_bytes());
        }
        let wlac1 = self.writer_lac.map_or(0, |l| l.wrapping_add(1));
        v.extend_from_slice(&wlac1.to_be_bytes());
        v
    }

    /// Whether an encoded state (as stored in the index) is a tombstone, without decoding
    /// the rest. `None` if it is not a state record at all.
    pub fn encoded_is_deleted(b: &[u8]) -> Option<bool> {
        match b {
            [1 | 2, flags, ..] if b.len() >= 22 => Some(flags & 2 != 0),
            _ => None,
        }
    }

    pub fn decode(b: &[u8]) -> Option<LedgerState> {
        let version = *b.first()?;
        if b.len() < 22 || !(1..=2).contains(&version) {
            return None;
        }
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        let flags = b[1];
        let lac1 = u64_at(2)?;
        let running_max_ts = u64_at(10)? as i64;
        let n = u32::from_be_bytes(b.get(18..22)?.try_into().ok()?) as usize;
        let body = 22 + n.checked_mul(16)?;
        let trailer = if version == 2 { 8 } else { 0 };
        if b.len() != body + trailer {
            return None;
        }
        let writer_lac = if version == 2 {
            u64_at(body)?.checked_sub(1)
        } else {
            None
        };
        let mut above = BTreeMap::new();
        for i in 0..n {
            let at = 22 + i * 16;
            above.insert(u64_at(at)?, u64_at(at + 8)? as i64);
        }
        Some(LedgerState {
            fenced: flags & 1 != 0,
            deleted: flags & 2 != 0,
            fence_pending: false,
            delete_pending: false,
            // lac + 1 wraps to 0 only for lac == u64::MAX, which no real ledger reaches.
            lac: lac1.checked_sub(1),
            running_max_ts,
            above,
            writer_lac,
            writer_lac_queued: None,
            touched: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_adds_move_lac_over_filled_gaps() {
        let mut l = LedgerState::default();
        let mut pts = Vec::new();
        assert!(l.add(2, 10, &mut pts));
        assert_eq!(l.lac(), None);
        assert!(l.add(0, 5, &mut pts));
        assert_eq!(l.lac(), Some(0));
        assert!(l.add(1, 3, &mut pts));
        assert_eq!(l.lac(), Some(2));
        assert!(!l.add(1, 3, &mut pts), "duplicate");
        assert!(l.contains(2) && !l.contains(3));
        // Running max: 5 at entry 0, 10 at entry 2 (entry 1's 3 is not a new maximum).
        assert_eq!(pts, vec![(5, 0), (10, 2)]);
    }

    #[test]
    fn meta_round_trip_and_garbage() {
        let mut l = LedgerState::default();
        let mut pts = Vec::new();
        l.add(0, 1, &mut pts);
        l.add(5, -7, &mut pts);
        l.fenced = true;
        let enc = l.encode();
        let d = LedgerState::decode(&enc).unwrap();
        assert!(d.fenced && !d.deleted);
        assert_eq!(d.lac(), Some(0));
        assert!(d.contains(5) && !d.contains(4));
        for cut in 0..enc.len() {
            assert!(LedgerState::decode(&enc[..cut]).is_none());
        }
        let mut bad = enc.clone();
        bad[21] = 0xff; // absurd count
        assert!(LedgerState::decode(&bad).is_none());
        assert_eq!(d.writer_lac(), None);
        l.raise_writer_lac(3);
        l.raise_writer_lac(2);
        let d = LedgerState::decode(&l.encode()).unwrap();
        assert_eq!(d.writer_lac(), Some(3));
        // Version 1 (no writer LAC) still reads.
        let mut v1 = l.encode();
        v1.truncate(v1.len() - 8);
        v1[0] = 1;
        let d = LedgerState::decode(&v1).unwrap();
        assert_eq!((d.lac(), d.writer_lac()), (Some(0), None));
    }
}
