//! The Stratalog metadata service core: a small etcd.
//!
//! A key-value store replicated with Raft (raft-rs, `RawNode` + `Ready` loop) and persisted
//! in sled, offering what cluster coordination needs: linearizable reads and writes,
//! versioned compare-and-set, atomic multi-key batches, leases that expire and take their
//! keys with them, and long-poll watches. Brokers build partition ownership, ledger lists
//! and offsets on top of these, the way Pulsar uses ZooKeeper.
//!
//! What it is not: there is no networking here. The RPC layer implements [`Transport`] to
//! carry raft messages between nodes, feeds incoming ones to [`RaftInbox::step`], and exposes
//! [`MetadataStore`] to clients. Membership changes (adding/removing voters at run time) are
//! not implemented; the voter set is fixed when a cluster's data directories are created.
//!
//! ```no_run
//! # async fn demo() -> Result<(), stratalog_metadata::MetadataError> {
//! use std::sync::Arc;
//! use stratalog_metadata::*;
//! let node = MetadataNode::open(MetadataConfig::new(1, "./data/metadata"), Arc::new(NoopTransport)).await?;
//! let store = node.store();
//! let kv = store.put("topics/a", "cfg".into(), Expect::Absent, None).await?;
//! store.put("topics/a", "cfg2".into(), Expect::Revision(kv.mod_revision), None).await?;
//! node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `types.rs`: the API's values (`KeyValue`, `Expect`, `Op`, `Event`, `Revision`, `LeaseId`).
//! - `error.rs`: [`MetadataError`].
//! - `config.rs`: [`MetadataConfig`].
//! - `store.rs`: [`MetadataStore`], the public handle: validation, timeouts, turning calls
//!   into proposals and ReadIndex-guarded local reads.
//! - `node.rs`: [`MetadataNode`] and [`RaftInbox`]: the `RawNode`/`Ready` loop (group
//!   commit, apply, proposal and read completion, lease expiry, log compaction).
//! - `shared.rs`: the request inbox and state the loop shares with the store handles (a leaf,
//!   so `node` and `store` do not depend on each other).
//! - `state_machine.rs`: the deterministic apply of commands: revisions, compare-and-set,
//!   batches, lease records and their keys, snapshots of the state tree.
//! - `lease.rs`: lease deadlines, in the leader's memory only.
//! - `watch.rs`: the in-memory event history and long-polls.
//! - `storage.rs`: `raft::Storage` on sled (log, hard state, conf state, compaction,
//!   snapshot install).
//! - `durability.rs`: the fsyncs sled 0.34 leaves out of its flush.
//! - `layout.rs`: the sled trees, their keys and record encodings (read this first).
//! - `command.rs`: raft entry payloads and their versioned binary encoding.
//! - `codec.rs`: the binary primitives the encodings share.
//! - `transport.rs`: [`Transport`] and [`NoopTransport`].
//! - `metrics.rs`: Prometheus metrics (`stratalog_metadata_*`).
//! - `logger.rs`: raft-rs `slog` output bridged into `tracing`.
//!
//! - `service.rs`: the RPC adapter (written with the network layer, not part of the core).
//! - `client.rs`: the RPC client, for brokers and bookie registration.
//! - `cluster.rs`: where cluster membership (the bookie registry) lives in the store.
//!
//! Tests live in `src/tests/` (node-level, real sled in temp dirs, including an in-process
//! three-node cluster; see its `mod.rs`) and `testdata/` (data-driven state machine cases).

mod codec;
mod command;
mod config;
mod durability;
mod error;
mod layout;
mod lease;
mod logger;
mod metrics;
mod node;
mod shared;
mod state_machine;
mod storage;
mod store;
mod transport;
mod types;
mod watch;

#[cfg(test)]
mod tests;

pub mod client;
pub mod cluster;
pub mod service;
pub use config::MetadataConfig;
pub use error::MetadataError;
pub use node::{MetadataNode, RaftInbox};
pub use store::{
    MetadataStore, RangeQuery, MAX_BATCH_OPS, MAX_KEY_BYTES, MAX_RANGE_KEYS, MAX_VALUE_BYTES,
};
pub use transport::{NoopTransport, Transport};
pub use types::{Event, EventKind, Expect, KeyValue, LeaseId, Op, Revision};

/// The raft-rs types that appear in this crate's API ([`Transport`], [`RaftInbox`]).
pub use raft::eraftpb::Message as RaftMessage;
pub use raft::SnapshotStatus;
