//! Kafka behaviours clients rely on, most of them found by librdkafka's own regression
//! tests (the test number is named where there is one). Raw protocol frames where the exact
//! field matters, librdkafka where the client's reaction is the point.
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::harness::*;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;
const MEMBER_ID_REQUIRED: i16 = 79;
const INVALID_RECORD: i16 = 87;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn group(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_string()))
}

fn new_topic(topic: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
}

/// CreateTopics v7; the error code of each topic, in request order.
fn create(c: &mut RawConn, topics: Vec<CreatableTopic>) -> Vec<i16> {
    let resp: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(10_000),
    );
    resp.topics.iter().map(|t| t.error_code).collect()
}

fn create_partitions(c: &mut RawConn, topic: CreatePartitionsTopic) -> i16 {
    let resp: CreatePartitionsResponse = c.request(
        ApiKey::CreatePartitions,
        3,
        &CreatePartitionsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000),
    );
    resp.results[0].error_code
}

fn metadata(c: &mut RawConn, topics: Option<Vec<MetadataRequestTopic>>) -> MetadataResponse {
    c.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false),
    )
}

/// A RecordBatch v2 of uncompressed, non-idempotent records.
fn batch(records: &[RawRecord]) -> Bytes {
    build_batch(records, NO_PRODUCER)
}

/// One record of `size` value bytes.
fn big_batch(size: usize) -> Bytes {
    batch(&[(Some(b"k"), &vec![b'x'; size], 1_700_000_000_000)])
}

fn produce_ok(c: &mut RawConn, topic: &str, partition: i32, records: Bytes) -> i64 {
    let (code, base) = raw_produce(c, topic, partition, records);
    assert_eq!(code, 0, "produce to {topic}-{partition}");
    base
}

/// Base offsets and sizes of the batches in a fetch response's records.
fn batches_of(records: &Option<Bytes>) -> Vec<(i64, usize)> {
    let mut out = Vec::new();
    let mut rest = records.as_deref().unwrap_or_default();
    while rest.len() >= 12 {
        let base = i64::from_be_bytes(rest[..8].try_into().unwrap());
        let size = 12 + i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
        out.push((base, size));
        rest = &rest[size.min(rest.len())..];
    }
    out
}

fn fetch_request(max_bytes: i32, topics: Vec<FetchTopic>) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(topics)
}

fn fetch_partitions(topic: &str, partitions: &[(i32, i64)], partition_max: i32) -> FetchTopic {
    FetchTopic::default()
        .with_topic(name(topic))
        .with_partitions(
            partitions
                .iter()
                .map(|&(p, offset)| {
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(partition_max)
                        .with_log_start_offset(-1)
                        .with_current_leader_epoch(-1)
                        .with_last_fetched_epoch(-1)
                })
                .collect(),
        )
}

/// Batches per partition of a v12 fetch, in response order: (partition, batch sizes).
fn fetch_sizes(c: &mut RawConn, req: &FetchRequest) -> Vec<(i32, Vec<usize>)> {
    let resp: FetchResponse = c.request(ApiKey::Fetch, 12, req);
    resp.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            (
                p.partition_index,
                batches_of(&p.records).iter().map(|b| b.1).collect(),
            )
        })
        .collect()
}

#[test]
fn absurd_partition_counts_get_invalid_partitions() {
    let server = Standalone::start_with(&["--max-partitions-per-topic", "100"]);
    let mut c = RawConn::connect(server.kafka);
    assert_eq!(
        create(
            &mut c,
            vec![
                new_topic("huge", 2_000_000_000),
                new_topic("one-too-many", 101),
                new_topic("bounded", 100),
            ]
        ),
        vec![INVALID_PARTITIONS, INVALID_PARTITIONS, 0]
    );
    for count in [101, 2_000_000_000] {
        let grow = CreatePartitionsTopic::default()
            .with_name(name("bounded"))
            .with_count(count);
        assert_eq!(create_partitions(&mut c, grow), INVALID_PARTITIONS);
    }
    // Metadata still answers, with what exists.
    let m = metadata(&mut c, None);
    let names: Vec<_> = m
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().as_str().to_string(),
                t.partitions.len(),
            )
        })
        .collect();
    assert_eq!(names, vec![("bounded".to_string(), 100)]);
}

