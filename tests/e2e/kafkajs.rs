//! kafkajs 2.2.4, the most used Node.js client: admin, an idempotent producer (acks=-1) and
//! consumer groups. The scenarios are in tests/clients/node/kafkajs_clients.js.
use std::time::Duration;

use crate::clients::{group_rebalances_and_resumes, kafkajs};
use crate::harness::*;

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
    group_rebalances_and_resumes(&kafkajs(), "kafkajs", &[], "committed-after-sum=700");
}
