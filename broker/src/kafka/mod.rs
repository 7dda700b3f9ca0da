//! The Kafka wire protocol front end: listener, connections, and one handler per API.
pub mod connection;
pub mod handlers;
pub mod server;
pub mod versions;
