//! Broker settings. Every field has a default, so a config file only names what it changes.
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Kafka broker id reported to clients.
    pub node_id: i32,
    /// Address the Kafka listener binds.
    pub kafka_listen: String,
    /// Host and port clients are told to connect to (Metadata responses); default: the
    /// listen address.
    pub advertised_host: Option<String>,
    pub advertised_port: Option<u16>,
    /// Address of the metadata service (host:port).
    pub metadata_addr: String,
    /// Cluster id reported to clients.
    pub cluster_id: String,
    /// Create a topic when a client asks for it in Metadata (Kafka's auto.create.topics.enable).
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics and of CreateTopics with num_partitions = -1.
    pub default_partitions: i32,
    /// Most partitions a topic may have (CreateTopics/CreatePartitions past it get
    /// INVALID_PARTITIONS). Kafka has no such bound; here every partition is in every
    /// Metadata answer and has its own managed ledger.
    pub max_partitions_per_topic: i32,
    /// Largest request accepted (Kafka's socket.request.max.bytes, 100 MiB).
    pub max_request_bytes: usize,
    /// Largest record batch accepted (Kafka's message.max.bytes).
    pub max_message_bytes: usize,
    /// Bookies per ledger (E), copies per entry (Qw), acks awaited per entry (Qa).
    pub ensemble_size: usize,
    pub write_quorum: usize,
    pub ack_quorum: usize,
    /// A ledger is closed and a new one started past this size or age.
    pub ledger_roll_bytes: u64,
    pub ledger_roll_ms: u64,
    /// How often time-based retention (`retention.ms`) is checked.
    pub retention_check_ms: u64,
    /// Recent entries kept in memory per partition for tailing consumers.
    pub tail_cache_bytes: usize,
    /// A producer not heard from for this long is forgotten (Kafka's
    /// `producer.id.expiration.ms`, 1 day).
    pub producer_id_expiration_ms: u64,
    /// Most idempotent producers remembered per partition; past it the least recently
    /// active is forgotten (Kafka has no bound; this keeps metadata and memory bounded).
    pub max_producers_per_partition: usize,
    /// Partition take-overs (fence, recover, reopen) run at once; the rest wait.
    pub recovery_concurrency: usize,
    /// Consumer group settings (Kafka's group.* broker configs).
    pub group_initial_rebalance_delay_ms: u64,
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    /// Close a client connection after this long with nothing read or written and no
    /// request outstanding (Kafka's connections.max.idle.ms); -1: never.
    pub connections_max_idle_ms: i64,
    /// Client connections open at once (Kafka's max.connections); at the cap the listener
    /// stops accepting until one closes.
    pub max_connections: usize,
    /// Client connections open at once from one IP address (Kafka's
    /// max.connections.per.ip); a connection over it is closed at accept.
    pub max_connections_per_ip: usize,
    /// Request bytes held by all client connections at once: read but not yet framed, or
    /// framed and not yet answered (Kafka's queued.max.request.bytes, but bounded by
    /// default). When spent, connections stop reading until bytes are released. -1:
    /// unbounded.
    pub queued_max_request_bytes: i64,
    /// Close a client connection whose request has started to arrive but is not complete
    /// after this long (Stratalog's own; Kafka has none); -1: never.
    pub request_read_timeout_ms: i64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 0,
            kafka_listen: "127.0.0.1:9092".into(),
            advertised_host: None,
            advertised_port: None,
            metadata_addr: "127.0.0.1:2379".into(),
            cluster_id: "stratalog".into(),
            auto_create_topics: true,
            default_partitions: 1,
            max_partitions_per_topic: 10_000,
            max_request_bytes: 100 * 1024 * 1024,
            max_message_bytes: 1_048_588,
            ensemble_size: 1,
            write_quorum: 1,
            ack_quorum: 1,
            ledger_roll_bytes: 256 * 1024 * 1024,
            ledger_roll_ms: 4 * 3600 * 1000,
            tail_cache_bytes: 4 * 1024 * 1024,
            retention_check_ms: 300_000,
            producer_id_expiration_ms: 86_400_000,
            max_producers_per_partition: 10_000,
            recovery_concurrency: 4,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            connections_max_idle_ms: 600_000,
            max_connections: i32::MAX as usize,
            max_connections_per_ip: i32::MAX as usize,
            queued_max_request_bytes: 256 * 1024 * 1024,
            request_read_timeout_ms: 30_000,
        }
    }
}

