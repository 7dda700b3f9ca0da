//! The Kafka listener: one task per client connection.
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::connection;
use crate::Broker;

pub async fn serve(listener: TcpListener, broker: Arc<Broker>, shutdown: CancellationToken) {
    info!(addr = ?listener.local_addr().ok(), "Kafka listener ready");
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    warn!(error = %e, "accepting a Kafka connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { connection::run(stream, peer, broker, shutdown).await });
    }
}
