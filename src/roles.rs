//! Starting each role: bind its listeners, open its state, serve, and shut down cleanly on
//! SIGINT/SIGTERM. Standalone starts the three roles in one process, connected over
//! loopback RPC like separate processes.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use stratalog_bookie::service::BookieService;
use stratalog_bookie::{Bookie, BookieConfig};
use stratalog_broker::Broker;
use stratalog_metadata::client::{ClientError, MetadataClient};
use stratalog_metadata::service::MetadataService;
use stratalog_metadata::{Expect, MetadataConfig, MetadataNode, NoopTransport};
use stratalog_runtime::http::{self, Health};
use stratalog_runtime::{rpc, CancellationToken};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::Config;

async fn bind(addr: &str, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what}: is another process using it? Choose another address with {flag}"))
}

/// A token cancelled by SIGINT or SIGTERM.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(e) => {
                        warn!(error = %e, "cannot listen for SIGTERM");
                        let _ = tokio::signal::ctrl_c().await;
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        info!("shutting down");
        cancel.cancel();
    });
    token
}

/// What every role process starts with: a shutdown token tied to SIGINT/SIGTERM and the
/// HTTP endpoint (metrics, health) on `default_http` unless configured otherwise.
async fn start_process(
    config: &Config,
    default_http: &str,
) -> anyhow::Result<(CancellationToken, Arc<Health>)> {
    let shutdown = shutdown_on_signal();
    let health = Arc::new(Health::default());
    start_http(config, default_http, health.clone(), &shutdown).await?;
    Ok((shutdown, health))
}

async fn start_http(
    config: &Config,
    default: &str,
    health: Arc<Health>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let addr = config
        .http_listen
        .clone()
        .unwrap_or_else(|| default.to_string());
    let listener = bind(&addr, "HTTP (metrics, health)", "--http-listen").await?;
    tokio::spawn(http::serve(
        listener,
        http::router(health),
        shutdown.clone(),
    ));
    Ok(())
}

async fn start_metadata(
    config: &Config,
    listener: TcpListener,
    health: &Health,
    shutdown: &CancellationToken,
) -> anyhow::Result<MetadataNode> {
    let ready = health.register("metadata");
    let dir = config.data_dir.join("metadata");
    let node = MetadataNode::open(
        MetadataConfig::new(config.metadata.node_id, &dir),
        Arc::new(NoopTransport),
    )
    .await
    .with_context(|| format!("opening the metadata store in {}", dir.display()))?;
    let service = Arc::new(MetadataService::new(node.store(), node.inbox()));
    tokio::spawn(rpc::serve(listener, service, shutdown.clone()));
    // Ready once this node can serve linearizable requests, i.e. a leader is known.
    let store = node.store();
    tokio::spawn(async move {
        while store.get("/stratalog/ready-probe").await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ready.store(true, Ordering::Release);
    });
    Ok(node)
}

async fn start_bookie(
    config: &Config,
    listener: TcpListener,
    metadata_addr: String,
    default_id: &str,
    health: &Health,
    shutdown: &CancellationToken,
) -> anyhow::Result<Bookie> {
    let ready = health.register("bookie");
    let dir = config.data_dir.join("bookie");
    let bookie_config = BookieConfig {
        data_dir: dir.clone(),
        checkpoint_interval: Duration::from_millis(config.bookie.checkpoint_interval_ms),
        write_cache_max_bytes: config.bookie.write_cache_bytes,
        ..BookieConfig::default()
    };
    let bookie = Bookie::open(bookie_config)
        .await
        .with_context(|| format!("opening the bookie in {}", dir.display()))?;
    let local = listener.local_addr()?;
    tokio::spawn(rpc::serve(
        listener,
        Arc::new(BookieService::new(bookie.clone())),
        shutdown.clone(),
    ));
    let id = config
        .bookie
        .id
        .clone()
        .unwrap_or_else(|| default_id.to_string());
    let advertised = config
        .bookie
        .advertised
        .clone()
        .unwrap_or_else(|| local.to_string());
    let ttl = Duration::from_millis(config.bookie.registration_ttl_ms.max(1000));
    tokio::spawn(register_bookie(
        MetadataClient::new(metadata_addr),
        id,
        advertised,
        ttl,
        ready,
        shutdown.clone(),
    ));
    Ok(bookie)
}