impl BrokerConfig {
    pub fn ledger_roll_age(&self) -> Duration {
        Duration::from_millis(self.ledger_roll_ms)
    }

    /// `connections_max_idle_ms` as a duration; `None` for never.
    pub fn connections_max_idle(&self) -> Option<Duration> {
        u64::try_from(self.connections_max_idle_ms)
            .ok()
            .map(Duration::from_millis)
    }

    /// `request_read_timeout_ms` as a duration; `None` for never.
    pub fn request_read_timeout(&self) -> Option<Duration> {
        u64::try_from(self.request_read_timeout_ms)
            .ok()
            .map(Duration::from_millis)
    }

    /// `queued_max_request_bytes` in bytes; `None` for unbounded.
    pub fn request_budget_bytes(&self) -> Option<usize> {
        usize::try_from(self.queued_max_request_bytes).ok()
    }

    /// Checks the settings that can be wrong together, naming what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !(1 <= self.ack_quorum
            && self.ack_quorum <= self.write_quorum
            && self.write_quorum <= self.ensemble_size)
        {
            return Err(format!(
                "need 1 <= ack_quorum ({}) <= write_quorum ({}) <= ensemble_size ({})",
                self.ack_quorum, self.write_quorum, self.ensemble_size
            ));
        }
        if self.ensemble_size != self.write_quorum {
            return Err(format!(
                "ensemble_size ({}) larger than write_quorum ({}) stripes entries over the \
                 ensemble, which the time index, LAC and reads do not handle yet: set \
                 ensemble_size = write_quorum",
                self.ensemble_size, self.write_quorum
            ));
        }
        if self.max_producers_per_partition < 1 || self.recovery_concurrency < 1 {
            return Err(format!(
                "max_producers_per_partition ({}) and recovery_concurrency ({}) must be at least 1",
                self.max_producers_per_partition, self.recovery_concurrency
            ));
        }
        if self.default_partitions < 1 {
            return Err(format!(
                "default_partitions must be at least 1, not {}",
                self.default_partitions
            ));
        }
        if self.max_partitions_per_topic < self.default_partitions {
            return Err(format!(
                "max_partitions_per_topic ({}) must be at least default_partitions ({})",
                self.max_partitions_per_topic, self.default_partitions
            ));
        }
        if self.max_request_bytes < 1024 {
            return Err(format!(
                "max_request_bytes {} is too small to carry any request",
                self.max_request_bytes
            ));
        }
        for (name, value) in [
            ("connections_max_idle_ms", self.connections_max_idle_ms),
            ("request_read_timeout_ms", self.request_read_timeout_ms),
        ] {
            if value == 0 || value < -1 {
                return Err(format!(
                    "{name} must be -1 (never) or a positive number of milliseconds, not {value}"
                ));
            }
        }
        for (name, value) in [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        match self.queued_max_request_bytes {
            -1 => {}
            n if n < self.max_request_bytes as i64 => {
                return Err(format!(
                    "queued_max_request_bytes ({n}) must be -1 (unbounded) or at least \
                     max_request_bytes ({}), or the largest request could never be read",
                    self.max_request_bytes
                ))
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_are_checked() {
        let ok = BrokerConfig::default();
        assert!(ok.validate().is_ok());
        assert_eq!(ok.connections_max_idle(), Some(Duration::from_secs(600)));
        assert_eq!(ok.request_budget_bytes(), Some(256 << 20));
        let never = BrokerConfig {
            connections_max_idle_ms: -1,
            request_read_timeout_ms: -1,
            queued_max_request_bytes: -1,
            ..BrokerConfig::default()
        };
        assert!(never.validate().is_ok());
        assert_eq!(never.connections_max_idle(), None);
        assert_eq!(never.request_read_timeout(), None);
        assert_eq!(never.request_budget_bytes(), None);
        for bad in [
            BrokerConfig {
                queued_max_request_bytes: 1 << 20,
                ..BrokerConfig::default()
            },
            BrokerConfig {
                connections_max_idle_ms: 0,
                ..BrokerConfig::default()
            },
            BrokerConfig {
                request_read_timeout_ms: -5,
                ..BrokerConfig::default()
            },
            BrokerConfig {
                max_connections_per_ip: 0,
                ..BrokerConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