#[test]
fn offset_commit_of_two_thousand_partitions_and_of_unknown_topics() {
    let mut server = Standalone::start();
    let mut c = RawConn::connect(server.kafka);
    assert_eq!(create(&mut c, vec![new_topic("wide", 2000)]), vec![0]);
    let partition = |p: i32| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(p)
            .with_committed_offset(p as i64 * 3)
            .with_committed_leader_epoch(-1)
    };
    let req = OffsetCommitRequest::default()
        .with_group_id(group("wide-group"))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(name("wide"))
                .with_partitions((0..=2000).map(partition).collect()),
            OffsetCommitRequestTopic::default()
                .with_name(name("no-such-topic"))
                .with_partitions(vec![partition(0)]),
        ]);
    let resp: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &req);
    let wide = &resp.topics[0].partitions;
    assert_eq!(wide.len(), 2001);
    for p in &wide[..2000] {
        assert_eq!(p.error_code, 0, "wide-{}", p.partition_index);
    }
    // librdkafka 0030: a partition or topic that does not exist.
    assert_eq!(wide[2000].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(
        resp.topics[1].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    let fetch_all = |c: &mut RawConn| {
        let resp: OffsetFetchResponse = c.request(
            ApiKey::OffsetFetch,
            8,
            &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group("wide-group"))
                .with_topics(None)]),
        );
        let g = &resp.groups[0];
        assert_eq!(g.error_code, 0);
        let mut got: Vec<(String, i32, i64)> = g
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.as_str().to_string(),
                        p.partition_index,
                        p.committed_offset,
                    )
                })
            })
            .collect();
        got.sort();
        got
    };
    let mut expected: Vec<(String, i32, i64)> = (0..2000)
        .map(|p| ("wide".to_string(), p, p as i64 * 3))
        .collect();
    expected.sort();
    assert_eq!(fetch_all(&mut c), expected);
    // Durable: a restarted broker loads all of them.
    server.process.restart();
    let mut c = RawConn::connect(server.kafka);
    assert_eq!(fetch_all(&mut c), expected);
}

#[test]
fn fetch_stays_within_max_bytes_except_for_the_first_batch() {
    let server = Standalone::start();
    let mut c = RawConn::connect(server.kafka);
    assert_eq!(create(&mut c, vec![new_topic("sized", 3)]), vec![0]);
    for p in 0..3 {
        produce_ok(&mut c, "sized", p, big_batch(100_000));
        produce_ok(&mut c, "sized", p, big_batch(100_000));
    }
    let all = [(0, 0), (1, 0), (2, 0)];
    let count = |sizes: &[(i32, Vec<usize>)]| -> Vec<usize> {
        sizes.iter().map(|(_, b)| b.len()).collect()
    };
    let total = |sizes: &[(i32, Vec<usize>)]| -> usize { sizes.iter().flat_map(|(_, b)| b).sum() };

    // The response bound: two batches of partition 0 fit, nothing more.
    let r = fetch_sizes(
        &mut c,
        &fetch_request(250_000, vec![fetch_partitions("sized", &all, 1 << 20)]),
    );
    assert_eq!(count(&r), vec![2, 0, 0], "{r:?}");
    assert!(total(&r) <= 250_000);

    // A bound smaller than one batch: only the very first batch is sent.
    let r = fetch_sizes(
        &mut c,
        &fetch_request(50_000, vec![fetch_partitions("sized", &all, 1 << 20)]),
    );
    assert_eq!(count(&r), vec![1, 0, 0], "{r:?}");

    // partition_max_bytes smaller than a batch: the first partition's first batch only.
    let r = fetch_sizes(
        &mut c,
        &fetch_request(10 << 20, vec![fetch_partitions("sized", &all, 50_000)]),
    );
    assert_eq!(count(&r), vec![1, 0, 0], "{r:?}");

    // Each partition gets what fits its own limit.
    let r = fetch_sizes(
        &mut c,
        &fetch_request(10 << 20, vec![fetch_partitions("sized", &all, 150_000)]),
    );
    assert_eq!(count(&r), vec![1, 1, 1], "{r:?}");

    // Request order decides who is first.
    let r = fetch_sizes(
        &mut c,
        &fetch_request(
            150_000,
            vec![fetch_partitions("sized", &[(2, 0), (0, 0)], 1 << 20)],
        ),
    );
    assert_eq!(r.iter().map(|p| p.0).collect::<Vec<_>>(), vec![2, 0]);
    assert_eq!(count(&r), vec![1, 0], "{r:?}");
}

