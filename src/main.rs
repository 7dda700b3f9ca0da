//! `stratalog`: one binary for every role of a Stratalog cluster.
//!
//! - `stratalog standalone`: metadata node, bookie and broker in one process, talking over
//!   loopback RPC exactly as separate processes would. State under `./data`.
//! - `stratalog metadata | bookie | broker`: one role per process.
//!
//! Configuration: `--config FILE` (TOML), then `STRATALOG_*` environment variables, then
//! flags; see `stratalog <role> --help` and README.md.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod alloc;
mod config;
mod roles;

#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

use config::Config;

#[derive(Parser)]
#[command(
    name = "stratalog",
    version,
    about = "Kafka-compatible log storage: brokers, bookies and a Raft metadata service"
)]
struct Cli {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, global = true, env = "STRATALOG_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Run a metadata node, a bookie and a broker in one process (data under ./data).
    Standalone {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Run a metadata node (Raft-replicated key-value store).
    Metadata {
        #[command(flatten)]
        common: CommonArgs,
        /// Raft node id of this metadata node.
        #[arg(long, env = "STRATALOG_METADATA_NODE_ID")]
        node_id: Option<u64>,
        /// Internal RPC address to listen on [default: 127.0.0.1:2379].
        #[arg(long, env = "STRATALOG_METADATA_LISTEN")]
        listen: Option<String>,
    },
    /// Run a bookie (storage node for ledgers).
    Bookie {
        #[command(flatten)]
        common: CommonArgs,
        /// Stable bookie id; ledgers refer to bookies by it [default: bookie-1].
        #[arg(long, env = "STRATALOG_BOOKIE_ID")]
        id: Option<String>,
        /// Internal RPC address to listen on [default: 127.0.0.1:3181].
        #[arg(long, env = "STRATALOG_BOOKIE_LISTEN")]
        listen: Option<String>,
        /// Address brokers should use to reach this bookie [default: the bound address].
        #[arg(long, env = "STRATALOG_BOOKIE_ADVERTISED")]
        advertised: Option<String>,
        /// Metadata service address [default: 127.0.0.1:2379].
        #[arg(long, env = "STRATALOG_METADATA_ADDR")]
        metadata_addr: Option<String>,
    },
    /// Run a broker (Kafka protocol front end; stateless).
    Broker {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        broker: BrokerArgs,
        /// Metadata service address [default: 127.0.0.1:2379].
        #[arg(long, env = "STRATALOG_METADATA_ADDR")]
        metadata_addr: Option<String>,
    },
}

#[derive(Args)]
struct CommonArgs {
    /// Directory for all state of this process [default: ./data].
    #[arg(long, env = "STRATALOG_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// HTTP address for /metrics, /healthz and /readyz [default: 127.0.0.1:7070 for
    /// standalone and broker, :7071 metadata, :7072 bookie].
    #[arg(long, env = "STRATALOG_HTTP_LISTEN")]
    http_listen: Option<String>,
}

#[derive(Args)]
struct BrokerArgs {
    /// Kafka listener address [default: 127.0.0.1:9092].
    #[arg(long, env = "STRATALOG_KAFKA_LISTEN")]
    kafka_listen: Option<String>,
    /// Host advertised to Kafka clients [default: the listener's IP].
    #[arg(long, env = "STRATALOG_ADVERTISED_HOST")]
    advertised_host: Option<String>,
    /// Port advertised to Kafka clients [default: the listener's port].
    #[arg(long, env = "STRATALOG_ADVERTISED_PORT")]
    advertised_port: Option<u16>,
    /// Kafka broker id [default: 0].
    #[arg(long, env = "STRATALOG_BROKER_ID")]
    broker_id: Option<i32>,
    /// Create topics on first use [default: true].
    #[arg(long, env = "STRATALOG_AUTO_CREATE_TOPICS")]
    auto_create_topics: Option<bool>,
    /// Partitions of auto-created topics [default: 1].
    #[arg(long, env = "STRATALOG_DEFAULT_PARTITIONS")]
    default_partitions: Option<i32>,
    /// Largest Kafka request accepted, in bytes [default: 104857600].
    #[arg(long, env = "STRATALOG_MAX_REQUEST_BYTES")]
    max_request_bytes: Option<usize>,
    /// Ledger roll size in bytes [default: 268435456].
    #[arg(long, env = "STRATALOG_LEDGER_ROLL_BYTES")]
    ledger_roll_bytes: Option<u64>,
    /// How often retention.ms is applied, in ms [default: 300000].
    #[arg(long, env = "STRATALOG_RETENTION_CHECK_MS")]
    retention_check_ms: Option<u64>,
    /// Close client connections idle this long, in ms; -1 never (Kafka's
    /// connections.max.idle.ms) [default: 600000].
    #[arg(
        long,
        env = "STRATALOG_CONNECTIONS_MAX_IDLE_MS",
        allow_negative_numbers = true
    )]
    connections_max_idle_ms: Option<i64>,
    /// Client connections open at once; at the cap new ones wait to be accepted (Kafka's
    /// max.connections) [default: 2147483647].
    #[arg(long, env = "STRATALOG_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Client connections open at once from one IP address; more are closed at accept
    /// (Kafka's max.connections.per.ip) [default: 2147483647].
    #[arg(long, env = "STRATALOG_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// Request bytes all client connections may hold at once; when spent, reading pauses;
    /// -1 unbounded (Kafka's queued.max.request.bytes) [default: 268435456].
    #[arg(
        long,
        env = "STRATALOG_QUEUED_MAX_REQUEST_BYTES",
        allow_negative_numbers = true
    )]
    queued_max_request_bytes: Option<i64>,
    /// Close a client connection whose request is not complete this long after it began
    /// to arrive, in ms; -1 never [default: 30000].
    #[arg(
        long,
        env = "STRATALOG_REQUEST_READ_TIMEOUT_MS",
        allow_negative_numbers = true
    )]
    request_read_timeout_ms: Option<i64>,
    /// Most partitions per topic; CreateTopics/CreatePartitions past it get
    /// INVALID_PARTITIONS [default: 10000].
    #[arg(long, env = "STRATALOG_MAX_PARTITIONS_PER_TOPIC")]
    max_partitions_per_topic: Option<i32>,
    /// How long a new group's first rebalance waits for more members, in ms (Kafka's
    /// group.initial.rebalance.delay.ms) [default: 3000].
    #[arg(long, env = "STRATALOG_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<u64>,
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

