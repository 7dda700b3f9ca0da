//! Fetch: read from each requested partition, long-polling until `min_bytes` are available or
//! `max_wait_ms` passes. A waiting fetch sleeps on the partitions' high-watermark channels,
//! so new data wakes it at once and an idle consumer costs nothing; after a wake-up only the
//! partitions whose high watermark moved are read again.
//!
//! Size limits follow Kafka (KIP-74): partitions are filled in request order, each up to
//! `partition_max_bytes` and all together up to `max_bytes`. Only whole batches are sent. The
//! one exception is the first batch of the first partition that has data: it is sent even
//! when it alone is larger than either limit, so a consumer always makes progress. Every
//! later batch that does not fit is left for the next fetch.
//!
//! Topics are named by name up to v12 and by topic id from v13 (UNKNOWN_TOPIC_ID for an id
//! no topic has). Fetch sessions (KIP-227) are not kept: every response carries session
//! id 0, which tells the client to keep sending full fetch requests.
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::select_all;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use tokio::sync::watch;

use super::s;
use crate::catalog::TopicMeta;
use crate::log::PartitionLog;
use crate::topics::codes;
use crate::{metrics, Broker};

/// First version that names topics by id only.
const TOPIC_IDS_FROM: i16 = 13;

/// One requested partition and its state across poll rounds.
struct Wanted {
    topic_index: usize,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    log: Result<Arc<PartitionLog>, i16>,
    watch: Option<watch::Receiver<i64>>,
    /// The last read: the high watermark it saw and what it returned.
    last: Option<(i64, PartitionData, usize)>,
}

/// A requested topic, resolved.
struct Topic {
    name: Option<String>,
    id: uuid::Uuid,
    /// The topic's metadata, or the error every partition of it gets.
    meta: Result<TopicMeta, i16>,
}

async fn resolve_topic(broker: &Broker, name: &str, id: uuid::Uuid, version: i16) -> Topic {
    if version >= TOPIC_IDS_FROM {
        return match broker.topics.by_id(id).await {
            Ok(Some((name, meta))) => Topic {
                name: Some(name),
                id,
                meta: Ok(meta),
            },
            Ok(None) => Topic {
                name: None,
                id,
                meta: Err(codes::UNKNOWN_TOPIC_ID),
            },
            Err(e) => Topic {
                name: None,
                id,
                meta: Err(e.code),
            },
        };
    }
    let meta = match broker.topics.get(name).await {
        Ok(Some(meta)) => Ok(meta),
        Ok(None) => Err(codes::UNKNOWN_TOPIC_OR_PARTITION),
        Err(e) => Err(e.code),
    };
    Topic {
        name: Some(name.to_string()),
        id,
        meta,
    }
}

pub async fn fetch(broker: &Broker, req: FetchRequest, version: i16) -> FetchResponse {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut wanted = Vec::new();
    for (topic_index, t) in req.topics.iter().enumerate() {
        let topic = resolve_topic(broker, t.topic.as_str(), t.topic_id, version).await;
        for p in &t.partitions {
            let log = match (&topic.meta, &topic.name) {
                (Ok(meta), Some(name)) if (0..meta.partitions).contains(&p.partition) => broker
                    .partitions
                    .get(name, p.partition)
                    .await
                    .map_err(|e| e.code),
                (Ok(_), _) => Err(codes::UNKNOWN_TOPIC_OR_PARTITION),
                (Err(code), _) => Err(*code),
            };
            // Subscribe before the first read, so an append between the read and the wait
            // still wakes us.
            let watch = log.as_ref().ok().map(|l| l.subscribe());
            wanted.push(Wanted {
                topic_index,
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                log,
                watch,
                last: None,
            });
        }
        topics.push(topic);
    }
    loop {
        let (bytes, errors) = read_round(&mut wanted, max_bytes).await;
        let now = tokio::time::Instant::now();
        let waiting = wanted.iter().any(|w| w.watch.is_some());
        if bytes >= min_bytes || errors || now >= deadline || !waiting {
            metrics::BYTES_OUT.inc_by(bytes as u64);
            return respond(&topics, wanted, version);
        }
        let watching: Vec<usize> = (0..wanted.len())
            .filter(|&i| wanted[i].watch.is_some())
            .collect();
        let changed = select_all(
            wanted
                .iter_mut()
                .filter_map(|w| w.watch.as_mut())
                .map(|w| Box::pin(w.changed())),
        );
        let woke = match tokio::time::timeout_at(deadline, changed).await {
            Ok((result, index, _)) => Some((result.is_ok(), index)),
            Err(_) => None,
        };
        match woke {
            Some((true, _)) => {}
            // The partition was closed (topic deleted, shutdown): stop watching it.
            Some((false, index)) => wanted[watching[index]].watch = None,
            None => {
                // Deadline: one last look so the response reflects the latest state.
                let (bytes, _) = read_round(&mut wanted, max_bytes).await;
                metrics::BYTES_OUT.inc_by(bytes as u64);
                return respond(&topics, wanted, version);
            }
        }
    }
}

