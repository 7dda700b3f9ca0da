//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//! IncrementalAlterConfigs (topic configs; broker settings are read-only).
use kafka_protocol::messages::create_partitions_request::CreatePartitionsRequest;
use kafka_protocol::messages::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use kafka_protocol::messages::create_topics_request::CreateTopicsRequest;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::{
    DeletableTopicResult, DeleteTopicsResponse,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterableConfig, IncrementalAlterConfigsRequest,
};
use kafka_protocol::messages::incremental_alter_configs_response::{
    AlterConfigsResourceResponse, IncrementalAlterConfigsResponse,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use tracing::info;

use super::s;
use crate::catalog::{ConfigEntry, TopicMeta};
use crate::topics::{codes, TopicError, TOPIC_CONFIG_DEFAULTS};
use crate::Broker;

const INVALID_REQUEST: i16 = 42;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const UNKNOWN_TOPIC_ID: i16 = 100;
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

pub async fn create_topics(broker: &Broker, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::new();
    for topic in req.topics {
        let name = topic.name.to_string();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let fail = |code: i16, message: String| {
            result
                .clone()
                .with_error_code(code)
                .with_error_message(Some(s(message)))
        };
        let partitions = if !topic.assignments.is_empty() {
            // Kafka: a manual assignment replaces both counts, which must be -1.
            if topic.replication_factor != -1 || topic.num_partitions != -1 {
                results.push(fail(
                    INVALID_REQUEST,
                    "a manual partition assignment was specified, but num_partitions or \
                     replication_factor was not -1"
                        .into(),
                ));
                continue;
            }
            let indexes: Vec<i32> = topic
                .assignments
                .iter()
                .map(|a| a.partition_index)
                .collect();
            let replicas: Vec<&[BrokerId]> = topic
                .assignments
                .iter()
                .map(|a| &a.broker_ids[..])
                .collect();
            match validate_assignment(broker.config.node_id, &indexes, &replicas, None) {
                Ok(()) => topic.assignments.len() as i32,
                Err(message) => {
                    results.push(fail(INVALID_REPLICA_ASSIGNMENT, message));
                    continue;
                }
            }
        } else if topic.replication_factor == 0 || topic.replication_factor < -1 {
            // Replication is the bookie quorum's job, so any factor is accepted and reported
            // as 1 copy per broker; only nonsense values are refused.
            results.push(fail(
                codes::INVALID_REPLICATION_FACTOR,
                format!("replication factor {} is invalid", topic.replication_factor),
            ));
            continue;
        } else if topic.num_partitions == -1 {
            broker.config.default_partitions
        } else {
            topic.num_partitions
        };
        if let Err(message) = check_partition_count(broker, partitions) {
            results.push(fail(codes::INVALID_PARTITIONS, message));
            continue;
        }
        let configs = topic
            .configs
            .iter()
            .filter_map(|c| {
                c.value.as_ref().map(|v| ConfigEntry {
                    name: c.name.to_string(),
                    value: v.to_string(),
                })
            })
            .collect();
        match broker
            .topics
            .create(&name, partitions, configs, req.validate_only)
            .await
        {
            Ok(meta) => {
                if !req.validate_only {
                    info!(topic = %name, partitions, "created topic");
                }
                results.push(
                    result
                        .with_topic_id(uuid::Uuid::from_bytes(meta.id))
                        .with_num_partitions(meta.partitions)
                        .with_replication_factor(1)
                        .with_configs(Some(
                            topic_configs(&meta)
                                .into_iter()
                                .map(|(name, value, source)| {
                                    CreatableTopicConfigs::default()
                                        .with_name(s(name))
                                        .with_value(Some(s(value)))
                                        .with_config_source(source)
                                })
                                .collect(),
                        )),
                );
            }
            Err(e) => results.push(
                result
                    .with_error_code(e.code)
                    .with_error_message(Some(s(e.message))),
            ),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// Kafka's checks of a manual replica assignment: partitions `0..n` each once, a non-empty
/// list of registered brokers without repeats, the same replica count everywhere (and
/// `replicas_each` if given). An assignment here names brokers, not storage: every broker
/// serves every partition and the data's copies are the bookie ensemble's, so a valid
/// assignment changes nothing but is accepted, as Kafka accepts it.
fn validate_assignment(
    node_id: i32,
    indexes: &[i32],
    replicas: &[&[BrokerId]],
    replicas_each: Option<usize>,
) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for &index in indexes {
        if !seen.insert(index) {
            return Err(format!(
                "found multiple manual partition assignments for partition {index}"
            ));
        }
    }
    if indexes
        .iter()
        .any(|&i| i < 0 || i as usize >= indexes.len())
    {
        return Err("partitions should be a consecutive 0-based integer sequence".into());
    }
    let mut expected = replicas_each;
    for list in replicas {
        if list.is_empty() {
            return Err("the manual partition assignment includes an empty replica list".into());
        }
        let mut ids: Vec<i32> = list.iter().map(|b| b.0).collect();
        ids.sort_unstable();
        if let Some(unknown) = ids.iter().find(|&&id| id != node_id) {
            return Err(format!(
                "the manual partition assignment includes broker {unknown}, but no such broker is registered"
            ));
        }
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!(
                "the manual partition assignment includes broker {} more than once",
                ids[0]
            ));
        }
        match expected {
            Some(n) if n != ids.len() => {
                return Err(format!(
                    "the manual partition assignment includes a partition with {} replica(s), \
                     but other partitions have {n}",
                    ids.len()
                ))
            }
            _ => expected = Some(ids.len()),
        }
    }
    Ok(())
}

/// The partition-count bound (`broker.max_partitions_per_topic`): every partition is in every
/// Metadata answer and has its own managed ledger, so absurd counts are refused up front.
fn check_partition_count(broker: &Broker, partitions: i32) -> Result<(), String> {
    let max = broker.config.max_partitions_per_topic;
    if partitions > max {
        return Err(format!(
            "{partitions} partitions exceed the limit of {max} per topic (broker setting max_partitions_per_topic)"
        ));
    }
    Ok(())
}

/// The effective configs of a topic: (name, value, source).
fn topic_configs(meta: &TopicMeta) -> Vec<(String, String, i8)> {
    TOPIC_CONFIG_DEFAULTS
        .iter()
        .map(|(name, default)| match meta.config(name) {
            Some(value) => (name.to_string(), value.to_string(), SOURCE_TOPIC),
            None => (name.to_string(), default.to_string(), SOURCE_DEFAULT),
        })
        .collect()
}

pub async fn delete_topics(
    broker: &Broker,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // v6 names topics by name or id; earlier versions by name only.
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.to_string()), uuid::Uuid::nil()))
        .collect();
    if version >= 6 {
        targets = req
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect();
    }
    let mut responses = Vec::new();
    for (name, id) in targets {
        let name = match name {
            Some(name) => Some(name),
            None => match broker.topics.list().await {
                Ok(all) => all
                    .into_iter()
                    .find(|(_, m)| uuid::Uuid::from_bytes(m.id) == id)
                    .map(|(n, _)| n),
                Err(_) => None,
            },
        };
        let result = DeletableTopicResult::default()
            .with_topic_id(id)
            .with_name(name.clone().map(|n| TopicName(s(n))));
        let Some(name) = name else {
            responses.push(
                result
                    .with_error_code(UNKNOWN_TOPIC_ID)
                    .with_error_message(Some(s(format!("no topic has id {id}")))),
            );
            continue;
        };
        match broker.topics.delete(&name).await {
            Ok(meta) => {
                broker.partitions.delete_topic(&name, &meta).await;
                info!(topic = %name, "deleted topic");
                responses.push(result.with_topic_id(uuid::Uuid::from_bytes(meta.id)));
            }
            Err(e) => responses.push(
                result
                    .with_error_code(e.code)
                    .with_error_message(Some(s(e.message))),
            ),
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::new();
    for topic in req.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let fail = |code: i16, message: String| {
            result
                .clone()
                .with_error_code(code)
                .with_error_message(Some(s(message)))
        };
        if let Err(message) = check_partition_count(broker, topic.count) {
            results.push(fail(codes::INVALID_PARTITIONS, message));
            continue;
        }
        if let Some(assignments) = &topic.assignments {
            let current = match broker.topics.get(&topic.name).await {
                Ok(Some(meta)) => meta.partitions,
                // set_partitions below reports the missing topic or the store error.
                _ => 0,
            };
            let added = topic.count.saturating_sub(current).max(0) as usize;
            if current > 0 && topic.count > current && assignments.len() != added {
                results.push(fail(
                    INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "attempted to add {added} partition(s), but {} assignment(s) were specified",
                        assignments.len()
                    ),
                ));
                continue;
            }
            let indexes: Vec<i32> = (0..assignments.len() as i32).collect();
            let replicas: Vec<&[BrokerId]> =
                assignments.iter().map(|a| &a.broker_ids[..]).collect();
            // Existing partitions report one replica, so new ones must have one too.
            if let Err(message) =
                validate_assignment(broker.config.node_id, &indexes, &replicas, Some(1))
            {
                results.push(fail(INVALID_REPLICA_ASSIGNMENT, message));
                continue;
            }
        }
        match broker
            .topics
            .set_partitions(&topic.name, topic.count, req.validate_only)
            .await
        {
            Ok(()) => results.push(result),
            Err(e) => results.push(
                result
                    .with_error_code(e.code)
                    .with_error_message(Some(s(e.message))),
            ),
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}

pub async fn describe_configs(
    broker: &Broker,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut results = Vec::new();
    for resource in req.resources {
        let result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let wanted = |name: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        let configs: Vec<(String, String, i8)> = match resource.resource_type {
            RESOURCE_TOPIC => match broker.topics.get(&resource.resource_name).await {
                Ok(Some(meta)) => topic_configs(&meta),
                Ok(None) => {
                    results.push(
                        result
                            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(s(format!(
                                "topic {} does not exist",
                                resource.resource_name.as_str()
                            )))),
                    );
                    continue;
                }
                Err(e) => {
                    results.push(
                        result
                            .with_error_code(e.code)
                            .with_error_message(Some(s(e.message))),
                    );
                    continue;
                }
            },
            RESOURCE_BROKER => broker_configs(broker),
            other => {
                results.push(
                    result
                        .with_error_code(INVALID_REQUEST)
                        .with_error_message(Some(s(format!(
                            "resource type {other} is not supported (topics: 2, brokers: 4)"
                        )))),
                );
                continue;
            }
        };
        let configs = configs
            .into_iter()
            .filter(|(name, _, _)| wanted(name))
            .map(|(name, value, source)| {
                DescribeConfigsResourceResult::default()
                    .with_name(s(name))
                    .with_value(Some(s(value)))
                    .with_config_source(source)
                    .with_read_only(resource.resource_type == RESOURCE_BROKER)
            })
            .collect();
        results.push(result.with_configs(configs));
    }
    DescribeConfigsResponse::default().with_results(results)
}

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;
/// Topic configs whose value is a comma-separated list (APPEND and SUBTRACT apply).
const LIST_CONFIGS: &[&str] = &["cleanup.policy"];

