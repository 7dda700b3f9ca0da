use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::SnapshotMetadata;

use super::harness::{config, open};
use crate::layout::{RAFT_TREE, SLED_DIR, SNAPSHOT_META_KEY};
use crate::{Expect, Op};

#[tokio::test]
async fn restart_preserves_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (listing, rev, a) = {
        let node = open(config(dir.path())).await;
        let store = node.store();
        let a = store
            .put("a", Bytes::from_static(b"1"), Expect::Any, None)
            .await
            .unwrap();
        store
            .put("b", Bytes::from_static(b"2"), Expect::Any, None)
            .await
            .unwrap();
        store
            .batch(vec![
                Op::Put {
                    key: "c".into(),
                    value: Bytes::from_static(b"3"),
                    expect: Expect::Absent,
                    lease: None,
                },
                Op::Delete {
                    key: "b".into(),
                    expect: Expect::Any,
                },
            ])
            .await
            .unwrap();
        let listing = store.list("").await.unwrap();
        let rev = store.revision();
        drop(store);
        node.shutdown().await;
        (listing, rev, a)
    };
    assert_eq!(rev, 3);

    let node = open(config(dir.path())).await;
    let store = node.store();
    assert_eq!(store.revision(), rev, "revision survives restart");
    assert_eq!(
        store.list("").await.unwrap(),
        listing,
        "data survives restart"
    );
    // Versions survive: CAS against the pre-restart mod_revision works.
    let a2 = store
        .put(
            "a",
            Bytes::from_static(b"10"),
            Expect::Revision(a.mod_revision),
            None,
        )
        .await
        .unwrap();
    assert_eq!(a2.mod_revision, rev + 1);
    assert_eq!(a2.create_revision, a.create_revision);
    drop(store);
    node.shutdown().await;

    // A third open replays nothing twice: the revision is exactly where it was.
    let node = open(config(dir.path())).await;
    assert_eq!(node.store().revision(), rev + 1);
    node.shutdown().await;
}

#[tokio::test]
async fn log_compaction_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.log_compact_after = 20;
    cfg.log_keep_after_compact = 5;
    {
        let node = open(cfg.clone()).await;
        let store = node.store();
        for i in 0..100u32 {
            store
                .put(
                    &format!("k{i:03}"),
                    Bytes::from(i.to_string()),
                    Expect::Any,
                    None,
                )
                .await
                .unwrap();
        }
        drop(store);
        node.shutdown().await;
    }
    // The log was compacted: its start moved well past the first entries.
    {
        let db = sled::open(dir.path().join(SLED_DIR)).unwrap();
        let raft = db.open_tree(RAFT_TREE).unwrap();
        let meta =
            SnapshotMetadata::parse_from_bytes(&raft.get(SNAPSHOT_META_KEY).unwrap().unwrap())
                .unwrap();
        assert!(
            meta.index > 50,
            "log not compacted: starts after {}",
            meta.index
        );
    }
    let node = open(cfg).await;
    let store = node.store();
    assert_eq!(store.revision(), 100);
    let all = store.list("k").await.unwrap();
    assert_eq!(all.len(), 100);
    assert_eq!(all[42].value, Bytes::from("42"));
    store
        .put("after", Bytes::new(), Expect::Any, None)
        .await
        .unwrap();
    assert_eq!(store.revision(), 101);
    drop(store);
    node.shutdown().await;
}
