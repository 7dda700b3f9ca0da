//! Ledger recovery (`stratalog_broker::log::ledger::recover`) against three real bookies and
//! a real metadata node, in process, over loopback RPC: which entries survive, where they
//! end up, and what recovery refuses to decide.
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use stratalog_bookie::service::BookieService;
use stratalog_bookie::{Bookie, BookieConfig};
use stratalog_broker::catalog::LedgerInfo;
use stratalog_broker::clients::bookie::BookieClient;
use stratalog_broker::log::ledger::{self, BookiePool};
use stratalog_metadata::client::MetadataClient;
use stratalog_metadata::service::MetadataService;
use stratalog_metadata::{cluster, Expect, MetadataConfig, MetadataNode, NoopTransport};
use stratalog_protocol::internal::bookie::EntryData;
use stratalog_runtime::rpc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Cluster {
    _dir: tempfile::TempDir,
    _node: MetadataNode,
    _bookies: Vec<Bookie>,
    /// Clients of the bookies, by index; `b{i}` is bookie i's id.
    clients: Vec<BookieClient>,
    pool: BookiePool,
    _shutdown: CancellationToken,
}

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

/// A metadata node and `running` bookies `b0..`; `down` more are registered at an address
/// where nothing listens.
async fn cluster(running: usize, down: usize) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let node = MetadataNode::open(
        MetadataConfig::new(1, dir.path().join("metadata")),
        Arc::new(NoopTransport),
    )
    .await
    .unwrap();
    let (l, metadata_addr) = listener().await;
    let service = Arc::new(MetadataService::new(node.store(), node.inbox()));
    tokio::spawn(rpc::serve(l, service, shutdown.clone()));
    while node.store().get("ready").await.is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let metadata = MetadataClient::new(metadata_addr);
    let mut bookies = Vec::new();
    let mut clients = Vec::new();
    for i in 0..running + down {
        let addr = if i < running {
            let bookie = Bookie::open(BookieConfig {
                data_dir: dir.path().join(format!("b{i}")),
                ..BookieConfig::default()
            })
            .await
            .unwrap();
            let (l, addr) = listener().await;
            tokio::spawn(rpc::serve(
                l,
                Arc::new(BookieService::new(bookie.clone())),
                shutdown.clone(),
            ));
            bookies.push(bookie);
            addr
        } else {
            "127.0.0.1:1".to_string()
        };
        metadata
            .put(
                &cluster::bookie_key(&format!("b{i}")),
                Bytes::from(addr.clone()),
                Expect::Any,
                None,
            )
            .await
            .unwrap();
        clients.push(BookieClient::new(addr));
    }
    let pool = BookiePool::new(metadata);
    pool.refresh().await.unwrap();
    Cluster {
        _dir: dir,
        _node: node,
        _bookies: bookies,
        clients,
        pool,
        _shutdown: shutdown,
    }
}

fn ledger(ensemble: usize) -> LedgerInfo {
    LedgerInfo {
        ledger_id: 7,
        ensemble: (0..ensemble).map(|i| format!("b{i}")).collect(),
        write_quorum: 3,
        ack_quorum: 2,
        last_entry_id: -1,
    }
}

/// Entry `e`: one record at offset `e`, as a Kafka batch header of producer 42 with
/// sequence `e`, followed by a body.
fn entry(e: u64) -> EntryData {
    let mut b = BytesMut::new();
    b.put_i64(e as i64); // base offset
    b.put_i32(49 + 16); // batch length: header rest + body
    b.put_i32(0); // leader epoch
    b.put_i8(2); // magic
    b.put_u32(0); // crc (not checked by recovery)
    b.put_i16(0); // attributes
    b.put_i32(0); // last offset delta
    b.put_i64(1_000 + e as i64);
    b.put_i64(1_000 + e as i64);
    b.put_i64(42); // producer id
    b.put_i16(0); // epoch
    b.put_i32(e as i32); // base sequence
    b.put_i32(1); // records
    b.put_slice(&[0xab; 16]);
    EntryData {
        entry_id: e,
        base_offset: e as i64,
        last_offset: e as i64,
        max_timestamp: 1_000 + e as i64,
        payload: b.freeze(),
    }
}

