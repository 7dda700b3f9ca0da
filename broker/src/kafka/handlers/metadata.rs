//! Metadata and DescribeCluster: who serves what. Stratalog brokers are stateless and every
//! broker can serve every partition; with one broker it leads them all.
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::{
    DescribeClusterBroker, DescribeClusterResponse,
};
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use tracing::info;

use super::s;
use crate::catalog::TopicMeta;
use crate::topics::codes;
use crate::Broker;

/// "Not requested" for the authorized-operations fields.
const NO_OPERATIONS: i32 = i32::MIN;

pub async fn metadata(broker: &Broker, req: MetadataRequest, version: i16) -> MetadataResponse {
    let node = BrokerId(broker.config.node_id);
    let (host, port) = broker.advertised();
    let brokers = vec![MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(s(host))
        .with_port(port as i32)];
    // v0: an empty list means all topics; v1+: null means all, empty means none. From v10 a
    // topic may be named by id alone (null name).
    let requested: Option<Vec<Requested>> = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.into_iter()
                .filter_map(|t| match t.name {
                    Some(name) => Some(Requested::Name(name.to_string())),
                    None if !t.topic_id.is_nil() => Some(Requested::Id(t.topic_id)),
                    None => None,
                })
                .collect(),
        ),
    };
    let auto_create =
        broker.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let mut topics = Vec::new();
    match requested {
        None => match broker.topics.list().await {
            Ok(all) => topics.extend(
                all.iter()
                    .map(|(name, meta)| topic_entry(broker, name, Some(meta), 0)),
            ),
            Err(e) => tracing::warn!(error = %e.message, "listing topics for Metadata failed"),
        },
        Some(requested) => {
            for name in requested {
                let name = match name {
                    Requested::Name(name) => name,
                    Requested::Id(id) => {
                        topics.push(match broker.topics.by_id(id).await {
                            Ok(Some((name, meta))) => topic_entry(broker, &name, Some(&meta), 0),
                            Ok(None) => unknown_id(id, codes::UNKNOWN_TOPIC_ID),
                            Err(e) => unknown_id(id, e.code),
                        });
                        continue;
                    }
                };
                let entry = match broker.topics.get(&name).await {
                    Ok(Some(meta)) => topic_entry(broker, &name, Some(&meta), 0),
                    Ok(None) if auto_create => {
                        let created = broker
                            .topics
                            .create(&name, broker.config.default_partitions, Vec::new(), false)
                            .await;
                        match created {
                            Ok(meta) => {
                                info!(topic = %name, partitions = meta.partitions, "auto-created topic");
                                topic_entry(broker, &name, Some(&meta), 0)
                            }
                            // Lost a race with another creator: report what is there now.
                            Err(e) if e.code == codes::TOPIC_ALREADY_EXISTS => {
                                match broker.topics.get(&name).await {
                                    Ok(Some(meta)) => topic_entry(broker, &name, Some(&meta), 0),
                                    _ => topic_entry(
                                        broker,
                                        &name,
                                        None,
                                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                                    ),
                                }
                            }
                            Err(e) => topic_entry(broker, &name, None, e.code),
                        }
                    }
                    Ok(None) => topic_entry(broker, &name, None, codes::UNKNOWN_TOPIC_OR_PARTITION),
                    Err(e) => topic_entry(broker, &name, None, e.code),
                };
                topics.push(entry);
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(s(broker.config.cluster_id.clone())))
        .with_controller_id(node)
        .with_topics(topics)
        .with_cluster_authorized_operations(NO_OPERATIONS)
}

enum Requested {
    Name(String),
    Id(uuid::Uuid),
}

/// The answer for a topic id no topic has: no name, the id, the error.
fn unknown_id(id: uuid::Uuid, error_code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error_code)
        .with_name(None)
        .with_topic_id(id)
        .with_topic_authorized_operations(NO_OPERATIONS)
}

fn topic_entry(
    broker: &Broker,
    name: &str,
    meta: Option<&TopicMeta>,
    error_code: i16,
) -> MetadataResponseTopic {
    let node = BrokerId(broker.config.node_id);
    let partitions = meta.map_or(0, |m| m.partitions);
    MetadataResponseTopic::default()
        .with_error_code(error_code)
        .with_name(Some(TopicName(s(name))))
        .with_topic_id(meta.map_or(uuid::Uuid::nil(), |m| uuid::Uuid::from_bytes(m.id)))
        .with_topic_authorized_operations(NO_OPERATIONS)
        .with_partitions(
            (0..partitions)
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(node)
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}

pub fn describe_cluster(broker: &Broker, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let (host, port) = broker.advertised();
    DescribeClusterResponse::default()
        .with_cluster_id(s(broker.config.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.config.node_id))
            .with_host(s(host))
            .with_port(port as i32)])
        .with_cluster_authorized_operations(NO_OPERATIONS)
}
