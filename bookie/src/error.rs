//! The bookie's error type.
//!
//! Every variant is cheap to build and carries only the identifiers a caller needs to
//! map it to a wire error (the RPC layer turns `Fenced` into BookKeeper's
//! `LedgerFencedException`, `NoSuchEntry` into `NoSuchEntryException`, and so on).
//! Paths and strings are only allocated on error paths, never on the add/read hot path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors returned by [`crate::Bookie`].
#[derive(Debug, thiserror::Error)]
pub enum BookieError {
    /// The ledger is fenced: a non-recovery add was refused.
    #[error("ledger {ledger_id} is fenced")]
    Fenced { ledger_id: u64 },

    /// The bookie has never stored anything (entry or fence) for this ledger.
    #[error("no such ledger {ledger_id}")]
    NoSuchLedger { ledger_id: u64 },

    /// The ledger exists but this entry is not stored here.
    #[error("no such entry {ledger_id}:{entry_id}")]
    NoSuchEntry { ledger_id: u64, entry_id: u64 },

    /// The stored bytes of an entry failed validation (CRC32C mismatch, bad length, or the
    /// record names another ledger/entry than the index said). The entry is not returned.
    #[error("corrupt entry {ledger_id}:{entry_id}: {reason}")]
    Corrupt {
        ledger_id: u64,
        entry_id: u64,
        reason: &'static str,
    },

    /// The ledger was deleted; it refuses adds, fences and reads.
    #[error("ledger {ledger_id} was deleted")]
    LedgerDeleted { ledger_id: u64 },

    /// The payload is larger than [`crate::MAX_ENTRY_BYTES`].
    #[error("entry {ledger_id}:{entry_id} is {size} bytes, more than the maximum {max}")]
    EntryTooLarge {
        ledger_id: u64,
        entry_id: u64,
        size: usize,
        max: usize,
    },

    /// A file operation failed. `op` names what was being done, `path` the file.
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The sled index failed or holds a value this code cannot decode.
    #[error("index: {0}")]
    Index(String),

    /// An earlier journal or checkpoint I/O error put the bookie in a failed state.
    /// After a failed `fdatasync` nothing can be assumed about what reached the disk, so
    /// the bookie refuses writes until restarted (which replays the journal).
    #[error("bookie storage failed earlier and refuses writes until restart: {reason}")]
    Failed { reason: Arc<str> },

    /// [`crate::Bookie::shutdown`] was called (or every handle was dropped).
    #[error("bookie is shutting down")]
    ShuttingDown,
}

impl BookieError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        BookieError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<sled::Error> for BookieError {
    fn from(e: sled::Error) -> Self {
        BookieError::Index(e.to_string())
    }
}
