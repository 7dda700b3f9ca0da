//! The Apache Kafka Java client (kafka-clients 4.3.0) with its defaults: idempotent producer,
//! acks=all, classic consumer groups. The scenarios are in tests/clients/java/JavaClients.java.
use std::time::Duration;

use crate::clients::{java, lines_without};
use crate::harness::*;

const TIMEOUT: Duration = Duration::from_secs(180);
const PRODUCER_LINE: &str = "producer enable.idempotence=true acks=-1";

#[test]
fn java_admin_creates_describes_grows_and_deletes_topics() {
    let java = java();
    let server = Standalone::start();
    let out = java.run(&[&server.bootstrap(), "admin"], "", TIMEOUT);
    assert_eq!(
        out,
        "created=java-admin\n\
         create-again=TopicExistsException\n\
         describe name=java-admin partitions=3 internal=false topic-id-set=true\n\
         partition 0 leader=0 replicas=1 isr=1\n\
         partition 1 leader=0 replicas=1 isr=1\n\
         partition 2 leader=0 replicas=1 isr=1\n\
         config retention.ms=86400000 source=DYNAMIC_TOPIC_CONFIG\n\
         config cleanup.policy=delete source=DYNAMIC_TOPIC_CONFIG\n\
         cluster id=stratalog nodes=1 controller=0 node0=127.0.0.1\n\
         partitions-after-increase=5\n\
         listed=true\n\
         listed-after-delete=false\n"
    );
}

#[test]
fn java_idempotent_producer_keys_headers_every_codec_consumed_exactly() {
    let java = java();
    let server = Standalone::start();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let out = java.run(&[&server.bootstrap(), "records", codec], "", TIMEOUT);
        assert_eq!(
            out,
            format!(
                "{PRODUCER_LINE}\n\
                 records codec={codec} produced=2000 consumed=2000 partitions-used=3\n"
            ),
            "codec {codec}"
        );
    }
}

/// Member a alone, then b joins (a and b split the four partitions), a leaves (b takes all),
/// b stops after exactly 550 of 600 records. The server is killed and restarted; a new
/// member with the consumer's defaults (auto-commit) resumes from the committed offsets and
/// gets the other 50 and 100 new ones, none lost, none repeated; closing it commits all 700.
#[test]
fn java_group_rebalances_and_resumes_from_committed_offsets_after_restart() {
    let java = java();
    let mut server = Standalone::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("processed.txt");
    let file = file.to_str().unwrap();

    let first = java.run(
        &[
            &server.bootstrap(),
            "group-first",
            "java-group",
            "java-g",
            file,
        ],
        "",
        TIMEOUT,
    );
    let lines = lines_without(&first, &[PRODUCER_LINE]);
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
    let resumed = java.run(
        &[
            &server.bootstrap(),
            "group-resume",
            "java-group",
            "java-g",
            file,
        ],
        "",
        TIMEOUT,
    );
    assert_eq!(
        lines_without(&resumed, &[PRODUCER_LINE]),
        [
            "committed-partitions=4 committed-sum=550",
            "resumed=150 repeated=0 lost=0 unknown=0",
            "committed-on-close-sum=700",
        ]
    );
}

/// `joined a=P,Q b=R,S`: two partitions each, disjoint, together all four.
pub fn assert_split(line: &str) {
    let parts: Vec<Vec<i32>> = line
        .strip_prefix("joined ")
        .unwrap_or_else(|| panic!("not a join line: {line}"))
        .split(' ')
        .map(|m| {
            m.split_once('=')
                .unwrap()
                .1
                .split(',')
                .map(|p| p.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(parts.len(), 2, "{line}");
    assert_eq!((parts[0].len(), parts[1].len()), (2, 2), "{line}");
    let mut all: Vec<i32> = parts.concat();
    all.sort();
    assert_eq!(all, [0, 1, 2, 3], "{line}");
}
