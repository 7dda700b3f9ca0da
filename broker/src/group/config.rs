//! The coordinator's settings ([`GroupConfig`]), Kafka's group broker configs. A leaf: the
//! broker fills it from its own configuration (`lib.rs`), the state machine reads it.

use std::time::Duration;

/// Coordinator settings (Kafka broker configs in parentheses).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Smallest session timeout a member may ask for (`group.min.session.timeout.ms`, 6 s).
    pub min_session_timeout: Duration,
    /// Largest session timeout (`group.max.session.timeout.ms`, 30 min).
    pub max_session_timeout: Duration,
    /// How long the first rebalance of an empty group waits for more members
    /// (`group.initial.rebalance.delay.ms`, 3 s as in Kafka: members that start together
    /// land in one generation instead of a rebalance per arrival).
    pub initial_rebalance_delay: Duration,
    /// How long offsets are kept (`offsets.retention.minutes`, 7 days); `None` keeps them
    /// until the group is deleted.
    pub offsets_retention: Option<Duration>,
    /// How often retention runs (`offsets.retention.check.interval.ms`, 10 min).
    pub offsets_retention_check_interval: Duration,
    /// How long a new member's JoinGroup may stay parked (Kafka: 5 min, fixed).
    pub new_member_join_timeout: Duration,
    /// Most members per group (`group.max.size`, unbounded).
    pub max_group_size: usize,
    /// Longest committed metadata string (`offset.metadata.max.bytes`, 4096).
    pub max_offset_metadata_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(30 * 60),
            initial_rebalance_delay: Duration::from_secs(3),
            offsets_retention: Some(Duration::from_secs(7 * 24 * 3600)),
            offsets_retention_check_interval: Duration::from_secs(600),
            new_member_join_timeout: Duration::from_secs(300),
            max_group_size: usize::MAX,
            max_offset_metadata_bytes: 4096,
        }
    }
}
