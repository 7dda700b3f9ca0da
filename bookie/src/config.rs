//! Bookie configuration.

use std::path::PathBuf;
use std::time::Duration;

/// How a bookie stores its data. All sizes are in bytes.
#[derive(Clone, Debug)]
pub struct BookieConfig {
    /// Root directory. The bookie creates `journal/`, `entrylogs/` and `index/` under it.
    pub data_dir: PathBuf,
    /// An entry log file is closed and a new one started once it would exceed this size
    /// (a single entry larger than this still gets a file of its own). Default 512 MiB.
    pub entry_log_max_bytes: u64,
    /// A journal file is closed and a new one started once it reaches this size.
    /// Default 256 MiB.
    pub journal_max_bytes: u64,
    /// Time between checkpoints (flush write cache to entry logs + index, then drop
    /// journal files that are no longer needed). Default 10 s.
    pub checkpoint_interval: Duration,
    /// Upper bound on the bytes written by one group commit (one `writev` + one
    /// `fdatasync`). A single entry larger than this is written alone. Default 4 MiB.
    pub journal_group_max_bytes: usize,
    /// Memory for entries that are durable in the journal but not yet in an entry log
    /// (two generations: the one being filled and the one being checkpointed). A
    /// checkpoint starts when the filling generation reaches half of this, and adds wait
    /// while both together exceed it. Default 64 MiB.
    pub write_cache_max_bytes: usize,
    /// Ledger states kept in memory. States of ledgers unused for a checkpoint interval
    /// are dropped anyway (the index keeps them); above this many, a checkpoint also drops
    /// recently used ones that are safe to drop, and the committer starts a checkpoint
    /// once this many ledgers changed since the last one. About 150 bytes per state.
    /// Default 10,000.
    pub ledger_cache_max: usize,
}

impl Default for BookieConfig {
    fn default() -> Self {
        BookieConfig {
            data_dir: PathBuf::from("./data/bookie"),
            entry_log_max_bytes: 512 * 1024 * 1024,
            journal_max_bytes: 256 * 1024 * 1024,
            checkpoint_interval: Duration::from_secs(10),
            journal_group_max_bytes: 4 * 1024 * 1024,
            write_cache_max_bytes: 64 * 1024 * 1024,
            ledger_cache_max: 10_000,
        }
    }
}
