//! The tail cache: the most recent entries of a partition, kept in memory so that consumers
//! following the head of the log are served without a bookie round trip.
use std::collections::BTreeMap;

use bytes::Bytes;

use super::budget::ReadBudget;

pub struct CachedEntry {
    pub last_offset: i64,
    pub batch: Bytes,
}

pub struct TailCache {
    entries: BTreeMap<i64, CachedEntry>,
    bytes: usize,
    capacity: usize,
}

impl TailCache {
    pub fn new(capacity: usize) -> TailCache {
        TailCache {
            entries: BTreeMap::new(),
            bytes: 0,
            capacity,
        }
    }

    pub fn insert(&mut self, base_offset: i64, last_offset: i64, batch: Bytes) {
        if batch.len() > self.capacity {
            return;
        }
        self.bytes += batch.len();
        self.entries
            .insert(base_offset, CachedEntry { last_offset, batch });
        while self.bytes > self.capacity {
            match self.entries.pop_first() {
                Some((_, evicted)) => self.bytes -= evicted.batch.len(),
                None => break,
            }
        }
    }

    /// Batches from the one containing `offset` onwards, up to `max_bytes` (at least one),
    /// stopping before `limit`; `None` if the cache does not hold `offset`.
    /// The batches from the one holding `offset`, below `limit`, within `budget`; `None` if
    /// the cache does not hold `offset`.
    pub fn read(&self, offset: i64, mut budget: ReadBudget, limit: i64) -> Option<Vec<Bytes>> {
        let (&first_base, first) = self.entries.range(..=offset).next_back()?;
        if first.last_offset < offset {
            return None;
        }
        let out = self
            .entries
            .range(first_base..)
            .take_while(|(&base, entry)| base < limit && budget.take(entry.batch.len()))
            .map(|(_, entry)| entry.batch.clone())
            .collect();
        Some(out)
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_from_the_containing_batch_and_evicts_oldest() {
        let mut c = TailCache::new(30);
        c.insert(0, 9, Bytes::from(vec![0; 10]));
        c.insert(10, 19, Bytes::from(vec![1; 10]));
        c.insert(20, 29, Bytes::from(vec![2; 10]));
        assert_eq!(c.read(15, ReadBudget::new(100, true), 30).unwrap().len(), 2);
        assert_eq!(c.read(15, ReadBudget::new(5, true), 30).unwrap().len(), 1);
        assert_eq!(c.read(15, ReadBudget::new(100, true), 20).unwrap().len(), 1);
        assert!(c.read(30, ReadBudget::new(100, true), 40).is_none());
        c.insert(30, 39, Bytes::from(vec![3; 10]));
        assert!(
            c.read(5, ReadBudget::new(100, true), 40).is_none(),
            "oldest entry evicted"
        );
    }
}
