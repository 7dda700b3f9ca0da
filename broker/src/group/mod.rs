//! Kafka group coordinator (being written).
