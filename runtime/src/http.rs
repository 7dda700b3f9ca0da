//! The HTTP endpoint of every role: `/metrics`, `/healthz`, `/readyz`.
//!
//! `/healthz` answers 200 while the process serves at all; `/readyz` answers 200 only once
//! the role has finished starting (journal replayed, leader elected, partitions recovered) and
//! 503 before, so an orchestrator routes traffic only to ready instances.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

// Process metrics (RSS, CPU, open fds) come with the default registry: prometheus registers
// its process collector there itself when built with the "process" feature.

/// Readiness of the roles in this process; ready when every registered role is.
#[derive(Default)]
pub struct Health {
    roles: parking_lot::Mutex<Vec<(&'static str, Arc<AtomicBool>)>>,
}

impl Health {
    /// Registers a role that is not ready yet; set the returned flag once it is.
    pub fn register(&self, role: &'static str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.roles.lock().push((role, flag.clone()));
        flag
    }

    /// The roles that are not ready, or empty if all are.
    pub fn not_ready(&self) -> Vec<&'static str> {
        self.roles
            .lock()
            .iter()
            .filter(|(_, ready)| !ready.load(Ordering::Acquire))
            .map(|(role, _)| *role)
            .collect()
    }
}

/// The base router; roles may merge their own routes into it.
pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    info!(addr = ?listener.local_addr().ok(), "HTTP (metrics, health) listening");
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        warn!(error = %e, "HTTP server stopped");
    }
}

async fn metrics() -> (StatusCode, String) {
    let mut out = Vec::new();
    match TextEncoder::new().encode(&prometheus::gather(), &mut out) {
        Ok(()) => (StatusCode::OK, String::from_utf8_lossy(&out).into_owned()),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics failed: {e}\n"),
        ),
    }
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    let waiting = health.not_ready();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", waiting.join(", ")),
        )
    }
}
