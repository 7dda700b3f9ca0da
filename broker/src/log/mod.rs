//! A partition's log as a managed ledger (Pulsar's term): an ordered list of ledgers in the
//! metadata store, the last one open for appends.
//!
//! - [`partition`]: [`partition::PartitionLog`], append (offsets, sequence checks, ordered
//!   acknowledgement), read, roll, and the take-over on open.
//! - [`ledger`]: writing to an ensemble with quorums, reading from replicas, recovery.
//! - [`producer_state`]: idempotent producer sequence checks.
//! - [`cache`]: recent entries in memory for tailing consumers.
//! - [`budget`]: how many whole batches a read returns (Kafka's first-batch rule).
pub mod budget;
pub mod cache;
pub mod ledger;
pub mod partition;
pub mod producer_state;

pub use partition::{LogContext, LogError, PartitionLog, ReadResult};
