//! kafkajs 2.2.4, the most used Node.js client: admin, an idempotent producer (acks=-1) and
//! consumer groups. The scenarios are in tests/clients/node/kafkajs_clients.js.
use std::time::Duration;

use crate::clients::kafkajs;
use crate::harness::*;
use crate::java::assert_split;

const TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn kafkajs_admin_creates_describes_grows_and_deletes_topics() {
    let kafkajs = kafkajs();
    let server = Standalone::start();
    let out = kafkajs.run(&[&server.bootstrap(), "admin"], "", TIMEOUT);
    assert_eq!(
        out,
        "created=true\n\
         create-again=false\n\
         describe name=kafkajs-admin partitions=3\n\
         partition 0 leader=0 replicas=1 isr=1\n\
         partition 1 leader=0 replicas=1 isr=1\n\
         partition 2 leader=0 replicas=1 isr=1\n\
         config retention.ms=86400000 default=false\n\
         config cleanup.policy=delete default=false\n\
         cluster id=stratalog nodes=1 controller=0 node0=127.0.0.1\n\
         partitions-after-increase=5\n\
         offsets=0:0-0,1:0-0,2:0-0,3:0-0,4:0-0\n\
         listed=true\n\
         listed-after-delete=false\n"
    );
}

/// kafkajs itself ships only the none and gzip codecs.
#[test]
fn kafkajs_idempotent_producer_keys_headers_consumed_exactly() {
    let kafkajs = kafkajs();
    let server = Standalone::start();
    for codec in ["none", "gzip"] {
        let out = kafkajs.run(&[&server.bootstrap(), "records", codec], "", TIMEOUT);
        assert_eq!(
            out,
            format!(
                "producer idempotent=true acks=-1\n\
                 records codec={codec} produced=2000 consumed=2000 partitions-used=3\n"
            ),
            "codec {codec}"
        );
    }
}

/// The same story as the Java test: a alone, b joins, a leaves, b stops after 550 of 600
/// records; server restart; a new member (autoCommit) gets exactly the other 50 and 100 new
/// ones, and its commits cover all 700.
#[test]
fn kafkajs_group_rebalances_and_resumes_from_committed_offsets_after_restart() {
    let kafkajs = kafkajs();
    let mut server = Standalone::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("processed.txt");
    let file = file.to_str().unwrap();

    let first = kafkajs.run(
        &[
            &server.bootstrap(),
            "group-first",
            "kafkajs-group",
            "kafkajs-g",
            file,
        ],
        "",
        TIMEOUT,
    );
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 7, "{first}");
    assert_eq!(lines[0], "alone a=0,1,2,3");
    assert_split(lines[1]);
    assert_eq!(
        &lines[2..],
        [
            "both-processed=true",
            "left b=0,1,2,3",
            "processed=550 distinct=550",
            "committed-partitions=4 committed-sum=550",
            "group state=Empty members=0",
        ]
    );

    server.process.restart();
    let resumed = kafkajs.run(
        &[
            &server.bootstrap(),
            "group-resume",
            "kafkajs-group",
            "kafkajs-g",
            file,
        ],
        "",
        TIMEOUT,
    );
    assert_eq!(
        resumed,
        "committed-partitions=4 committed-sum=550\n\
         resumed=150 repeated=0 lost=0 unknown=0\n\
         committed-after-sum=700\n"
    );
}
