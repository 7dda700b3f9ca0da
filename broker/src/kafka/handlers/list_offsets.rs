//! ListOffsets: the earliest offset, the latest, the first at or after a timestamp (offset
//! -1 if every record is older, or the partition is empty), or (v7+) the record with the
//! largest timestamp. Nothing is tiered yet, so the earliest local offset (v8+) is the log
//! start and the latest tiered offset (v9+) is -1, as Kafka answers without remote storage.
//! v10 adds a timeout for remote lookups, which never happen here.
use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};

use crate::log::LogError;
use crate::topics::codes;
use crate::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub async fn list_offsets(broker: &Broker, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::new();
    for topic in req.topics {
        let meta = broker.topics.get(&topic.name).await.ok().flatten();
        let mut partitions = Vec::new();
        for p in topic.partitions {
            // leader_epoch stays -1 (unknown): it exists only from v4 and we report no epochs.
            let response =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let log = match &meta {
                Some(meta) if (0..meta.partitions).contains(&p.partition_index) => {
                    broker.partitions.get(&topic.name, p.partition_index).await
                }
                _ => {
                    partitions.push(
                        response
                            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_offset(-1)
                            .with_timestamp(-1),
                    );
                    continue;
                }
            };
            let response = match log {
                Err(e) => response
                    .with_error_code(e.code)
                    .with_offset(-1)
                    .with_timestamp(-1),
                Ok(log) => match p.timestamp {
                    LATEST => response
                        .with_offset(log.high_watermark())
                        .with_timestamp(-1),
                    EARLIEST | EARLIEST_LOCAL => response
                        .with_offset(log.log_start_offset())
                        .with_timestamp(-1),
                    LATEST_TIERED => response.with_offset(-1).with_timestamp(-1),
                    MAX_TIMESTAMP => found(response, log.offset_of_max_timestamp().await),
                    ts => found(response, log.offset_for_timestamp(ts).await),
                },
            };
            partitions.push(response);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// A lookup's answer: the (offset, timestamp) found, -1/-1 if none, or the error.
fn found(
    response: ListOffsetsPartitionResponse,
    lookup: Result<Option<(i64, i64)>, LogError>,
) -> ListOffsetsPartitionResponse {
    match lookup {
        Ok(Some((offset, timestamp))) => response.with_offset(offset).with_timestamp(timestamp),
        Ok(None) => response.with_offset(-1).with_timestamp(-1),
        Err(e) => response
            .with_error_code(e.code)
            .with_offset(-1)
            .with_timestamp(-1),
    }
}
