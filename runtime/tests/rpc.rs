//! The RPC transport against a real TCP listener.
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stratalog_protocol::internal::bookie::{
    AddEntry, AddEntryResponse, BookieStatus, EntryData, ReadLac,
};
use stratalog_protocol::internal::{Method, Status};
use stratalog_runtime::rpc::{self, RpcClient, RpcError, RpcOptions, Service, ServiceFuture};
use stratalog_runtime::CancellationToken;
use tokio::net::TcpListener;

/// Answers AddEntry after a delay that shrinks with the entry id, so responses come back in
/// the opposite order of the requests.
struct Echo;

impl Service for Echo {
    fn call(&self, method: u16, body: Bytes) -> ServiceFuture {
        match method {
            AddEntry::ID => rpc::handle::<AddEntry, _, _>(body, |req| async move {
                let delay = 50u64.saturating_sub(req.entry.entry_id);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                AddEntryResponse {
                    status: BookieStatus {
                        code: 0,
                        message: req.entry.entry_id.to_string(),
                    },
                }
            }),
            _ => Box::pin(async move { Err((Status::UnknownMethod, format!("method {method}"))) }),
        }
    }
}

async fn start() -> (String, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    tokio::spawn(rpc::serve(listener, Arc::new(Echo), shutdown.clone()));
    (addr, shutdown)
}

fn entry(id: u64) -> EntryData {
    EntryData {
        entry_id: id,
        base_offset: 0,
        last_offset: 0,
        max_timestamp: 0,
        payload: Bytes::from_static(b"x"),
    }
}

#[tokio::test]
async fn many_calls_in_flight_on_one_connection_complete_out_of_order() {
    let (addr, _shutdown) = start().await;
    let client = RpcClient::new(addr, RpcOptions::default());
    let calls = (0..50u64).map(|id| {
        let client = client.clone();
        tokio::spawn(async move {
            let req = stratalog_protocol::internal::bookie::AddEntryRequest {
                ledger_id: 1,
                recovery: false,
                entry: entry(id),
                writer_lac: None,
            };
            let resp = client.call::<AddEntry>(&req).await.unwrap();
            assert_eq!(resp.status.message, id.to_string());
        })
    });
    let started = std::time::Instant::now();
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap();
    }
    // Sequential calls would take the sum of the delays (~1.2 s); pipelined ones the max.
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "calls were not pipelined"
    );
}

#[tokio::test]
async fn unknown_method_is_a_remote_error_and_connection_survives() {
    let (addr, _shutdown) = start().await;
    let client = RpcClient::new(addr, RpcOptions::default());
    let err = client
        .call::<ReadLac>(&stratalog_protocol::internal::bookie::LedgerRequest { ledger_id: 1 })
        .await;
    assert!(
        matches!(
            err,
            Err(RpcError::Remote {
                status: Status::UnknownMethod,
                ..
            })
        ),
        "{err:?}"
    );
    let req = stratalog_protocol::internal::bookie::AddEntryRequest {
        ledger_id: 1,
        recovery: false,
        entry: entry(49),
        writer_lac: None,
    };
    assert!(client.call::<AddEntry>(&req).await.is_ok());
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_errors() {
    let (addr, _shutdown) = start().await;
    let client = RpcClient::new(addr, RpcOptions::default());
    let req = stratalog_protocol::internal::bookie::AddEntryRequest {
        ledger_id: 1,
        recovery: false,
        entry: entry(0),
        writer_lac: None,
    };
    let err = client
        .call_with_timeout::<AddEntry>(&req, Duration::from_millis(5))
        .await;
    assert!(matches!(err, Err(RpcError::Timeout { .. })), "{err:?}");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap().to_string();
    drop(listener);
    let client = RpcClient::new(dead, RpcOptions::default());
    assert!(matches!(
        client.call::<AddEntry>(&req).await,
        Err(RpcError::Connect { .. })
    ));
}

#[tokio::test]
async fn garbage_from_a_client_closes_only_that_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, _shutdown) = start().await;
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    raw.write_all(&[0, 0, 0, 3, 9, 9, 9]).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "server should close a connection that sends garbage");

    let client = RpcClient::new(addr, RpcOptions::default());
    let req = stratalog_protocol::internal::bookie::AddEntryRequest {
        ledger_id: 1,
        recovery: false,
        entry: entry(49),
        writer_lac: None,
    };
    assert!(client.call::<AddEntry>(&req).await.is_ok());
}
