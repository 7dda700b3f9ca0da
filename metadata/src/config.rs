//! Node configuration.
use std::path::PathBuf;
use std::time::Duration;

use crate::error::MetadataError;

/// Configuration of one metadata node. Build it with [`MetadataConfig::new`] and override
/// fields as needed.
#[derive(Clone, Debug)]
pub struct MetadataConfig {
    /// This node's raft id; non-zero and unique in the cluster.
    pub node_id: u64,
    /// Directory owned by this node; the sled database lives in `data_dir/sled`.
    pub data_dir: PathBuf,
    /// The initial voters, used only when `data_dir` is empty (afterwards the persisted
    /// configuration wins). Default `[node_id]`: a single node that elects itself at once.
    pub voters: Vec<u64>,
    /// Length of one raft tick. Default 100 ms.
    pub tick_interval: Duration,
    /// Ticks without a heartbeat before a follower campaigns (randomized up to 2x). Default 10.
    pub election_tick: usize,
    /// Ticks between leader heartbeats. Default 3.
    pub heartbeat_tick: usize,
    /// Upper bound on any request's wait (proposal commit+apply, read barrier). Default 5 s.
    pub request_timeout: Duration,
    /// Compact the raft log once it holds more than this many applied entries. Default 10_000.
    pub log_compact_after: u64,
    /// Entries kept below the applied index when compacting, so followers that lag a little
    /// catch up from the log instead of a full snapshot. Default 1_000.
    pub log_keep_after_compact: u64,
    /// Events kept in memory for `watch`; older `after` revisions get `Compacted`.
    /// Default 10_000.
    pub watch_history: usize,
}

impl MetadataConfig {
    pub fn new(node_id: u64, data_dir: impl Into<PathBuf>) -> Self {
        MetadataConfig {
            node_id,
            data_dir: data_dir.into(),
            voters: vec![node_id],
            tick_interval: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 3,
            request_timeout: Duration::from_secs(5),
            log_compact_after: 10_000,
            log_keep_after_compact: 1_000,
            watch_history: 10_000,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), MetadataError> {
        let invalid = |m: &str| Err(MetadataError::InvalidArgument(m.to_string()));
        if self.node_id == 0 {
            return invalid("node_id must be non-zero");
        }
        if self.voters.is_empty() {
            return invalid("voters must not be empty");
        }
        if self.voters.contains(&0) {
            return invalid("voter ids must be non-zero");
        }
        if self.tick_interval.is_zero() {
            return invalid("tick_interval must be non-zero");
        }
        if self.heartbeat_tick == 0 || self.election_tick <= self.heartbeat_tick {
            return invalid("need 0 < heartbeat_tick < election_tick");
        }
        if self.log_keep_after_compact >= self.log_compact_after {
            return invalid("need log_keep_after_compact < log_compact_after");
        }
        if self.watch_history == 0 {
            return invalid("watch_history must be non-zero");
        }
        Ok(())
    }
}
