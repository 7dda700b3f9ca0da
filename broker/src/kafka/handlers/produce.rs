//! Produce: validate each partition's batch, append it, answer once it is durable.
//!
//! The first stage (runs in request order on the connection): look up the partition,
//! validate the batch (on a bounded CPU pool, `crate::cpu_pool`), check the producer's sequence and hand the batch to the log, which
//! assigns its offsets. The second stage (the queued future): wait for the bookies' acks,
//! bounded by the request's timeout. With acks=0 Kafka sends no response at all, and neither
//! do we. acks=1 is treated like acks=all: the only copy that counts is on the bookies.
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use stratalog_protocol::kafka::record_batch::{self, Compression};
use tokio::sync::oneshot;
use tracing::debug;

use super::{encode, s, Reply, RequestContext};
use crate::log::partition::Appended;
use crate::log::LogError;
use crate::topics::codes;
use crate::{metrics, Broker};

const MESSAGE_TOO_LARGE: i16 = 10;
const REQUEST_TIMED_OUT: i16 = 7;
const INVALID_REQUIRED_ACKS: i16 = 21;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const INVALID_RECORD: i16 = 87;

enum Outcome {
    Done(PartitionProduceResponse),
    Waiting {
        index: i32,
        log_start: i64,
        append_time: Option<i64>,
        done: oneshot::Receiver<Result<i64, LogError>>,
    },
}

fn failed(index: i32, code: i16, message: impl Into<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(s(message)))
}

fn error(index: i32, code: i16, message: impl Into<String>) -> Outcome {
    Outcome::Done(failed(index, code, message))
}

pub async fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: ProduceRequest) -> Reply {
    let acks = req.acks;
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.to_string();
        let meta = broker.topics.get(&name).await.ok().flatten();
        let mut outcomes = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let outcome = if !matches!(acks, -1..=1) {
                error(
                    p.index,
                    INVALID_REQUIRED_ACKS,
                    format!("acks={acks}; use 0, 1 or -1 (all)"),
                )
            } else if req.transactional_id.is_some() {
                error(
                    p.index,
                    TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    "transactions are not supported yet",
                )
            } else {
                match &meta {
                    Some(meta) if (0..meta.partitions).contains(&p.index) => {
                        let append_time = (meta.config("message.timestamp.type")
                            == Some("LogAppendTime"))
                        .then(crate::log::partition::now_ms);
                        let max_bytes = meta
                            .config("max.message.bytes")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(broker.config.max_message_bytes);
                        let compacted = meta
                            .config("cleanup.policy")
                            .is_some_and(|v| v.contains("compact"));
                        append(
                            broker,
                            &name,
                            p.index,
                            p.records.unwrap_or_default(),
                            append_time,
                            max_bytes,
                            compacted,
                        )
                        .await
                    }
                    _ => error(
                        p.index,
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("{name}-{} does not exist", p.index),
                    ),
                }
            };
            outcomes.push(outcome);
        }
        topics.push((topic.name, outcomes));
    }
    if acks == 0 {
        // The client wants no answer, but the appends still happen in the background.
        tokio::spawn(finish(topics, timeout));
        return Reply::None;
    }
    Reply::Later(Box::pin(async move {
        let response = finish(topics, timeout).await;
        encode(&ctx, &response).map(Some)
    }))
}

