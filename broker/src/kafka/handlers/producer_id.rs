//! InitProducerId for idempotent producers. Transactions are not supported yet.
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::ProducerId;
use tracing::warn;

use crate::Broker;

const UNKNOWN_SERVER_ERROR: i16 = -1;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const INVALID_REQUEST: i16 = 42;

pub async fn init_producer_id(
    broker: &Broker,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match req.transactional_id.as_deref().map(|id| id.is_empty()) {
        None => {}
        // Kafka's answer to an empty transactional id.
        Some(true) => return response.with_error_code(INVALID_REQUEST),
        Some(false) => return response.with_error_code(COORDINATOR_NOT_AVAILABLE),
    }
    // KIP-360: an idempotent producer that lost its sequence state asks for an epoch bump of
    // its own id; a fresh id does the same job and cannot collide.
    match broker.producer_ids.next().await {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            warn!(error = %e, "allocating a producer id failed");
            response.with_error_code(UNKNOWN_SERVER_ERROR)
        }
    }
}
