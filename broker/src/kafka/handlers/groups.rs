//! FindCoordinator: every broker coordinates the groups of its clients. The group APIs
//! themselves go straight to [`crate::group::GroupCoordinator`].
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::BrokerId;

use super::s;
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