/// librdkafka 0082: 900 KiB messages, fetch.max.bytes 1 MB and a receive limit just above it.
/// A response over the limit makes librdkafka drop the connection, and it never progresses.
#[test]
fn librdkafka_consumes_large_messages_within_fetch_max_bytes() {
    let server = Standalone::start();
    let bootstrap = server.bootstrap();
    let mut c = RawConn::connect(server.kafka);
    assert_eq!(create(&mut c, vec![new_topic("large", 3)]), vec![0]);
    for p in 0..3 {
        for _ in 0..5 {
            produce_ok(&mut c, "large", p, big_batch(900 * 1024));
        }
    }
    let consumer: rdkafka::consumer::BaseConsumer = client_config(&bootstrap)
        .set("group.id", "large-readers")
        .set("enable.auto.commit", "false")
        .set("max.partition.fetch.bytes", "20000000")
        .set("fetch.max.bytes", "1000000")
        .set("receive.message.max.bytes", "1000512")
        .create()
        .expect("consumer");
    assign_from_beginning(&consumer, "large", 3);
    let got = consume(&consumer, 15, Duration::from_secs(60));
    assert_eq!(got.len(), 15, "log:\n{}", server.process.log_text());
}

#[test]
fn a_long_poll_wakes_for_any_partition_and_returns_its_data() {
    let server = Standalone::start();
    let mut c = RawConn::connect(server.kafka);
    assert_eq!(create(&mut c, vec![new_topic("polled", 3)]), vec![0]);
    for p in 0..3 {
        produce_ok(&mut c, "polled", p, big_batch(10));
    }
    let port = server.kafka;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let mut c = RawConn::connect(port);
        produce_ok(&mut c, "polled", 1, big_batch(20));
    });
    let req = fetch_request(
        1 << 20,
        vec![fetch_partitions(
            "polled",
            &[(0, 1), (1, 1), (2, 1)],
            1 << 20,
        )],
    )
    .with_max_wait_ms(10_000);
    let started = Instant::now();
    let resp: FetchResponse = c.request(ApiKey::Fetch, 12, &req);
    producer.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(8));
    let parts = &resp.responses[0].partitions;
    let offsets: Vec<Vec<i64>> = parts
        .iter()
        .map(|p| batches_of(&p.records).iter().map(|b| b.0).collect())
        .collect();
    assert_eq!(offsets, vec![vec![], vec![1], vec![]]);
    assert_eq!(
        parts.iter().map(|p| p.high_watermark).collect::<Vec<_>>(),
        vec![1, 2, 1]
    );
}

