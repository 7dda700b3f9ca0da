//! A group's committed offsets in memory: authoritative (the store is written through before
//! a commit is acknowledged) and keyed by topic and partition. The map only; which offsets
//! expire is the group's decision (`state.rs`), OffsetCommit/OffsetFetch are `offset_api.rs`.

use std::collections::BTreeMap;

use super::store::CommittedOffset;

/// A group's committed offsets by topic and partition.
#[derive(Default)]
pub(crate) struct Offsets {
    topics: BTreeMap<String, BTreeMap<i32, CommittedOffset>>,
}

impl Offsets {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.topics.get(topic).and_then(|p| p.get(&partition))
    }

    pub fn put(&mut self, o: CommittedOffset) {
        self.topics
            .entry(o.topic.clone())
            .or_default()
            .insert(o.partition, o);
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    pub fn topics(&self) -> impl Iterator<Item = (&String, &BTreeMap<i32, CommittedOffset>)> {
        self.topics.iter()
    }

    /// Removes and returns the offsets for which `expired` holds.
    pub fn remove_where(
        &mut self,
        expired: impl Fn(&CommittedOffset) -> bool,
    ) -> Vec<(String, i32)> {
        let mut removed = Vec::new();
        self.topics.retain(|topic, partitions| {
            partitions.retain(|p, o| {
                let gone = expired(o);
                if gone {
                    removed.push((topic.clone(), *p));
                }
                !gone
            });
            !partitions.is_empty()
        });
        removed
    }
}
