//! Take-over in bounded memory (issue 5, item 3): after a `kill -9`, many partitions with
//! large open ledgers reopen at once without holding those ledgers in memory.
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::producer::FutureRecord;

use crate::harness::*;

const PARTITIONS: i32 = 50;
/// Per partition: 256 records of 256 KiB = a 64 MiB open ledger (the roll size is 256 MiB).
const RECORDS: usize = 256;
const VALUE: usize = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_partitions_with_64_mib_open_ledgers_reopen_after_kill_9() {
    let mut server = Standalone::start();
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "big-open", PARTITIONS).await;
    let producer = producer(&bootstrap);
    let value = vec![b'v'; VALUE];
    let started = Instant::now();
    for round in 0..RECORDS {
        let sends = (0..PARTITIONS).map(|p| {
            producer.send(
                FutureRecord::<(), [u8]>::to("big-open")
                    .partition(p)
                    .payload(&value[..]),
                Duration::from_secs(60),
            )
        });
        for (p, sent) in join_all(sends).await.into_iter().enumerate() {
            let delivery = sent.unwrap_or_else(|(e, _)| panic!("partition {p}: {e}"));
            assert_eq!(delivery.offset, round as i64);
        }
    }
    eprintln!(
        "takeover: wrote {} MiB in {:.1} s",
        (PARTITIONS as usize * RECORDS * VALUE) >> 20,
        started.elapsed().as_secs_f64()
    );
    drop(producer);

    server.process.restart();
    let reopened = Instant::now();
    let producer = crate::harness::producer(&bootstrap);
    let sends = (0..PARTITIONS).map(|p| {
        producer.send(
            FutureRecord::<(), str>::to("big-open")
                .partition(p)
                .payload("after"),
            Duration::from_secs(120),
        )
    });
    for (p, sent) in join_all(sends).await.into_iter().enumerate() {
        let delivery = sent.unwrap_or_else(|(e, _)| panic!("partition {p} after restart: {e}"));
        assert_eq!(
            delivery.offset, RECORDS as i64,
            "partition {p} kept every record"
        );
    }
    let (rss, hwm) = server.process.memory_kib().expect("memory");
    eprintln!(
        "takeover: {PARTITIONS} partitions reopened in {:.1} s; RSS {} MiB, peak RSS since restart {} MiB",
        reopened.elapsed().as_secs_f64(),
        rss / 1024,
        hwm / 1024
    );
    // Holding the open ledgers would take 3.2 GiB; the figure is reported, the bound is loose.
    assert!(
        hwm < 1024 * 1024,
        "peak RSS {} MiB after the take-overs",
        hwm / 1024
    );
}
