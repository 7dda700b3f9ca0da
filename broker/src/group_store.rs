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

fn store_error(e: ClientError) -> StoreError {
    match e {
        ClientError::Rpc(e) => StoreError::Unavailable(e.to_string()),
        other => StoreError::Other(other.to_string()),
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
        self.metadata
            .batch(ops)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn load_offsets(&self) -> Result<Vec<(String, CommittedOffset)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.metadata.list(&prefix()).await.map_err(store_error)? {
            if let Some((group, tail)) = split_key(&kv.key) {
                if tail.starts_with("offsets/") {
                    out.push((group, CommittedOffset::from_bytes(&kv.value)?));
                }
            }
        }
        Ok(out)
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
        self.metadata
            .batch(ops)
            .await
            .map(|_| ())
            .map_err(store_error)
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
        let mut out = Vec::new();
        for kv in self.metadata.list(&prefix()).await.map_err(store_error)? {
            if let Some((group, "meta")) = split_key(&kv.key) {
                out.push((group, PersistedGroup::from_bytes(&kv.value)?));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_with_slashes_survive_the_key() {
        let key = offset_key("a/b%c", "t", 3);
        let (group, tail) = split_key(&key).unwrap();
        assert_eq!(group, "a/b%c");
        assert_eq!(tail, "offsets/t/3");
    }
}
