//! The Kafka listener: one task per client connection.
use std::sync::Arc;

use stratalog_runtime::net::accept_loop;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::connection;
use crate::Broker;

pub async fn serve(listener: TcpListener, broker: Arc<Broker>, shutdown: CancellationToken) {
    let conn_shutdown = shutdown.clone();
    accept_loop(listener, "Kafka", shutdown, move |stream, peer| {
        connection::run(stream, peer, broker.clone(), conn_shutdown.clone())
    })
    .await
}
