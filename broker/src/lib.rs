//! The Stratalog broker: speaks the Kafka protocol to clients and keeps no state of its own.
//! Partitions live in ledgers on bookies, their layout and the consumer groups in the
//! metadata service; a broker that restarts (or another broker) picks them up from there.
//! It does not store data itself and does not replicate: the bookie ensemble does.
//!
//! # Layout
//!
//! - [`kafka`]: the Kafka front end. `server` accepts connections, `connection` reads
//!   frames and keeps responses in request order, `handlers` has one module per API, and
//!   `versions` the API version ranges we speak.
//! - [`log`]: a partition as a managed ledger — appends with offset assignment and ordered
//!   acknowledgement, reads through the tail cache or the bookies, rolls, take-over recovery,
//!   idempotent-producer state.
//! - [`partitions`]: the partitions this broker serves, opened on first use.
//! - [`topics`]: the topic catalog (cached from the metadata store).
//! - [`group`]: the consumer group coordinator: request handling over a per-group state
//!   machine (its module docs give the layout); [`group_store`] keeps its state in the
//!   metadata store.
//! - [`producer_ids`]: producer id blocks for idempotent producers.
//! - [`catalog`]: the metadata keys and values the broker reads and writes.
//! - [`clients`]: the typed RPC client for bookies (the metadata client is
//!   `stratalog_metadata::client`).
//! - [`cpu_pool`]: the bounded pool that checks and decompresses produced batches off the
//!   async workers.
//! - [`config`], [`metrics`].
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub mod catalog;
pub mod clients;
pub mod config;
pub mod cpu_pool;
pub mod group;
pub mod group_store;
pub mod kafka;
pub mod log;
pub mod metrics;
pub mod partitions;
pub mod producer_ids;
pub mod topics;

pub use config::BrokerConfig;

use group::{GroupConfig, GroupCoordinator};
use group_store::MetaGroupStore;
use log::LogContext;
use partitions::Partitions;
use producer_ids::ProducerIds;
use stratalog_metadata::client::MetadataClient;
use topics::Topics;

pub struct Broker {
    pub config: BrokerConfig,
    pub topics: Topics,
    pub partitions: Partitions,
    pub groups: GroupCoordinator<MetaGroupStore>,
    pub producer_ids: ProducerIds,
    /// Produced batches are checked here, not on the async workers: uncompressed ones
    /// (CRC32C, record framing) in `crc_pool`, compressed ones (also decompression) in
    /// `inflate_pool`, so compression bombs queue behind each other only.
    pub crc_pool: cpu_pool::CpuPool,
    pub inflate_pool: cpu_pool::CpuPool,
    /// Request bytes all Kafka connections may hold at once (`queued_max_request_bytes`).
    pub request_budget: stratalog_runtime::framing::RequestBudget,
    advertised: (String, u16),
}

impl Broker {
    /// Host and port clients should connect to.
    pub fn advertised(&self) -> (String, u16) {
        self.advertised.clone()
    }

