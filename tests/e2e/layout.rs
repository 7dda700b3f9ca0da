//! The partition layout at scale: metadata and per-ledger costs that must not grow with a
//! partition's age or its number of producers (issue 5, item 1).
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::Message;

use crate::harness::*;

/// One uncompressed RecordBatch v2 with a single record holding `value`; idempotent when
/// `producer_id >= 0` (epoch 0).
fn value_batch(value: &[u8], producer_id: i64, base_sequence: i32) -> bytes::Bytes {
    let epoch = if producer_id >= 0 { 0 } else { -1 };
    build_batch(
        &[(None, value, 1_700_000_000_000)],
        (producer_id, epoch, base_sequence),
    )
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn value_of(i: usize) -> Vec<u8> {
    let mut v = format!("record-{i:08}-").into_bytes();
    v.resize(5000, b'x');
    v
}

/// Every batch rolls the ledger: 25,000 ledgers on one partition, then a restart and a read
/// of all of it. Prints the roll rate over the run, peak RSS and the data dir size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_thousand_rolls_then_restart_and_read_all() {
    const ROLLS: usize = 25_000;
    let mut server = Standalone::start_with(&["--ledger-roll-bytes", "4096"]);
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "rolls", 1).await;
    let mut conn = RawConn::connect(server.kafka);
    let started = Instant::now();
    let mut window = Instant::now();
    let mut rates = Vec::new();
    for i in 0..ROLLS {
        let (code, offset) = raw_produce(&mut conn, "rolls", 0, value_batch(&value_of(i), -1, -1));
        assert_eq!((code, offset), (0, i as i64), "produce {i}");
        if (i + 1) % 5_000 == 0 {
            rates.push(5_000.0 / window.elapsed().as_secs_f64());
            window = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    let (rss, hwm) = server.process.memory_kib().unwrap_or_default();
    let data = dir_bytes(&server.data_dir());
    eprintln!(
        "layout: {ROLLS} rolls in {:.1} s; rolls/s per 5,000: {:?}; RSS {} MiB, peak {} MiB; data dir {:.1} MiB for {:.1} MB of records",
        elapsed.as_secs_f64(),
        rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        rss / 1024,
        hwm / 1024,
        data as f64 / (1 << 20) as f64,
        (ROLLS * 5000) as f64 / 1e6,
    );

    server.process.restart();
    let consumer = assigned_consumer(&bootstrap);
    assign_from_beginning(&consumer, "rolls", 1);
    let read_started = Instant::now();
    let got = consume(&consumer, ROLLS, Duration::from_secs(600));
    assert_eq!(
        got.len(),
        ROLLS,
        "every record is read back after the restart"
    );
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(&value_of(i)[..]), "record {i}");
    }
    let (_, hwm) = server.process.memory_kib().unwrap_or_default();
    eprintln!(
        "layout: read {ROLLS} records across {ROLLS} ledgers in {:.1} s after the restart; peak RSS {} MiB",
        read_started.elapsed().as_secs_f64(),
        hwm / 1024
    );
}

/// 20,000 idempotent producers on one partition (unknown producer ids are accepted, as in
/// Kafka), a crash, then more appends: duplicates of recent producers are still recognised,
/// and what is remembered stays bounded (the oldest were forgotten and are accepted as new).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_producers_then_restart_and_produce() {
    const PRODUCERS: i64 = 20_000;
    const BASE: i64 = 1_000_000;
    let mut server = Standalone::start();
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "producers", 1).await;
    let mut conn = RawConn::connect(server.kafka);
    for p in 0..PRODUCERS {
        let (code, offset) = raw_produce(&mut conn, "producers", 0, value_batch(b"v", BASE + p, 0));
        assert_eq!((code, offset), (0, p), "producer {p}");
    }
    let check = |server: &Standalone, round: i64| {
        let next = PRODUCERS + 2 * round;
        let mut conn = RawConn::connect(server.kafka);
        // The most recent producer's retry is a duplicate: answered with its offset.
        let last = BASE + PRODUCERS - 1;
        assert_eq!(
            raw_produce(&mut conn, "producers", 0, value_batch(b"v", last, 0)),
            (0, PRODUCERS - 1),
            "a retry of the newest producer's batch is recognised"
        );
        // The oldest producer was forgotten (bound of 10,000): its sequence 0 is new again.
        assert_eq!(
            raw_produce(
                &mut conn,
                "producers",
                0,
                value_batch(b"again", BASE + round, 0)
            ),
            (0, next)
        );
        // A remembered producer continues its sequence.
        assert_eq!(
            raw_produce(
                &mut conn,
                "producers",
                0,
                value_batch(b"next", last - 1, 1 + round as i32)
            ),
            (0, next + 1)
        );
        let (_, hwm) = server.process.memory_kib().unwrap_or_default();
        eprintln!("producers: peak RSS {} MiB", hwm / 1024);
    };
    // After a crash: producer state from the log's batch headers.
    server.process.restart();
    check(&server, 0);
    // After a clean restart of a partition whose state the take-over wrote to its keys.
    server.process.stop();
    server.process.restart();
    check(&server, 1);
    let consumer = assigned_consumer(&bootstrap);
    assign_from_beginning(&consumer, "producers", 1);
    let total = PRODUCERS as usize + 4;
    assert_eq!(
        consume(&consumer, total, Duration::from_secs(120)).len(),
        total
    );
}

/// A topic deleted while a producer keeps writing to it, then created again under the same
/// name: the new topic starts empty (its partitions are keyed by the new topic id) and never
/// shows a record of the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_never_shows_old_records() {
    use rdkafka::admin::AdminOptions;
    use rdkafka::producer::FutureRecord;
    let server = Standalone::start_with(&["--auto-create-topics", "false"]);
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "again", 1).await;
    let producer = producer(&bootstrap);
    for i in 0..20 {
        producer
            .send(
                FutureRecord::<(), String>::to("again").payload(&format!("old-{i}")),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    // Keep appending while the topic is deleted; those appends may fail, none may survive.
    let racing = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let payloads: Vec<String> = (0..100).map(|i| format!("racing-{i}")).collect();
            let mut sends = Vec::new();
            for payload in &payloads {
                sends.push(producer.send(
                    FutureRecord::<(), String>::to("again").payload(payload),
                    Duration::from_secs(2),
                ));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            futures::future::join_all(sends).await;
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let deleted = admin(&bootstrap)
        .delete_topics(&["again"], &AdminOptions::new())
        .await
        .expect("delete_topics");
    assert!(deleted[0].is_ok(), "{deleted:?}");
    racing.await.unwrap();
    create_topic(&bootstrap, "again", 1).await;
    let fresh = crate::harness::producer(&bootstrap);
    let delivery = fresh
        .send(
            FutureRecord::<(), str>::to("again").payload("new-0"),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered to the new topic");
    assert_eq!(delivery.offset, 0, "the new topic starts at offset 0");
    let consumer = assigned_consumer(&bootstrap);
    assign_from_beginning(&consumer, "again", 1);
    let got = consume(&consumer, 2, Duration::from_secs(5));
    let values: Vec<_> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values, vec!["new-0".to_string()]);
}
