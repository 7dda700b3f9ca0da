//! The metadata service over RPC: decodes internal-protocol requests, calls
//! [`MetadataStore`], encodes the outcome. Raft messages from peers go to the node's inbox.
use std::time::Duration;

use bytes::Bytes;
use protobuf::Message as _;
use stratalog_protocol::internal::metadata::{
    self as msg, EventData, ExpectData, KeyValueData, MetaCode, MetaStatus, StatusOnly,
};
use stratalog_protocol::internal::{Method, Status};
use stratalog_runtime::rpc::{handle, Service, ServiceFuture};

use crate::{
    EventKind, Expect, KeyValue, MetadataError, MetadataStore, Op, RaftInbox, RaftMessage,
};

pub struct MetadataService {
    store: MetadataStore,
    inbox: RaftInbox,
}

impl MetadataService {
    pub fn new(store: MetadataStore, inbox: RaftInbox) -> MetadataService {
        MetadataService { store, inbox }
    }
}

fn kv_data(kv: KeyValue) -> KeyValueData {
    KeyValueData {
        key: kv.key,
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        lease: kv.lease,
    }
}

fn expect(e: ExpectData) -> Expect {
    match e.kind {
        1 => Expect::Absent,
        2 => Expect::Revision(e.revision),
        _ => Expect::Any,
    }
}

fn status(e: MetadataError) -> MetaStatus {
    let message = e.to_string();
    let (code, hint, key, current) = match e {
        MetadataError::Conflict { key, current } => {
            (MetaCode::Conflict, None, key, current.map(kv_data))
        }
        MetadataError::NotLeader { leader } => (MetaCode::NotLeader, leader, String::new(), None),
        MetadataError::LeaseNotFound(lease) => {
            (MetaCode::LeaseNotFound, Some(lease), String::new(), None)
        }
        MetadataError::Compacted { oldest } => {
            (MetaCode::Compacted, Some(oldest), String::new(), None)
        }
        MetadataError::Timeout => (MetaCode::Timeout, None, String::new(), None),
        MetadataError::Storage(_) => (MetaCode::Storage, None, String::new(), None),
        MetadataError::ShuttingDown => (MetaCode::ShuttingDown, None, String::new(), None),
        _ => (MetaCode::Other, None, String::new(), None),
    };
    MetaStatus {
        code: code as u16,
        message,
        hint,
        key,
        current,
    }
}

fn status_of<T>(result: &Result<T, MetadataError>) -> MetaStatus {
    match result {
        Ok(_) => MetaStatus::ok(),
        Err(e) => status(e.clone()),
    }
}

