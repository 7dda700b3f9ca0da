//! What the broker keeps in the metadata store, and where.
//!
//! ```text
//! /stratalog/topics/{topic}                              TopicMeta
//! /stratalog/logs/{topic-id}/{p}/head                    PartitionHead (epoch, log start)
//! /stratalog/logs/{topic-id}/{p}/segments/{first:020}    Segment (a ledger, or files on
//!                                                        object storage), one per segment
//! /stratalog/logs/{topic-id}/{p}/producers/{pid:020}     ProducerEntry, one per producer
//! /stratalog/bookies/{bookie-id}                         (stratalog_metadata::cluster)
//! /stratalog/counters/ledger-id                          next ledger id (u64, big-endian)
//! /stratalog/counters/producer-id                        next producer id block (i64, BE)
//! /stratalog/groups/{group}/...                          consumer groups (see group_store)
//! ```
//!
//! A partition's metadata is split so that no value grows with the partition's age or its
//! number of producers: the head is a few bytes, each segment and each producer is its own
//! key, and the head's revision is the partition's fencing token (every change of segments
//! or producers is one transaction that also rewrites the head with a compare-and-set).
//! Partitions are keyed by topic **id**, not name: a topic deleted and created again under
//! the same name starts from nothing, whatever an old owner still writes under the old id.
//!
//! Values are encoded with the internal wire codec; fields are only ever appended, so an older
//! broker can read what a newer one wrote.
use bytes::{BufMut, Bytes, BytesMut};
use stratalog_protocol::internal::wire::DecodeError;
use stratalog_protocol::internal::Wire;
use stratalog_protocol::wire_struct;

pub const ROOT: &str = "/stratalog";

pub fn topic_key(topic: &str) -> String {
    format!("{ROOT}/topics/{topic}")
}
pub fn topics_prefix() -> String {
    format!("{ROOT}/topics/")
}

/// Everything of one topic's partitions (deleted with the topic).
pub fn topic_logs_prefix(topic_id: &[u8; 16]) -> String {
    format!("{ROOT}/logs/{}/", hex(topic_id))
}
pub fn partition_prefix(topic_id: &[u8; 16], partition: i32) -> String {
    format!("{}{partition}/", topic_logs_prefix(topic_id))
}
pub fn head_key(topic_id: &[u8; 16], partition: i32) -> String {
    format!("{}head", partition_prefix(topic_id, partition))
}
pub fn segments_prefix(topic_id: &[u8; 16], partition: i32) -> String {
    format!("{}segments/", partition_prefix(topic_id, partition))
}
/// Segment keys sort by first offset (zero-padded, offsets are never negative).
pub fn segment_key(topic_id: &[u8; 16], partition: i32, first_offset: i64) -> String {
    format!(
        "{}{:020}",
        segments_prefix(topic_id, partition),
        first_offset.max(0)
    )
}
pub fn producers_prefix(topic_id: &[u8; 16], partition: i32) -> String {
    format!("{}producers/", partition_prefix(topic_id, partition))
}
pub fn producer_key(topic_id: &[u8; 16], partition: i32, producer_id: i64) -> String {
    format!(
        "{}{:020}",
        producers_prefix(topic_id, partition),
        producer_id.max(0)
    )
}
/// The producer id in a key under [`producers_prefix`].
pub fn producer_id_of(key: &str) -> Option<i64> {
    key.rsplit('/').next()?.parse().ok()
}

/// Where the partition layout of the first release kept each partition (one value holding
/// every ledger and producer). Its presence means a data dir this version cannot read.
pub const LEGACY_PARTITIONS_PREFIX: &str = "/stratalog/partitions/";

pub const LEDGER_ID_COUNTER: &str = "/stratalog/counters/ledger-id";
pub const PRODUCER_ID_COUNTER: &str = "/stratalog/counters/producer-id";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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
    /// The small, fixed-size part of a partition's metadata. Its revision fences owners.
    #[derive(Debug, Clone, Copy, PartialEq, Default)]
    pub struct PartitionHead {
        /// Bumped by every take-over. (Clients are told epoch 0 for now: Stratalog does not
        /// serve OffsetForLeaderEpoch, so a changing epoch would only confuse them.)
        pub leader_epoch: i32,
        pub log_start_offset: i64,
    }
}

wire_struct! {
    /// A ledger on bookies.
    #[derive(Debug, Clone, PartialEq)]
    pub struct LedgerInfo {
        pub ledger_id: u64,
        /// Ids of the bookies holding the ledger; entry `e` is on bookies `(e + i) % E` for
        /// `i < write_quorum`.
        pub ensemble: Vec<String>,
        pub write_quorum: u8,
        pub ack_quorum: u8,
        /// Closed ledgers: the last entry id, or -1 if empty. Open: -1.
        pub last_entry_id: i64,
    }
}

