//! Typed clients for the services the broker depends on, over the internal RPC transport.
//! (The metadata service's client lives in its own crate: `stratalog_metadata::client`.)
pub mod bookie;
