//! OffsetCommit and OffsetFetch on the coordinator: validating a commit against the group and
//! queueing its write, answering fetches from the in-memory offsets, and the versioned
//! responses. Offset retention runs in `mod.rs` (the rules are the group's, `state.rs`).

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use tracing::warn;

use super::code::{self, offset_write_error};
use super::state::GroupState;
use super::store::{CommittedOffset, GroupStore, StoreError};
use super::writer::WriteOp;
use super::{GroupCoordinator, Inner};

/// One partition of an OffsetFetch answer.
struct Fetched {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

impl Fetched {
    fn unknown(partition: i32) -> Self {
        Fetched {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
        }
    }
}

type Requested = Option<Vec<(String, Vec<i32>)>>;
type CommitWait = oneshot::Receiver<Result<(), StoreError>>;

impl<S: GroupStore> Inner<S> {
    /// Offsets of a group: the requested partitions (-1 for unknown ones), or every
    /// committed one when `requested` is `None`.
    fn fetch_offsets(
        &self,
        group_id: &str,
        requested: Requested,
    ) -> Result<Vec<(String, Vec<Fetched>)>, i16> {
        if !self.is_active() {
            return Err(code::COORDINATOR_NOT_AVAILABLE);
        }
        let unknown = |requested: Requested| {
            requested
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(Fetched::unknown).collect()))
                .collect()
        };
        let Some(entry) = self.get(group_id) else {
            return Ok(unknown(requested));
        };
        let g = entry.group.lock();
        if g.state() == GroupState::Dead {
            return Ok(unknown(requested));
        }
        let fetched = |o: &CommittedOffset| Fetched {
            partition: o.partition,
            offset: o.offset,
            leader_epoch: o.leader_epoch,
            metadata: o.metadata.clone().unwrap_or_default(),
        };
        Ok(match requested {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps
                        .into_iter()
                        .map(|p| {
                            g.offsets
                                .get(&t, p)
                                .map_or_else(|| Fetched::unknown(p), fetched)
                        })
                        .collect();
                    (t, parts)
                })
                .collect(),
            None => g
                .offsets
                .topics()
                .map(|(t, ps)| (t.clone(), ps.values().map(fetched).collect()))
                .collect(),
        })
    }

    /// Validates an OffsetCommit and queues its write. Returns per-partition codes decided
    /// up front (in request order) and the receiver of the write's outcome.
    /// `rejected` holds, in request order, the code of each partition refused before the
    /// coordinator sees it (a topic or partition that does not exist); those are neither
    /// written nor given the group's error.
    fn start_commit(
        self: &Arc<Self>,
        req: &OffsetCommitRequest,
        version: i16,
        rejected: &[Option<i16>],
    ) -> (Vec<Option<i16>>, Option<CommitWait>) {
        let total: usize = req.topics.iter().map(|t| t.partitions.len()).sum();
        let rejected_at = |i: usize| rejected.get(i).copied().flatten();
        let all = |c: i16| {
            let codes = (0..total).map(|i| Some(rejected_at(i).unwrap_or(c)));
            (codes.collect(), None)
        };
        if (0..total).all(|i| rejected_at(i).is_some()) {
            // Nothing left for the group (Kafka answers these without the coordinator).
            return ((0..total).map(rejected_at).collect(), None);
        }
        if !self.is_active() {
            return all(code::COORDINATOR_NOT_AVAILABLE);
        }
        let group_id = req.group_id.as_str();
        let generation = req.generation_id_or_member_epoch;
        let entry = match self.get(group_id) {
            Some(e) => e,
            // Simple consumers (generation -1) create an offsets-only group.
            None if generation < 0 => self.get_or_create(group_id),
            None if version >= 9 => return all(code::GROUP_ID_NOT_FOUND),
            None => return all(code::ILLEGAL_GENERATION),
        };
        let ctx = self.ctx();
        let mut codes = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(total);
        for t in &req.topics {
            for p in &t.partitions {
                let metadata = p.committed_metadata.as_ref().map(|m| m.as_str());
                if let Some(c) = rejected_at(codes.len()) {
                    codes.push(Some(c));
                } else if metadata.is_some_and(|m| m.len() > self.config.max_offset_metadata_bytes)
                {
                    codes.push(Some(code::OFFSET_METADATA_TOO_LARGE));
                } else {
                    codes.push(None);
                    offsets.push(CommittedOffset {
                        topic: t.name.as_str().to_owned(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: metadata.map(str::to_owned),
                        commit_timestamp_ms: ctx.now_ms,
                    });
                }
            }
        }
        let mut g = entry.group.lock();
        let member_id = req.member_id.as_str();
        let instance = req.group_instance_id.as_ref().map(|i| i.as_str());
        if let Err(c) = g.validate_offset_commit(&ctx, member_id, instance, generation) {
            return all(c);
        }
        self.flush(&entry, &mut g);
        if offsets.is_empty() {
            return (codes, None);
        }
        let (done, rx) = oneshot::channel();
        self.enqueue(&entry, WriteOp::Commit { offsets, done });
        (codes, Some(rx))
    }
}

