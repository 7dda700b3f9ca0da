//! The Kafka APIs and version ranges this broker speaks (the ApiVersions answer).
//!
//! Each maximum is the newest version whose semantics we implement:
//! - Fetch v13+ and Produce v13 address topics by id only; Produce v12 is KIP-890
//!   (transactions part 2), so Produce stops at v11.
//! - ListOffsets v7 adds max-timestamp lookup (-3); v8+ tiered-storage specs.
//! - OffsetCommit/OffsetFetch v9+ carry KIP-848 member epochs; DescribeGroups v6 and
//!   ListGroups v5 add KIP-848 group types.
//! - Metadata v13 adds a top-level error for KIP-848 clients; FindCoordinator v5-6 share
//!   groups and transaction-version semantics; ApiVersions v4 is KIP-896/1022 features.
//! - InitProducerId v5+ is KIP-890/939 (transactions).
//!
//! Minimums are the oldest versions the `kafka-protocol` codec handles (Kafka 4 dropped the
//! same ones, KIP-896); a test checks every range against the codec.
use kafka_protocol::messages::ApiKey;

pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::DescribeCluster, 0, 1),
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
