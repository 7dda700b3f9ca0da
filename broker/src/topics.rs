//! The topic catalog: topic definitions in the metadata store, cached in memory.
use std::collections::HashMap;

use parking_lot::RwLock;
use stratalog_protocol::internal::Wire;

use crate::catalog::{self, ConfigEntry, TopicMeta};
use stratalog_metadata::client::{ClientError, MetadataClient};
use stratalog_metadata::Expect;

pub mod codes {
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
}

/// A Kafka error code with the message returned to the client.
#[derive(Debug, Clone)]
pub struct TopicError {
    pub code: i16,
    pub message: String,
}

impl TopicError {
    pub fn new(code: i16, message: impl Into<String>) -> TopicError {
        TopicError {
            code,
            message: message.into(),
        }
    }
}

impl From<ClientError> for TopicError {
    fn from(e: ClientError) -> TopicError {
        TopicError::new(
            codes::UNKNOWN_SERVER_ERROR,
            format!("metadata service: {e}"),
        )
    }
}

/// Topic configs Stratalog understands, with their defaults (Kafka names and defaults).
pub const TOPIC_CONFIG_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.type", "CreateTime"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "268435456"),
    ("segment.ms", "14400000"),
];

/// The topic's `retention.ms` (Kafka's default of 7 days unless overridden; -1 = forever).
pub fn retention_ms(meta: &TopicMeta) -> i64 {
    meta.config("retention.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(604_800_000)
}

/// Kafka's rule for topic names.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let legal = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    if name.is_empty() || name == "." || name == ".." || name.len() > 249 || !legal {
        return Err(TopicError::new(
            codes::INVALID_TOPIC_EXCEPTION,
            format!("topic name {name:?} is illegal: use 1-249 characters from [a-zA-Z0-9._-], not '.' or '..'"),
        ));
    }
    Ok(())
}

/// Topic config names must be ones Stratalog understands, and numeric settings stay numeric
/// (retention and size checks parse them).
pub fn validate_configs(configs: &[ConfigEntry]) -> Result<(), TopicError> {
    for c in configs {
        let Some((_, default)) = TOPIC_CONFIG_DEFAULTS.iter().find(|(k, _)| *k == c.name) else {
            return Err(TopicError::new(
                codes::INVALID_CONFIG,
                format!("unknown topic config {:?}", c.name),
            ));
        };
        if default.parse::<i64>().is_ok() && c.value.parse::<i64>().is_err() {
            return Err(TopicError::new(
                codes::INVALID_CONFIG,
                format!(
                    "topic config {} must be an integer, not {:?}",
                    c.name, c.value
                ),
            ));
        }
    }
    Ok(())
}

pub struct Topics {
    metadata: MetadataClient,
    cache: RwLock<HashMap<String, TopicMeta>>,
}