    /// Connects to the metadata service, loads the group coordinator and starts the Kafka
    /// listener on `listener`. Runs until `shutdown` is cancelled; `ready` is set once
    /// clients can be served.
    pub async fn run(
        config: BrokerConfig,
        listener: TcpListener,
        ready: Arc<AtomicBool>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid broker configuration: {e}"))?;
        let local = listener.local_addr()?;
        let advertised = (
            config
                .advertised_host
                .clone()
                .unwrap_or_else(|| local.ip().to_string()),
            config.advertised_port.unwrap_or(local.port()),
        );
        let metadata = MetadataClient::new(config.metadata_addr.clone());
        wait_for_metadata(&metadata, &config.metadata_addr, &shutdown).await?;
        let ctx = Arc::new(LogContext {
            metadata: metadata.clone(),
            bookies: log::ledger::BookiePool::new(metadata.clone()),
            ensemble_size: config.ensemble_size,
            write_quorum: config.write_quorum,
            ack_quorum: config.ack_quorum,
            roll_bytes: config.ledger_roll_bytes,
            roll_age: config.ledger_roll_age(),
            cache_bytes: config.tail_cache_bytes,
            producer_limits: log::producer_state::ProducerLimits {
                expiration: Duration::from_millis(config.producer_id_expiration_ms),
                max_producers: config.max_producers_per_partition,
            },
            recoveries: tokio::sync::Semaphore::new(config.recovery_concurrency),
            ledger_ids: Default::default(),
            ledger_id_refill: Default::default(),
        });
        refuse_legacy_layout(&metadata).await?;
        let group_config = GroupConfig {
            min_session_timeout: Duration::from_millis(config.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(config.group_max_session_timeout_ms),
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
            ..GroupConfig::default()
        };
        let groups = GroupCoordinator::new(MetaGroupStore::new(metadata.clone()), group_config)
            .await
            .map_err(|e| {
                anyhow::anyhow!("loading consumer groups from the metadata service failed: {e}")
            })?;
        let broker = Arc::new(Broker {
            topics: Topics::new(metadata.clone()),
            partitions: Partitions::new(ctx),
            groups,
            producer_ids: ProducerIds::new(metadata),
            crc_pool: cpu_pool::CpuPool::per_core("crc"),
            inflate_pool: cpu_pool::CpuPool::per_core("inflate"),
            request_budget: stratalog_runtime::framing::RequestBudget::new(
                config.request_budget_bytes(),
                Some(metrics::QUEUED_REQUEST_BYTES.clone()),
            ),
            advertised,
            config,
        });
        tokio::spawn(enforce_retention(broker.clone(), shutdown.clone()));
        ready.store(true, Ordering::Release);
        info!(listen = %local, advertised = ?broker.advertised, "broker ready");
        kafka::server::serve(listener, broker.clone(), shutdown).await;
        broker.groups.shutdown().await;
        broker.partitions.close_all().await;
        Ok(())
    }
}

/// Applies each topic's `retention.ms` to the partitions this broker serves, every
/// `retention_check_ms`.
async fn enforce_retention(broker: Arc<Broker>, shutdown: CancellationToken) {
    let every = Duration::from_millis(broker.config.retention_check_ms.max(10));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        for log in broker.partitions.open_logs() {
            let retention_ms = match broker.topics.get(&log.topic).await {
                Ok(Some(meta)) => topics::retention_ms(&meta),
                _ => continue,
            };
            // Kafka: -1 keeps data forever.
            let Ok(retention_ms) = u64::try_from(retention_ms) else {
                continue;
            };
            if let Err(e) = log
                .enforce_retention(Duration::from_millis(retention_ms))
                .await
            {
                warn!(topic = %log.topic, partition = log.partition, error = %e, "retention check failed");
            }
        }
    }
}

/// The first release kept a partition's whole history in one metadata value; this version
/// cannot read that layout and says so instead of serving partitions it would misread.
async fn refuse_legacy_layout(metadata: &MetadataClient) -> anyhow::Result<()> {
    let (legacy, _) = metadata
        .range(&stratalog_metadata::RangeQuery {
            prefix: catalog::LEGACY_PARTITIONS_PREFIX.into(),
            limit: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("checking the metadata layout failed: {e}"))?;
    if let Some(kv) = legacy.first() {
        anyhow::bail!(
            "the metadata store holds partitions in the layout of Stratalog 0.1 (found {}); \
             this version keeps one key per segment and cannot read it. Start from an empty \
             data directory (move ./data aside), or run the release that wrote it",
            kv.key
        );
    }
    Ok(())
}

/// Waits until the metadata service answers, logging progress, so the roles of a cluster
/// can start in any order.
async fn wait_for_metadata(
    metadata: &MetadataClient,
    addr: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut attempt = 0u32;
    loop {
        match metadata.get(catalog::LEDGER_ID_COUNTER).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                attempt += 1;
                if attempt % 10 == 1 {
                    warn!(metadata = addr, error = %e, "waiting for the metadata service (start it, or check --metadata-addr)");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("shut down while waiting for the metadata service at {addr}"),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
