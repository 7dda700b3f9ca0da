//! Other Kafka clients than the reference one: Debian's kcat (built on librdkafka 2.0.2) and
//! kafka-python. `.ci/run` installs both; where one is missing the test says so and passes.
use std::process::{Command, Stdio};

use crate::harness::*;

fn have(program: &str, probe: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: {program} is not installed (.ci/run installs it)");
    }
    ok
}

fn run(program: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kcat_produces_consumes_lists_and_joins_a_group() {
    if !have("kcat", &["-V"]) {
        return;
    }
    let server = Standalone::start();
    let b = server.bootstrap();
    run(
        "kcat",
        &["-b", &b, "-t", "kc", "-K:", "-P"],
        "k1:hello\nk2:world\n",
    );
    let out = run(
        "kcat",
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
    );
    assert_eq!(out, "k1=hello@0\nk2=world@1\n");
    let listing = run("kcat", &["-b", &b, "-L", "-t", "kc"], "");
    assert!(
        listing.contains("topic \"kc\" with 1 partitions"),
        "{listing}"
    );
    let offsets = run("kcat", &["-b", &b, "-Q", "-t", "kc:0:0"], "");
    assert!(offsets.contains("offset 0"), "{offsets}");
    let group = run(
        "kcat",
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
    );
    assert_eq!(group, "hello\nworld\n");
}

#[test]
fn kafka_python_admin_producer_and_group_consumer() {
    if !have("python3", &["-c", "import kafka"]) {
        return;
    }
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
    let out = run("python3", &["-c", script, &server.bootstrap()], "");
    assert_eq!(
        out.trim(),
        "10 0",
        "all ten records once, and nothing again after the commit"
    );
}
