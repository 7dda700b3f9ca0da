//! Producing and consuming with librdkafka against a standalone server.
use std::time::Duration;

use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_headers_null_and_empty_values_and_timestamps_round_trip() {
    let server = Standalone::start();
    let topic = "round-trip";
    create_topic(&server.bootstrap(), topic, 1).await;
    let producer = producer(&server.bootstrap());
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "h1",
            value: Some("v1"),
        })
        .insert(Header {
            key: "h2",
            value: None::<&[u8]>,
        });
    type Case<'a> = (Option<&'a str>, Option<&'a [u8]>, i64);
    let cases: Vec<Case> = vec![
        (Some("key-a"), Some(b"value-a"), 1_700_000_000_000),
        (None, Some(b""), 1_700_000_000_001),
        (Some("key-c"), None, 1_700_000_000_002),
        (Some(""), Some(b"last"), 1_700_000_000_003),
    ];
    for (i, (key, value, ts)) in cases.iter().enumerate() {
        let mut record: FutureRecord<str, [u8]> =
            FutureRecord::to(topic).partition(0).timestamp(*ts);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        if i == 0 {
            record = record.headers(headers.clone());
        }
        let delivery = producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("delivered");
        assert_eq!((delivery.partition, delivery.offset), (0, i as i64));
    }
    let consumer = assigned_consumer(&server.bootstrap());
    assign_from_beginning(&consumer, topic, 1);
    let got = consume(&consumer, cases.len(), Duration::from_secs(20));
    assert_eq!(
        got.len(),
        cases.len(),
        "log:\n{}",
        server.process.log_text()
    );
    for (i, (m, (key, value, ts))) in got.iter().zip(&cases).enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.key(), key.map(str::as_bytes));
        assert_eq!(m.payload(), *value);
        assert_eq!(m.timestamp().to_millis(), Some(*ts));
    }
    let h = got[0].headers().expect("headers");
    assert_eq!(h.count(), 2);
    assert_eq!(h.get(0).key, "h1");
    assert_eq!(h.get(0).value, Some(&b"v1"[..]));
    assert_eq!(h.get(1).value, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_partitions_keep_per_partition_order() {
    let server = Standalone::start();
    let topic = "multi";
    create_topic(&server.bootstrap(), topic, 4).await;
    let producer = producer(&server.bootstrap());
    let mut sends = Vec::new();
    for i in 0..400u32 {
        let payload = format!("{}:{i}", i % 4);
        let p = producer.clone();
        sends.push(tokio::spawn(async move {
            p.send(
                FutureRecord::<(), String>::to("multi")
                    .partition((i % 4) as i32)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
        }));
    }
    for s in sends {
        s.await.unwrap().expect("delivered");
    }
    let consumer = assigned_consumer(&server.bootstrap());
    assign_from_beginning(&consumer, topic, 4);
    let got = consume(&consumer, 400, Duration::from_secs(30));
    assert_eq!(got.len(), 400);
    for p in 0..4 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|m| m.partition() == p)
            .map(|m| m.offset())
            .collect();
        assert_eq!(offsets, (0..100).collect::<Vec<_>>(), "partition {p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_created_topic_and_fetch_from_the_middle_of_a_batch() {
    let server = Standalone::start();
    // A producer with a long linger puts all ten records in one batch.
    let producer: rdkafka::producer::FutureProducer = client_config(&server.bootstrap())
        .set("linger.ms", "200")
        .create()
        .expect("producer");
    // Enqueue all ten in order first (send_result does not wait), then wait for delivery.
    let deliveries: Vec<_> = (0..10)
        .map(|i| {
            let payload = format!("m{i}");
            producer
                .send_result(FutureRecord::<(), String>::to("auto").payload(&payload))
                .map_err(|(e, _)| e)
                .expect("enqueued")
        })
        .collect();
    for (i, d) in deliveries.into_iter().enumerate() {
        let delivery = d
            .await
            .expect("delivery report")
            .map_err(|(e, _)| e)
            .expect("delivered");
        assert_eq!(delivery.offset, i as i64);
    }
    let consumer = assigned_consumer(&server.bootstrap());
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("auto", 0, rdkafka::Offset::Offset(6))
        .unwrap();
    rdkafka::consumer::Consumer::assign(&consumer, &tpl).unwrap();
    let got = consume(&consumer, 4, Duration::from_secs(20));
    let offsets: Vec<i64> = got.iter().map(|m| m.offset()).collect();
    assert_eq!(offsets, vec![6, 7, 8, 9]);
    assert_eq!(got[0].payload(), Some(&b"m6"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp_earliest_and_latest() {
    use rdkafka::consumer::Consumer;
    let server = Standalone::start();
    create_topic(&server.bootstrap(), "times", 1).await;
    let producer = producer(&server.bootstrap());
    for i in 0..5i64 {
        producer
            .send(
                FutureRecord::<(), str>::to("times")
                    .partition(0)
                    .payload("x")
                    .timestamp(1_000_000 + i * 1000),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    let consumer = assigned_consumer(&server.bootstrap());
    let (low, high) = consumer
        .fetch_watermarks("times", 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (0, 5));
    let mut query = rdkafka::TopicPartitionList::new();
    query
        .add_partition_offset("times", 0, rdkafka::Offset::Offset(1_002_500))
        .unwrap();
    let found = consumer
        .offsets_for_times(query, Duration::from_secs(10))
        .expect("offsets_for_times");
    assert_eq!(found.elements()[0].offset(), rdkafka::Offset::Offset(3));
    let mut query = rdkafka::TopicPartitionList::new();
    query
        .add_partition_offset("times", 0, rdkafka::Offset::Offset(9_000_000))
        .unwrap();
    let found = consumer
        .offsets_for_times(query, Duration::from_secs(10))
        .expect("offsets_for_times");
    assert_eq!(found.elements()[0].offset(), rdkafka::Offset::End);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_endpoints() {
    let server = Standalone::start();
    create_topic(&server.bootstrap(), "m", 1).await;
    let (code, body) = http_get(server.process.http, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    for metric in [
        "stratalog_broker_requests_total",
        "stratalog_broker_request_seconds",
        "stratalog_bookie_journal_fsync_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(body.contains(metric), "{metric} missing from /metrics");
    }
    assert_eq!(
        http_get(server.process.http, "/healthz").map(|r| r.0),
        Some(200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topics_stamp_the_broker_time() {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let server = Standalone::start();
    let admin = admin(&server.bootstrap());
    let topic = NewTopic::new("appended", 1, TopicReplication::Fixed(1))
        .set("message.timestamp.type", "LogAppendTime");
    admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap()[0]
        .as_ref()
        .expect("created");
    let before = rdkafka::util::current_time_millis();
    let delivery = producer(&server.bootstrap())
        .send(
            FutureRecord::<(), str>::to("appended")
                .partition(0)
                .payload("x")
                .timestamp(1_000),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    let consumer = assigned_consumer(&server.bootstrap());
    assign_from_beginning(&consumer, "appended", 1);
    let got = consume(&consumer, 1, Duration::from_secs(20));
    match got[0].timestamp() {
        rdkafka::Timestamp::LogAppendTime(ts) => {
            assert!(ts >= before, "append time {ts} before {before}")
        }
        other => panic!("expected a log-append timestamp, got {other:?}"),
    }
    assert_eq!(delivery.offset, 0);
}