/// Fills every partition in request order within the limits, reading only those whose high
/// watermark moved since their last read (or whose last answer no longer fits). Returns the
/// bytes of records in the response and whether any partition failed.
async fn read_round(wanted: &mut [Wanted], max_bytes: usize) -> (usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    for w in wanted.iter_mut() {
        let data = PartitionData::default()
            .with_partition_index(w.partition)
            .with_preferred_read_replica(BrokerId(-1))
            .with_aborted_transactions(Some(Vec::new()));
        let log = match &w.log {
            Ok(log) => log.clone(),
            Err(code) => {
                errors = true;
                let failed = data
                    .with_error_code(*code)
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1);
                w.last = Some((-1, failed, 0));
                continue;
            }
        };
        // Mark the channel seen before looking at the high watermark: a later append then
        // wakes the next wait.
        if let Some(watch) = w.watch.as_mut() {
            watch.borrow_and_update();
        }
        let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
        // Only the very first batch of the response may exceed the limits.
        let first_may_exceed = total == 0;
        let hw = log.high_watermark();
        if let Some((seen, _, size)) = &w.last {
            if *seen == hw && (*size <= budget || (first_may_exceed && *size > 0)) {
                total += *size;
                continue;
            }
        }
        let (data, size) = if budget == 0 && !first_may_exceed {
            let data = data
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(log.log_start_offset());
            (data, 0)
        } else {
            match log.read(w.offset, budget, first_may_exceed).await {
                Ok(read) => {
                    let records = concat(read.batches);
                    let size = records.len();
                    let data = data
                        .with_high_watermark(read.high_watermark)
                        .with_last_stable_offset(read.high_watermark)
                        .with_log_start_offset(read.log_start_offset)
                        .with_records(Some(records));
                    (data, size)
                }
                Err(e) => {
                    errors = true;
                    metrics::REQUEST_ERRORS
                        .with_label_values(&["Fetch", &e.code.to_string()])
                        .inc();
                    let hw = log.high_watermark();
                    let data = data
                        .with_error_code(e.code)
                        .with_high_watermark(hw)
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(log.log_start_offset());
                    (data, 0)
                }
            }
        };
        total += size;
        let seen = data.high_watermark;
        w.last = Some((seen, data, size));
    }
    (total, errors)
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

fn respond(topics: &[Topic], wanted: Vec<Wanted>, version: i16) -> FetchResponse {
    let mut responses: Vec<FetchableTopicResponse> = topics
        .iter()
        .map(|t| {
            let response = FetchableTopicResponse::default().with_topic_id(t.id);
            match (&t.name, version < TOPIC_IDS_FROM) {
                (Some(name), true) => response.with_topic(TopicName(s(name.clone()))),
                _ => response,
            }
        })
        .collect();
    for w in wanted {
        if let Some((_, data, _)) = w.last {
            responses[w.topic_index].partitions.push(data);
        }
    }
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_joins_batches_in_order() {
        let joined = concat(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")]);
        assert_eq!(&joined[..], b"abc");
        assert!(concat(Vec::new()).is_empty());
    }
}
