//! Behaviour tests of the whole bookie, on real files in a temporary directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use crate::{Bookie, BookieConfig, BookieError, EntryMeta};

/// Small files so rolling happens; no periodic checkpoint unless a test asks.
fn config(dir: &Path) -> BookieConfig {
    BookieConfig {
        data_dir: dir.to_path_buf(),
        entry_log_max_bytes: 1 << 20,
        journal_max_bytes: 1 << 20,
        checkpoint_interval: Duration::from_secs(3600),
        journal_group_max_bytes: 1 << 20,
        write_cache_max_bytes: 64 << 20,
        ledger_cache_max: 10_000,
    }
}

/// Entry `e` covers offsets `[10e, 10e+9]` unless a test says otherwise.
fn meta(e: u64) -> EntryMeta {
    EntryMeta {
        base_offset: (e * 10) as i64,
        last_offset: (e * 10 + 9) as i64,
        max_timestamp: 1_000 + e as i64,
    }
}

/// Deterministic payload, different for every (ledger, entry).
fn payload(ledger_id: u64, entry_id: u64, len: usize) -> Bytes {
    let seed = ledger_id.wrapping_mul(1_000_003) ^ entry_id.wrapping_mul(7919);
    Bytes::from(
        (0..len)
            .map(|i| (seed.wrapping_add(i as u64 * 31) % 251) as u8)
            .collect::<Vec<u8>>(),
    )
}

async fn add(b: &Bookie, ledger_id: u64, entry_id: u64, len: usize) -> Result<(), BookieError> {
    b.add_entry(
        ledger_id,
        entry_id,
        meta(entry_id),
        payload(ledger_id, entry_id, len),
        false,
    )
    .await
}

async fn assert_entry(b: &Bookie, ledger_id: u64, entry_id: u64, len: usize) {
    let e = b
        .read_entry(ledger_id, entry_id)
        .await
        .unwrap_or_else(|err| panic!("read {ledger_id}:{entry_id}: {err}"));
    assert_eq!((e.ledger_id, e.entry_id), (ledger_id, entry_id));
    assert_eq!(e.meta, meta(entry_id));
    assert_eq!(
        e.payload,
        payload(ledger_id, entry_id, len),
        "payload of {ledger_id}:{entry_id}"
    );
}