wire_struct! {
    /// One Parquet file on object storage holding part of a segment.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ObjectFile {
        pub path: String,
        pub size_bytes: u64,
        pub first_offset: i64,
        pub last_offset: i64,
    }
}

/// Where a segment's records are.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// In a ledger on bookies (open segments always are).
    Ledger(LedgerInfo),
    /// In files on object storage (the tiering issue moves closed segments there).
    Objects(Vec<ObjectFile>),
}

impl Wire for Location {
    fn encode(&self, buf: &mut BytesMut) {
        match self {
            Location::Ledger(l) => {
                buf.put_u8(1);
                l.encode(buf);
            }
            Location::Objects(files) => {
                buf.put_u8(2);
                files.encode(buf);
            }
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        match u8::decode(buf)? {
            1 => Ok(Location::Ledger(LedgerInfo::decode(buf)?)),
            2 => Ok(Location::Objects(Vec::decode(buf)?)),
            other => Err(DecodeError::Invalid {
                what: "segment location",
                detail: format!("kind {other}"),
            }),
        }
    }
}

wire_struct! {
    /// One segment of a partition's log: a contiguous offset range.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Segment {
        pub first_offset: i64,
        /// Closed: the last offset held (first_offset - 1 if empty). Open: -1.
        pub last_offset: i64,
        /// Closed: the largest record timestamp held (-1 if empty). Open: -1.
        pub max_timestamp: i64,
        pub created_ms: i64,
        pub closed: bool,
        pub location: Location,
    }
}

impl Segment {
    /// A new segment open for appends at `first_offset`, in `ledger`.
    pub fn open(first_offset: i64, created_ms: i64, ledger: LedgerInfo) -> Segment {
        Segment {
            first_offset,
            last_offset: -1,
            max_timestamp: -1,
            created_ms,
            closed: false,
            location: Location::Ledger(ledger),
        }
    }

    /// The ledger holding the segment, if it is on bookies.
    pub fn ledger(&self) -> Option<&LedgerInfo> {
        match &self.location {
            Location::Ledger(l) => Some(l),
            Location::Objects(_) => None,
        }
    }

    pub fn contains(&self, offset: i64) -> bool {
        self.first_offset <= offset && (!self.closed || offset <= self.last_offset)
    }
}

wire_struct! {
    /// A producer's recent batches, so duplicates are recognised after a restart.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ProducerEntry {
        pub epoch: i16,
        /// (first sequence, last sequence, base offset) of up to the last 5 batches.
        pub batches: Vec<BatchSeq>,
        /// Broker wall-clock time of its last append (for `producer_id_expiration_ms`).
        pub last_append_ms: i64,
    }
}

wire_struct! {
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct BatchSeq { pub first_seq: i32, pub last_seq: i32, pub base_offset: i64 }
}

/// Decodes a stored value, naming the key on failure.
pub fn decode<T: Wire>(key: &str, mut value: Bytes) -> Result<T, String> {
    T::decode(&mut value).map_err(|e| format!("metadata value at {key} is unreadable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_with_either_location() {
        let on_bookies = Segment {
            first_offset: 100,
            last_offset: 199,
            max_timestamp: 5,
            created_ms: 1,
            closed: true,
            location: Location::Ledger(LedgerInfo {
                ledger_id: 7,
                ensemble: vec!["b1".into()],
                write_quorum: 1,
                ack_quorum: 1,
                last_entry_id: 9,
            }),
        };
        let offloaded = Segment {
            location: Location::Objects(vec![ObjectFile {
                path: "t/p=0/100.parquet".into(),
                size_bytes: 4096,
                first_offset: 100,
                last_offset: 199,
            }]),
            ..on_bookies.clone()
        };
        for seg in [on_bookies, offloaded] {
            let back: Segment = decode("k", seg.to_bytes()).unwrap();
            assert_eq!(back, seg);
        }
        let mut bad = BytesMut::new();
        bad.put_u8(9);
        assert!(Location::decode(&mut bad.freeze()).is_err());
        assert!(decode::<Segment>("k", Bytes::from_static(b"\x00\x00")).is_err());
    }

    #[test]
    fn keys_sort_by_offset_and_partitions_do_not_share_prefixes() {
        let id = [0xab; 16];
        assert!(segment_key(&id, 0, 9) < segment_key(&id, 0, 10));
        assert!(!segment_key(&id, 10, 0).starts_with(&segments_prefix(&id, 1)));
        assert_eq!(producer_id_of(&producer_key(&id, 3, 42)), Some(42));
        assert!(head_key(&id, 0).starts_with(&topic_logs_prefix(&id)));
    }
}