/// Keeps `/stratalog/bookies/{id}` pointing at this bookie, attached to a lease kept alive
/// while the bookie runs: brokers choose ensembles among registered bookies.
async fn register_bookie(
    metadata: MetadataClient,
    id: String,
    addr: String,
    ttl: Duration,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let key = stratalog_metadata::cluster::bookie_key(&id);
    'register: loop {
        let lease = loop {
            let attempt = async {
                let lease = metadata.grant_lease(ttl).await?;
                metadata
                    .put(&key, Bytes::from(addr.clone()), Expect::Any, Some(lease))
                    .await?;
                Ok::<_, ClientError>(lease)
            };
            match attempt.await {
                Ok(lease) => break lease,
                Err(e) => {
                    warn!(bookie = %id, error = %e, "registering the bookie failed; retrying")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        };
        info!(bookie = %id, %addr, "bookie registered");
        ready.store(true, Ordering::Release);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = metadata.revoke_lease(lease).await;
                    return;
                }
                _ = tokio::time::sleep(ttl / 3) => {}
            }
            match metadata.keep_alive(lease).await {
                Ok(_) => {}
                Err(ClientError::LeaseNotFound(_)) => {
                    warn!(bookie = %id, "bookie registration expired; registering again");
                    continue 'register;
                }
                Err(e) => {
                    warn!(bookie = %id, error = %e, "renewing the bookie registration failed")
                }
            }
        }
    }
}

fn local(listener: &TcpListener) -> anyhow::Result<SocketAddr> {
    Ok(listener.local_addr()?)
}

pub async fn standalone(mut config: Config) -> anyhow::Result<()> {
    let (shutdown, health) = start_process(&config, "127.0.0.1:7070").await?;
    let kafka = bind(
        &config.broker.kafka_listen,
        "Kafka clients",
        "--kafka-listen",
    )
    .await?;
    // The internal services only need loopback; ephemeral ports avoid clashing with anything.
    let metadata_listener = bind(
        config.metadata.listen.as_deref().unwrap_or("127.0.0.1:0"),
        "the metadata service",
        "[metadata] listen",
    )
    .await?;
    let metadata_addr = local(&metadata_listener)?.to_string();
    let bookie_listener = bind(
        config.bookie.listen.as_deref().unwrap_or("127.0.0.1:0"),
        "the bookie",
        "[bookie] listen",
    )
    .await?;
    info!(data_dir = %config.data_dir.display(), "starting standalone: metadata, bookie and broker in one process");
    let node = start_metadata(&config, metadata_listener, &health, &shutdown).await?;
    let bookie = start_bookie(
        &config,
        bookie_listener,
        metadata_addr.clone(),
        "standalone",
        &health,
        &shutdown,
    )
    .await?;
    config.broker.metadata_addr = metadata_addr;
    let result = run_broker(config, kafka, &health, shutdown.clone()).await;
    shutdown.cancel();
    bookie.shutdown().await;
    node.shutdown().await;
    result
}

pub async fn metadata(config: Config) -> anyhow::Result<()> {
    let (shutdown, health) = start_process(&config, "127.0.0.1:7071").await?;
    let listener = bind(
        config
            .metadata
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:2379"),
        "the metadata service",
        "--listen",
    )
    .await?;
    info!(addr = %local(&listener)?, "starting metadata node");
    let node = start_metadata(&config, listener, &health, &shutdown).await?;
    shutdown.cancelled().await;
    node.shutdown().await;
    Ok(())
}

pub async fn bookie(config: Config) -> anyhow::Result<()> {
    let (shutdown, health) = start_process(&config, "127.0.0.1:7072").await?;
    let listener = bind(
        config.bookie.listen.as_deref().unwrap_or("127.0.0.1:3181"),
        "the bookie",
        "--listen",
    )
    .await?;
    let metadata_addr = config
        .bookie
        .metadata_addr
        .clone()
        .unwrap_or_else(|| "127.0.0.1:2379".into());
    let bookie = start_bookie(
        &config,
        listener,
        metadata_addr,
        "bookie-1",
        &health,
        &shutdown,
    )
    .await?;
    shutdown.cancelled().await;
    bookie.shutdown().await;
    Ok(())
}

pub async fn broker(config: Config) -> anyhow::Result<()> {
    let (shutdown, health) = start_process(&config, "127.0.0.1:7070").await?;
    let kafka = bind(
        &config.broker.kafka_listen,
        "Kafka clients",
        "--kafka-listen",
    )
    .await?;
    run_broker(config, kafka, &health, shutdown).await
}

async fn run_broker(
    config: Config,
    kafka: TcpListener,
    health: &Health,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let ready = health.register("broker");
    Broker::run(config.broker, kafka, ready, shutdown).await
}