fn files(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_read_round_trip_from_cache_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bookie::open(config(dir.path())).await.unwrap();
    for e in 0..10 {
        add(&b, 1, e, 100 + e as usize).await.unwrap();
    }
    // Edge sizes: empty and 1 MiB.
    b.add_entry(2, 0, meta(0), Bytes::new(), false)
        .await
        .unwrap();
    add(&b, 2, 1, 1 << 20).await.unwrap();

    for pass in ["cache", "disk"] {
        for e in 0..10 {
            assert_entry(&b, 1, e, 100 + e as usize).await;
        }
        assert!(
            b.read_entry(2, 0).await.unwrap().payload.is_empty(),
            "{pass}"
        );
        assert_entry(&b, 2, 1, 1 << 20).await;
        assert!(matches!(
            b.read_entry(1, 10).await,
            Err(BookieError::NoSuchEntry {
                ledger_id: 1,
                entry_id: 10
            })
        ));
        assert!(matches!(
            b.read_entry(9, 0).await,
            Err(BookieError::NoSuchLedger { ledger_id: 9 })
        ));
        b.checkpoint().await.unwrap();
        assert_eq!(
            b.stats().write_cache_entries,
            0,
            "checkpoint empties the write cache"
        );
    }
    assert_eq!(b.ledgers().unwrap(), vec![1, 2]);
    assert!(matches!(
        b.add_entry(
            1,
            99,
            meta(99),
            Bytes::from(vec![0u8; crate::MAX_ENTRY_BYTES + 1]),
            false
        )
        .await,
        Err(BookieError::EntryTooLarge { .. })
    ));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bookie::open(config(dir.path())).await.unwrap();
    let before = b.stats().journal_fsyncs;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let b = b.clone();
        // 4 ledgers, entries of each arrive in whatever order the tasks run.
        tasks.spawn(async move { add(&b, i % 4, i / 4, 16 * 1024).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let fsyncs = b.stats().journal_fsyncs - before;
    assert!(
        fsyncs < 200,
        "200 concurrent adds took {fsyncs} fsyncs: no group commit"
    );
    for l in 0..4 {
        assert_eq!(b.last_add_confirmed(l).unwrap(), Some(49));
    }
    assert_entry(&b, 3, 49, 16 * 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_adds_lac_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bookie::open(config(dir.path())).await.unwrap();
    add(&b, 7, 3, 10).await.unwrap();
    assert_eq!(b.last_add_confirmed(7).unwrap(), None, "no entry 0 yet");
    add(&b, 7, 1, 10).await.unwrap();
    add(&b, 7, 0, 10).await.unwrap();
    assert_eq!(b.last_add_confirmed(7).unwrap(), Some(1));
    let got: Vec<u64> = b
        .read_entries(7, 0, 100, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.entry_id)
        .collect();
    assert_eq!(got, vec![0, 1], "stops at the gap");
    // The gap is filled after entry 3 was checkpointed: LAC moves over it.
    b.checkpoint().await.unwrap();
    add(&b, 7, 2, 10).await.unwrap();
    assert_eq!(b.last_add_confirmed(7).unwrap(), Some(3));
    let got: Vec<u64> = b
        .read_entries(7, 0, 100, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.entry_id)
        .collect();
    assert_eq!(got, vec![0, 1, 2, 3]);
    // Duplicate with other bytes: accepted, first copy kept.
    b.add_entry(7, 1, meta(1), Bytes::from_static(b"other"), false)
        .await
        .unwrap();
    assert_entry(&b, 7, 1, 10).await;
    // Same for an in-flight duplicate pair.
    let (r1, r2) = tokio::join!(
        add(&b, 7, 4, 10),
        b.add_entry(7, 4, meta(4), Bytes::from_static(b"x"), false)
    );
    r1.unwrap();
    r2.unwrap();
    assert_entry(&b, 7, 4, 10).await;
    assert_eq!(b.last_add_confirmed(7).unwrap(), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_refuses_adds_allows_recovery_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bookie::open(config(dir.path())).await.unwrap();
    add(&b, 5, 0, 10).await.unwrap();
    add(&b, 5, 1, 10).await.unwrap();
    add(&b, 5, 3, 10).await.unwrap();
    assert_eq!(b.fence(5).await.unwrap(), Some(1));
    assert!(matches!(
        add(&b, 5, 2, 10).await,
        Err(BookieError::Fenced { ledger_id: 5 })
    ));
    // Recovery adds pass and move the LAC.
    b.add_entry(5, 2, meta(2), payload(5, 2, 10), true)
        .await
        .unwrap();
    assert_eq!(b.last_add_confirmed(5).unwrap(), Some(3));
    assert_eq!(
        b.fence(5).await.unwrap(),
        Some(3),
        "idempotent, returns the current LAC"
    );
    // Fencing an unknown ledger creates it.
    assert_eq!(b.fence(6).await.unwrap(), None);
    assert_eq!(b.ledgers().unwrap(), vec![5, 6]);
    assert!(matches!(
        add(&b, 6, 0, 10).await,
        Err(BookieError::Fenced { ledger_id: 6 })
    ));

    // Crash (no shutdown): the fences come back from the journal.
    drop(b);
    let b = Bookie::open(config(dir.path())).await.unwrap();
    assert!(matches!(
        add(&b, 5, 4, 10).await,
        Err(BookieError::Fenced { ledger_id: 5 })
    ));
    assert!(matches!(
        add(&b, 6, 0, 10).await,
        Err(BookieError::Fenced { ledger_id: 6 })
    ));
    assert_eq!(b.fence(5).await.unwrap(), Some(3));
    assert_entry(&b, 5, 2, 10).await;
    // And from the index after a clean shutdown.
    b.shutdown().await;
    drop(b);
    let b = Bookie::open(config(dir.path())).await.unwrap();
    assert!(matches!(
        add(&b, 5, 4, 10).await,
        Err(BookieError::Fenced { ledger_id: 5 })
    ));
    assert_eq!(b.last_add_confirmed(5).unwrap(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_by_offset_and_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bookie::open(config(dir.path())).await.unwrap();
    // Offset ranges with a hole between entries 1 and 2; timestamps not monotonic.
    let entries = [
        (0i64, 9i64, 100i64),
        (10, 19, 300),
        (30, 39, 200),
        (40, 49, 400),
        (50, 59, 350),
    ];
    let put = |e: usize| {
        let (base, last, ts) = entries[e];
        let m = EntryMeta {
            base_offset: base,
            last_offset: last,
            max_timestamp: ts,
        };
        let b = b.clone();
        async move {
            b.add_entry(1, e as u64, m, Bytes::from_static(b"x"), false)
                .await
        }
    };
    // Entries 0..3 end up in the index, 3..5 stay in the write cache: lookups must merge.
    for e in 0..3 {
        put(e).await.unwrap();
    }
    b.checkpoint().await.unwrap();
    // Added out of order: the time index only takes entry 4 once 3 is there.
    put(4).await.unwrap();
    assert_eq!(
        b.find_entry_by_timestamp(1, 350).unwrap(),
        None,
        "entry 4 is above the LAC"
    );
    put(3).await.unwrap();

    let check = |b: &Bookie| {
        // By offset: containing entry, else first with base > offset, else None.
        assert_eq!(b.find_entry_by_offset(1, -5).unwrap(), Some(0));
        assert_eq!(b.find_entry_by_offset(1, 0).unwrap(), Some(0));
        assert_eq!(b.find_entry_by_offset(1, 15).unwrap(), Some(1));
        assert_eq!(b.find_entry_by_offset(1, 19).unwrap(), Some(1));
        assert_eq!(
            b.find_entry_by_offset(1, 25).unwrap(),
            Some(2),
            "in the hole"
        );
        assert_eq!(b.find_entry_by_offset(1, 45).unwrap(), Some(3));
        assert_eq!(b.find_entry_by_offset(1, 59).unwrap(), Some(4));
        assert_eq!(b.find_entry_by_offset(1, 60).unwrap(), None);
        // By timestamp: first entry (lowest id) with max_timestamp >= t.
        assert_eq!(b.find_entry_by_timestamp(1, i64::MIN).unwrap(), Some(0));
        assert_eq!(b.find_entry_by_timestamp(1, 100).unwrap(), Some(0));
        assert_eq!(b.find_entry_by_timestamp(1, 150).unwrap(), Some(1));
        assert_eq!(
            b.find_entry_by_timestamp(1, 250).unwrap(),
            Some(1),
            "not entry 2 (200)"
        );
        assert_eq!(b.find_entry_by_timestamp(1, 301).unwrap(), Some(3));
        assert_eq!(b.find_entry_by_timestamp(1, 360).unwrap(), Some(3));
        assert_eq!(b.find_entry_by_timestamp(1, 401).unwrap(), None);
        assert!(matches!(
            b.find_entry_by_offset(2, 0),
            Err(BookieError::NoSuchLedger { ledger_id: 2 })
        ));
    };
    check(&b);
    b.checkpoint().await.unwrap();
    check(&b);
    drop(b);
    let b = Bookie::open(config(dir.path())).await.unwrap();
    check(&b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_without_shutdown_keeps_every_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.journal_max_bytes = 64 * 1024; // several journal files
    cfg.entry_log_max_bytes = 128 * 1024; // several entry logs
    let b = Bookie::open(cfg.clone()).await.unwrap();
    for e in 0..40 {
        add(&b, 1, e, 4000).await.unwrap();
    }
    b.checkpoint().await.unwrap(); // these are in entry logs
    for e in 40..80 {
        add(&b, 1, e, 4000).await.unwrap(); // these only in the journal
        add(&b, 2, e, 3000).await.unwrap();
    }
    b.delete_ledger(2).await.unwrap();
    add(&b, 3, 0, 10).await.unwrap();
    b.fence(3).await.unwrap();
    assert!(files(dir.path(), "journal").len() > 1, "journal rolled");
    drop(b);

    let b = Bookie::open(cfg.clone()).await.unwrap();
    for e in 0..80 {
        assert_entry(&b, 1, e, 4000).await;
    }
    assert_eq!(b.last_add_confirmed(1).unwrap(), Some(79));
    assert!(matches!(
        b.read_entry(2, 40).await,
        Err(BookieError::LedgerDeleted { ledger_id: 2 })
    ));
    assert_eq!(b.ledgers().unwrap(), vec![1, 3]);
    assert!(matches!(
        add(&b, 3, 1, 10).await,
        Err(BookieError::Fenced { ledger_id: 3 })
    ));
    // Open checkpointed the replayed state and dropped the replayed journal files.
    assert_eq!(files(dir.path(), "journal").len(), 1);
    assert_eq!(b.stats().write_cache_entries, 0);

    // A second crash right after a replay loses nothing either.
    add(&b, 1, 80, 4000).await.unwrap();
    drop(b);
    let b = Bookie::open(cfg).await.unwrap();
    for e in 0..=80 {
        assert_entry(&b, 1, e, 4000).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_at_journal_tail_is_truncated_on_replay() {
    for garbage in [
        // Random bytes.
        (0..300u32).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>(),
        // A record header claiming more bytes than the file has.
        [
            &5000u32.to_le_bytes()[..],
            &0u32.to_le_bytes()[..],
            b"partial body",
        ]
        .concat(),
        // A complete record whose CRC does not match.
        [
            &9u32.to_le_bytes()[..],
            &0xdeadbeefu32.to_le_bytes()[..],
            &[2u8],
            &7u64.to_le_bytes()[..],
        ]
        .concat(),
        // Half a record header.
        vec![1, 2, 3],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let b = Bookie::open(config(dir.path())).await.unwrap();
        for e in 0..20 {
            add(&b, 1, e, 500).await.unwrap();
        }
        drop(b);
        let journal = files(dir.path(), "journal").pop().unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap()
            .write_all(&garbage)
            .unwrap();

        let b = Bookie::open(config(dir.path())).await.unwrap();
        for e in 0..20 {
            assert_entry(&b, 1, e, 500).await;
        }
        assert_eq!(b.last_add_confirmed(1).unwrap(), Some(19));
        assert_eq!(
            b.ledgers().unwrap(),
            vec![1],
            "the bad fence record of ledger 7 was not applied"
        );
        add(&b, 1, 20, 500).await.unwrap();
        drop(b);
        let b = Bookie::open(config(dir.path())).await.unwrap();
        assert_entry(&b, 1, 20, 500).await;
    }
}

#[test]
fn replay_truncates_the_newest_journal_file_exactly_at_the_torn_record() {
    use crate::journal::{replay, JournalWriter};
    use crate::record::{put_ledger_op, KIND_FENCE};
    let dir = tempfile::tempdir().unwrap();
    let mut w = JournalWriter::create(dir.path(), 1, 1 << 20).unwrap();
    let mut buf = Vec::new();
    put_ledger_op(&mut buf, KIND_FENCE, 42);
    let len = buf.len() as u64;
    w.write_group(&mut [std::io::IoSlice::new(&buf)], len)
        .unwrap();
    let good_len = w.position().offset;
    drop(w);
    let path = crate::fsutil::numbered_path(dir.path(), 1, crate::journal::EXT);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0xff; 100])
        .unwrap();
    let mut seen = Vec::new();
    let summary = replay(dir.path(), None, |r| seen.push(format!("{r:?}"))).unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains("Fence") && seen[0].contains("42"));
    assert!(summary.truncated.is_some());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
}

#[test]
fn corrupt_record_in_an_older_journal_file_skips_only_the_rest_of_that_file() {
    use crate::journal::{replay, JournalWriter};
    use crate::record::{put_ledger_op, KIND_FENCE};
    let dir = tempfile::tempdir().unwrap();
    for (id, ledgers) in [(1u64, [10u64, 11]), (2, [20, 21])] {
        let mut w = JournalWriter::create(dir.path(), id, 1 << 20).unwrap();
        let mut buf = Vec::new();
        for l in ledgers {
            put_ledger_op(&mut buf, KIND_FENCE, l);
        }
        let len = buf.len() as u64;
        w.write_group(&mut [std::io::IoSlice::new(&buf)], len)
            .unwrap();
    }
    // Flip a byte in the first record of file 1 (in its ledger id).
    let path1 = crate::fsutil::numbered_path(dir.path(), 1, crate::journal::EXT);
    let mut bytes = std::fs::read(&path1).unwrap();
    bytes[16 + 10] ^= 0x80;
    std::fs::write(&path1, &bytes).unwrap();

    let mut seen = Vec::new();
    let summary = replay(dir.path(), None, |r| seen.push(format!("{r:?}"))).unwrap();
    assert_eq!(summary.corrupt_files, 1);
    assert!(summary.truncated.is_none());
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].contains("20") && seen[1].contains("21"));
    assert_eq!(
        std::fs::read(&path1).unwrap(),
        bytes,
        "an older file is left for inspection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_entry_log_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bookie::open(config(dir.path())).await.unwrap();
    for e in 0..5 {
        add(&b, 1, e, 1000).await.unwrap();
    }
    b.checkpoint().await.unwrap();
    // Entries are written in (ledger, entry) order: the file's last byte is in entry 4's payload.
    let log = files(dir.path(), "entrylogs").pop().unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();

    match b.read_entry(1, 4).await {
        Err(BookieError::Corrupt {
            ledger_id: 1,
            entry_id: 4,
            ..
        }) => {}
        other => panic!("expected Corrupt for 1:4, got {other:?}"),
    }
    assert_entry(&b, 1, 3, 1000).await;
    // A range read returns the good prefix; starting at the bad entry gives the error.
    let got = b.read_entries(1, 0, 10, usize::MAX).await.unwrap();
    assert_eq!(got.len(), 4);
    assert!(matches!(
        b.read_entries(1, 4, 10, usize::MAX).await,
        Err(BookieError::Corrupt { entry_id: 4, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_ledger_hides_it_and_reclaims_entry_log_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.entry_log_max_bytes = 64 * 1024;
    let b = Bookie::open(cfg.clone()).await.unwrap();
    for e in 0..40 {
        add(&b, 1, e, 4000).await.unwrap();
    }
    b.checkpoint().await.unwrap();
    for e in 0..10 {
        add(&b, 2, e, 4000).await.unwrap();
    }
    b.checkpoint().await.unwrap();
    let before = files(dir.path(), "entrylogs").len();
    assert!(before >= 3, "ledger 1 spans several entry logs ({before})");

    b.delete_ledger(1).await.unwrap();
    assert!(matches!(
        b.read_entry(1, 0).await,
        Err(BookieError::LedgerDeleted { ledger_id: 1 })
    ));
    assert!(matches!(
        add(&b, 1, 40, 10).await,
        Err(BookieError::LedgerDeleted { ledger_id: 1 })
    ));
    assert!(matches!(
        b.last_add_confirmed(1),
        Err(BookieError::LedgerDeleted { ledger_id: 1 })
    ));
    assert_eq!(b.ledgers().unwrap(), vec![2]);
    b.delete_ledger(1).await.unwrap(); // idempotent
    b.checkpoint().await.unwrap();
    let after = files(dir.path(), "entrylogs").len();
    assert!(
        after < before,
        "files of ledger 1 reclaimed ({before} -> {after})"
    );
    for e in 0..10 {
        assert_entry(&b, 2, e, 4000).await;
    }

    drop(b);
    let b = Bookie::open(cfg.clone()).await.unwrap();
    assert!(matches!(
        b.read_entry(1, 0).await,
        Err(BookieError::LedgerDeleted { ledger_id: 1 })
    ));
    assert_eq!(b.ledgers().unwrap(), vec![2]);
    for e in 0..10 {
        assert_entry(&b, 2, e, 4000).await;
    }
    b.delete_ledger(2).await.unwrap();
    b.checkpoint().await.unwrap();
    assert!(
        files(dir.path(), "entrylogs").len() <= 1,
        "only the open entry log may remain"
    );
    assert!(b.ledgers().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_entries_limits() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bookie::open(config(dir.path())).await.unwrap();
    for e in 0..10 {
        add(&b, 1, e, 1000).await.unwrap();
    }
    b.checkpoint().await.unwrap(); // 0..10 on disk, 10..20 in the cache
    for e in 10..20 {
        add(&b, 1, e, 1000).await.unwrap();
    }
    add(&b, 1, 25, 1000).await.unwrap(); // after a gap

    let ids = |v: Vec<crate::Entry>| v.iter().map(|e| e.entry_id).collect::<Vec<_>>();
    assert_eq!(
        ids(b.read_entries(1, 0, 5, usize::MAX).await.unwrap()),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(
        ids(b.read_entries(1, 3, 100, 2500).await.unwrap()),
        vec![3, 4]
    );
    assert_eq!(
        ids(b.read_entries(1, 3, 100, 10).await.unwrap()),
        vec![3],
        "at least one entry"
    );
    assert_eq!(
        ids(b.read_entries(1, 8, 4, usize::MAX).await.unwrap()),
        vec![8, 9, 10, 11],
        "disk then cache"
    );
    assert_eq!(
        b.read_entries(1, 0, 100, usize::MAX).await.unwrap().len(),
        20,
        "stops at the gap"
    );
    assert_eq!(
        ids(b.read_entries(1, 25, 100, usize::MAX).await.unwrap()),
        vec![25]
    );
    assert!(b
        .read_entries(1, 20, 100, usize::MAX)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .read_entries(1, 0, 0, usize::MAX)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        b.read_entries(2, 0, 1, 1).await,
        Err(BookieError::NoSuchLedger { ledger_id: 2 })
    ));
    let all = b.read_entries(1, 0, 1000, usize::MAX).await.unwrap();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.payload, payload(1, i as u64, 1000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_cache_pressure_triggers_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.write_cache_max_bytes = 256 * 1024;
    cfg.entry_log_max_bytes = 256 * 1024;
    let b = Bookie::open(cfg).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for e in 0..100 {
        let b = b.clone();
        tasks.spawn(async move { add(&b, 1, e, 16 * 1024).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert!(
        b.stats().checkpoints >= 2,
        "checkpoints: {}",
        b.stats().checkpoints
    );
    assert!(b.stats().write_cache_bytes <= 256 * 1024 + 16 * 1024 + 64);
    for e in 0..100 {
        assert_entry(&b, 1, e, 16 * 1024).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bookie::open(config(dir.path())).await.unwrap();
    for e in 0..5 {
        add(&b, 1, e, 100).await.unwrap();
    }
    b.shutdown().await;
    b.shutdown().await; // idempotent
    assert!(matches!(
        add(&b, 1, 5, 100).await,
        Err(BookieError::ShuttingDown)
    ));
    assert!(matches!(b.fence(1).await, Err(BookieError::ShuttingDown)));
    assert_entry(&b, 1, 4, 100).await; // reads still work
    drop(b);
    let b = Bookie::open(config(dir.path())).await.unwrap();
    assert_eq!(b.last_add_confirmed(1).unwrap(), Some(4));
    for e in 0..5 {
        assert_entry(&b, 1, e, 100).await;
    }
}

const CRASH_DIR_ENV: &str = "STRATALOG_BOOKIE_CRASH_CHILD_DIR";

fn crash_config(dir: &Path) -> BookieConfig {
    BookieConfig {
        data_dir: dir.to_path_buf(),
        entry_log_max_bytes: 512 * 1024,
        journal_max_bytes: 256 * 1024,
        checkpoint_interval: Duration::from_millis(20),
        journal_group_max_bytes: 64 * 1024,
        write_cache_max_bytes: 1 << 20,
        ledger_cache_max: 10_000,
    }
}

/// Child half of `kill_9_mid_write_loses_no_acknowledged_entry`: writes to 8 ledgers
/// concurrently and prints `ACK ledger entry` after each acknowledged add, until killed
/// (or, as a safety net, after 20 s). Does nothing when run normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of kill_9_mid_write_loses_no_acknowledged_entry"]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
        return;
    };
    let b = Bookie::open(crash_config(Path::new(&dir))).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut tasks = tokio::task::JoinSet::new();
    for ledger in 0..8u64 {
        let b = b.clone();
        tasks.spawn(async move {
            let mut e = 0;
            while std::time::Instant::now() < deadline {
                add(&b, ledger, e, 4096).await.unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {ledger} {e}").unwrap();
                out.flush().unwrap();
                e += 1;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Real `kill -9` (SIGKILL) of a process in the middle of adds, group commits and
/// checkpoints: every entry it acknowledged must be readable after reopening.
#[test]
fn kill_9_mid_write_loses_no_acknowledged_entry() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked: Vec<(u64, u64)> = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("ACK ") {
            let mut it = rest.split(' ').map(|x| x.parse::<u64>().unwrap());
            acked.push((it.next().unwrap(), it.next().unwrap()));
            if acked.len() >= 1500 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        acked.len() >= 1500,
        "child stopped early after {} acks",
        acked.len()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let b = Bookie::open(crash_config(dir.path())).await.unwrap();
        let mut max_acked = [0u64; 8];
        for &(l, e) in &acked {
            assert_entry(&b, l, e, 4096).await;
            max_acked[l as usize] = max_acked[l as usize].max(e);
        }
        for (l, max) in max_acked.iter().enumerate() {
            // Each child task adds its ledger's entries in order, so the LAC covers them.
            assert!(b.last_add_confirmed(l as u64).unwrap() >= Some(*max));
        }
        b.shutdown().await;
    });
}

// ---- Ledger-state cache: cold ledgers leave memory and come back right ----

/// Entries of the cold-ledger tests: `ENTRIES` per ledger, piggybacking a writer LAC
/// one behind, so `writer_lac == ENTRIES - 2` once all are in.
const ENTRIES: u64 = 3;

async fn fill_ledger(b: &Bookie, ledger_id: u64) {
    for e in 0..ENTRIES {
        let lac = e.checked_sub(1);
        b.add_entry_with_lac(ledger_id, e, meta(e), payload(ledger_id, e, 50), false, lac)
            .await
            .unwrap();
    }
}

/// Ledger `l` of the cold tests: `l % 3 == 0` fenced, `1` deleted, `2` left open.
fn kind(l: u64) -> u64 {
    l % 3
}

/// Everything a reader can ask of a live ledger filled by [`fill_ledger`].
async fn assert_live_ledger(b: &Bookie, l: u64) {
    assert_eq!(
        b.last_add_confirmed(l).unwrap(),
        Some(ENTRIES - 1),
        "LAC of {l}"
    );
    assert_eq!(
        b.writer_lac(l).unwrap(),
        Some(ENTRIES - 2),
        "writer LAC of {l}"
    );
    for e in 0..ENTRIES {
        assert_entry(b, l, e, 50).await;
    }
    let got = b.read_entries(l, 0, 100, usize::MAX).await.unwrap();
    assert_eq!(got.len() as u64, ENTRIES);
    assert_eq!(
        b.find_entry_by_offset(l, 15).unwrap(),
        Some(1),
        "offset of {l}"
    );
    assert_eq!(
        b.find_entry_by_offset(l, 10 * ENTRIES as i64).unwrap(),
        None
    );
    assert_eq!(
        b.find_entry_by_timestamp(l, 1_001).unwrap(),
        Some(1),
        "time of {l}"
    );
    assert_eq!(
        b.find_entry_by_timestamp(l, 1_000 + ENTRIES as i64)
            .unwrap(),
        None
    );
}

async fn assert_deleted_ledger(b: &Bookie, l: u64) {
    fn deleted<T>(r: Result<T, BookieError>) -> bool {
        matches!(r, Err(BookieError::LedgerDeleted { .. }))
    }
    assert!(deleted(add(b, l, ENTRIES, 10).await), "add to deleted {l}");
    assert!(deleted(
        b.add_entry(l, 0, meta(0), payload(l, 0, 50), true).await
    ));
    assert!(deleted(b.read_entry(l, 0).await), "read of deleted {l}");
    assert!(deleted(b.last_add_confirmed(l)));
    assert!(deleted(b.writer_lac(l)));
    assert!(deleted(b.find_entry_by_offset(l, 0)));
    assert!(deleted(b.fence(l).await));
    b.delete_ledger(l).await.unwrap(); // idempotent
}

/// Two checkpoints: the first writes the states and clears `touched`, the second
/// (idle) evicts what nobody used in between.
async fn checkpoint_twice(b: &Bookie) {
    b.checkpoint().await.unwrap();
    b.checkpoint().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_ledgers_are_evicted_and_reload_with_fences_tombstones_and_indexes() {
    const N: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let b = Bookie::open(config(dir.path())).await.unwrap();
    for l in 0..N {
        fill_ledger(&b, l).await;
        match kind(l) {
            0 => assert_eq!(b.fence(l).await.unwrap(), Some(ENTRIES - 1)),
            1 => b.delete_ledger(l).await.unwrap(),
            _ => {}
        }
    }
    assert!(
        b.stats().cached_ledgers >= N as usize,
        "all hot before a checkpoint"
    );
    checkpoint_twice(&b).await;
    let s = b.stats();
    assert_eq!(s.cached_ledgers, 0, "every ledger is cold and checkpointed");
    assert!(s.ledger_evictions >= N, "{s:?}");

    // Listing comes from the index, without loading anything.
    let live: Vec<u64> = (0..N).filter(|l| kind(*l) != 1).collect();
    assert_eq!(b.ledgers().unwrap(), live);
    assert_eq!(b.stats().cached_ledgers, 0);

    let loads_before = b.stats().ledger_loads;
    for l in 0..N {
        match kind(l) {
            0 => {
                // A cold fenced ledger is loaded as fenced, not taken for a new one.
                assert!(matches!(
                    add(&b, l, ENTRIES, 10).await,
                    Err(BookieError::Fenced { .. })
                ));
                assert_eq!(b.fence(l).await.unwrap(), Some(ENTRIES - 1), "re-fence {l}");
                assert_live_ledger(&b, l).await;
            }
            1 => assert_deleted_ledger(&b, l).await,
            _ => assert_live_ledger(&b, l).await,
        }
    }
    assert!(
        b.stats().ledger_loads >= loads_before + N,
        "{:?}",
        b.stats()
    );
    // Recovery adds still pass on a cold fenced ledger.
    checkpoint_twice(&b).await;
    assert_eq!(b.stats().cached_ledgers, 0);
    b.add_entry(0, ENTRIES, meta(ENTRIES), payload(0, ENTRIES, 50), true)
        .await
        .unwrap();
    assert_eq!(b.last_add_confirmed(0).unwrap(), Some(ENTRIES));
    // A cold open ledger takes more entries and moves its LAC on.
    checkpoint_twice(&b).await;
    add(&b, 2, ENTRIES, 50).await.unwrap();
    assert_eq!(b.last_add_confirmed(2).unwrap(), Some(ENTRIES));
    assert_eq!(b.ledgers().unwrap(), live);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_reopen_with_evicted_ledgers_replays_on_demand() {
    const N: u64 = 120;
    let dir = tempfile::tempdir().unwrap();
    let b = Bookie::open(config(dir.path())).await.unwrap();
    for l in 0..N {
        fill_ledger(&b, l).await;
        match kind(l) {
            0 => {
                b.fence(l).await.unwrap();
            }
            1 => b.delete_ledger(l).await.unwrap(),
            _ => {}
        }
    }
    checkpoint_twice(&b).await;
    assert_eq!(b.stats().cached_ledgers, 0);
    // Journal-only changes to cold ledgers, then a crash (no final checkpoint).
    // 200 is new; 2 gets an entry; 5 gets fenced; 8 deleted; 0 (fenced) a recovery add;
    // 1 (deleted) a late add from a zombie, refused.
    fill_ledger(&b, 200).await;
    add(&b, 2, ENTRIES, 50).await.unwrap();
    assert_eq!(b.fence(5).await.unwrap(), Some(ENTRIES - 1));
    b.delete_ledger(8).await.unwrap();
    b.add_entry(0, ENTRIES, meta(ENTRIES), payload(0, ENTRIES, 50), true)
        .await
        .unwrap();
    assert!(matches!(
        add(&b, 1, ENTRIES, 10).await,
        Err(BookieError::LedgerDeleted { .. })
    ));
    drop(b);

    let b = Bookie::open(config(dir.path())).await.unwrap();
    let s = b.stats();
    assert!(
        s.cached_ledgers <= 6,
        "open loads only the ledgers replay touched: {s:?}"
    );
    let mut live: Vec<u64> = (0..N).filter(|l| kind(*l) != 1 && *l != 8).collect();
    live.push(200);
    assert_eq!(b.ledgers().unwrap(), live);
    assert_live_ledger(&b, 200).await;
    assert_eq!(b.last_add_confirmed(2).unwrap(), Some(ENTRIES));
    assert_entry(&b, 2, ENTRIES, 50).await;
    assert_eq!(b.last_add_confirmed(0).unwrap(), Some(ENTRIES));
    assert!(matches!(
        add(&b, 5, ENTRIES, 10).await,
        Err(BookieError::Fenced { ledger_id: 5 })
    ));
    assert_deleted_ledger(&b, 8).await;
    for l in 0..N {
        match kind(l) {
            0 => assert!(matches!(
                add(&b, l, ENTRIES + 1, 10).await,
                Err(BookieError::Fenced { .. })
            )),
            1 => assert_deleted_ledger(&b, l).await,
            _ if l == 8 => {}
            _ => assert_eq!(b.writer_lac(l).unwrap(), Some(ENTRIES - 2)),
        }
    }
    // Evicted again and reopened after a clean shutdown: still the same.
    checkpoint_twice(&b).await;
    assert_eq!(b.stats().cached_ledgers, 0);
    b.shutdown().await;
    drop(b);
    let b = Bookie::open(config(dir.path())).await.unwrap();
    assert_eq!(
        b.stats().cached_ledgers,
        0,
        "nothing to replay, nothing loaded"
    );
    assert_eq!(b.ledgers().unwrap(), live);
    assert!(matches!(
        add(&b, 5, ENTRIES, 10).await,
        Err(BookieError::Fenced { ledger_id: 5 })
    ));
    assert_deleted_ledger(&b, 8).await;
    assert_live_ledger(&b, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_ledger_states_stay_bounded_as_ledgers_accumulate() {
    const N: u64 = 3_000;
    const CAP: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.ledger_cache_max = CAP;
    let b = Bookie::open(cfg).await.unwrap();
    let mut peak = 0;
    // Rolling ledgers: each gets a few entries and is never touched again, the way a
    // broker rolls them. Between explicit checkpoints the committer starts one every
    // CAP changed ledgers, so checkpoints keep up without being asked.
    for l in 0..N {
        let mut tasks = tokio::task::JoinSet::new();
        for e in 0..2 {
            let b = b.clone();
            tasks.spawn(async move { add(&b, l, e, 100).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        peak = peak.max(b.stats().cached_ledgers);
    }
    let s = b.stats();
    assert!(
        s.checkpoints >= N / CAP as u64 / 2,
        "dirty-count trigger: {s:?}"
    );
    // Every ledger was dirty at most until the next checkpoint and cold after it; with
    // a checkpoint every CAP new ledgers, the cache holds a few CAP at most.
    assert!(
        peak <= 4 * CAP,
        "peak cached ledger states {peak} with cap {CAP}"
    );
    checkpoint_twice(&b).await;
    assert_eq!(b.stats().cached_ledgers, 0);
    assert_eq!(b.ledgers().unwrap().len() as u64, N);

    // Reads of many cold ledgers load them; the cap bounds what stays.
    for l in 0..1_000 {
        assert_eq!(b.last_add_confirmed(l).unwrap(), Some(1));
    }
    assert_eq!(
        b.stats().cached_ledgers,
        1_000,
        "loaded, used, not yet evictable"
    );
    b.checkpoint().await.unwrap();
    assert!(b.stats().cached_ledgers <= CAP, "{:?}", b.stats());
    b.checkpoint().await.unwrap();
    assert_eq!(b.stats().cached_ledgers, 0);
    assert_entry(&b, N - 1, 1, 100).await;
}

/// The eviction predicate itself, on a bare [`crate::state::State`]: only a clean,
/// untouched state with nothing in flight leaves memory.
#[test]
fn eviction_keeps_every_state_that_is_not_provably_in_the_index() {
    use crate::record::Record;
    use crate::state::State;
    let dir = tempfile::tempdir().unwrap();
    let index = crate::index::Index::open(dir.path()).unwrap();
    let mut st = State::new(index);
    // 1 clean; 2 dirty; 3 pending record; 4 fence pending; 5 delete pending; 6 entries in
    // the active write cache; 7 entries in the flushing generation.
    for id in 1..=7 {
        st.ledger_or_create(id).unwrap();
    }
    st.ledger_or_create(4).unwrap().fence_pending = true;
    st.ledger_or_create(5).unwrap().delete_pending = true;
    let add = |id| Record::Add {
        ledger_id: id,
        entry_id: 0,
        meta: meta(0),
        crc: 0,
        payload: Bytes::from_static(b"x"),
    };
    st.apply(add(7)).unwrap();
    st.flushing = std::sync::Arc::new(std::mem::take(&mut st.active));
    st.apply(add(6)).unwrap();
    st.note_pending(3);
    st.dirty.clear(); // as if a checkpoint had captured everything
    st.ledger(2).unwrap();
    st.dirty.insert(2);

    assert_eq!(st.evict_cold(usize::MAX), 0, "all touched");
    assert_eq!(st.evict_cold(usize::MAX), 1, "only ledger 1");
    assert!(st.cached(1).is_none());
    // Even over the cap, unsafe states stay.
    assert_eq!(st.evict_cold(0), 0);
    assert_eq!(st.cached_ledgers(), 6);
    // Once its record is applied, ledger 3 can go.
    st.apply(Record::Lac {
        ledger_id: 3,
        lac: 0,
    })
    .unwrap();
    st.dirty.clear();
    st.dirty.insert(2);
    assert_eq!(st.evict_cold(0), 1);
    assert!(st.cached(3).is_none() && st.cached(2).is_some());
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Measurement, not a check: `STRATALOG_BENCH_LEDGERS` (default 100,000) ledgers are
/// created, given two entries and fenced (closed), 32 at a time; prints add latency
/// and cached ledger states per window. Run with
/// `cargo test -p stratalog-bookie --release -- --ignored --nocapture bench_many_closed_ledgers`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; prints figures"]
async fn bench_many_closed_ledgers() {
    let n: u64 = std::env::var("STRATALOG_BENCH_LEDGERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    const PAR: u64 = 32;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BookieConfig {
        data_dir: dir.path().to_path_buf(),
        checkpoint_interval: Duration::from_secs(1),
        ..BookieConfig::default()
    };
    let b = Bookie::open(cfg).await.unwrap();
    let window = (n / 10).max(PAR);
    let started = std::time::Instant::now();
    let mut lat: Vec<Duration> = Vec::new();
    let mut peak_cached = 0;
    let mut next = 0u64;
    println!("ledgers  add_p50_us  add_p99_us  ledgers/s  cached_states(now/peak)  loads  evictions  rss_mib");
    let mut window_start = std::time::Instant::now();
    while next < n {
        let mut tasks = tokio::task::JoinSet::new();
        for l in next..(next + PAR).min(n) {
            let b = b.clone();
            tasks.spawn(async move {
                let mut t = Vec::with_capacity(2);
                for e in 0..2u64 {
                    let t0 = std::time::Instant::now();
                    b.add_entry_with_lac(
                        l,
                        e,
                        meta(e),
                        payload(l, e, 256),
                        false,
                        e.checked_sub(1),
                    )
                    .await
                    .unwrap();
                    t.push(t0.elapsed());
                }
                b.fence(l).await.unwrap();
                t
            });
        }
        while let Some(r) = tasks.join_next().await {
            lat.extend(r.unwrap());
        }
        next = (next + PAR).min(n);
        let s = b.stats();
        peak_cached = peak_cached.max(s.cached_ledgers);
        if next % window < PAR || next == n {
            lat.sort_unstable();
            let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_micros();
            println!(
                "{next:>7}  {:>10}  {:>10}  {:>9.0}  {:>10}/{:<12}  {:>5}  {:>9}  {:>7}",
                pct(0.5),
                pct(0.99),
                (lat.len() / 2) as f64 / window_start.elapsed().as_secs_f64(),
                s.cached_ledgers,
                peak_cached,
                s.ledger_loads,
                s.ledger_evictions,
                rss_kib() / 1024
            );
            lat.clear();
            window_start = std::time::Instant::now();
        }
    }
    let total = started.elapsed();
    checkpoint_twice(&b).await;
    let s = b.stats();
    let t0 = std::time::Instant::now();
    let listed = b.ledgers().unwrap().len();
    let list_time = t0.elapsed();
    println!(
        "{n} ledgers in {:.1} s; after two more checkpoints: cached states {}, ledgers() lists {listed} in {} ms; rss {} MiB",
        total.as_secs_f64(),
        s.cached_ledgers,
        list_time.as_millis(),
        rss_kib() / 1024
    );
    println!(
        "index on disk: {} MiB, checkpoints: {}",
        dir_bytes(&dir.path().join("index")) >> 20,
        s.checkpoints
    );
    // A cold ledger's first use after eviction.
    let t0 = std::time::Instant::now();
    for l in (0..n).step_by((n / 1000).max(1) as usize) {
        assert_eq!(b.last_add_confirmed(l).unwrap(), Some(1));
    }
    println!(
        "cold LAC lookup (loads the state): {:.1} us each",
        t0.elapsed().as_secs_f64() * 1e6 / 1000.0
    );
    drop(b);
    let t0 = std::time::Instant::now();
    let b = Bookie::open(BookieConfig {
        data_dir: dir.path().to_path_buf(),
        ..BookieConfig::default()
    })
    .await
    .unwrap();
    println!(
        "reopen: {} ms, cached states after open {}",
        t0.elapsed().as_millis(),
        b.stats().cached_ledgers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_read_budget_reads_nothing_that_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bookie::open(config(dir.path())).await.unwrap();
    for e in 0..3 {
        add(&b, 1, e, 100).await.unwrap();
    }
    // The usual read returns the first entry whatever its size...
    let got = b.read_entries(1, 0, 10, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    // ...a strict one only what fits, so a continued read never fetches what it drops.
    assert!(b
        .read_entries_within(1, 0, 10, 10, false)
        .await
        .unwrap()
        .is_empty());
    let got = b.read_entries_within(1, 0, 10, 250, false).await.unwrap();
    assert_eq!(
        got.iter().map(|e| e.entry_id).collect::<Vec<_>>(),
        vec![0, 1]
    );
    // Both from disk too.
    b.checkpoint().await.unwrap();
    assert!(b
        .read_entries_within(1, 1, 10, 99, false)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        b.read_entries_within(1, 1, 10, 100, false)
            .await
            .unwrap()
            .len(),
        1
    );
}
