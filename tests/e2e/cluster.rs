//! The three roles as separate processes, talking over TCP.
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rdkafka::Message;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_bookie_and_broker_as_separate_processes() {
    let dir = tempfile::tempdir().unwrap();
    let data = |role: &str| dir.path().join(role).display().to_string();
    let metadata_port = free_port();
    let metadata_addr = format!("127.0.0.1:{metadata_port}");
    let http = free_port();
    let mut metadata = Process::spawn(
        vec![
            "metadata".into(),
            "--data-dir".into(),
            data("metadata"),
            "--listen".into(),
            metadata_addr.clone(),
            "--http-listen".into(),
            format!("127.0.0.1:{http}"),
        ],
        http,
        dir.path().join("metadata.log"),
    );
    metadata.wait_ready();
    let http = free_port();
    let mut bookie = Process::spawn(
        vec![
            "bookie".into(),
            "--data-dir".into(),
            data("bookie"),
            "--id".into(),
            "b1".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", free_port()),
            "--metadata-addr".into(),
            metadata_addr.clone(),
            "--http-listen".into(),
            format!("127.0.0.1:{http}"),
        ],
        http,
        dir.path().join("bookie.log"),
    );
    bookie.wait_ready();
    let http = free_port();
    let kafka = free_port();
    let mut broker = Process::spawn(
        vec![
            "broker".into(),
            "--data-dir".into(),
            data("broker"),
            "--kafka-listen".into(),
            format!("127.0.0.1:{kafka}"),
            "--metadata-addr".into(),
            metadata_addr,
            "--http-listen".into(),
            format!("127.0.0.1:{http}"),
        ],
        http,
        dir.path().join("broker.log"),
    );
    broker.wait_ready();

    let bootstrap = format!("127.0.0.1:{kafka}");
    create_topic(&bootstrap, "split", 2).await;
    let producer = producer(&bootstrap);
    for i in 0..20 {
        producer
            .send(
                FutureRecord::<(), String>::to("split")
                    .partition(i % 2)
                    .payload(&format!("{i}")),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    let consumer = assigned_consumer(&bootstrap);
    assign_from_beginning(&consumer, "split", 2);
    let got = consume(&consumer, 20, Duration::from_secs(30));
    assert_eq!(got.len(), 20, "broker log:\n{}", broker.log_text());
    assert!(got.iter().all(|m| m.payload().is_some()));

    // The broker is stateless: a restarted broker serves the same data.
    broker.restart();
    let consumer = assigned_consumer(&bootstrap);
    assign_from_beginning(&consumer, "split", 2);
    assert_eq!(consume(&consumer, 20, Duration::from_secs(30)).len(), 20);
    bookie.stop();
    metadata.stop();
}
