//! End-to-end tests: the real `stratalog` binary, started as a child process on free loopback
//! ports, driven by librdkafka (the `rdkafka` crate), by raw Kafka protocol frames, and by
//! other real clients (kcat, kafka-python, the Apache Kafka Java client, kafkajs; see
//! clients.rs).
mod clients;
mod harness;

mod admin;
mod bad_input;
mod cluster;
mod compat;
mod conformance;
mod connections;
mod durability;
mod groups;
mod idempotence;
mod java;
mod kafkajs;
mod layout;
mod metadata_freeze;
mod produce_consume;
mod recovery;
mod takeover;
