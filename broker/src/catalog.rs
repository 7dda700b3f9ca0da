//! What the broker keeps in the metadata store, and where.
//!
//! ```text
//! /stratalog/topics/{topic}                    TopicMeta
//! /stratalog/partitions/{topic}/{partition}    PartitionMeta (the managed ledger: ledger list,
//!                                              log start offset, producer snapshots)
//! /stratalog/bookies/{bookie-id}               the bookie's address, attached to its lease
//! /stratalog/counters/ledger-id                next ledger id (u64, big-endian)
//! /stratalog/counters/producer-id              next producer id block (i64, big-endian)
//! /stratalog/groups/{group}/...                consumer groups (see group_store)
//! ```
//!
//! Values are encoded with the internal wire codec; fields are only ever appended, so an older
//! broker can read what a newer one wrote.
use bytes::Bytes;
use stratalog_protocol::internal::Wire;
use stratalog_protocol::wire_struct;

pub const ROOT: &str = "/stratalog";

pub fn topic_key(topic: &str) -> String {
    format!("{ROOT}/topics/{topic}")
}
pub fn topics_prefix() -> String {
    format!("{ROOT}/topics/")
}
pub fn partition_key(topic: &str, partition: i32) -> String {
    format!("{ROOT}/partitions/{topic}/{partition}")
}
pub fn partitions_prefix(topic: &str) -> String {
    format!("{ROOT}/partitions/{topic}/")
}
pub fn bookie_key(id: &str) -> String {
    format!("{ROOT}/bookies/{id}")
}
pub fn bookies_prefix() -> String {
    format!("{ROOT}/bookies/")
}
pub const LEDGER_ID_COUNTER: &str = "/stratalog/counters/ledger-id";
pub const PRODUCER_ID_COUNTER: &str = "/stratalog/counters/producer-id";

wire_struct! {
    #[derive(Debug, Clone, PartialEq)]
    pub struct ConfigEntry { pub name: String, pub value: String }
}

wire_struct! {
    #[derive(Debug, Clone, PartialEq)]
    pub struct TopicMeta {
        /// Kafka topic id (UUID), as returned by Metadata v10+.
        pub id: [u8; 16],
        pub partitions: i32,
        /// Topic-level overrides of broker defaults (Kafka config names).
        pub configs: Vec<ConfigEntry>,
    }
}

impl TopicMeta {
    pub fn config(&self, name: &str) -> Option<&str> {
        self.configs
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value.as_str())
    }
}

wire_struct! {
    /// One ledger of a partition's log.
    #[derive(Debug, Clone, PartialEq)]
    pub struct LedgerInfo {
        pub ledger_id: u64,
        /// Ids of the bookies holding the ledger; entry `e` is on bookies `(e + i) % E` for
        /// `i < write_quorum`.
        pub ensemble: Vec<String>,
        pub write_quorum: u8,
        pub ack_quorum: u8,
        pub first_offset: i64,
        /// Closed ledgers: the last offset they hold (first_offset - 1 if empty). Open: -1.
        pub last_offset: i64,
        /// Closed ledgers: the last entry id, or -1 if empty.
        pub last_entry_id: i64,
        pub closed: bool,
        pub created_ms: i64,
    }
}

wire_struct! {
    /// A producer's recent batches, so duplicates are recognised after a restart.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ProducerSnapshot {
        pub producer_id: i64,
        pub epoch: i16,
        /// (first sequence, last sequence, base offset) of up to the last 5 batches.
        pub batches: Vec<BatchSeq>,
    }
}

wire_struct! {
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct BatchSeq { pub first_seq: i32, pub last_seq: i32, pub base_offset: i64 }
}

wire_struct! {
    /// The managed ledger of one partition.
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct PartitionMeta {
        pub ledgers: Vec<LedgerInfo>,
        pub log_start_offset: i64,
        /// Bumped by every take-over. (Clients are told epoch 0 for now: Stratalog does not
        /// serve OffsetForLeaderEpoch, so a changing epoch would only confuse them.)
        pub leader_epoch: i32,
        /// Producer state as of the end of the last closed ledger.
        pub producers: Vec<ProducerSnapshot>,
    }
}

/// Decodes a stored value, naming the key on failure.
pub fn decode<T: Wire>(key: &str, mut value: Bytes) -> Result<T, String> {
    T::decode(&mut value).map_err(|e| format!("metadata value at {key} is unreadable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_meta_round_trips() {
        let meta = PartitionMeta {
            ledgers: vec![LedgerInfo {
                ledger_id: 7,
                ensemble: vec!["127.0.0.1:3181".into()],
                write_quorum: 1,
                ack_quorum: 1,
                first_offset: 0,
                last_offset: 99,
                last_entry_id: 9,
                closed: true,
                created_ms: 1,
            }],
            log_start_offset: 0,
            leader_epoch: 3,
            producers: vec![ProducerSnapshot {
                producer_id: 1,
                epoch: 0,
                batches: vec![BatchSeq {
                    first_seq: 0,
                    last_seq: 9,
                    base_offset: 90,
                }],
            }],
        };
        let back: PartitionMeta = decode("k", meta.to_bytes()).unwrap();
        assert_eq!(back, meta);
        assert!(decode::<PartitionMeta>("k", Bytes::from_static(b"\x00\x00")).is_err());
    }
}
