use std::time::Duration;

use bytes::Bytes;

use super::harness::{config, eventually, open, single};
use crate::{EventKind, Expect, MetadataError};

const TTL: Duration = Duration::from_millis(300);

#[tokio::test]
async fn lease_expiry_deletes_attached_keys_with_events() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    let lease = store.grant_lease(TTL).await.unwrap();
    let owned = store
        .put(
            "owners/p0",
            Bytes::from_static(b"broker-1"),
            Expect::Absent,
            Some(lease),
        )
        .await
        .unwrap();
    assert_eq!(owned.lease, Some(lease));
    store
        .put("plain", Bytes::from_static(b"x"), Expect::Any, None)
        .await
        .unwrap();
    let rev = store.revision();

    // Not kept alive: gone within TTL + a few ticks.
    let (events, _) = store
        .watch("owners/", rev, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Delete);
    assert_eq!(events[0].kv.key, "owners/p0");
    assert_eq!(store.get("owners/p0").await.unwrap(), None);
    assert!(store.get("plain").await.unwrap().is_some());
    assert_eq!(
        store.keep_alive(lease).await.unwrap_err(),
        MetadataError::LeaseNotFound(lease)
    );
    // Putting with the dead lease fails and writes nothing.
    assert_eq!(
        store
            .put("owners/p0", Bytes::new(), Expect::Any, Some(lease))
            .await
            .unwrap_err(),
        MetadataError::LeaseNotFound(lease)
    );
    node.shutdown().await;
}

#[tokio::test]
async fn keep_alive_keeps_the_lease_and_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    let lease = store.grant_lease(TTL).await.unwrap();
    store
        .put(
            "session",
            Bytes::from_static(b"s"),
            Expect::Any,
            Some(lease),
        )
        .await
        .unwrap();
    let rev = store.revision();
    // Keep alive for 3x the TTL.
    for _ in 0..9 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.keep_alive(lease).await.unwrap(), TTL);
    }
    assert!(store.get("session").await.unwrap().is_some());
    // Keep-alives are not log writes.
    assert_eq!(store.revision(), rev);
    // Then stop: it expires.
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if store.get("session").await.unwrap().is_none() {
            gone = true;
            break;
        }
    }
    assert!(gone, "lease did not expire after keep-alives stopped");
    node.shutdown().await;
}

#[tokio::test]
async fn revoke_deletes_keys_and_rejects_unknown_leases() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    let long = Duration::from_secs(60);
    let l1 = store.grant_lease(long).await.unwrap();
    let l2 = store.grant_lease(long).await.unwrap();
    assert_ne!(l1, l2);
    for key in ["a", "b"] {
        store
            .put(key, Bytes::from_static(b"1"), Expect::Any, Some(l1))
            .await
            .unwrap();
    }
    // "c" moves from l1 to l2: revoking l1 must not take it.
    store
        .put("c", Bytes::from_static(b"1"), Expect::Any, Some(l1))
        .await
        .unwrap();
    store
        .put("c", Bytes::from_static(b"2"), Expect::Any, Some(l2))
        .await
        .unwrap();
    // "d" drops its lease entirely.
    store
        .put("d", Bytes::from_static(b"1"), Expect::Any, Some(l1))
        .await
        .unwrap();
    store
        .put("d", Bytes::from_static(b"2"), Expect::Any, None)
        .await
        .unwrap();
    let rev = store.revision();
    store.revoke_lease(l1).await.unwrap();
    assert_eq!(store.revision(), rev + 1, "one revision for the revoke");
    let keys: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, vec!["c", "d"]);
    let (events, _) = store.watch("", rev, Duration::ZERO).await.unwrap();
    let deleted: Vec<&str> = events.iter().map(|e| e.kv.key.as_str()).collect();
    assert_eq!(deleted, vec!["a", "b"]);
    assert!(events.iter().all(|e| e.kind == EventKind::Delete));
    assert_eq!(
        store.revoke_lease(l1).await.unwrap_err(),
        MetadataError::LeaseNotFound(l1)
    );
    assert_eq!(
        store.keep_alive(424242).await.unwrap_err(),
        MetadataError::LeaseNotFound(424242)
    );
    // Revoking l2 takes "c" with it.
    let rev = store.revision();
    store.revoke_lease(l2).await.unwrap();
    assert!(store.get("c").await.unwrap().is_none());
    assert_eq!(store.revision(), rev + 1);
    // A lease without keys goes without a new revision.
    let l3 = store.grant_lease(long).await.unwrap();
    store.revoke_lease(l3).await.unwrap();
    assert_eq!(store.revision(), rev + 1);
    node.shutdown().await;
}

#[tokio::test]
async fn restart_gives_leases_a_fresh_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_millis(600);
    let (lease, rev) = {
        let (node, store) = single(dir.path()).await;
        let lease = store.grant_lease(ttl).await.unwrap();
        store
            .put("k", Bytes::from_static(b"v"), Expect::Any, Some(lease))
            .await
            .unwrap();
        let rev = store.revision();
        node.shutdown().await;
        (lease, rev)
    };
    // Down for longer than the TTL: the lease still exists on reopen, with a full TTL.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let node = open(config(dir.path())).await;
    let store = node.store();
    assert!(store.get("k").await.unwrap().is_some());
    assert_eq!(store.keep_alive(lease).await.unwrap(), ttl);
    assert_eq!(store.revision(), rev);
    // And it expires once keep-alives stop.
    let store2 = store.clone();
    assert!(
        eventually(Duration::from_secs(3), || store2.revision() > rev).await,
        "lease was never expired after restart"
    );
    assert_eq!(store.get("k").await.unwrap(), None);
    drop((store, store2));
    node.shutdown().await;
}
