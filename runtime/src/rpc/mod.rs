//! Internal RPC over TCP: one frame per call each way (see
//! `stratalog_protocol::internal::frame`), many calls in flight per connection.
pub mod client;
pub mod server;

pub use client::{RpcClient, RpcError, RpcOptions};
pub use server::{handle, serve, Service, ServiceFuture};

/// Largest internal frame accepted: a bookie entry can be a whole produce batch, and Kafka's
/// default maximum request is 100 MiB.
pub const MAX_FRAME: usize = 128 * 1024 * 1024;
