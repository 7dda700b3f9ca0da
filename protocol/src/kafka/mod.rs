//! The Kafka side of the wire: request headers, response framing and RecordBatch v2.
pub mod compression;
pub mod header;
pub mod record_batch;

pub use kafka_protocol::messages;
pub use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
