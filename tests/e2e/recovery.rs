//! Ledger recovery across real processes (issue 5, item 2): an entry that reached one bookie
//! of three before the broker died is either on its whole write set after recovery or not
//! in the log at all — never kept on one copy.
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use stratalog_broker::catalog::{self, Segment};
use stratalog_broker::clients::bookie::BookieClient;
use stratalog_metadata::client::MetadataClient;

use crate::harness::*;

/// The segments of every partition, oldest first.
async fn segments(metadata: &MetadataClient) -> Vec<Segment> {
    metadata
        .list("/stratalog/logs/")
        .await
        .expect("list")
        .into_iter()
        .filter(|kv| kv.key.contains("/segments/"))
        .map(|kv| catalog::decode::<Segment>(&kv.key, kv.value).expect("segment"))
        .collect()
}

async fn has_entry(bookie: &BookieClient, ledger: u64, entry: u64) -> bool {
    bookie
        .read(ledger, entry, 1, 1 << 20, 0)
        .await
        .is_ok_and(|e| e.first().is_some_and(|e| e.entry_id == entry))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_on_one_bookie_is_re_replicated_or_dropped_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (_metadata, metadata_addr) = spawn_metadata(dir.path());
    let bookie_addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut bookies: Vec<Process> = (0..3)
        .map(|i| {
            spawn_bookie(
                dir.path(),
                &format!("b{i}"),
                &bookie_addrs[i],
                &metadata_addr,
            )
        })
        .collect();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "[broker]\nensemble_size = 3\nwrite_quorum = 3\nack_quorum = 2\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let (mut broker, kafka) = spawn_broker(dir.path(), &metadata_addr, &["--config", &config]);
    let bootstrap = format!("127.0.0.1:{kafka}");
    create_topic(&bootstrap, "recover", 1).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("broker.address.family", "v4")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    const ACKED: usize = 50;
    for i in 0..ACKED {
        producer
            .send(
                FutureRecord::<(), String>::to("recover").payload(&format!("acked-{i}")),
                Duration::from_secs(10),
            )
            .await
            .expect("acknowledged");
    }
    let metadata = MetadataClient::new(metadata_addr.clone());
    let ledger = segments(&metadata).await[0].ledger().unwrap().clone();
    assert_eq!(ledger.ensemble.len(), 3);
    let client = |id: &str| {
        let i: usize = id[1..].parse().unwrap();
        BookieClient::new(bookie_addrs[i].clone())
    };

    // Freeze two bookies of the ensemble: the next entry reaches only the third, so it is
    // never acknowledged (Qa = 2).
    let alive = ledger.ensemble[0].clone();
    let frozen: Vec<usize> = ledger.ensemble[1..]
        .iter()
        .map(|id| id[1..].parse().unwrap())
        .collect();
    for &i in &frozen {
        bookies[i].signal("STOP");
    }
    let unacked = {
        let producer = producer.clone();
        tokio::spawn(async move {
            producer
                .send(
                    FutureRecord::<(), str>::to("recover").payload("unacked"),
                    Duration::from_secs(120),
                )
                .await
        })
    };
    let entry = ACKED as u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !has_entry(&client(&alive), ledger.ledger_id, entry).await {
        assert!(Instant::now() < deadline, "the entry never reached {alive}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The broker dies, and so do the frozen bookies with the add still unread in their
    // sockets; they come back without it.
    broker.kill();
    for &i in &frozen {
        bookies[i].kill();
    }
    for &i in &frozen {
        bookies[i].restart();
    }
    for &i in &frozen {
        assert!(!has_entry(&client(&format!("b{i}")), ledger.ledger_id, entry).await);
    }
    broker.restart();

    // The producer's retry goes to the new owner, which recovers the ledger first.
    let delivered = tokio::time::timeout(Duration::from_secs(90), unacked)
        .await
        .expect("the retried produce completes")
        .unwrap();
    let closed = segments(&metadata)
        .await
        .into_iter()
        .find(|s| s.ledger().is_some_and(|l| l.ledger_id == ledger.ledger_id))
        .expect("the recovered segment");
    assert!(closed.closed);
    let last_entry = closed.ledger().unwrap().last_entry_id;
    match delivered {
        Ok(delivery) => {
            // Kept: at its offset, on every bookie of its write set.
            assert_eq!(delivery.offset, ACKED as i64);
            assert_eq!(last_entry, entry as i64);
        }
        Err((e, _)) => panic!("the retry failed: {e}"),
    }
    for id in &ledger.ensemble {
        for e in 0..=last_entry as u64 {
            assert!(
                has_entry(&client(id), ledger.ledger_id, e).await,
                "entry {e} of ledger {} is missing on {id} after recovery",
                ledger.ledger_id
            );
        }
    }

    // Lose the one bookie that had it first: everything is still readable, once.
    bookies[alive[1..].parse::<usize>().unwrap()].kill();
    let consumer = assigned_consumer(&bootstrap);
    assign_from_beginning(&consumer, "recover", 1);
    let got = consume(&consumer, ACKED + 1, Duration::from_secs(60));
    let values: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    let mut expected: Vec<String> = (0..ACKED).map(|i| format!("acked-{i}")).collect();
    expected.push("unacked".into());
    assert_eq!(values, expected, "broker log:\n{}", broker.log_text());
    let more = consume(&consumer, 1, Duration::from_secs(2));
    assert!(more.is_empty(), "nothing is in the log twice");
}

/// Runs the binary with `args` and returns its exit status and stderr, killing it after
/// `timeout` (a broker that should refuse to start must exit by itself).
fn run_to_exit(args: &[String], timeout: Duration) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stratalog"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

/// A broker refuses what it cannot serve correctly, with a message naming the fix: a
/// striped ensemble (E > Qw), and a metadata store in the first release's partition layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_refuse_striping_and_the_old_partition_layout_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("striped.toml");
    std::fs::write(
        &config,
        "[broker]\nensemble_size = 3\nwrite_quorum = 2\nack_quorum = 2\n",
    )
    .unwrap();
    let broker_args = |metadata: &str, config: Option<&Path>| {
        let mut args = vec![
            "broker".to_string(),
            "--data-dir".into(),
            dir.path().join("broker").display().to_string(),
            "--kafka-listen".into(),
            format!("127.0.0.1:{}", free_port()),
            "--http-listen".into(),
            format!("127.0.0.1:{}", free_port()),
            "--metadata-addr".into(),
            metadata.to_string(),
        ];
        if let Some(config) = config {
            args.extend(["--config".into(), config.display().to_string()]);
        }
        args
    };
    let (status, log) = run_to_exit(
        &broker_args("127.0.0.1:1", Some(&config)),
        Duration::from_secs(30),
    );
    assert!(status.is_some_and(|c| c != 0), "exit {status:?}: {log}");
    assert!(log.contains("ensemble_size = write_quorum"), "{log}");

    let (_metadata, metadata_addr) = spawn_metadata(dir.path());
    MetadataClient::new(metadata_addr.clone())
        .put(
            &format!("{}orders/0", catalog::LEGACY_PARTITIONS_PREFIX),
            bytes::Bytes::from_static(b"old"),
            stratalog_metadata::Expect::Any,
            None,
        )
        .await
        .unwrap();
    let (status, log) = run_to_exit(&broker_args(&metadata_addr, None), Duration::from_secs(30));
    assert!(status.is_some_and(|c| c != 0), "exit {status:?}: {log}");
    assert!(log.contains("layout of Stratalog 0.1"), "{log}");
}

/// A roll whose compare-and-set fails (here: the partition head changed behind the broker's
/// back, as when a reply is lost after the write applied) fails that one append; the next
/// append takes the partition over again and succeeds, instead of answering
/// NOT_LEADER_OR_FOLLOWER until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_roll_is_recovered_by_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let roles = three_roles(dir.path(), &["--ledger-roll-bytes", "1"]);
    let (kafka, metadata_addr) = (roles.kafka, roles.metadata_addr.clone());
    create_topic(&format!("127.0.0.1:{kafka}"), "rolling", 1).await;
    let mut conn = RawConn::connect(kafka);
    let batch = || record_batch(1, -1, -1, -1).freeze();
    assert_eq!(raw_produce(&mut conn, "rolling", 0, batch()), (0, 0));
    assert_eq!(raw_produce(&mut conn, "rolling", 0, batch()), (0, 1));
    // Rewrite the head with its own value: its revision moves, the broker's CAS fails.
    let metadata = MetadataClient::new(metadata_addr);
    let head = metadata
        .list("/stratalog/logs/")
        .await
        .unwrap()
        .into_iter()
        .find(|kv| kv.key.ends_with("/head"))
        .expect("the partition head");
    metadata
        .put(&head.key, head.value, stratalog_metadata::Expect::Any, None)
        .await
        .unwrap();
    let (code, _) = raw_produce(&mut conn, "rolling", 0, batch());
    assert_eq!(
        code, 6,
        "the append whose roll failed is refused (NOT_LEADER_OR_FOLLOWER)"
    );
    // The next one recovers the partition and lands right after what was acknowledged.
    assert_eq!(raw_produce(&mut conn, "rolling", 0, batch()), (0, 2));
    assert_eq!(raw_produce(&mut conn, "rolling", 0, batch()), (0, 3));
}