fn list_offsets(c: &mut RawConn, topic: &str, partition: i32, timestamp: i64) -> (i16, i64, i64) {
    let resp: ListOffsetsResponse = c.request(
        ApiKey::ListOffsets,
        10,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_timeout_ms(10_000)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]),
    );
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// librdkafka 0054 (offsets by time on an empty partition) and KIP-734 MAX_TIMESTAMP, over
/// several ledgers (a tiny roll size closes one per batch) and across a restart (which
/// leaves an empty open ledger).
#[test]
fn list_offsets_by_time_and_max_timestamp() {
    const MAX_TIMESTAMP: i64 = -3;
    let mut server = Standalone::start_with(&["--ledger-roll-bytes", "100"]);
    let mut c = RawConn::connect(server.kafka);
    assert_eq!(create(&mut c, vec![new_topic("times", 2)]), vec![0]);

    // Partition 0 stays empty.
    assert_eq!(list_offsets(&mut c, "times", 0, 1_000), (0, -1, -1));
    assert_eq!(list_offsets(&mut c, "times", 0, MAX_TIMESTAMP), (0, -1, -1));
    assert_eq!(list_offsets(&mut c, "times", 0, -1), (0, 0, -1));

    let v = [b'v'; 120];
    let rec = |ts: i64| (Some(&b"k"[..]), &v[..], ts);
    produce_ok(
        &mut c,
        "times",
        1,
        batch(&[rec(1000), rec(5000), rec(3000)]),
    ); // 0-2
    produce_ok(&mut c, "times", 1, batch(&[rec(2000), rec(5000)])); // 3-4
    produce_ok(&mut c, "times", 1, batch(&[rec(4000)])); // 5
                                                         // Ties go to the earliest record.
    assert_eq!(
        list_offsets(&mut c, "times", 1, MAX_TIMESTAMP),
        (0, 1, 5000)
    );
    produce_ok(
        &mut c,
        "times",
        1,
        batch(&[rec(9000), rec(1000), rec(9000)]),
    ); // 6-8
    produce_ok(&mut c, "times", 1, batch(&[rec(7000)])); // 9

    let check = |c: &mut RawConn| {
        assert_eq!(list_offsets(c, "times", 1, MAX_TIMESTAMP), (0, 6, 9000));
        assert_eq!(list_offsets(c, "times", 1, 4500), (0, 1, 5000));
        assert_eq!(list_offsets(c, "times", 1, 8000), (0, 6, 9000));
        assert_eq!(list_offsets(c, "times", 1, 9001), (0, -1, -1));
        assert_eq!(list_offsets(c, "times", 1, -2), (0, 0, -1));
        assert_eq!(list_offsets(c, "times", 1, -1), (0, 10, -1));
        // Nothing is tiered: the earliest local offset is the log start, no tiered offset.
        assert_eq!(list_offsets(c, "times", 1, -4), (0, 0, -1));
        assert_eq!(list_offsets(c, "times", 1, -5), (0, -1, -1));
    };
    check(&mut c);
    server.process.restart();
    let mut c = RawConn::connect(server.kafka);
    check(&mut c);
    assert_eq!(list_offsets(&mut c, "times", 0, 1_000), (0, -1, -1));
}

#[test]
fn topics_by_id_in_metadata_and_fetch() {
    let server = Standalone::start();
    let mut c = RawConn::connect(server.kafka);
    let versions: ApiVersionsResponse =
        c.request(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default());
    let max = |key: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| k.max_version)
    };
    assert!(max(ApiKey::Fetch) >= Some(13));
    assert!(max(ApiKey::Metadata) >= Some(12));
    assert!(max(ApiKey::ListOffsets) >= Some(8));

    assert_eq!(create(&mut c, vec![new_topic("ided", 1)]), vec![0]);
    produce_ok(
        &mut c,
        "ided",
        0,
        batch(&[(None, b"a", 1), (None, b"b", 2)]),
    );
    let by_name = metadata(
        &mut c,
        Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("ided")))
        ]),
    );
    let id = by_name.topics[0].topic_id;
    assert!(!id.is_nil());
    let by_id = metadata(
        &mut c,
        Some(vec![MetadataRequestTopic::default()
            .with_name(None)
            .with_topic_id(id)]),
    );
    assert_eq!(by_id.topics[0].error_code, 0);
    assert_eq!(
        by_id.topics[0].name.as_ref().map(|n| n.as_str()),
        Some("ided")
    );
    let unknown = uuid::Uuid::new_v4();
    let missing = metadata(
        &mut c,
        Some(vec![MetadataRequestTopic::default()
            .with_name(None)
            .with_topic_id(unknown)]),
    );
    assert_eq!(missing.topics[0].error_code, UNKNOWN_TOPIC_ID);
    assert!(missing.topics[0].name.is_none());

    let by_id_fetch = |c: &mut RawConn, id: uuid::Uuid| -> FetchResponse {
        let mut topic = fetch_partitions("", &[(0, 0)], 1 << 20);
        topic.topic_id = id;
        c.request(ApiKey::Fetch, 13, &fetch_request(1 << 20, vec![topic]))
    };
    let resp = by_id_fetch(&mut c, id);
    assert_eq!(resp.responses[0].topic_id, id);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 2);
    assert_eq!(batches_of(&p.records).len(), 1);
    let resp = by_id_fetch(&mut c, unknown);
    assert_eq!(resp.responses[0].partitions[0].error_code, UNKNOWN_TOPIC_ID);
    // The newest Fetch version answers by id too.
    let mut topic = fetch_partitions("", &[(0, 0)], 1 << 20);
    topic.topic_id = id;
    let resp: FetchResponse = c.request(
        ApiKey::Fetch,
        max(ApiKey::Fetch).unwrap(),
        &fetch_request(1 << 20, vec![topic]),
    );
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
}

