//! End-to-end runs of every command against librdkafka's built-in mock cluster (an
//! in-process Kafka stand-in: Produce, Fetch, Metadata, group and offset APIs, but no
//! CreateTopics, so topics are created through the mock). These check the tool's own
//! plumbing — pacing, counting, completion tracking, error paths — not any server.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::{cluster, run, Cli};

fn mock(topic: &str, partitions: i32) -> (MockCluster<'static, DefaultProducerContext>, String) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster
        .create_topic(topic, partitions, 1)
        .expect("mock topic");
    let bootstrap = cluster.bootstrap_servers();
    (cluster, bootstrap)
}

fn bench(args: &str) -> anyhow::Result<()> {
    let argv = std::iter::once("stratalog-bench").chain(args.split_whitespace());
    run(Cli::try_parse_from(argv).expect("valid command line"))
}

#[test]
fn produce_consume_commit_end_to_end() {
    let (_cluster, bs) = mock("bench", 2);
    bench(&format!(
        "produce --bootstrap {bs} --topic bench --records 3000 --record-size 200 --json"
    ))
    .unwrap();
    bench(&format!("produce --bootstrap {bs} --topic bench --records 1000 --record-size 200 --compression lz4 --acks 1")).unwrap();
    bench(&format!(
        "consume --bootstrap {bs} --topic bench --records 4000 --timeout-secs 20"
    ))
    .unwrap();
    bench(&format!(
        "consume --bootstrap {bs} --topic bench --records 4000 --group g1 --timeout-secs 20 --json"
    ))
    .unwrap();
    bench(&format!(
        "commit --bootstrap {bs} --topic bench --group c1 --commits 300 --concurrency 2 --sync"
    ))
    .unwrap();
    bench(&format!("commit --bootstrap {bs} --topic bench --group c2 --commits 2000 --concurrency 2 --max-in-flight 100 --json"))
        .unwrap();
}

#[test]
fn fixed_rate_paces_sends() {
    let (_cluster, bs) = mock("paced", 1);
    // 0.2 MB/s of 200-byte records = 1000 records/s, so 1000 records take about 1 s.
    let start = Instant::now();
    bench(&format!(
        "produce --bootstrap {bs} --topic paced --records 1000 --record-size 200 --rate 0.2"
    ))
    .unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(950),
        "finished too fast: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "finished too slowly: {took:?}"
    );
}

#[test]
fn duration_mode_stops_on_time() {
    let (_cluster, bs) = mock("timed", 1);
    let start = Instant::now();
    bench(&format!(
        "produce --bootstrap {bs} --topic timed --duration-secs 1 --record-size 100 --rate 0.1"
    ))
    .unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn consume_reports_too_few_records() {
    let (_cluster, bs) = mock("short", 1);
    bench(&format!(
        "produce --bootstrap {bs} --topic short --records 10"
    ))
    .unwrap();
    let err = bench(&format!(
        "consume --bootstrap {bs} --topic short --records 20 --timeout-secs 2"
    ))
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("received 10 of 20 records"),
        "{err:#}"
    );
}

#[test]
fn consume_missing_topic_says_how_to_fill_it() {
    let (_cluster, bs) = mock("other", 1);
    let err = bench(&format!(
        "consume --bootstrap {bs} --topic missing --records 5"
    ))
    .unwrap_err();
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
}

#[test]
fn unreachable_endpoint_fails_fast_with_a_hint() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let err = bench(&format!("produce --bootstrap 127.0.0.1:{port} --records 5")).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("cannot reach") && msg.contains("standalone"),
        "{msg}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn produce_fails_when_the_endpoint_stops_acknowledging() {
    // The mock lives on its own thread (it is not Send) and goes away after 1 s.
    let (tx, rx) = std::sync::mpsc::channel();
    let owner = std::thread::spawn(move || {
        let (_cluster, bs) = mock("dying", 1);
        tx.send(bs).unwrap();
        std::thread::sleep(Duration::from_secs(1));
    });
    let bs = rx.recv().unwrap();
    let start = Instant::now();
    let err = bench(&format!(
        "produce --bootstrap {bs} --topic dying --duration-secs 30 --record-size 100 --rate 0.1 --timeout-secs 2"
    ))
    .unwrap_err();
    owner.join().unwrap();
    assert!(
        format!("{err:#}").contains("stopped acknowledging"),
        "{err:#}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn prop_parser_requires_key_value() {
    assert_eq!(
        cluster::parse_prop("a.b=c=d"),
        Ok(("a.b".into(), "c=d".into()))
    );
    assert!(cluster::parse_prop("novalue").is_err());
    assert!(cluster::parse_prop("=x").is_err());
}

/// Not a test: keeps a mock cluster (topic `bench`, 2 partitions) up so the CLI can be
/// tried without a server. `MOCK_SECS=120 cargo test -p stratalog-bench mock_cluster --
/// --ignored --nocapture` prints its bootstrap address.
#[test]
#[ignore]
fn mock_cluster_for_manual_runs() {
    let (_cluster, bs) = mock("bench", 2);
    println!("mock cluster bootstrap: {bs}");
    let secs = std::env::var("MOCK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    std::thread::sleep(Duration::from_secs(secs));
}
