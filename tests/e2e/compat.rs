//! Other Kafka clients than the reference one: Debian's kcat (built on librdkafka 2.0.2) and
//! kafka-python (pinned, in target/test-deps/venv). See clients.rs for how they are found; a
//! missing one fails the test with the command that installs it.
use std::time::Duration;

use crate::clients::{kafka_python, kcat};
use crate::harness::*;

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn kcat_produces_consumes_lists_and_joins_a_group() {
    let kcat = kcat();
    let server = Standalone::start();
    let b = server.bootstrap();
    kcat.run(
        &["-b", &b, "-t", "kc", "-K:", "-P"],
        "k1:hello\nk2:world\n",
        TIMEOUT,
    );
    let out = kcat.run(
        &[
            "-b",
            &b,
            "-t",
            "kc",
            "-C",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k=%s@%o\\n",
        ],
        "",
        TIMEOUT,
    );
    assert_eq!(out, "k1=hello@0\nk2=world@1\n");
    let listing = kcat.run(&["-b", &b, "-L", "-t", "kc"], "", TIMEOUT);
    assert!(
        listing.contains("topic \"kc\" with 1 partitions"),
        "{listing}"
    );
    let offsets = kcat.run(&["-b", &b, "-Q", "-t", "kc:0:0"], "", TIMEOUT);
    assert!(offsets.contains("offset 0"), "{offsets}");
    let group = kcat.run(
        &[
            "-b",
            &b,
            "-G",
            "kc-group",
            "-X",
            "auto.offset.reset=earliest",
            "-e",
            "-f",
            "%s\\n",
            "kc",
        ],
        "",
        TIMEOUT,
    );
    assert_eq!(group, "hello\nworld\n");
}

#[test]
fn kafka_python_admin_producer_and_group_consumer() {
    let python = kafka_python();
    let server = Standalone::start();
    let script = r#"
import sys
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
b = sys.argv[1]
KafkaAdminClient(bootstrap_servers=b).create_topics([NewTopic("orders", num_partitions=3, replication_factor=1)])
producer = KafkaProducer(bootstrap_servers=b, acks="all")
for i in range(10):
    producer.send("orders", key=b"customer-%d" % (i % 3), value=b"order %d" % i)
producer.flush()
consumer = KafkaConsumer("orders", bootstrap_servers=b, group_id="billing", auto_offset_reset="earliest", consumer_timeout_ms=5000)
values = sorted(r.value.decode() for r in consumer)
consumer.commit()
consumer.close()
again = KafkaConsumer("orders", bootstrap_servers=b, group_id="billing", auto_offset_reset="earliest", consumer_timeout_ms=3000)
print(len(values), len(list(again)))
"#;
    let out = python.run(&["-c", script, &server.bootstrap()], "", TIMEOUT);
    assert_eq!(
        out.trim(),
        "10 0",
        "all ten records once, and nothing again after the commit"
    );
}