/// librdkafka 0011: a compacted topic refuses records without a key; the response names
/// them (record_errors, v8+), and the client fails exactly those with INVALID_RECORD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_on_a_compacted_topic_get_record_errors() {
    let server = Standalone::start();
    let mut c = RawConn::connect(server.kafka);
    let compacted = new_topic("compacted", 1).with_configs(vec![CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("cleanup.policy"))
        .with_value(Some(StrBytes::from_static_str("compact")))]);
    assert_eq!(create(&mut c, vec![compacted]), vec![0]);
    let mixed = batch(&[
        (Some(b"k0"), b"a", 1),
        (None, b"b", 2),
        (Some(b"k2"), b"c", 3),
        (None, b"d", 4),
    ]);
    let resp: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce_request("compacted", 0, mixed.clone()),
    );
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, INVALID_RECORD);
    assert_eq!(
        p.record_errors
            .iter()
            .map(|e| e.batch_index)
            .collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert!(p.record_errors[0].batch_index_error_message.is_some());
    assert!(p.error_message.is_some());
    // Before v8 the same error, without the details.
    let resp: ProduceResponse =
        c.request(ApiKey::Produce, 7, &produce_request("compacted", 0, mixed));
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        INVALID_RECORD
    );
    assert_eq!(
        produce_ok(&mut c, "compacted", 0, batch(&[(Some(b"k"), b"v", 5)])),
        0
    );

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("broker.address.family", "v4")
        .set("linger.ms", "200")
        .create()
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..100 {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        let mut record = FutureRecord::<String, String>::to("compacted")
            .partition(0)
            .payload(&value);
        if i % 10 != 0 {
            record = record.key(&key);
        }
        deliveries.push((
            i,
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueued"),
        ));
    }
    let (mut invalid, mut other_failed, mut delivered) = (Vec::new(), 0, 0);
    for (i, d) in deliveries {
        match d.await.expect("delivery report") {
            Ok(_) => delivered += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord), _)) => {
                invalid.push(i)
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidDifferentRecord), _)) => {
                other_failed += 1
            }
            Err((e, _)) => panic!("record {i}: unexpected {e}"),
        }
    }
    assert_eq!(invalid, (0..100).step_by(10).collect::<Vec<_>>());
    assert_eq!(delivered + other_failed, 90);
}

/// librdkafka 0081: a replica assignment that names live brokers is accepted (it changes
/// nothing: brokers share every partition, bookies hold the copies); invalid ones get
/// Kafka's codes.
#[test]
fn replica_assignments_valid_and_invalid() {
    let server = Standalone::start();
    let mut c = RawConn::connect(server.kafka);
    let assign = |p: i32, brokers: &[i32]| {
        CreatableReplicaAssignment::default()
            .with_partition_index(p)
            .with_broker_ids(brokers.iter().map(|&b| BrokerId(b)).collect())
    };
    let manual = |topic: &str, assignments: Vec<CreatableReplicaAssignment>| {
        new_topic(topic, -1).with_assignments(assignments)
    };
    let codes = create(
        &mut c,
        vec![
            manual("assigned", vec![assign(0, &[0]), assign(1, &[0])]),
            manual("unknown-broker", vec![assign(0, &[7])]),
            manual("same-broker-twice", vec![assign(0, &[0, 0])]),
            manual("gap", vec![assign(0, &[0]), assign(2, &[0])]),
            manual("no-replicas", vec![assign(0, &[])]),
            new_topic("with-count", 2).with_assignments(vec![assign(0, &[0])]),
        ],
    );
    assert_eq!(
        codes,
        vec![
            0,
            INVALID_REPLICA_ASSIGNMENT,
            INVALID_REPLICA_ASSIGNMENT,
            INVALID_REPLICA_ASSIGNMENT,
            INVALID_REPLICA_ASSIGNMENT,
            INVALID_REQUEST
        ]
    );
    let m = metadata(
        &mut c,
        Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("assigned")))
        ]),
    );
    assert_eq!(m.topics[0].partitions.len(), 2);

    let grow = |count: i32, assignments: &[&[i32]]| {
        CreatePartitionsTopic::default()
            .with_name(name("assigned"))
            .with_count(count)
            .with_assignments(Some(
                assignments
                    .iter()
                    .map(|b| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(b.iter().map(|&b| BrokerId(b)).collect())
                    })
                    .collect(),
            ))
    };
    assert_eq!(
        create_partitions(&mut c, grow(4, &[&[0]])),
        INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        create_partitions(&mut c, grow(4, &[&[0], &[3]])),
        INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(create_partitions(&mut c, grow(4, &[&[0], &[0]])), 0);
}