/// Adds entry `e` to the given bookies as the writer would, piggybacking `writer_lac`.
async fn add(c: &Cluster, e: u64, bookies: &[usize], writer_lac: Option<u64>) {
    for &i in bookies {
        c.clients[i]
            .add(7, entry(e), false, writer_lac)
            .await
            .unwrap();
    }
}

async fn has(c: &Cluster, bookie: usize, e: u64) -> bool {
    c.clients[bookie]
        .read(7, e, 1, 1 << 20, 0)
        .await
        .is_ok_and(|got| got.first().is_some_and(|x| x.entry_id == e))
}

/// Entries acknowledged in order, each with the LAC the writer knew when it sent it.
async fn write_acknowledged(c: &Cluster, entries: u64, bookies: &[usize]) {
    for e in 0..entries {
        add(c, e, bookies, e.checked_sub(1)).await;
    }
}

#[tokio::test]
async fn an_entry_on_one_bookie_goes_to_its_whole_write_set() {
    let c = cluster(3, 0).await;
    write_acknowledged(&c, 10, &[0, 1, 2]).await;
    // Entry 10 reached only b0: its own contiguous LAC says 10, the writer's says 9.
    add(&c, 10, &[0], Some(9)).await;
    let mut sequences = Vec::new();
    let r = ledger::recover(&c.pool, &ledger(3), |b| sequences.push(b.base_sequence))
        .await
        .unwrap();
    assert_eq!(
        (r.last_entry_id, r.last_offset, r.max_timestamp),
        (10, Some(10), 1_010)
    );
    assert_eq!(
        sequences,
        (0..=10).collect::<Vec<i32>>(),
        "every batch header, in order"
    );
    for b in 0..3 {
        assert!(has(&c, b, 10).await, "entry 10 on b{b}");
    }
}

#[tokio::test]
async fn the_ledger_ends_at_the_first_entry_no_ack_quorum_can_have_held() {
    let c = cluster(3, 0).await;
    write_acknowledged(&c, 5, &[0, 1, 2]).await;
    // Entry 5 never arrived anywhere; 6 reached b0 (adds may complete out of order).
    add(&c, 6, &[0], Some(4)).await;
    let r = ledger::recover(&c.pool, &ledger(3), |_| {}).await.unwrap();
    assert_eq!(r.last_entry_id, 4);
    assert_eq!(r.last_offset, Some(4));
    assert!(
        !has(&c, 1, 6).await,
        "nothing past the end is re-replicated"
    );
}

#[tokio::test]
async fn an_empty_ledger_recovers_as_empty() {
    let c = cluster(3, 0).await;
    let r = ledger::recover(&c.pool, &ledger(3), |_| {}).await.unwrap();
    assert_eq!((r.last_entry_id, r.last_offset), (-1, None));
}

#[tokio::test]
async fn a_dead_bookie_does_not_block_recovery_with_ack_quorum_copies() {
    // b2 is registered but down: fencing needs E - Qa + 1 = 2 bookies, re-adds need Qa = 2.
    let c = cluster(2, 1).await;
    write_acknowledged(&c, 5, &[0, 1]).await;
    add(&c, 5, &[0], Some(4)).await;
    let r = ledger::recover(&c.pool, &ledger(3), |_| {}).await.unwrap();
    assert_eq!(r.last_entry_id, 5);
    assert!(has(&c, 1, 5).await, "entry 5 copied to b1");
}

#[tokio::test]
async fn recovery_fails_when_too_few_bookies_can_be_fenced() {
    // Two of three down: a fenced writer could still reach an ack quorum elsewhere, so
    // recovery must not close the ledger.
    let c = cluster(1, 2).await;
    write_acknowledged(&c, 3, &[0]).await;
    assert!(ledger::recover(&c.pool, &ledger(3), |_| {}).await.is_err());
}

#[tokio::test]
async fn after_recovery_the_old_writer_cannot_add() {
    let c = cluster(3, 0).await;
    write_acknowledged(&c, 3, &[0, 1, 2]).await;
    ledger::recover(&c.pool, &ledger(3), |_| {}).await.unwrap();
    for client in &c.clients {
        assert!(client.add(7, entry(3), false, Some(2)).await.is_err());
    }
}
