//! End-to-end tests: the real `stratalog` binary, started as a child process on free loopback
//! ports, driven by librdkafka (the `rdkafka` crate) and by raw Kafka protocol frames.
mod harness;

mod admin;
mod bad_input;
mod cluster;
mod compat;
mod connections;
mod durability;
mod groups;
mod idempotence;
mod metadata_freeze;
mod produce_consume;
