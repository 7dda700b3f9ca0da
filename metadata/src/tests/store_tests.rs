use bytes::Bytes;

use super::harness::single;
use crate::{Expect, MetadataError, Op, MAX_VALUE_BYTES};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test]
async fn put_get_and_cas() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;

    assert_eq!(store.get("a").await.unwrap(), None);
    let v1 = store.put("a", b("1"), Expect::Any, None).await.unwrap();
    assert_eq!(v1.key, "a");
    assert_eq!(v1.value, b("1"));
    assert!(v1.mod_revision > 0);
    assert_eq!(v1.create_revision, v1.mod_revision);
    assert_eq!(store.revision(), v1.mod_revision);
    assert_eq!(store.get("a").await.unwrap(), Some(v1.clone()));

    // CAS on the current version succeeds and bumps mod_revision only.
    let v2 = store
        .put("a", b("2"), Expect::Revision(v1.mod_revision), None)
        .await
        .unwrap();
    assert_eq!(v2.mod_revision, v1.mod_revision + 1);
    assert_eq!(v2.create_revision, v1.create_revision);
    assert_eq!(store.get("a").await.unwrap().unwrap().value, b("2"));
    node.shutdown().await;
}

#[tokio::test]
async fn cas_conflict_reports_current_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    let v1 = store.put("a", b("1"), Expect::Any, None).await.unwrap();
    let v2 = store.put("a", b("2"), Expect::Any, None).await.unwrap();
    let rev = store.revision();

    let err = store
        .put("a", b("3"), Expect::Revision(v1.mod_revision), None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        MetadataError::Conflict {
            key: "a".into(),
            current: Some(v2.clone()),
        }
    );
    // A failed CAS is not a write: no new revision.
    assert_eq!(store.revision(), rev);
    assert_eq!(store.get("a").await.unwrap(), Some(v2));

    // Expecting a revision on a missing key conflicts with `current: None`.
    let err = store
        .put("missing", b("x"), Expect::Revision(5), None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        MetadataError::Conflict {
            key: "missing".into(),
            current: None,
        }
    );
    node.shutdown().await;
}

#[tokio::test]
async fn absent_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    let first = store
        .put("lock", b("me"), Expect::Absent, None)
        .await
        .unwrap();
    let err = store
        .put("lock", b("you"), Expect::Absent, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetadataError::Conflict { ref key, current: Some(ref kv) } if key == "lock" && kv == &first)
    );
    // Revision(0) means absent too.
    assert!(store
        .put("lock", b("you"), Expect::Revision(0), None)
        .await
        .is_err());
    assert!(store.delete("lock", Expect::Any).await.unwrap());
    let again = store
        .put("lock", b("you"), Expect::Absent, None)
        .await
        .unwrap();
    // Re-created: a fresh create_revision.
    assert!(again.create_revision > first.create_revision);
    assert!(store
        .put("other", b("x"), Expect::Revision(0), None)
        .await
        .is_ok());
    node.shutdown().await;
}

#[tokio::test]
async fn batch_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    let x = store.put("x", b("0"), Expect::Any, None).await.unwrap();
    let rev = store.revision();

    // Second and third ops fail their expectations: nothing applies, the first failure is
    // reported.
    let err = store
        .batch(vec![
            Op::Put {
                key: "new".into(),
                value: b("1"),
                expect: Expect::Absent,
                lease: None,
            },
            Op::Put {
                key: "x".into(),
                value: b("1"),
                expect: Expect::Absent,
                lease: None,
            },
            Op::Delete {
                key: "y".into(),
                expect: Expect::Revision(99),
            },
        ])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        MetadataError::Conflict {
            key: "x".into(),
            current: Some(x.clone()),
        }
    );
    assert_eq!(store.get("new").await.unwrap(), None);
    assert_eq!(store.revision(), rev);

    // A successful batch: all writes share one revision; results per op.
    let results = store
        .batch(vec![
            Op::Put {
                key: "new".into(),
                value: b("1"),
                expect: Expect::Absent,
                lease: None,
            },
            Op::Delete {
                key: "x".into(),
                expect: Expect::Revision(x.mod_revision),
            },
            Op::Delete {
                key: "never".into(),
                expect: Expect::Any,
            },
            Op::Put {
                key: "new".into(),
                value: b("2"),
                expect: Expect::Absent, // checked against the state before the batch
                lease: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    let put1 = results[0].clone().unwrap();
    assert_eq!(put1.mod_revision, rev + 1);
    assert_eq!(results[1], Some(x));
    assert_eq!(results[2], None);
    let put2 = results[3].clone().unwrap();
    assert_eq!(put2.value, b("2"));
    assert_eq!(put2.mod_revision, rev + 1);
    assert_eq!(put2.create_revision, rev + 1);
    assert_eq!(store.revision(), rev + 1);
    assert_eq!(store.get("new").await.unwrap(), Some(put2));
    assert_eq!(store.get("x").await.unwrap(), None);
    assert_eq!(store.batch(vec![]).await.unwrap(), vec![]);
    node.shutdown().await;
}

#[tokio::test]
async fn delete_with_and_without_expectations() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    let kv = store.put("d", b("1"), Expect::Any, None).await.unwrap();
    let err = store
        .delete("d", Expect::Revision(kv.mod_revision + 1))
        .await
        .unwrap_err();
    assert!(matches!(err, MetadataError::Conflict { .. }));
    let rev = store.revision();
    assert!(store
        .delete("d", Expect::Revision(kv.mod_revision))
        .await
        .unwrap());
    assert_eq!(store.revision(), rev + 1);
    assert_eq!(store.get("d").await.unwrap(), None);
    // Nothing to delete: Ok(false) and no new revision.
    assert!(!store.delete("d", Expect::Any).await.unwrap());
    assert_eq!(store.revision(), rev + 1);
    assert!(!store.delete("d", Expect::Absent).await.unwrap());
    node.shutdown().await;
}

#[tokio::test]
async fn list_by_prefix_is_sorted_and_delete_prefix_removes() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    for key in ["t/b", "t/a", "t/c/1", "u/a", "t", "tt"] {
        store.put(key, b(key), Expect::Any, None).await.unwrap();
    }
    let keys = |kvs: Vec<crate::KeyValue>| kvs.into_iter().map(|kv| kv.key).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list("t/").await.unwrap()),
        vec!["t/a", "t/b", "t/c/1"]
    );
    assert_eq!(
        keys(store.list("").await.unwrap()),
        vec!["t", "t/a", "t/b", "t/c/1", "tt", "u/a"]
    );
    assert!(store.list("nope/").await.unwrap().is_empty());
    let (kvs, rev) = store.list_with_revision("u/").await.unwrap();
    assert_eq!(keys(kvs), vec!["u/a"]);
    assert_eq!(rev, store.revision());

    let before = store.revision();
    assert_eq!(store.delete_prefix("t/").await.unwrap(), 3);
    assert_eq!(
        store.revision(),
        before + 1,
        "one revision for the whole prefix"
    );
    assert_eq!(keys(store.list("").await.unwrap()), vec!["t", "tt", "u/a"]);
    assert_eq!(store.delete_prefix("t/").await.unwrap(), 0);
    assert_eq!(store.revision(), before + 1);
    node.shutdown().await;
}

