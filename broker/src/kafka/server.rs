//! The Kafka listener: one task per client connection, within the connection caps.
//!
//! As in Kafka: at `max_connections` open connections the listener stops accepting until one
//! closes (new clients wait in the kernel's accept queue); a connection over
//! `max_connections_per_ip` is accepted and closed at once.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::connection;
use crate::{metrics, Broker};

pub async fn serve(listener: TcpListener, broker: Arc<Broker>, shutdown: CancellationToken) {
    let limits = ConnectionLimits::new(
        broker.config.max_connections,
        broker.config.max_connections_per_ip,
    );
    info!(addr = ?listener.local_addr().ok(), "Kafka listening");
    loop {
        let slot = match limits.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                metrics::ACCEPT_PAUSED.inc();
                warn!(
                    max_connections = limits.max,
                    "max_connections Kafka connections open; not accepting until one closes"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    slot = limits.slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    warn!(error = %e, "accepting a Kafka connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(per_ip) = limits.admit(peer.ip()) else {
            metrics::CONNECTIONS_REFUSED
                .with_label_values(&["max_connections_per_ip"])
                .inc();
            warn!(%peer, max_connections_per_ip = limits.max_per_ip, "refusing Kafka connection: too many from this address");
            drop(stream);
            continue;
        };
        let (broker, shutdown) = (broker.clone(), shutdown.clone());
        tokio::spawn(async move {
            connection::run(stream, peer, broker, shutdown).await;
            drop((slot, per_ip));
        });
    }
}

/// The broker-wide and per-address connection caps.
struct ConnectionLimits {
    max: usize,
    max_per_ip: usize,
    slots: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A connection's place under the per-address cap; given back when dropped.
struct PerIp {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionLimits {
    fn new(max: usize, max_per_ip: usize) -> ConnectionLimits {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        ConnectionLimits {
            max,
            max_per_ip,
            slots: Arc::new(Semaphore::new(max)),
            per_ip: Arc::default(),
        }
    }

    /// Counts a connection from `ip`, or `None` if that address is at its cap.
    fn admit(&self, ip: IpAddr) -> Option<PerIp> {
        let mut counts = self.per_ip.lock();
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(PerIp {
            ip,
            counts: self.per_ip.clone(),
        })
    }
}

impl Drop for PerIp {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_cap_counts_each_address_and_frees_on_drop() {
        let limits = ConnectionLimits::new(10, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert!(limits.admit(a).is_none());
        let _b1 = limits.admit(b).unwrap();
        drop(a1);
        let _a3 = limits.admit(a).unwrap();
        assert!(limits.admit(a).is_none());
        assert_eq!(limits.per_ip.lock().len(), 2);
    }
}
