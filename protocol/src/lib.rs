//! Stratalog wire formats: bytes in, typed values out, and back. No sockets, no files, no
//! policy about what to do with a message; the roles (`broker`, `bookie`, `metadata`) decide
//! that.
//!
//! # Layout
//!
//! - [`kafka`]: the Kafka side. [`kafka::header`] reads request headers leniently enough to
//!   answer (or log) requests whose API key or version we do not support;
//!   [`kafka::record_batch`] validates RecordBatch v2 (CRC32C, magic, record count, offset
//!   deltas, compression) and rewrites the fields the broker owns (base offset, log append
//!   time). Message bodies come from the `kafka-protocol` crate, re-exported as
//!   [`kafka::messages`].
//! - [`internal`]: the messages roles exchange among themselves. [`internal::wire`] is a tiny
//!   binary codec, [`internal::frame`] the multiplexed RPC frame, and one file per service
//!   ([`internal::bookie`], [`internal::metadata`]) lists its methods and their messages.
pub mod internal;
pub mod kafka;
