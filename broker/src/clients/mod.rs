//! Typed clients for the services the broker depends on, over the internal RPC transport.
pub mod bookie;
pub mod metadata;