fn apply_common(config: &mut Config, common: CommonArgs) {
    set(&mut config.data_dir, common.data_dir);
    if common.http_listen.is_some() {
        config.http_listen = common.http_listen;
    }
}

fn apply_broker(config: &mut Config, args: BrokerArgs) {
    let b = &mut config.broker;
    set(&mut b.kafka_listen, args.kafka_listen);
    if args.advertised_host.is_some() {
        b.advertised_host = args.advertised_host;
    }
    if args.advertised_port.is_some() {
        b.advertised_port = args.advertised_port;
    }
    set(&mut b.node_id, args.broker_id);
    set(&mut b.auto_create_topics, args.auto_create_topics);
    set(&mut b.default_partitions, args.default_partitions);
    set(&mut b.max_request_bytes, args.max_request_bytes);
    set(&mut b.ledger_roll_bytes, args.ledger_roll_bytes);
    set(&mut b.retention_check_ms, args.retention_check_ms);
    set(&mut b.connections_max_idle_ms, args.connections_max_idle_ms);
    set(&mut b.max_connections, args.max_connections);
    set(&mut b.max_connections_per_ip, args.max_connections_per_ip);
    set(
        &mut b.queued_max_request_bytes,
        args.queued_max_request_bytes,
    );
    set(&mut b.request_read_timeout_ms, args.request_read_timeout_ms);
    set(
        &mut b.max_partitions_per_topic,
        args.max_partitions_per_topic,
    );
    set(
        &mut b.group_initial_rebalance_delay_ms,
        args.group_initial_rebalance_delay_ms,
    );
}

/// glibc keeps freed memory in its arenas; after a burst of megabyte-sized buffers (produce
/// batches, fetch responses, bookie write-cache entries) RSS would stay at its peak long
/// after the load ends. Trimming every few seconds hands free pages back to the OS. (A fixed
/// low mmap threshold would do the same per allocation, at the price of an mmap, munmap and
/// page faults for every large buffer — measured: it cut consume throughput by two thirds.)
fn trim_malloc_periodically() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(std::time::Duration::from_secs(10));
            // SAFETY: malloc_trim only releases free memory; it is thread-safe.
            unsafe {
                libc::malloc_trim(0);
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| eprintln!("stratalog: cannot start the malloc-trim thread: {e}"));
}

fn main() -> std::process::ExitCode {
    trim_malloc_periodically();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sled=warn,raft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = (|| -> anyhow::Result<()> {
        let mut config = Config::load(cli.config.as_deref())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        match cli.role {
            Role::Standalone { common, broker } => {
                apply_common(&mut config, common);
                apply_broker(&mut config, broker);
                runtime.block_on(roles::standalone(config))
            }
            Role::Metadata {
                common,
                node_id,
                listen,
            } => {
                apply_common(&mut config, common);
                set(&mut config.metadata.node_id, node_id);
                if listen.is_some() {
                    config.metadata.listen = listen;
                }
                runtime.block_on(roles::metadata(config))
            }
            Role::Bookie {
                common,
                id,
                listen,
                advertised,
                metadata_addr,
            } => {
                apply_common(&mut config, common);
                let b = &mut config.bookie;
                for (field, value) in [
                    (&mut b.id, id),
                    (&mut b.listen, listen),
                    (&mut b.advertised, advertised),
                    (&mut b.metadata_addr, metadata_addr),
                ] {
                    if value.is_some() {
                        *field = value;
                    }
                }
                runtime.block_on(roles::bookie(config))
            }
            Role::Broker {
                common,
                broker,
                metadata_addr,
            } => {
                apply_common(&mut config, common);
                apply_broker(&mut config, broker);
                set(&mut config.broker.metadata_addr, metadata_addr);
                runtime.block_on(roles::broker(config))
            }
        }
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("stratalog: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
