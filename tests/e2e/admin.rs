//! Topic administration through librdkafka's AdminClient.
use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_describe_grow_and_delete_topics() {
    let server = Standalone::start_with(&["--auto-create-topics", "false"]);
    let admin = admin(&server.bootstrap());
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));

    let created = admin
        .create_topics(
            &[
                NewTopic::new("orders", 3, TopicReplication::Fixed(1)).set("retention.ms", "1000"),
                NewTopic::new("bad/name", 1, TopicReplication::Fixed(1)),
            ],
            &opts,
        )
        .await
        .unwrap();
    assert!(created[0].is_ok());
    assert!(
        matches!(created[1], Err((_, RDKafkaErrorCode::InvalidTopic))),
        "{:?}",
        created[1]
    );

    let bad_config = admin
        .create_topics(
            &[NewTopic::new("bad-config", 1, TopicReplication::Fixed(1))
                .set("retention.ms", "soon")],
            &opts,
        )
        .await
        .unwrap();
    assert!(
        matches!(bad_config[0], Err((_, RDKafkaErrorCode::InvalidConfig))),
        "{:?}",
        bad_config[0]
    );

    let again = admin
        .create_topics(
            &[NewTopic::new("orders", 3, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    assert!(matches!(
        again[0],
        Err((_, RDKafkaErrorCode::TopicAlreadyExists))
    ));

    let consumer = assigned_consumer(&server.bootstrap());
    let md = consumer
        .fetch_metadata(Some("orders"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);

    let configs = admin
        .describe_configs(&[ResourceSpecifier::Topic("orders")], &opts)
        .await
        .unwrap();
    let resource = configs[0].as_ref().expect("config resource");
    let retention = resource.get("retention.ms").expect("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("1000"));

    let grown = admin
        .create_partitions(&[NewPartitions::new("orders", 5)], &opts)
        .await
        .unwrap();
    assert!(grown[0].is_ok());
    let shrink = admin
        .create_partitions(&[NewPartitions::new("orders", 2)], &opts)
        .await
        .unwrap();
    assert!(matches!(
        shrink[0],
        Err((_, RDKafkaErrorCode::InvalidPartitions))
    ));
    let md = consumer
        .fetch_metadata(Some("orders"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);

    let deleted = admin
        .delete_topics(&["orders", "missing"], &opts)
        .await
        .unwrap();
    assert!(deleted[0].is_ok());
    assert!(matches!(
        deleted[1],
        Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))
    ));
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    assert!(md.topics().iter().all(|t| t.name() != "orders"));
}
