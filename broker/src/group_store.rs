//! The group coordinator's durable state, kept in the metadata store.
//!
//! ```text
//! /stratalog/groups/{group}/meta                           PersistedGroup
//! /stratalog/groups/{group}/offsets/{topic}/{partition}    CommittedOffset
//! ```
//! `{group}` is escaped (`%` → `%25`, `/` → `%2F`) because group ids may contain slashes;
//! topic names cannot.
use bytes::Bytes;

use crate::catalog::ROOT;
use crate::group::{CommittedOffset, GroupStore, PersistedGroup, StoreError};
use stratalog_metadata::client::{ClientError, MetadataClient};
use stratalog_metadata::{Expect, Op};
use stratalog_protocol::internal::metadata::MetaCode;

pub struct MetaGroupStore {
    metadata: MetadataClient,
}

impl MetaGroupStore {
    pub fn new(metadata: MetadataClient) -> MetaGroupStore {
        MetaGroupStore { metadata }
    }
}

fn escape(group: &str) -> String {
    group.replace('%', "%25").replace('/', "%2F")
}

fn unescape(group: &str) -> String {
    group.replace("%2F", "/").replace("%25", "%")
}

fn prefix() -> String {
    format!("{ROOT}/groups/")
}

fn group_prefix(group: &str) -> String {
    format!("{}{}/", prefix(), escape(group))
}

fn offset_key(group: &str, topic: &str, partition: i32) -> String {
    format!("{}offsets/{topic}/{partition}", group_prefix(group))
}

/// The group id of a key under `/stratalog/groups/`, and the rest of the key.
fn split_key(key: &str) -> Option<(String, &str)> {
    let rest = key.strip_prefix(&prefix())?;
    let (group, tail) = rest.split_once('/')?;
    Some((unescape(group), tail))
}

/// Classifies a metadata failure the way Kafka classifies a failed `__consumer_offsets`
/// append, so clients retry what can succeed later: UNKNOWN_SERVER_ERROR is not retried by
/// librdkafka, and a metadata service that is slow or briefly frozen must not end a
/// consumer's commit or rebalance.
fn store_error(e: ClientError) -> StoreError {
    match e {
        // No answer in time, or no connection.
        ClientError::Rpc(e) => StoreError::Unavailable(e.to_string()),
        // It answered that it could not decide in time, has no Raft leader, or is
        // stopping (Kafka: a timed-out or under-replicated append, COORDINATOR_NOT_AVAILABLE).
        e @ ClientError::Service {
            code: MetaCode::Timeout | MetaCode::NotLeader | MetaCode::ShuttingDown,
            ..
        } => StoreError::Unavailable(e.to_string()),
        // Its storage failed (Kafka: KAFKA_STORAGE_ERROR, answered as NOT_COORDINATOR).
        e @ ClientError::Service {
            code: MetaCode::Storage,
            ..
        } => StoreError::NotCoordinator(e.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

impl MetaGroupStore {
    /// Applies `ops` atomically.
    async fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.metadata
            .batch(ops)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    /// Every key-value under `/stratalog/groups/`, as (group id, rest of the key, value).
    async fn list_all(&self) -> Result<Vec<(String, String, Bytes)>, StoreError> {
        let kvs = self.metadata.list(&prefix()).await.map_err(store_error)?;
        Ok(kvs
            .into_iter()
            .filter_map(|kv| {
                let (group, tail) = split_key(&kv.key)?;
                Some((group, tail.to_string(), kv.value))
            })
            .collect())
    }
}

impl GroupStore for MetaGroupStore {
    async fn commit_offsets(
        &self,
        group: &str,
        offsets: Vec<CommittedOffset>,
    ) -> Result<(), StoreError> {
        let ops = offsets
            .iter()
            .map(|o| Op::Put {
                key: offset_key(group, &o.topic, o.partition),
                value: Bytes::from(o.to_bytes()),
                expect: Expect::Any,
                lease: None,
            })
            .collect();
        self.write(ops).await
    }

    async fn load_offsets(&self) -> Result<Vec<(String, CommittedOffset)>, StoreError> {
        self.list_all()
            .await?
            .into_iter()
            .filter(|(_, tail, _)| tail.starts_with("offsets/"))
            .map(|(group, _, value)| Ok((group, CommittedOffset::from_bytes(&value)?)))
            .collect()
    }

    async fn delete_offsets(
        &self,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<(), StoreError> {
        let ops = partitions
            .iter()
            .map(|(topic, partition)| Op::Delete {
                key: offset_key(group, topic, *partition),
                expect: Expect::Any,
            })
            .collect();
        self.write(ops).await
    }

    async fn delete_group(&self, group: &str) -> Result<(), StoreError> {
        self.metadata
            .delete_prefix(&group_prefix(group))
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn save_group(&self, group: &str, state: PersistedGroup) -> Result<(), StoreError> {
        let key = format!("{}meta", group_prefix(group));
        self.metadata
            .put(&key, Bytes::from(state.to_bytes()), Expect::Any, None)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn load_groups(&self) -> Result<Vec<(String, PersistedGroup)>, StoreError> {
        self.list_all()
            .await?
            .into_iter()
            .filter(|(_, tail, _)| tail == "meta")
            .map(|(group, _, value)| Ok((group, PersistedGroup::from_bytes(&value)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_metadata_failures_are_retriable_for_clients() {
        let service = |code| ClientError::Service {
            code,
            message: String::new(),
        };
        for code in [
            MetaCode::Timeout,
            MetaCode::NotLeader,
            MetaCode::ShuttingDown,
        ] {
            assert!(matches!(
                store_error(service(code)),
                StoreError::Unavailable(_)
            ));
        }
        assert!(matches!(
            store_error(service(MetaCode::Storage)),
            StoreError::NotCoordinator(_)
        ));
        assert!(matches!(
            store_error(service(MetaCode::Other)),
            StoreError::Other(_)
        ));
    }

    #[test]
    fn group_ids_with_slashes_survive_the_key() {
        let key = offset_key("a/b%c", "t", 3);
        let (group, tail) = split_key(&key).unwrap();
        assert_eq!(group, "a/b%c");
        assert_eq!(tail, "offsets/t/3");
    }
}