impl<S: GroupStore> GroupCoordinator<S> {
    /// OffsetCommit (v2+). Offsets are acknowledged once durable in the store; they are
    /// then visible to OffsetFetch.
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        self.offset_commit_checked(req, version, &[]).await
    }

    /// OffsetCommit where some partitions were already refused by the caller: `rejected`
    /// holds, in request order, `Some(code)` for each partition that must get `code`
    /// (UNKNOWN_TOPIC_OR_PARTITION for one that does not exist, as Kafka checks before the
    /// group coordinator) and is not committed.
    pub async fn offset_commit_checked(
        &self,
        req: OffsetCommitRequest,
        version: i16,
        rejected: &[Option<i16>],
    ) -> OffsetCommitResponse {
        let (codes, rx) = self.inner.start_commit(&req, version, rejected);
        let commit_code = match rx {
            None => code::NONE,
            Some(rx) => match rx.await {
                Ok(Ok(())) => code::NONE,
                Ok(Err(e)) => {
                    warn!(group = %req.group_id.as_str(), error = %e, "offset commit failed");
                    offset_write_error(&e)
                }
                Err(_) => code::COORDINATOR_NOT_AVAILABLE,
            },
        };
        let mut codes = codes.into_iter();
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let c = codes.next().flatten().unwrap_or(commit_code);
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(c)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default()
            .with_throttle_time_ms(0)
            .with_topics(topics)
    }

    /// OffsetFetch, v1-v7 single-group form and v8+ multi-group form. Unknown partitions
    /// answer offset -1; a null topic list answers every committed partition.
    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        let response = OffsetFetchResponse::default().with_throttle_time_ms(0);
        if version >= 8 {
            let groups = req
                .groups
                .into_iter()
                .map(|g| {
                    let requested = g.topics.map(|ts| {
                        ts.into_iter()
                            .map(|t| (t.name.as_str().to_owned(), t.partition_indexes))
                            .collect()
                    });
                    let group =
                        OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                    match self.inner.fetch_offsets(g.group_id.as_str(), requested) {
                        Ok(topics) => group.with_topics(
                            topics
                                .into_iter()
                                .map(|(t, ps)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(StrBytes::from_string(t).into())
                                        .with_partitions(
                                            ps.into_iter().map(partitions_v8).collect(),
                                        )
                                })
                                .collect(),
                        ),
                        Err(c) => group.with_error_code(c),
                    }
                })
                .collect();
            return response.with_groups(groups);
        }
        let requested: Requested = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.as_str().to_owned(), t.partition_indexes))
                .collect()
        });
        match self
            .inner
            .fetch_offsets(req.group_id.as_str(), requested.clone())
        {
            Ok(topics) => response.with_topics(topics_v0(topics, code::NONE)),
            Err(c) if version < 2 => {
                // No top-level error before v2: every requested partition carries it.
                let topics = requested
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(t, ps)| (t, ps.into_iter().map(Fetched::unknown).collect()))
                    .collect();
                response.with_topics(topics_v0(topics, c))
            }
            Err(c) => response.with_error_code(c),
        }
    }
}

fn topics_v0(topics: Vec<(String, Vec<Fetched>)>, error: i16) -> Vec<OffsetFetchResponseTopic> {
    topics
        .into_iter()
        .map(|(t, ps)| {
            OffsetFetchResponseTopic::default()
                .with_name(StrBytes::from_string(t).into())
                .with_partitions(
                    ps.into_iter()
                        .map(|f| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(f.partition)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(f.leader_epoch)
                                .with_metadata(Some(StrBytes::from_string(f.metadata)))
                                .with_error_code(error)
                        })
                        .collect(),
                )
        })
        .collect()
}

fn partitions_v8(f: Fetched) -> OffsetFetchResponsePartitions {
    OffsetFetchResponsePartitions::default()
        .with_partition_index(f.partition)
        .with_committed_offset(f.offset)
        .with_committed_leader_epoch(f.leader_epoch)
        .with_metadata(Some(StrBytes::from_string(f.metadata)))
}
