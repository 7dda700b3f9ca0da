use std::sync::Arc;

use raft::eraftpb::{Entry, HardState};
use raft::{GetEntriesContext, Storage, StorageError};

use crate::command::Command;
use crate::durability::DurableSync;
use crate::layout::{RAFT_TREE, STATE_TREE};
use crate::state_machine::StateMachine;
use crate::storage::SledStorage;
use crate::types::{Expect, Op};

fn open_at(db: &sled::Db, dir: &std::path::Path) -> (SledStorage, Arc<StateMachine>) {
    let sm = Arc::new(StateMachine::open(db.open_tree(STATE_TREE).unwrap()).unwrap());
    let durable = Arc::new(DurableSync::open(dir).unwrap());
    let storage = SledStorage::open(
        db.clone(),
        durable,
        db.open_tree(RAFT_TREE).unwrap(),
        sm.clone(),
        &[1],
    )
    .unwrap();
    (storage, sm)
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![0u8; 100].into(),
        ..Default::default()
    }
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

fn put(key: &str) -> Vec<u8> {
    Command::Txn(vec![Op::Put {
        key: key.into(),
        value: bytes::Bytes::from_static(b"v"),
        expect: Expect::Any,
        lease: None,
    }])
    .encode()
}

#[test]
fn log_append_read_truncate_compact_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    {
        let (s, sm) = open_at(&db, dir.path());
        // A fresh log: pretend snapshot at (1, 1) with the configured voters.
        let state = s.initial_state().unwrap();
        assert_eq!(state.conf_state.voters, vec![1]);
        assert_eq!(state.hard_state.commit, 1);
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (2, 1));
        assert_eq!(s.term(1).unwrap(), 1);

        let hs = HardState {
            term: 2,
            vote: 1,
            commit: 3,
            ..Default::default()
        };
        s.append(&(2..=6).map(|i| entry(i, 2)).collect::<Vec<_>>(), Some(&hs))
            .unwrap();
        assert_eq!(s.last_index().unwrap(), 6);
        assert_eq!(s.entries(2, 7, None, ctx()).unwrap().len(), 5);
        // A size limit still returns at least one entry.
        assert_eq!(s.entries(2, 7, Some(1), ctx()).unwrap().len(), 1);
        assert_eq!(s.term(4).unwrap(), 2);
        assert_eq!(
            s.entries(1, 3, None, ctx()).unwrap_err(),
            raft::Error::Store(StorageError::Compacted)
        );
        assert_eq!(
            s.entries(2, 8, None, ctx()).unwrap_err(),
            raft::Error::Store(StorageError::Unavailable)
        );

        // A new leader's entries overwrite the uncommitted tail, which is dropped.
        s.append(&[entry(4, 3), entry(5, 3)], None).unwrap();
        assert_eq!(s.last_index().unwrap(), 5);
        assert_eq!(s.term(4).unwrap(), 3);
        assert_eq!(s.term(3).unwrap(), 2);
        assert!(s.term(6).is_err());
        // Gaps and writes below the log start are refused, not panics.
        assert!(s.append(&[entry(9, 3)], None).is_err());

        // Compaction never goes past what the state machine has applied.
        assert!(s.compact(3).is_err());
        sm.apply_noop(2).unwrap();
        sm.apply_noop(3).unwrap();
        s.compact(3).unwrap();
        assert_eq!(s.first_index().unwrap(), 4);
        assert_eq!(
            s.term(3).unwrap(),
            2,
            "term of the compaction point is kept"
        );
        assert_eq!(
            s.term(2).unwrap_err(),
            raft::Error::Store(StorageError::Compacted)
        );
        assert!(s.append(&[entry(3, 3)], None).is_err());
    }
    // Everything above is persisted.
    let (s, _) = open_at(&db, dir.path());
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (4, 5));
    let state = s.initial_state().unwrap();
    assert_eq!((state.hard_state.term, state.hard_state.vote), (2, 1));
    assert_eq!(s.entries(4, 6, None, ctx()).unwrap()[1].term, 3);
}

#[test]
fn snapshot_roundtrip_between_nodes() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let db_a = sled::open(dir_a.path()).unwrap();
    let db_b = sled::open(dir_b.path()).unwrap();
    let (a, sm_a) = open_at(&db_a, dir_a.path());
    let (b, sm_b) = open_at(&db_b, dir_b.path());

    a.append(&(2..=4).map(|i| entry(i, 2)).collect::<Vec<_>>(), None)
        .unwrap();
    sm_a.apply(2, &put("x")).unwrap().result.unwrap();
    sm_a.apply(3, &put("y")).unwrap().result.unwrap();
    sm_a.apply(4, &Command::GrantLease { ttl_ms: 1000 }.encode())
        .unwrap()
        .result
        .unwrap();

    // The follower has some divergent state and log that the snapshot must replace.
    b.append(&[entry(2, 1)], None).unwrap();
    sm_b.apply(2, &put("stale")).unwrap().result.unwrap();

    assert_eq!(
        a.snapshot(5, 2).unwrap_err(),
        raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)
    );
    let snap = a.snapshot(0, 2).unwrap();
    assert_eq!(snap.get_metadata().index, 4);
    assert_eq!(snap.get_metadata().term, 2);
    b.apply_snapshot(&snap).unwrap();

    assert_eq!(sm_b.applied(), 4);
    assert_eq!(sm_b.revision(), sm_a.revision());
    assert_eq!(sm_b.list("").unwrap(), sm_a.list("").unwrap());
    assert_eq!(sm_b.leases().unwrap(), sm_a.leases().unwrap());
    assert_eq!(sm_b.key_count(), 2);
    assert_eq!((b.first_index().unwrap(), b.last_index().unwrap()), (5, 4));
    assert_eq!(b.term(4).unwrap(), 2);
    assert!(b.initial_state().unwrap().hard_state.commit >= 4);

    // Survives a reopen.
    drop((b, sm_b));
    let (b, sm_b) = open_at(&db_b, dir_b.path());
    assert_eq!(sm_b.list("").unwrap(), sm_a.list("").unwrap());
    assert_eq!(b.first_index().unwrap(), 5);

    // A corrupt snapshot is an error, and leaves the state alone.
    let mut bad = snap.clone();
    bad.data = bytes::Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 0, 9, 0]);
    bad.mut_metadata().index = 10;
    assert!(b.apply_snapshot(&bad).is_err());
    assert_eq!(sm_b.list("").unwrap(), sm_a.list("").unwrap());
}
