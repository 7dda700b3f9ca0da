//! Configuration of the `stratalog` process: a TOML file, then environment variables, then
//! flags (flags win). Every field has a default, so `stratalog standalone` needs none.
//!
//! ```toml
//! data_dir = "./data"                 # state of every role, one sub-directory each
//! http_listen = "127.0.0.1:7070"      # /metrics, /healthz, /readyz
//!
//! [metadata]
//! node_id = 1
//! listen = "127.0.0.1:2379"           # internal RPC
//!
//! [bookie]
//! id = "bookie-1"                     # stable id; ledgers name bookies by it
//! listen = "127.0.0.1:3181"           # internal RPC
//! advertised = "127.0.0.1:3181"       # address brokers use; default: the bound address
//! metadata_addr = "127.0.0.1:2379"
//! checkpoint_interval_ms = 10000
//! write_cache_bytes = 67108864        # journaled entries not yet in entry logs
//!
//! [broker]                            # see stratalog_broker::BrokerConfig
//! kafka_listen = "127.0.0.1:9092"
//! metadata_addr = "127.0.0.1:2379"
//! default_partitions = 1
//! connections_max_idle_ms = 600000    # Kafka's connections.max.idle.ms; -1 never
//! max_connections = 2147483647        # Kafka's max.connections (accepting pauses at the cap)
//! max_connections_per_ip = 2147483647 # Kafka's max.connections.per.ip (closed at accept)
//! queued_max_request_bytes = 268435456 # request bytes held by all connections; -1 unbounded
//! request_read_timeout_ms = 30000     # a request must arrive whole within this; -1 never
//! ```
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use stratalog_broker::BrokerConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Default depends on the role: 7070 for standalone and broker, 7071 metadata, 7072 bookie.
    pub http_listen: Option<String>,
    pub metadata: MetadataSection,
    pub bookie: BookieSection,
    pub broker: BrokerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            http_listen: None,
            metadata: MetadataSection::default(),
            bookie: BookieSection::default(),
            broker: BrokerConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataSection {
    pub node_id: u64,
    /// Default: 127.0.0.1:2379; in standalone an ephemeral loopback port.
    pub listen: Option<String>,
}

impl Default for MetadataSection {
    fn default() -> Self {
        MetadataSection {
            node_id: 1,
            listen: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BookieSection {
    /// Default: "bookie-1" ("standalone" in standalone).
    pub id: Option<String>,
    /// Default: 127.0.0.1:3181; in standalone an ephemeral loopback port.
    pub listen: Option<String>,
    pub advertised: Option<String>,
    /// Default: 127.0.0.1:2379 (in standalone, the in-process metadata node).
    pub metadata_addr: Option<String>,
    pub checkpoint_interval_ms: u64,
    /// Memory for entries journaled but not yet checkpointed into entry logs.
    pub write_cache_bytes: usize,
    /// How long the bookie's registration outlives it if it dies without deregistering.
    pub registration_ttl_ms: u64,
}

impl Default for BookieSection {
    fn default() -> Self {
        BookieSection {
            id: None,
            listen: None,
            advertised: None,
            metadata_addr: None,
            checkpoint_interval_ms: 10_000,
            write_cache_bytes: 64 * 1024 * 1024,
            registration_ttl_ms: 10_000,
        }
    }
}

impl Config {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!(
                "parsing config file {} (see README.md, Configuration)",
                path.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_file_keeps_defaults_and_unknown_keys_are_errors() {
        let c: Config =
            toml::from_str("data_dir = \"/tmp/x\"\n[broker]\ndefault_partitions = 3\n").unwrap();
        assert_eq!(c.broker.default_partitions, 3);
        assert_eq!(c.broker.kafka_listen, "127.0.0.1:9092");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert!(toml::from_str::<Config>("[broker]\nno_such_option = 1\n").is_err());
    }

    #[test]
    fn connection_limits_from_the_file() {
        let c: Config = toml::from_str(
            "[broker]\nconnections_max_idle_ms = -1\nmax_connections = 1000\n\
             max_connections_per_ip = 50\nqueued_max_request_bytes = 134217728\n\
             request_read_timeout_ms = 5000\n",
        )
        .unwrap();
        assert_eq!(c.broker.connections_max_idle(), None);
        assert_eq!(c.broker.max_connections, 1000);
        assert_eq!(c.broker.max_connections_per_ip, 50);
        assert_eq!(c.broker.request_budget_bytes(), Some(128 << 20));
        assert_eq!(c.broker.request_read_timeout_ms, 5000);
        assert!(c.broker.validate().is_ok());
    }
}
