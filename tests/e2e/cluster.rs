//! The three roles as separate processes, talking over TCP.
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rdkafka::Message;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_bookie_and_broker_as_separate_processes() {
    let dir = tempfile::tempdir().unwrap();
    let ThreeRoles {
        mut metadata,
        mut bookie,
        mut broker,
        kafka,
        ..
    } = three_roles(dir.path(), &[]);

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
