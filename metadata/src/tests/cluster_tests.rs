//! Three nodes in one process, wired by an in-memory transport. These exercise what a single
//! voter never does: elections, replication, followers redirecting to the leader, ReadIndex
//! with heartbeats, failover, and catching up a follower from a snapshot.
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::harness::{await_leader, cluster_config, eventually, open_member, Router};
use crate::{Expect, MetadataError, MetadataNode};

const VOTERS: [u64; 3] = [1, 2, 3];

async fn start(
    dir: &std::path::Path,
    router: &Arc<Router>,
    tweak: impl Fn(&mut crate::MetadataConfig),
) -> Vec<MetadataNode> {
    let mut nodes = Vec::new();
    for id in VOTERS {
        let mut cfg = cluster_config(id, dir, &VOTERS);
        tweak(&mut cfg);
        nodes.push(open_member(router, cfg).await);
    }
    nodes
}

fn by_id(nodes: &[MetadataNode], id: u64) -> &MetadataNode {
    nodes.iter().find(|n| n.node_id() == id).unwrap()
}

#[tokio::test]
async fn three_nodes_replicate_redirect_and_fail_over() {
    let dir = tempfile::tempdir().unwrap();
    let router = Arc::new(Router::default());
    let mut nodes = start(dir.path(), &router, |_| {}).await;
    let refs: Vec<&MetadataNode> = nodes.iter().collect();
    let leader = await_leader(&refs, Duration::from_secs(5))
        .await
        .expect("a leader");
    let leader_store = by_id(&nodes, leader).store();
    let kv = leader_store
        .put("cfg", Bytes::from_static(b"v1"), Expect::Absent, None)
        .await
        .unwrap();
    assert_eq!(leader_store.get("cfg").await.unwrap(), Some(kv.clone()));

    // Followers refuse reads and writes, naming the leader.
    let follower = nodes.iter().find(|n| n.node_id() != leader).unwrap();
    let fstore = follower.store();
    let hint = MetadataError::NotLeader {
        leader: Some(leader),
    };
    assert_eq!(
        fstore
            .put("cfg", Bytes::new(), Expect::Any, None)
            .await
            .unwrap_err(),
        hint
    );
    assert_eq!(fstore.get("cfg").await.unwrap_err(), hint);
    assert_eq!(fstore.keep_alive(1).await.unwrap_err(), hint);
    // ... but replicate and serve watches from what they applied.
    let fs = fstore.clone();
    assert!(eventually(Duration::from_secs(3), || fs.revision() == kv.mod_revision).await);
    assert_eq!(fstore.local_get("cfg").unwrap(), Some(kv.clone()));
    let (events, _) = fstore.watch("", 0, Duration::ZERO).await.unwrap();
    assert_eq!(events.len(), 1);

    // Lose the leader: the other two elect a new one and keep the data.
    let idx = nodes.iter().position(|n| n.node_id() == leader).unwrap();
    router.set_down(leader, true);
    drop(leader_store);
    nodes.remove(idx).shutdown().await;
    let refs: Vec<&MetadataNode> = nodes.iter().collect();
    let new_leader = await_leader(&refs, Duration::from_secs(5))
        .await
        .expect("a new leader");
    assert_ne!(new_leader, leader);
    let store = by_id(&nodes, new_leader).store();
    assert_eq!(store.get("cfg").await.unwrap(), Some(kv.clone()));
    let kv2 = store
        .put(
            "cfg",
            Bytes::from_static(b"v2"),
            Expect::Revision(kv.mod_revision),
            None,
        )
        .await
        .unwrap();
    assert!(kv2.mod_revision > kv.mod_revision);
    // Leases get a fresh TTL on the new leader and work there.
    let lease = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        store.keep_alive(lease).await.unwrap(),
        Duration::from_secs(30)
    );
    drop((store, fstore, fs));
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn lagging_follower_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let router = Arc::new(Router::default());
    let nodes = start(dir.path(), &router, |c| {
        c.log_compact_after = 20;
        c.log_keep_after_compact = 5;
    })
    .await;
    let refs: Vec<&MetadataNode> = nodes.iter().collect();
    let leader = await_leader(&refs, Duration::from_secs(5))
        .await
        .expect("a leader");
    let lagger = VOTERS.iter().copied().find(|id| *id != leader).unwrap();
    let store = by_id(&nodes, leader).store();

    router.set_down(lagger, true);
    for i in 0..60u32 {
        store
            .put(
                &format!("k{i:02}"),
                Bytes::from(i.to_string()),
                Expect::Any,
                None,
            )
            .await
            .unwrap();
    }
    let rev = store.revision();
    let lag_store = by_id(&nodes, lagger).store();
    assert_eq!(lag_store.revision(), 0);

    // The leader's log no longer reaches back to what the lagger has: it gets a snapshot.
    router.set_down(lagger, false);
    let ls = lag_store.clone();
    assert!(
        eventually(Duration::from_secs(5), || ls.revision() == rev).await,
        "follower did not catch up (at {} of {rev})",
        ls.revision()
    );
    assert_eq!(
        lag_store.local_get("k42").unwrap().unwrap().value,
        Bytes::from("42")
    );
    // Proof it was a snapshot and not log replay: the follower's watch history restarted at
    // the snapshot's revision instead of holding the 60 events.
    assert!(matches!(
        lag_store.watch("", 0, Duration::ZERO).await,
        Err(MetadataError::Compacted { .. })
    ));
    // And it keeps following the log afterwards.
    let kv = store
        .put("after", Bytes::new(), Expect::Any, None)
        .await
        .unwrap();
    let ls = lag_store.clone();
    assert!(eventually(Duration::from_secs(3), || ls.revision() == kv.mod_revision).await);
    let (events, _) = lag_store.watch("", rev, Duration::ZERO).await.unwrap();
    assert_eq!(events.len(), 1);
    drop((store, lag_store, ls));
    for n in nodes {
        n.shutdown().await;
    }
}