#[tokio::test]
async fn invalid_arguments_are_rejected_before_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    fn invalid<T>(r: Result<T, MetadataError>) -> bool {
        matches!(r, Err(MetadataError::InvalidArgument(_)))
    }
    assert!(invalid(store.put("", b("x"), Expect::Any, None).await));
    let big = Bytes::from(vec![0u8; MAX_VALUE_BYTES + 1]);
    assert!(invalid(store.put("k", big, Expect::Any, None).await));
    assert!(invalid(
        store
            .grant_lease(std::time::Duration::from_micros(10))
            .await
    ));
    assert_eq!(store.revision(), 0);
    node.shutdown().await;
}

#[tokio::test]
async fn requests_after_shutdown_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    store.put("a", b("1"), Expect::Any, None).await.unwrap();
    node.shutdown().await;
    assert_eq!(
        store.put("a", b("2"), Expect::Any, None).await.unwrap_err(),
        MetadataError::ShuttingDown
    );
    assert_eq!(
        store.get("a").await.unwrap_err(),
        MetadataError::ShuttingDown
    );
    assert_eq!(
        store
            .watch("", 0, std::time::Duration::from_secs(5))
            .await
            .unwrap_err(),
        MetadataError::ShuttingDown
    );
}

#[tokio::test]
async fn range_pages_forward_and_finds_floors_backward() {
    use crate::RangeQuery;
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    for i in [0u32, 10, 20, 30, 40] {
        let key = format!("p/{i:04}");
        store.put(&key, b("v"), Expect::Any, None).await.unwrap();
    }
    store.put("o", b("x"), Expect::Any, None).await.unwrap();
    store.put("q", b("x"), Expect::Any, None).await.unwrap();
    let keys = |kvs: Vec<crate::KeyValue>| kvs.into_iter().map(|kv| kv.key).collect::<Vec<_>>();

    // Forward pages of two, resuming after the last key.
    let q = |start: &str| RangeQuery {
        prefix: "p/".into(),
        start: start.into(),
        limit: 2,
        ..RangeQuery::default()
    };
    let (page, more) = store.range(&q("")).await.unwrap();
    assert_eq!(
        (keys(page), more),
        (vec!["p/0000".into(), "p/0010".into()], true)
    );
    let (page, more) = store.range(&q("p/0010\0")).await.unwrap();
    assert_eq!(
        (keys(page), more),
        (vec!["p/0020".into(), "p/0030".into()], true)
    );
    let (page, more) = store.range(&q("p/0030\0")).await.unwrap();
    assert_eq!((keys(page), more), (vec!["p/0040".into()], false));

    // Floor: the last key at or below p/0025 is the greatest key before p/0025\0.
    let floor = |end: &str| RangeQuery {
        prefix: "p/".into(),
        end: end.into(),
        limit: 1,
        reverse: true,
        ..RangeQuery::default()
    };
    let (page, more) = store.range(&floor("p/0025\0")).await.unwrap();
    assert_eq!((keys(page), more), (vec!["p/0020".into()], true));
    let (page, _) = store.range(&floor("p/0020\0")).await.unwrap();
    assert_eq!(keys(page), vec!["p/0020".to_string()]);
    let (page, more) = store.range(&floor("p/0000")).await.unwrap();
    assert_eq!((keys(page), more), (Vec::<String>::new(), false));
    // The whole prefix backwards never leaves it.
    let (page, _) = store.range(&floor("")).await.unwrap();
    assert_eq!(keys(page), vec!["p/0040".to_string()]);
    node.shutdown().await;
}
