//! Consumer groups with librdkafka: rebalancing between two members, committed offsets.
use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

use crate::harness::*;

fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    group_consumer_with(bootstrap, group, &[])
}

fn group_consumer_with(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = client_config(bootstrap);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("group consumer")
}

fn assignment(c: &BaseConsumer) -> HashSet<i32> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls both consumers until `done` holds or the deadline passes.
fn poll_until(
    consumers: &[&BaseConsumer],
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for c in consumers {
            let _ = c.poll(Duration::from_millis(50));
        }
        if done() {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_rebalance_and_resume_from_committed_offsets() {
    let server = Standalone::start();
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "grouped", 4).await;
    let producer = producer(&bootstrap);
    for i in 0..40 {
        producer
            .send(
                FutureRecord::<(), String>::to("grouped")
                    .partition(i % 4)
                    .payload(&format!("r{i}")),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    let a = group_consumer(&bootstrap, "g1");
    let b = group_consumer(&bootstrap, "g1");
    a.subscribe(&["grouped"]).unwrap();
    b.subscribe(&["grouped"]).unwrap();
    let balanced = poll_until(&[&a, &b], Duration::from_secs(30), || {
        let (sa, sb) = (assignment(&a), assignment(&b));
        sa.len() == 2 && sb.len() == 2 && sa.is_disjoint(&sb)
    });
    assert!(
        balanced,
        "no 2+2 assignment: a={:?} b={:?}\nlog:\n{}",
        assignment(&a),
        assignment(&b),
        server.process.log_text()
    );

    // Each member reads and commits its partitions' first 10 records (5 per partition).
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen < 20 && Instant::now() < deadline {
        for c in [&a, &b] {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                if m.offset() < 5 {
                    seen += 1;
                    let mut tpl = rdkafka::TopicPartitionList::new();
                    tpl.add_partition_offset(
                        "grouped",
                        m.partition(),
                        rdkafka::Offset::Offset(m.offset() + 1),
                    )
                    .unwrap();
                    c.commit(&tpl, CommitMode::Sync).unwrap();
                }
            }
        }
    }
    assert!(seen >= 20, "consumed {seen} of the first 20 records");

    // One member leaves: the other takes every partition.
    drop(b);
    let took_over = poll_until(&[&a], Duration::from_secs(30), || assignment(&a).len() == 4);
    assert!(took_over, "remaining member has {:?}", assignment(&a));
    drop(a);

    // A new member of the group resumes from the committed offsets (5 per partition).
    let c = group_consumer(&bootstrap, "g1");
    c.subscribe(&["grouped"]).unwrap();
    let mut first_offsets = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while first_offsets.len() < 4 && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            first_offsets.entry(m.partition()).or_insert(m.offset());
        }
    }
    assert_eq!(
        first_offsets.len(),
        4,
        "log:\n{}",
        server.process.log_text()
    );
    assert!(
        first_offsets.values().all(|&o| o == 5),
        "resumed at {first_offsets:?}"
    );
    let committed = c.committed(Duration::from_secs(10)).unwrap();
    assert!(committed
        .elements()
        .iter()
        .all(|e| e.offset() == rdkafka::Offset::Offset(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_with_metadata_survive_a_restart() {
    let mut server = Standalone::start();
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "kept", 1).await;
    let c = group_consumer(&bootstrap, "g2");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("kept", 0, rdkafka::Offset::Offset(42))
        .unwrap();
    let mut with_meta = rdkafka::TopicPartitionList::new();
    with_meta
        .add_partition_offset("kept", 0, rdkafka::Offset::Offset(42))
        .unwrap();
    with_meta
        .find_partition("kept", 0)
        .unwrap()
        .set_metadata("checkpoint-7");
    c.commit(&with_meta, CommitMode::Sync).unwrap();
    drop(c);

    server.process.restart();
    let c = group_consumer(&bootstrap, "g2");
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let e = &committed.elements()[0];
    assert_eq!(e.offset(), rdkafka::Offset::Offset(42));
    assert_eq!(e.metadata(), "checkpoint-7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_rebalance_incrementally() {
    let server = Standalone::start();
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "coop", 4).await;
    let cooperative = [("partition.assignment.strategy", "cooperative-sticky")];
    let a = group_consumer_with(&bootstrap, "g-coop", &cooperative);
    a.subscribe(&["coop"]).unwrap();
    assert!(
        poll_until(&[&a], Duration::from_secs(30), || assignment(&a).len() == 4),
        "first member got {:?}",
        assignment(&a)
    );
    let b = group_consumer_with(&bootstrap, "g-coop", &cooperative);
    b.subscribe(&["coop"]).unwrap();
    let balanced = poll_until(&[&a, &b], Duration::from_secs(30), || {
        let (sa, sb) = (assignment(&a), assignment(&b));
        sa.len() == 2 && sb.len() == 2 && sa.is_disjoint(&sb)
    });
    assert!(balanced, "a={:?} b={:?}", assignment(&a), assignment(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_rejoins_without_losing_its_partitions() {
    let server = Standalone::start();
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "static", 2).await;
    let member = |id: &'static str| {
        group_consumer_with(&bootstrap, "g-static", &[("group.instance.id", id)])
    };
    let a = member("instance-a");
    let b = member("instance-b");
    a.subscribe(&["static"]).unwrap();
    b.subscribe(&["static"]).unwrap();
    assert!(poll_until(
        &[&a, &b],
        Duration::from_secs(30),
        || assignment(&a).len() == 1 && assignment(&b).len() == 1
    ));
    let before = assignment(&b);
    // A static member that goes away without leaving (like a restart) and comes back with the
    // same instance id gets its partition back; the other member keeps its own throughout.
    drop(b);
    let b = member("instance-b");
    b.subscribe(&["static"]).unwrap();
    assert!(
        poll_until(&[&a, &b], Duration::from_secs(30), || assignment(&b)
            == before),
        "b got {:?}",
        assignment(&b)
    );
    assert_eq!(assignment(&a).len(), 1);
}
