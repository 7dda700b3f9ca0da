//! The Apache Kafka Java client (kafka-clients 4.3.0) with its defaults: idempotent producer,
//! acks=all, classic consumer groups. The scenarios are in tests/clients/java/JavaClients.java.
use std::time::Duration;

use crate::clients::{group_rebalances_and_resumes, java};
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
    group_rebalances_and_resumes(
        &java(),
        "java",
        &[PRODUCER_LINE],
        "committed-on-close-sum=700",
    );
}
