use std::time::{Duration, Instant};

use bytes::Bytes;

use super::harness::{config, open, single};
use crate::{EventKind, Expect, MetadataError};

#[tokio::test]
async fn watch_returns_events_after_a_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    let start = store.revision();
    let a = store
        .put("w/a", Bytes::from_static(b"1"), Expect::Any, None)
        .await
        .unwrap();
    store
        .put("other", Bytes::from_static(b"x"), Expect::Any, None)
        .await
        .unwrap();
    let b = store
        .put("w/b", Bytes::from_static(b"2"), Expect::Any, None)
        .await
        .unwrap();
    store.delete("w/a", Expect::Any).await.unwrap();
    let now = store.revision();

    let (events, rev) = store
        .watch("w/", start, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(rev, now);
    let summary: Vec<(EventKind, &str, u64)> = events
        .iter()
        .map(|e| (e.kind, e.kv.key.as_str(), e.kv.mod_revision))
        .collect();
    assert_eq!(
        summary,
        vec![
            (EventKind::Put, "w/a", a.mod_revision),
            (EventKind::Put, "w/b", b.mod_revision),
            (EventKind::Delete, "w/a", now),
        ]
    );
    assert_eq!(events[0].kv, a);
    // Only what is newer than `after`.
    let (events, _) = store
        .watch("w/", b.mod_revision, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Delete);
    node.shutdown().await;
}

#[tokio::test]
async fn watch_long_polls_until_a_put() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    store
        .put("noise", Bytes::new(), Expect::Any, None)
        .await
        .unwrap();
    let rev = store.revision();

    // Nothing happens: an empty answer after the timeout, caught up to the current revision.
    let started = Instant::now();
    let (events, caught_up) = store
        .watch("lp/", rev, Duration::from_millis(150))
        .await
        .unwrap();
    assert!(events.is_empty());
    assert_eq!(caught_up, rev);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let watcher = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = store.watch("lp/", rev, Duration::from_secs(10)).await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Writes outside the prefix do not wake it with an answer.
    store
        .put("noise", Bytes::new(), Expect::Any, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!watcher.is_finished());
    let put = store
        .put("lp/x", Bytes::from_static(b"!"), Expect::Any, None)
        .await
        .unwrap();
    let (result, waited) = watcher.await.unwrap();
    let (events, caught_up) = result.unwrap();
    assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(5));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kv, put);
    assert_eq!(caught_up, put.mod_revision);
    node.shutdown().await;
}

#[tokio::test]
async fn watch_reports_compacted_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.watch_history = 5;
    let node = open(cfg).await;
    let store = node.store();
    for i in 0..10 {
        store
            .put(&format!("k{i}"), Bytes::new(), Expect::Any, None)
            .await
            .unwrap();
    }
    // Revisions 1..=10; the last 5 events (6..=10) are kept.
    assert_eq!(
        store.watch("", 2, Duration::ZERO).await.unwrap_err(),
        MetadataError::Compacted { oldest: 5 }
    );
    let (events, rev) = store.watch("", 5, Duration::ZERO).await.unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(rev, 10);
    drop(store);
    node.shutdown().await;

    // History is memory only: after a restart it starts at the current revision.
    let node = open(config(dir.path())).await;
    let store = node.store();
    assert_eq!(
        store.watch("", 9, Duration::ZERO).await.unwrap_err(),
        MetadataError::Compacted { oldest: 10 }
    );
    let (events, rev) = store
        .watch("", 10, Duration::from_millis(20))
        .await
        .unwrap();
    assert!(events.is_empty());
    assert_eq!(rev, 10);
    drop(store);
    node.shutdown().await;
}
