//! The Kafka APIs and version ranges this broker speaks (the ApiVersions answer).
//!
//! Each maximum is the newest version whose semantics we implement (ARCHITECTURE.md §2.5):
//! - Fetch v13+ names topics by id (resolved through the topic catalog; UNKNOWN_TOPIC_ID for
//!   an id no topic has). v14-v18 change only what followers send or what comes with
//!   leader-change errors (replica state, directory id, follower high watermark, node
//!   endpoints), none of which a stateless broker has, so it serves up to v18.
//! - Produce v12 is KIP-890 (transactions part 2) and v13 names topics by id: Produce stops
//!   at v11 until transactions exist (and v13 with them).
//! - ListOffsets v7 adds MAX_TIMESTAMP (-3), v8 EARLIEST_LOCAL (-4, the log start: nothing
//!   is tiered), v9 LATEST_TIERED (-5, -1 as Kafka answers without remote storage), v10 a
//!   timeout for remote lookups (none happen).
//! - Metadata v10+ carries topic ids (a topic may be asked for by id), v13 a top-level
//!   error code (always 0 here).
//! - OffsetCommit/OffsetFetch v9 are the KIP-848 versions; for the classic groups this
//!   coordinator runs, the member epoch field is the generation and an unknown group is
//!   GROUP_ID_NOT_FOUND, which it implements. DescribeGroups v6 (GROUP_ID_NOT_FOUND) and
//!   ListGroups v5 (type filter; every group is "classic") likewise.
//! - FindCoordinator v5-v6 add a transactions error and share-group keys; group keys mean
//!   the same, other key types get COORDINATOR_NOT_AVAILABLE.
//! - ApiVersions v4 only allows feature min versions of 0; we advertise no features.
//! - DescribeCluster v2 reports fenced brokers: a serving broker is never fenced.
//! - InitProducerId v5+ is KIP-890/939 (transactions): stops at v4.
//!
//! Minimums are the oldest versions the `kafka-protocol` codec handles (Kafka 4 dropped the
//! same ones, KIP-896); a test checks every range against the codec.
use kafka_protocol::messages::ApiKey;

pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::DescribeCluster, 0, 2),
];

/// The supported range for `key`, if we speak it at all.
pub fn range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_within_what_the_codec_supports() {
        for &(key, min, max) in SUPPORTED {
            let codec = key.valid_versions();
            assert!(
                codec.min <= min && max <= codec.max,
                "{key:?} {min}..{max} outside codec {codec}"
            );
        }
    }
}
