//! In-crate tests. Node-level tests run real sled databases in temp dirs.
//!
//! - `harness.rs`: helpers to open single nodes and in-process clusters.
//! - `store_tests.rs`: the KV API: put/get/CAS, batches, deletes, lists, validation.
//! - `lease_tests.rs`: grant, keep-alive, expiry, revoke, restart amnesty.
//! - `watch_tests.rs`: long-polls, history bounds, `Compacted`.
//! - `restart_tests.rs`: durability of data, revision, and the log across reopen/compaction.
//! - `cluster_tests.rs`: three nodes over an in-memory transport: redirects, failover,
//!   snapshot catch-up.
//! - `storage_tests.rs`: `raft::Storage` on sled.
//! - `datadriven.rs`: state machine cases from `testdata/*.txt`.
//! - `throughput.rs`: 5,000 puts from 64 tasks; prints the rate.
mod cluster_tests;
mod datadriven;
mod harness;
mod lease_tests;
mod restart_tests;
mod storage_tests;
mod store_tests;
mod throughput;
mod watch_tests;
