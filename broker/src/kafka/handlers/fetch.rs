//! Fetch: read from each requested partition, long-polling until `min_bytes` are available or
//! `max_wait_ms` passes. A waiting fetch sleeps on the partitions' high-watermark channels,
//! so new data wakes it at once and an idle consumer costs nothing.
//!
//! Fetch sessions (KIP-227) are not kept: every response carries session id 0, which tells
//! the client to keep sending full fetch requests.
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::select_all;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::BrokerId;
use tokio::sync::watch;

use crate::log::PartitionLog;
use crate::topics::codes;
use crate::{metrics, Broker};

/// One requested partition and its state across poll rounds.
struct Wanted {
    topic_index: usize,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    log: Result<Arc<PartitionLog>, i16>,
}

pub async fn fetch(broker: &Broker, req: FetchRequest, _version: i16) -> FetchResponse {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut wanted = Vec::new();
    for (topic_index, topic) in req.topics.iter().enumerate() {
        let meta = broker.topics.get(&topic.topic).await.ok().flatten();
        for p in &topic.partitions {
            let log = match &meta {
                Some(meta) if (0..meta.partitions).contains(&p.partition) => broker
                    .partitions
                    .get(&topic.topic, p.partition)
                    .await
                    .map_err(|e| e.code),
                _ => Err(codes::UNKNOWN_TOPIC_OR_PARTITION),
            };
            wanted.push(Wanted {
                topic_index,
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                log,
            });
        }
    }
    loop {
        // Subscribe before reading, so an append between the read and the wait still wakes us.
        let mut watches: Vec<watch::Receiver<i64>> = wanted
            .iter()
            .filter_map(|w| w.log.as_ref().ok().map(|l| l.subscribe()))
            .collect();
        let (datas, bytes, errors) = read_all(&wanted, max_bytes).await;
        let now = tokio::time::Instant::now();
        if bytes >= min_bytes || errors || now >= deadline || watches.is_empty() {
            metrics::BYTES_OUT.inc_by(bytes as u64);
            return respond(&req, &wanted, datas);
        }
        let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            // Deadline: one last read so the response reflects the latest state.
            let (datas, bytes, _) = read_all(&wanted, max_bytes).await;
            metrics::BYTES_OUT.inc_by(bytes as u64);
            return respond(&req, &wanted, datas);
        }
    }
}

async fn read_all(wanted: &[Wanted], max_bytes: usize) -> (Vec<PartitionData>, usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    let mut datas = Vec::with_capacity(wanted.len());
    for w in wanted {
        let data = PartitionData::default()
            .with_partition_index(w.partition)
            .with_preferred_read_replica(BrokerId(-1))
            .with_aborted_transactions(Some(Vec::new()));
        let log = match &w.log {
            Ok(log) => log,
            Err(code) => {
                errors = true;
                datas.push(
                    data.with_error_code(*code)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1),
                );
                continue;
            }
        };
        // The response's size cap: past it, partitions get nothing (but the first batch of
        // the first non-empty partition is always sent, so progress is never blocked).
        let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
        let data = if budget == 0 && total > 0 {
            let hw = log.high_watermark();
            data.with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(log.log_start_offset())
        } else {
            match log.read(w.offset, budget.max(1)).await {
                Ok(read) => {
                    let records = concat(read.batches);
                    total += records.len();
                    data.with_high_watermark(read.high_watermark)
                        .with_last_stable_offset(read.high_watermark)
                        .with_log_start_offset(read.log_start_offset)
                        .with_records(Some(records))
                }
                Err(e) => {
                    errors = true;
                    metrics::REQUEST_ERRORS
                        .with_label_values(&["Fetch", &e.code.to_string()])
                        .inc();
                    let hw = log.high_watermark();
                    data.with_error_code(e.code)
                        .with_high_watermark(hw)
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(log.log_start_offset())
                }
            }
        };
        datas.push(data);
    }
    (datas, total, errors)
}

fn concat(batches: Vec<Bytes>) -> Bytes {
    match batches.len() {
        0 => Bytes::new(),
        1 => batches.into_iter().next().unwrap_or_default(),
        _ => {
            let mut out = BytesMut::with_capacity(batches.iter().map(Bytes::len).sum());
            for b in batches {
                out.extend_from_slice(&b);
            }
            out.freeze()
        }
    }
}

fn respond(req: &FetchRequest, wanted: &[Wanted], datas: Vec<PartitionData>) -> FetchResponse {
    let mut topics: Vec<FetchableTopicResponse> = req
        .topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
        })
        .collect();
    for (w, data) in wanted.iter().zip(datas) {
        topics[w.topic_index].partitions.push(data);
    }
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(topics)
}
