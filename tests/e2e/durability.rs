//! kill -9 under load: every acknowledged record survives, in order, at its offset.
use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rdkafka::Message;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_record() {
    let mut server = Standalone::start();
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "durable", 2).await;
    let producer: rdkafka::producer::FutureProducer = client_config(&bootstrap)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "5000")
        .set("retries", "0")
        .create()
        .unwrap();

    // Produce from a task; kill the server while records are in flight.
    let load = tokio::spawn(async move {
        let mut acked: BTreeMap<(i32, i64), String> = BTreeMap::new();
        let mut pending = Vec::new();
        for i in 0..20_000u32 {
            let value = format!("v{i}");
            let p = producer.clone();
            pending.push(tokio::spawn(async move {
                let r = p
                    .send(
                        FutureRecord::<(), String>::to("durable")
                            .partition((i % 2) as i32)
                            .payload(&value),
                        Duration::from_secs(5),
                    )
                    .await;
                r.ok().map(|d| ((d.partition, d.offset), value))
            }));
            if i % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        for p in pending {
            if let Ok(Some((k, v))) = p.await {
                acked.insert(k, v);
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.process.kill();
    let acked = load.await.unwrap();
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the kill"
    );

    server.process.restart();
    let consumer = assigned_consumer(&bootstrap);
    assign_from_beginning(&consumer, "durable", 2);
    let (_, high0) = rdkafka::consumer::Consumer::fetch_watermarks(
        &consumer,
        "durable",
        0,
        Duration::from_secs(10),
    )
    .unwrap();
    let (_, high1) = rdkafka::consumer::Consumer::fetch_watermarks(
        &consumer,
        "durable",
        1,
        Duration::from_secs(10),
    )
    .unwrap();
    let got = consume(&consumer, (high0 + high1) as usize, Duration::from_secs(60));
    let stored: BTreeMap<(i32, i64), String> = got
        .iter()
        .map(|m| {
            (
                (m.partition(), m.offset()),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    for (key, value) in &acked {
        assert_eq!(
            stored.get(key),
            Some(value),
            "acknowledged record {key:?} lost or changed"
        );
    }
    for p in 0..2 {
        let offsets: Vec<i64> = stored
            .keys()
            .filter(|(part, _)| *part == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {p} has gaps"
        );
    }

    // New records go after the recovered ones: no offset is reused.
    let after = crate::harness::producer(&bootstrap);
    let delivery = after
        .send(
            FutureRecord::<(), str>::to("durable")
                .partition(0)
                .payload("after"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(delivery.offset, high0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_ledgers_roll_and_read_back_across_restarts() {
    // A 4 KiB roll size closes a ledger every few batches.
    let mut server = Standalone::start_with(&["--ledger-roll-bytes", "4096"]);
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "rolled", 1).await;
    let producer = crate::harness::producer(&bootstrap);
    for i in 0..60 {
        let value = format!("{i}-{}", "x".repeat(500));
        let delivery = producer
            .send(
                FutureRecord::<(), String>::to("rolled")
                    .partition(0)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
        assert_eq!(delivery.offset, i);
    }
    let read_all = |expected: usize| {
        let consumer = assigned_consumer(&bootstrap);
        assign_from_beginning(&consumer, "rolled", 1);
        let got = consume(&consumer, expected, Duration::from_secs(30));
        got.iter()
            .map(|m| {
                (
                    m.offset(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default())
                        .split('-')
                        .next()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let expected: Vec<(i64, String)> = (0..60).map(|i| (i, i.to_string())).collect();
    assert_eq!(read_all(60), expected);
    let (_, metrics) = http_get(server.process.http, "/metrics").expect("metrics");
    let rolls: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("stratalog_broker_ledgers_closed_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(rolls >= 5.0, "only {rolls} ledger rolls");

    server.process.restart();
    assert_eq!(read_all(60), expected);
    let producer = crate::harness::producer(&bootstrap);
    let delivery = producer
        .send(
            FutureRecord::<(), str>::to("rolled")
                .partition(0)
                .payload("60-after"),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    assert_eq!(delivery.offset, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_expired_ledgers_and_moves_the_log_start() {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    use rdkafka::consumer::Consumer;
    let server =
        Standalone::start_with(&["--ledger-roll-bytes", "4096", "--retention-check-ms", "200"]);
    let bootstrap = server.bootstrap();
    let topic =
        NewTopic::new("expiring", 1, TopicReplication::Fixed(1)).set("retention.ms", "1500");
    admin(&bootstrap)
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap()[0]
        .as_ref()
        .expect("created");
    let producer = crate::harness::producer(&bootstrap);
    let send = |i: i64| {
        let producer = producer.clone();
        async move {
            let value = format!("{i}-{}", "x".repeat(500));
            producer
                .send(
                    FutureRecord::<(), String>::to("expiring")
                        .partition(0)
                        .payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .expect("delivered")
                .offset
        }
    };
    for i in 0..40 {
        assert_eq!(send(i).await, i);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Rolling once more after the wait creates a ledger newer than the retention window.
    for i in 40..50 {
        assert_eq!(send(i).await, i);
    }
    let consumer = assigned_consumer(&bootstrap);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut low = 0;
    while std::time::Instant::now() < deadline {
        low = consumer
            .fetch_watermarks("expiring", 0, Duration::from_secs(10))
            .unwrap()
            .0;
        if low > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        low > 0 && low <= 40,
        "log start offset {low} after retention"
    );
    // Reading from the beginning starts at the new log start; nothing after it is lost.
    assign_from_beginning(&consumer, "expiring", 1);
    let got = consume(&consumer, (50 - low) as usize, Duration::from_secs(20));
    assert_eq!(got.first().map(|m| m.offset()), Some(low));
    assert_eq!(got.last().map(|m| m.offset()), Some(49));
}