/// librdkafka 0089/0102: members that join a new group together land in one generation
/// (group.initial.rebalance.delay.ms, 3 s by default as in Kafka), not one rebalance each.
#[test]
fn members_joining_together_share_the_first_generation() {
    let server = Standalone::start();
    let port = server.kafka;
    let join = move || {
        let mut c = RawConn::connect(port);
        let req = JoinGroupRequest::default()
            .with_group_id(group("together"))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(&[
                    0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
                ]))]);
        let first: JoinGroupResponse = c.request(ApiKey::JoinGroup, 5, &req);
        assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
        let joined: JoinGroupResponse = c.request(
            ApiKey::JoinGroup,
            5,
            &req.with_member_id(first.member_id.clone()),
        );
        (
            joined.error_code,
            joined.generation_id,
            joined.leader,
            joined.members.len(),
        )
    };
    let a = std::thread::spawn(join);
    std::thread::sleep(Duration::from_millis(500));
    let b = std::thread::spawn(join);
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_eq!((a.0, b.0), (0, 0));
    assert_eq!((a.1, b.1), (1, 1), "both in the first generation");
    assert_eq!(a.2, b.2, "one leader");
    assert_eq!(a.3 + b.3, 2, "the leader sees both members");
}

/// librdkafka 0011 turns compaction on and off with IncrementalAlterConfigs APPEND and
/// SUBTRACT of `cleanup.policy`.
#[test]
fn incremental_alter_configs_turns_compaction_on_and_off() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    const INVALID_CONFIG: i16 = 40;
    let server = Standalone::start();
    let mut c = RawConn::connect(server.kafka);
    assert_eq!(create(&mut c, vec![new_topic("toggled", 1)]), vec![0]);
    let alter = |c: &mut RawConn, topic: &str, name: &'static str, op: i8, value: &'static str| {
        let resp: IncrementalAlterConfigsResponse = c.request(
            ApiKey::IncrementalAlterConfigs,
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_string(topic.to_string()))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_config_operation(op)
                        .with_value(Some(StrBytes::from_static_str(value)))]),
            ]),
        );
        resp.responses[0].error_code
    };
    let policy = |c: &mut RawConn| {
        let resp: DescribeConfigsResponse = c.request(
            ApiKey::DescribeConfigs,
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("toggled"))
                    .with_configuration_keys(Some(vec![StrBytes::from_static_str(
                        "cleanup.policy",
                    )])),
            ]),
        );
        resp.results[0].configs[0]
            .value
            .as_ref()
            .map(|v| v.as_str().to_string())
    };
    let keyless = || batch(&[(Some(b"k"), b"a", 1), (None, b"b", 2)]);
    assert_eq!(produce_ok(&mut c, "toggled", 0, keyless()), 0);
    assert_eq!(alter(&mut c, "toggled", "cleanup.policy", 2, "compact"), 0);
    assert_eq!(policy(&mut c).as_deref(), Some("delete,compact"));
    assert_eq!(
        raw_produce(&mut c, "toggled", 0, keyless()).0,
        INVALID_RECORD
    );
    assert_eq!(alter(&mut c, "toggled", "cleanup.policy", 3, "compact"), 0);
    assert_eq!(policy(&mut c).as_deref(), Some("delete"));
    assert_eq!(produce_ok(&mut c, "toggled", 0, keyless()), 2);
    assert_eq!(
        alter(&mut c, "toggled", "no.such.config", 0, "1"),
        INVALID_CONFIG
    );
    assert_eq!(
        alter(&mut c, "no-such-topic", "retention.ms", 0, "1"),
        UNKNOWN_TOPIC_OR_PARTITION
    );
}
