//! What every Stratalog role needs to run as a networked process, and nothing about what the
//! role does.
//!
//! # Layout
//!
//! - [`rpc`]: the internal RPC transport. [`rpc::client::RpcClient`] multiplexes many calls
//!   over one TCP connection (correlation ids, per-call timeouts, a cap on calls in flight
//!   for back-pressure, reconnect on failure); [`rpc::server`] serves a [`rpc::server::Service`]
//!   with pipelining (each request handled as it arrives, answered when done).
//! - [`http`]: the HTTP endpoint every role exposes: `/metrics` (Prometheus text format from
//!   the process-wide default registry), `/healthz` and `/readyz`; a role may add routes.
//! - [`framing`]: reading length-prefixed frames with a size limit, shared by the RPC and the
//!   Kafka listener.
//! - [`net`]: the accept loop every listener uses.
pub mod framing;
pub mod http;
pub mod net;
pub mod rpc;

pub use tokio_util::sync::CancellationToken;
