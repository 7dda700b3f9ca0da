//! A metadata service that stops answering for a while (here: frozen by SIGSTOP for 7 s, in
//! the three-process layout) makes group requests fail with codes clients retry, never
//! UNKNOWN_SERVER_ERROR, and a librdkafka group member gets through it.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{ApiKey, GroupId, OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;

use crate::harness::*;

const UNKNOWN_SERVER_ERROR: i16 = -1;
/// What Kafka answers for group-store writes that time out or cannot be made: the client
/// looks the coordinator up again and retries.
const RETRIABLE: [i16; 3] = [
    7,  // REQUEST_TIMED_OUT
    15, // COORDINATOR_NOT_AVAILABLE
    16, // NOT_COORDINATOR
];

/// A simple-consumer OffsetCommit (generation -1) of `offset` for `group`, partition 0.
fn commit(conn: &mut RawConn, group: &str, topic: &str, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(
                topic.to_string(),
            )))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let response: OffsetCommitResponse = conn.request(ApiKey::OffsetCommit, 8, &request);
    response.topics[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_requests_survive_a_frozen_metadata_service_with_retriable_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ThreeRoles {
        metadata,
        bookie: _bookie,
        broker: _broker,
        kafka,
        ..
    } = three_roles(dir.path(), &[]);
    let bootstrap = format!("127.0.0.1:{kafka}");
    create_topic(&bootstrap, "freeze", 1).await;
    let producer = producer(&bootstrap);
    for i in 0..100 {
        producer
            .send(
                FutureRecord::<(), str>::to("freeze")
                    .partition(0)
                    .payload(&format!("r{i}")),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }

    // Committers keep the metadata service busy, so requests are inside it when it stops.
    let stop = Arc::new(AtomicBool::new(false));
    let committers: Vec<_> = (0..6)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conn = RawConn::connect(kafka);
                let mut codes = BTreeMap::<i16, usize>::new();
                let mut last = i16::MIN;
                let mut offset = 0;
                while !stop.load(Ordering::Relaxed) {
                    offset += 1;
                    last = commit(&mut conn, &format!("raw-{i}"), "freeze", offset);
                    *codes.entry(last).or_default() += 1;
                }
                (codes, last)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    metadata.signal("STOP");
    // A group member arrives while the metadata service is frozen: JoinGroup, SyncGroup
    // (whose assignment must be stored) and then a commit.
    let member = std::thread::spawn({
        let bootstrap = bootstrap.clone();
        move || {
            let consumer: BaseConsumer = client_config(&bootstrap)
                .set("group.id", "members")
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .set("session.timeout.ms", "30000")
                .create()
                .expect("consumer");
            consumer.subscribe(&["freeze"]).expect("subscribe");
            let mut got = 0;
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut errors = Vec::new();
            while got < 100 && Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(_)) => got += 1,
                    Some(Err(e)) => errors.push(e.to_string()),
                    None => {}
                }
            }
            let committed = loop {
                match consumer.commit_consumer_state(CommitMode::Sync) {
                    Ok(()) => break Ok(()),
                    Err(e) if Instant::now() < deadline => {
                        errors.push(e.to_string());
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => break Err(e),
                }
            };
            (got, committed, errors)
        }
    });
    std::thread::sleep(Duration::from_secs(7));
    metadata.signal("CONT");
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);

    let mut all = BTreeMap::<i16, usize>::new();
    for c in committers {
        let (codes, last) = c.join().unwrap();
        for (code, n) in codes {
            *all.entry(code).or_default() += n;
        }
        assert_eq!(last, 0, "commits succeed again after the freeze");
    }
    let (got, committed, errors) = member.join().unwrap();
    eprintln!(
        "freeze: commit answers by error code {all:?}; group member consumed {got}, \
         commit {committed:?}, errors seen by the member {errors:?}"
    );
    assert!(
        !all.contains_key(&UNKNOWN_SERVER_ERROR),
        "UNKNOWN_SERVER_ERROR during the freeze: {all:?}"
    );
    for code in all.keys() {
        assert!(
            *code == 0 || RETRIABLE.contains(code),
            "code {code}: {all:?}"
        );
    }
    assert_eq!(got, 100, "the member got its assignment and every record");
    committed.expect("the member's commit");
    assert!(
        !errors
            .iter()
            .any(|e| e.contains("UnknownServerError") || e.contains("Unknown broker error")),
        "{errors:?}"
    );
}