async fn append(
    broker: &Broker,
    topic: &str,
    partition: i32,
    batch: bytes::Bytes,
    append_time: Option<i64>,
    max_bytes: usize,
    compacted: bool,
) -> Outcome {
    if batch.len() > max_bytes {
        return error(
            partition,
            MESSAGE_TOO_LARGE,
            format!(
                "batch of {} bytes exceeds max.message.bytes {max_bytes}",
                batch.len()
            ),
        );
    }
    // CRC32C and decompression are CPU work of up to hundreds of milliseconds (a batch may
    // expand to 128 MiB before it is refused): the bounded pool runs them, off the async
    // workers. Awaiting it here keeps the first stage, and so the connection's order.
    let compressed = record_batch::peek_header(&batch)
        .and_then(|header| header.compression())
        .is_ok_and(|codec| !matches!(codec, Compression::None));
    let pool = if compressed {
        &broker.inflate_pool
    } else {
        &broker.crc_pool
    };
    let checked = batch.clone();
    let info = match pool.run(move || record_batch::validate(&checked)).await {
        Ok(Ok(info)) => info,
        Ok(Err(e)) => {
            debug!(topic, partition, error = %e, "rejected batch");
            return error(partition, e.kafka_code(), e.to_string());
        }
        Err(e) => {
            return error(
                partition,
                codes::UNKNOWN_SERVER_ERROR,
                format!("checking the batch failed: {e}"),
            )
        }
    };
    if compacted {
        if let Some(rejected) = keyless_records(topic, partition, &batch) {
            return rejected;
        }
    }
    if info.is_transactional() || info.is_control() {
        return error(
            partition,
            INVALID_RECORD,
            "transactional and control batches are not supported yet",
        );
    }
    let log = match broker.partitions.get(topic, partition).await {
        Ok(log) => log,
        Err(e) => return error(partition, e.code, e.reason),
    };
    metrics::BYTES_IN.inc_by(batch.len() as u64);
    match log.append(batch, info, append_time).await {
        Ok(Appended::Pending(done)) => Outcome::Waiting {
            index: partition,
            log_start: log.log_start_offset(),
            append_time,
            done,
        },
        Ok(Appended::Duplicate(base_offset)) => Outcome::Done(
            PartitionProduceResponse::default()
                .with_index(partition)
                .with_base_offset(base_offset)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(log.log_start_offset()),
        ),
        Err(e) => error(partition, e.code, e.reason),
    }
}

/// A compacted topic (`cleanup.policy` with `compact`) refuses records without a key. As in
/// Kafka the whole batch fails with INVALID_RECORD, and `record_errors` (Produce v8+) names
/// the offending records, so the client fails exactly those with INVALID_RECORD (librdkafka
/// fails the rest of the batch as "part of an invalid batch").
fn keyless_records(topic: &str, partition: i32, batch: &[u8]) -> Option<Outcome> {
    let keyless = match record_batch::records_without_key(batch) {
        Ok(keyless) if keyless.is_empty() => return None,
        Ok(keyless) => keyless,
        Err(e) => return Some(error(partition, e.kafka_code(), e.to_string())),
    };
    let record_error = format!(
        "compacted topic cannot accept a record without a key (topic partition {topic}-{partition})"
    );
    let message = format!(
        "{} record(s) of the batch rejected: {record_error}",
        keyless.len()
    );
    let record_errors = keyless
        .into_iter()
        .map(|i| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i)
                .with_batch_index_error_message(Some(s(record_error.clone())))
        })
        .collect();
    Some(Outcome::Done(
        failed(partition, INVALID_RECORD, message).with_record_errors(record_errors),
    ))
}

async fn finish(
    topics: Vec<(kafka_protocol::messages::TopicName, Vec<Outcome>)>,
    timeout: Duration,
) -> ProduceResponse {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut responses = Vec::with_capacity(topics.len());
    for (name, outcomes) in topics {
        let mut partitions = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            let response = match outcome {
                Outcome::Done(r) => r,
                Outcome::Waiting {
                    index,
                    log_start,
                    append_time,
                    done,
                } => match tokio::time::timeout_at(deadline, done).await {
                    Ok(Ok(Ok(base_offset))) => PartitionProduceResponse::default()
                        .with_index(index)
                        .with_base_offset(base_offset)
                        .with_log_append_time_ms(append_time.unwrap_or(-1))
                        .with_log_start_offset(log_start),
                    Ok(Ok(Err(e))) => failed(index, e.code, e.reason),
                    Ok(Err(_)) => failed(index, codes::UNKNOWN_SERVER_ERROR, "append abandoned"),
                    Err(_) => failed(
                        index,
                        REQUEST_TIMED_OUT,
                        format!("not durable within {timeout:?}"),
                    ),
                },
            };
            if response.error_code != 0 {
                metrics::REQUEST_ERRORS
                    .with_label_values(&["Produce", &response.error_code.to_string()])
                    .inc();
            }
            partitions.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions),
        );
    }
    ProduceResponse::default().with_responses(responses)
}
