//! The metadata service: a replicated key-value store with compare-and-set, leases and
//! watches (a small etcd). Method ids 200..299.
use bytes::Bytes;

use super::bookie::methods;
use super::wire::Method;
use crate::wire_struct;

/// Outcome of a metadata call, mirrored from the metadata store's error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u16)]
pub enum MetaCode {
    #[default]
    Ok = 0,
    /// A compare-and-set expectation failed; `current` holds the key's present value.
    Conflict = 1,
    /// This node is not the Raft leader; `hint` is the leader's node id if known.
    NotLeader = 2,
    LeaseNotFound = 3,
    /// A watch asked for history that is gone; `hint` is the oldest revision available.
    Compacted = 4,
    Timeout = 5,
    Storage = 6,
    ShuttingDown = 7,
    Other = 8,
}

impl MetaCode {
    pub fn from_u16(v: u16) -> MetaCode {
        match v {
            0 => MetaCode::Ok,
            1 => MetaCode::Conflict,
            2 => MetaCode::NotLeader,
            3 => MetaCode::LeaseNotFound,
            4 => MetaCode::Compacted,
            5 => MetaCode::Timeout,
            6 => MetaCode::Storage,
            7 => MetaCode::ShuttingDown,
            _ => MetaCode::Other,
        }
    }
}

wire_struct! {
    #[derive(Debug, Clone, PartialEq)]
    pub struct KeyValueData {
        pub key: String,
        pub value: Bytes,
        pub create_revision: u64,
        pub mod_revision: u64,
        pub lease: Option<u64>,
    }
}

wire_struct! {
    /// `code` is a [`MetaCode`]. `hint` carries the leader id (NotLeader), the oldest revision
    /// (Compacted) or the lease id (LeaseNotFound); `key`/`current` the conflicting key.
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct MetaStatus {
        pub code: u16,
        pub message: String,
        pub hint: Option<u64>,
        pub key: String,
        pub current: Option<KeyValueData>,
    }
}

impl MetaStatus {
    pub fn ok() -> MetaStatus {
        MetaStatus::default()
    }
    pub fn code(&self) -> MetaCode {
        MetaCode::from_u16(self.code)
    }
}

wire_struct! {
    /// Compare-and-set condition: `kind` 0 any, 1 absent, 2 exactly `revision`.
    #[derive(Debug, Clone, Copy, Default, PartialEq)]
    pub struct ExpectData { pub kind: u8, pub revision: u64 }
}

wire_struct! {
    /// One write of a batch: `delete` false = put.
    #[derive(Debug, Clone)]
    pub struct OpData {
        pub delete: bool,
        pub key: String,
        pub value: Bytes,
        pub expect: ExpectData,
        pub lease: Option<u64>,
    }
}

wire_struct! {
    #[derive(Debug, Clone)]
    pub struct KeyRequest { pub key: String }
}
wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct GetResponse { pub status: MetaStatus, pub kv: Option<KeyValueData> }
}
wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct ListResponse { pub status: MetaStatus, pub kvs: Vec<KeyValueData> }
}
wire_struct! {
    /// One page of keys under `prefix` within `[start, end)` (empty = open end), at most
    /// `limit`, from the high end if `reverse`.
    #[derive(Debug, Clone)]
    pub struct RangeRequest {
        pub prefix: String,
        pub start: String,
        pub end: String,
        pub limit: u32,
        pub reverse: bool,
    }
}
wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct RangeResponse { pub status: MetaStatus, pub kvs: Vec<KeyValueData>, pub more: bool }
}
wire_struct! {
    #[derive(Debug, Clone)]
    pub struct PutRequest { pub key: String, pub value: Bytes, pub expect: ExpectData, pub lease: Option<u64> }
}
wire_struct! {
    #[derive(Debug, Clone)]
    pub struct DeleteRequest { pub key: String, pub expect: ExpectData }
}
wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct CountResponse { pub status: MetaStatus, pub count: u64 }
}
wire_struct! {
    #[derive(Debug, Clone)]
    pub struct BatchRequest { pub ops: Vec<OpData> }
}
wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct BatchResponse { pub status: MetaStatus, pub results: Vec<Option<KeyValueData>> }
}
wire_struct! {
    #[derive(Debug, Clone)]
    pub struct LeaseRequest { pub lease: u64, pub ttl_ms: u64 }
}
wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct LeaseResponse { pub status: MetaStatus, pub lease: u64, pub ttl_ms: u64 }
}
wire_struct! {
    #[derive(Debug, Clone)]
    pub struct WatchRequest { pub prefix: String, pub after_revision: u64, pub timeout_ms: u64 }
}
wire_struct! {
    #[derive(Debug, Clone, PartialEq)]
    pub struct EventData { pub delete: bool, pub kv: KeyValueData }
}
wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct WatchResponse { pub status: MetaStatus, pub events: Vec<EventData>, pub revision: u64 }
}
wire_struct! {
    /// A Raft message between metadata voters, in raft-rs's protobuf encoding.
    #[derive(Debug, Clone)]
    pub struct RaftMessageRequest { pub message: Bytes }
}
wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct StatusOnly { pub status: MetaStatus }
}

methods! {
    Get = 200: KeyRequest => GetResponse;
    List = 201: KeyRequest => ListResponse;
    Put = 202: PutRequest => GetResponse;
    Delete = 203: DeleteRequest => CountResponse;
    Batch = 204: BatchRequest => BatchResponse;
    DeletePrefix = 205: KeyRequest => CountResponse;
    GrantLease = 206: LeaseRequest => LeaseResponse;
    KeepAlive = 207: LeaseRequest => LeaseResponse;
    RevokeLease = 208: LeaseRequest => LeaseResponse;
    Watch = 209: WatchRequest => WatchResponse;
    RaftMessage = 210: RaftMessageRequest => StatusOnly;
    Range = 211: RangeRequest => RangeResponse;
}