impl Service for MetadataService {
    fn call(&self, method: u16, body: Bytes) -> ServiceFuture {
        let store = self.store.clone();
        match method {
            msg::Get::ID => handle::<msg::Get, _, _>(body, |req| async move {
                let r = store.get(&req.key).await;
                msg::GetResponse {
                    status: status_of(&r),
                    kv: r.ok().flatten().map(kv_data),
                }
            }),
            msg::List::ID => handle::<msg::List, _, _>(body, |req| async move {
                let r = store.list(&req.key).await;
                msg::ListResponse {
                    status: status_of(&r),
                    kvs: r.unwrap_or_default().into_iter().map(kv_data).collect(),
                }
            }),
            msg::Range::ID => handle::<msg::Range, _, _>(body, |req| async move {
                let q = crate::RangeQuery {
                    prefix: req.prefix,
                    start: req.start,
                    end: req.end,
                    limit: req.limit as usize,
                    reverse: req.reverse,
                };
                let r = store.range(&q).await;
                let (kvs, more) = r.as_ref().map_or((Vec::new(), false), |(kvs, more)| {
                    (kvs.iter().cloned().map(kv_data).collect(), *more)
                });
                msg::RangeResponse {
                    status: status_of(&r),
                    kvs,
                    more,
                }
            }),
            msg::Put::ID => handle::<msg::Put, _, _>(body, |req| async move {
                let r = store
                    .put(&req.key, req.value, expect(req.expect), req.lease)
                    .await;
                msg::GetResponse {
                    status: status_of(&r),
                    kv: r.ok().map(kv_data),
                }
            }),
            msg::Delete::ID => handle::<msg::Delete, _, _>(body, |req| async move {
                let r = store.delete(&req.key, expect(req.expect)).await;
                msg::CountResponse {
                    status: status_of(&r),
                    count: r.map_or(0, u64::from),
                }
            }),
            msg::DeletePrefix::ID => handle::<msg::DeletePrefix, _, _>(body, |req| async move {
                let r = store.delete_prefix(&req.key).await;
                msg::CountResponse {
                    status: status_of(&r),
                    count: r.unwrap_or(0),
                }
            }),
            msg::Batch::ID => handle::<msg::Batch, _, _>(body, |req| async move {
                let ops = req
                    .ops
                    .into_iter()
                    .map(|op| match op.delete {
                        true => Op::Delete {
                            key: op.key,
                            expect: expect(op.expect),
                        },
                        false => Op::Put {
                            key: op.key,
                            value: op.value,
                            expect: expect(op.expect),
                            lease: op.lease,
                        },
                    })
                    .collect();
                let r = store.batch(ops).await;
                let status = status_of(&r);
                msg::BatchResponse {
                    status,
                    results: r
                        .unwrap_or_default()
                        .into_iter()
                        .map(|kv| kv.map(kv_data))
                        .collect(),
                }
            }),
            msg::GrantLease::ID => handle::<msg::GrantLease, _, _>(body, |req| async move {
                let r = store.grant_lease(Duration::from_millis(req.ttl_ms)).await;
                msg::LeaseResponse {
                    status: status_of(&r),
                    lease: r.unwrap_or(0),
                    ttl_ms: req.ttl_ms,
                }
            }),
            msg::KeepAlive::ID => handle::<msg::KeepAlive, _, _>(body, |req| async move {
                let r = store.keep_alive(req.lease).await;
                msg::LeaseResponse {
                    status: status_of(&r),
                    lease: req.lease,
                    ttl_ms: r.map_or(0, |d| d.as_millis() as u64),
                }
            }),
            msg::RevokeLease::ID => handle::<msg::RevokeLease, _, _>(body, |req| async move {
                let r = store.revoke_lease(req.lease).await;
                msg::LeaseResponse {
                    status: status_of(&r),
                    lease: req.lease,
                    ttl_ms: 0,
                }
            }),
            msg::Watch::ID => handle::<msg::Watch, _, _>(body, |req| async move {
                let r = store
                    .watch(
                        &req.prefix,
                        req.after_revision,
                        Duration::from_millis(req.timeout_ms),
                    )
                    .await;
                let status = status_of(&r);
                let (events, revision) = r.unwrap_or_default();
                let events = events
                    .into_iter()
                    .map(|e| EventData {
                        delete: e.kind == EventKind::Delete,
                        kv: kv_data(e.kv),
                    })
                    .collect();
                msg::WatchResponse {
                    status,
                    events,
                    revision,
                }
            }),
            msg::RaftMessage::ID => {
                let inbox = self.inbox.clone();
                handle::<msg::RaftMessage, _, _>(body, |req| async move {
                    let status = match RaftMessage::parse_from_bytes(&req.message) {
                        Ok(m) => {
                            inbox.step(m);
                            MetaStatus::ok()
                        }
                        Err(e) => MetaStatus {
                            code: MetaCode::Other as u16,
                            message: format!("bad raft message: {e}"),
                            ..Default::default()
                        },
                    };
                    StatusOnly { status }
                })
            }
            other => Box::pin(async move {
                Err((
                    Status::UnknownMethod,
                    format!("metadata service has no method {other}"),
                ))
            }),
        }
    }
}