impl Topics {
    pub fn new(metadata: MetadataClient) -> Topics {
        Topics {
            metadata,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The topic, from the cache or the metadata store.
    pub async fn get(&self, name: &str) -> Result<Option<TopicMeta>, TopicError> {
        if let Some(meta) = self.cache.read().get(name) {
            return Ok(Some(meta.clone()));
        }
        let key = catalog::topic_key(name);
        let Some(kv) = self.metadata.get(&key).await? else {
            return Ok(None);
        };
        let meta: TopicMeta = catalog::decode(&key, kv.value)
            .map_err(|e| TopicError::new(codes::UNKNOWN_SERVER_ERROR, e))?;
        self.cache.write().insert(name.to_string(), meta.clone());
        Ok(Some(meta))
    }

    /// The topic whose Kafka topic id is `id`, with its name: from the cache, else from a
    /// fresh listing (so a topic created by another broker is found too).
    pub async fn by_id(&self, id: uuid::Uuid) -> Result<Option<(String, TopicMeta)>, TopicError> {
        if id.is_nil() {
            return Ok(None);
        }
        let id = *id.as_bytes();
        let cached = self
            .cache
            .read()
            .iter()
            .find(|(_, m)| m.id == id)
            .map(|(n, m)| (n.clone(), m.clone()));
        if cached.is_some() {
            return Ok(cached);
        }
        Ok(self.list().await?.into_iter().find(|(_, m)| m.id == id))
    }

    /// Every topic, sorted by name, read from the metadata store.
    pub async fn list(&self) -> Result<Vec<(String, TopicMeta)>, TopicError> {
        let prefix = catalog::topics_prefix();
        let mut out = Vec::new();
        for kv in self.metadata.list(&prefix).await? {
            let name = kv.key[prefix.len()..].to_string();
            let meta: TopicMeta = catalog::decode(&kv.key, kv.value)
                .map_err(|e| TopicError::new(codes::UNKNOWN_SERVER_ERROR, e))?;
            out.push((name, meta));
        }
        let mut cache = self.cache.write();
        cache.clear();
        cache.extend(out.iter().cloned());
        Ok(out)
    }

    pub async fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: Vec<ConfigEntry>,
        validate_only: bool,
    ) -> Result<TopicMeta, TopicError> {
        validate_name(name)?;
        if partitions < 1 {
            return Err(TopicError::new(
                codes::INVALID_PARTITIONS,
                format!("{partitions} partitions; a topic needs at least 1"),
            ));
        }
        validate_configs(&configs)?;
        let meta = TopicMeta {
            id: *uuid::Uuid::new_v4().as_bytes(),
            partitions,
            configs,
        };
        if self.get(name).await?.is_some() {
            return Err(TopicError::new(
                codes::TOPIC_ALREADY_EXISTS,
                format!("topic {name} already exists"),
            ));
        }
        if validate_only {
            return Ok(meta);
        }
        match self
            .metadata
            .put(
                &catalog::topic_key(name),
                meta.to_bytes(),
                Expect::Absent,
                None,
            )
            .await
        {
            Ok(_) => {}
            Err(ClientError::Conflict { .. }) => {
                return Err(TopicError::new(
                    codes::TOPIC_ALREADY_EXISTS,
                    format!("topic {name} already exists"),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        self.cache.write().insert(name.to_string(), meta.clone());
        Ok(meta)
    }

    /// Removes the topic definition; the caller deletes its partitions' data.
    pub async fn delete(&self, name: &str) -> Result<TopicMeta, TopicError> {
        let Some(meta) = self.get(name).await? else {
            return Err(TopicError::new(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {name} does not exist"),
            ));
        };
        self.metadata
            .delete(&catalog::topic_key(name), Expect::Any)
            .await?;
        self.cache.write().remove(name);
        Ok(meta)
    }

    /// Changes the topic's config overrides with `change` (IncrementalAlterConfigs) and
    /// stores them with a compare-and-set, retried if another change got there first.
    pub async fn update_configs(
        &self,
        name: &str,
        change: impl Fn(&mut Vec<ConfigEntry>) -> Result<(), TopicError>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let key = catalog::topic_key(name);
        loop {
            let (mut meta, revision) = self.read_for_update(name).await?;
            change(&mut meta.configs)?;
            validate_configs(&meta.configs)?;
            if validate_only {
                return Ok(());
            }
            match self
                .metadata
                .put(&key, meta.to_bytes(), Expect::Revision(revision), None)
                .await
            {
                Ok(_) => {
                    self.cache.write().insert(name.to_string(), meta);
                    return Ok(());
                }
                Err(ClientError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The topic as stored and its revision (for a compare-and-set), read past the cache;
    /// UNKNOWN_TOPIC_OR_PARTITION if it does not exist.
    async fn read_for_update(&self, name: &str) -> Result<(TopicMeta, u64), TopicError> {
        let key = catalog::topic_key(name);
        let Some(kv) = self.metadata.get(&key).await? else {
            return Err(TopicError::new(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {name} does not exist"),
            ));
        };
        let meta = catalog::decode(&key, kv.value)
            .map_err(|e| TopicError::new(codes::UNKNOWN_SERVER_ERROR, e))?;
        Ok((meta, kv.mod_revision))
    }

    pub async fn set_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let key = catalog::topic_key(name);
        let (mut meta, revision) = self.read_for_update(name).await?;
        if count <= meta.partitions {
            return Err(TopicError::new(
                codes::INVALID_PARTITIONS,
                format!(
                    "topic {name} has {} partitions; the new count {count} must be larger",
                    meta.partitions
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        meta.partitions = count;
        self.metadata
            .put(&key, meta.to_bytes(), Expect::Revision(revision), None)
            .await?;
        self.cache.write().insert(name.to_string(), meta);
        Ok(())
    }
}
