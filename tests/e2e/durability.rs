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
