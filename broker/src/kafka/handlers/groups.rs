//! FindCoordinator: every broker coordinates the groups of its clients. The group APIs
//! themselves go to [`crate::group::GroupCoordinator`]; OffsetCommit first refuses
//! partitions of topics that do not exist, as Kafka does before its coordinator.
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::s;
use crate::topics::codes;
use crate::Broker;

const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const GROUP_KEY: i8 = 0;

pub fn find_coordinator(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (host, port) = broker.advertised();
    let node = BrokerId(broker.config.node_id);
    let error = if req.key_type == GROUP_KEY {
        0
    } else {
        COORDINATOR_NOT_AVAILABLE
    };
    let message = (error != 0).then(|| s("transaction coordinators are not supported yet"));
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node)
                    .with_host(s(host.clone()))
                    .with_port(port as i32)
                    .with_error_code(error)
                    .with_error_message(message.clone())
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(error)
        .with_error_message(message)
        .with_node_id(node)
        .with_host(s(host))
        .with_port(port as i32)
}

/// OffsetCommit: UNKNOWN_TOPIC_OR_PARTITION for partitions of topics that do not exist (or
/// beyond a topic's partition count); the rest goes to the group coordinator.
pub async fn offset_commit(
    broker: &Broker,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let mut rejected = Vec::new();
    for t in &req.topics {
        // If the catalog cannot be read, the commit goes ahead: its own write reports
        // whether the metadata store is reachable.
        let meta = broker.topics.get(t.name.as_str()).await;
        for p in &t.partitions {
            rejected.push(match &meta {
                Ok(Some(m)) if (0..m.partitions).contains(&p.partition_index) => None,
                Ok(_) => Some(codes::UNKNOWN_TOPIC_OR_PARTITION),
                Err(_) => None,
            });
        }
    }
    broker
        .groups
        .offset_commit_checked(req, version, &rejected)
        .await
}