pub async fn incremental_alter_configs(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in req.resources {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let result = match resource.resource_type {
            RESOURCE_TOPIC => {
                let ops = resource.configs;
                broker
                    .topics
                    .update_configs(
                        resource.resource_name.as_str(),
                        |configs| apply_config_ops(configs, &ops),
                        req.validate_only,
                    )
                    .await
            }
            RESOURCE_BROKER => Err(TopicError::new(
                codes::INVALID_CONFIG,
                "broker settings are read-only: set them in the configuration file",
            )),
            other => Err(TopicError::new(
                INVALID_REQUEST,
                format!("resource type {other} is not supported (topics: 2)"),
            )),
        };
        responses.push(match result {
            Ok(()) => response,
            Err(e) => response
                .with_error_code(e.code)
                .with_error_message(Some(s(e.message))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Applies SET / DELETE / APPEND / SUBTRACT to a topic's overrides. A list config that is
/// not overridden starts from its default.
fn apply_config_ops(
    configs: &mut Vec<ConfigEntry>,
    ops: &[AlterableConfig],
) -> Result<(), TopicError> {
    for op in ops {
        let name = op.name.as_str();
        let value = op.value.as_ref().map(|v| v.as_str());
        let current = configs
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value.clone())
            .or_else(|| {
                TOPIC_CONFIG_DEFAULTS
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, d)| d.to_string())
            });
        let new_value = match op.config_operation {
            OP_SET => Some(value.map(str::to_string).ok_or_else(|| {
                TopicError::new(INVALID_REQUEST, format!("null value for {name}"))
            })?),
            OP_DELETE => None,
            OP_APPEND | OP_SUBTRACT => {
                if !LIST_CONFIGS.contains(&name) {
                    return Err(TopicError::new(
                        codes::INVALID_CONFIG,
                        format!("{name} is not a list: APPEND and SUBTRACT do not apply"),
                    ));
                }
                let split = |v: &str| -> Vec<String> {
                    v.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect()
                };
                let mut list = split(current.as_deref().unwrap_or_default());
                let given = split(value.unwrap_or_default());
                if op.config_operation == OP_APPEND {
                    for v in given {
                        if !list.contains(&v) {
                            list.push(v);
                        }
                    }
                } else {
                    list.retain(|v| !given.contains(v));
                }
                Some(list.join(","))
            }
            other => {
                return Err(TopicError::new(
                    INVALID_REQUEST,
                    format!("unknown config operation {other} for {name}"),
                ))
            }
        };
        configs.retain(|c| c.name != name);
        if let Some(value) = new_value {
            configs.push(ConfigEntry {
                name: name.to_string(),
                value,
            });
        }
    }
    Ok(())
}

fn broker_configs(broker: &Broker) -> Vec<(String, String, i8)> {
    let c = &broker.config;
    [
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
        ),
        ("num.partitions", c.default_partitions.to_string()),
        ("message.max.bytes", c.max_message_bytes.to_string()),
        ("socket.request.max.bytes", c.max_request_bytes.to_string()),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay_ms.to_string(),
        ),
        (
            "group.min.session.timeout.ms",
            c.group_min_session_timeout_ms.to_string(),
        ),
        (
            "group.max.session.timeout.ms",
            c.group_max_session_timeout_ms.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v, SOURCE_DEFAULT))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    fn op(name: &'static str, operation: i8, value: Option<&'static str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(StrBytes::from_static_str(name))
            .with_config_operation(operation)
            .with_value(value.map(StrBytes::from_static_str))
    }

    #[test]
    fn config_operations_set_delete_append_subtract() {
        let mut configs = Vec::new();
        let value = |configs: &Vec<ConfigEntry>, name: &str| {
            configs
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.value.clone())
        };
        apply_config_ops(
            &mut configs,
            &[op("cleanup.policy", OP_APPEND, Some("compact"))],
        )
        .unwrap();
        assert_eq!(
            value(&configs, "cleanup.policy").as_deref(),
            Some("delete,compact")
        );
        apply_config_ops(
            &mut configs,
            &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
        )
        .unwrap();
        assert_eq!(
            value(&configs, "cleanup.policy").as_deref(),
            Some("compact")
        );
        apply_config_ops(&mut configs, &[op("retention.ms", OP_SET, Some("1000"))]).unwrap();
        assert_eq!(value(&configs, "retention.ms").as_deref(), Some("1000"));
        apply_config_ops(&mut configs, &[op("retention.ms", OP_DELETE, None)]).unwrap();
        assert_eq!(value(&configs, "retention.ms"), None);
        let err = apply_config_ops(&mut configs, &[op("retention.ms", OP_APPEND, Some("1"))]);
        assert_eq!(err.unwrap_err().code, codes::INVALID_CONFIG);
        let err = apply_config_ops(&mut configs, &[op("retention.ms", 9, Some("1"))]);
        assert_eq!(err.unwrap_err().code, INVALID_REQUEST);
    }

    fn check(indexes: &[i32], replicas: &[&[i32]], each: Option<usize>) -> Result<(), String> {
        let lists: Vec<Vec<BrokerId>> = replicas
            .iter()
            .map(|r| r.iter().map(|&b| BrokerId(b)).collect())
            .collect();
        let lists: Vec<&[BrokerId]> = lists.iter().map(|l| &l[..]).collect();
        validate_assignment(3, indexes, &lists, each)
    }

    #[test]
    fn replica_assignments_follow_kafkas_rules() {
        assert!(check(&[0, 1], &[&[3], &[3]], None).is_ok());
        assert!(check(&[1, 0], &[&[3], &[3]], None).is_ok(), "any order");
        assert!(check(&[0, 0], &[&[3], &[3]], None)
            .unwrap_err()
            .contains("multiple"));
        assert!(check(&[0, 2], &[&[3], &[3]], None)
            .unwrap_err()
            .contains("consecutive"));
        assert!(check(&[0], &[&[]], None).unwrap_err().contains("empty"));
        assert!(check(&[0], &[&[4]], None).unwrap_err().contains("broker 4"));
        assert!(check(&[0], &[&[3, 3]], None)
            .unwrap_err()
            .contains("more than once"));
        assert!(check(&[0], &[&[3]], Some(2))
            .unwrap_err()
            .contains("replica(s)"));
    }
}
