//! Where everything lives in sled, and how stored records are encoded.
//!
//! One sled database per node at `data_dir/sled`, with two trees. Each tree is the unit of
//! atomicity (one `sled::Batch` per tree is crash-atomic); installing a snapshot, the only
//! write that must change both, uses a two-tree sled transaction.
//!
//! ## Tree `raft`: the replicated log and raft's own state ([`crate::storage`])
//!
//! | key                        | value                                              |
//! |----------------------------|----------------------------------------------------|
//! | `e` ++ index (u64 BE)      | `eraftpb::Entry`, protobuf                         |
//! | `m/hard_state`             | `eraftpb::HardState`, protobuf (term, vote, commit)|
//! | `m/conf_state`             | `eraftpb::ConfState`, protobuf (voters, learners)  |
//! | `m/snapshot_meta`          | `eraftpb::SnapshotMetadata`, protobuf: index/term of the last entry compacted away (or installed by snapshot); the log starts right after it |
//!
//! Entries and the hard state of one `Ready` are written in one batch, then flushed once.
//!
//! ## Tree `state`: the state machine ([`crate::state_machine`])
//!
//! | key                               | value                                       |
//! |-----------------------------------|---------------------------------------------|
//! | `k` ++ key (UTF-8)                | key record (below)                          |
//! | `l` ++ lease id (u64 BE)          | lease record (below)                        |
//! | `a` ++ lease id (u64 BE) ++ key   | empty: `key` is attached to the lease       |
//! | `m/applied`                       | u64 BE: raft index of the last applied entry|
//! | `m/revision`                      | u64 BE: current store revision              |
//!
//! Every entry's effects and the new `m/applied` (and `m/revision`) go into one batch, so
//! after a crash the state is exactly "everything up to `m/applied`": the restart neither
//! re-applies nor skips an entry. Keys sort by their UTF-8 bytes, which is `String` order,
//! so prefix scans of `k` return keys sorted. The `a` index makes revoking a lease
//! proportional to its keys, not to the whole store.
//!
//! Key record: `version:u8 (=1) create_revision:u64 mod_revision:u64 lease:opt_u64 value...`
//! (the value takes the rest of the record). Lease record: `version:u8 (=1) ttl_ms:u64`.
//!
//! The `state` tree is also the snapshot: [`crate::state_machine::StateMachine::snapshot`]
//! serializes every pair of it (`version:u8 (=1) count:u64 (key:bytes value:bytes)*`).
use bytes::Bytes;

use crate::codec::{put_opt_u64, put_u64, put_u8, CodecError, Reader};
use crate::types::KeyValue;

pub(crate) const SLED_DIR: &str = "sled";
pub(crate) const RAFT_TREE: &str = "raft";
pub(crate) const STATE_TREE: &str = "state";

// --- raft tree ---
pub(crate) const ENTRY_PREFIX: u8 = b'e';
pub(crate) const HARD_STATE_KEY: &[u8] = b"m/hard_state";
pub(crate) const CONF_STATE_KEY: &[u8] = b"m/conf_state";
pub(crate) const SNAPSHOT_META_KEY: &[u8] = b"m/snapshot_meta";

pub(crate) fn entry_key(index: u64) -> [u8; 9] {
    prefixed_u64(ENTRY_PREFIX, index)
}

pub(crate) fn entry_index(key: &[u8]) -> Result<u64, CodecError> {
    let mut r = Reader::new(key);
    r.u8("entry key")?;
    let index = r.u64("entry key")?;
    r.finish()?;
    Ok(index)
}

// --- state tree ---
pub(crate) const KV_PREFIX: u8 = b'k';
pub(crate) const LEASE_PREFIX: u8 = b'l';
pub(crate) const ATTACH_PREFIX: u8 = b'a';
pub(crate) const APPLIED_KEY: &[u8] = b"m/applied";
pub(crate) const REVISION_KEY: &[u8] = b"m/revision";

const KV_RECORD_VERSION: u8 = 1;
const LEASE_RECORD_VERSION: u8 = 1;
pub(crate) const SNAPSHOT_VERSION: u8 = 1;

pub(crate) fn kv_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(KV_PREFIX);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The user key of a `k`-prefixed sled key.
pub(crate) fn user_key(sled_key: &[u8]) -> Result<String, CodecError> {
    let raw = sled_key.get(1..).ok_or(CodecError::Truncated("kv key"))?;
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| CodecError::InvalidUtf8("kv key"))
}

pub(crate) fn lease_key(id: u64) -> [u8; 9] {
    prefixed_u64(LEASE_PREFIX, id)
}

pub(crate) fn lease_id(sled_key: &[u8]) -> Result<u64, CodecError> {
    let mut r = Reader::new(sled_key);
    r.u8("lease key")?;
    let id = r.u64("lease key")?;
    r.finish()?;
    Ok(id)
}

pub(crate) fn attach_prefix(lease: u64) -> [u8; 9] {
    prefixed_u64(ATTACH_PREFIX, lease)
}

pub(crate) fn attach_key(lease: u64, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + key.len());
    k.extend_from_slice(&attach_prefix(lease));
    k.extend_from_slice(key.as_bytes());
    k
}

/// The user key of an `a`-prefixed sled key.
pub(crate) fn attached_key(sled_key: &[u8]) -> Result<String, CodecError> {
    let raw = sled_key
        .get(9..)
        .ok_or(CodecError::Truncated("attach key"))?;
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| CodecError::InvalidUtf8("attach key"))
}

pub(crate) fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut buf = Vec::with_capacity(27 + kv.value.len());
    put_u8(&mut buf, KV_RECORD_VERSION);
    put_u64(&mut buf, kv.create_revision);
    put_u64(&mut buf, kv.mod_revision);
    put_opt_u64(&mut buf, kv.lease);
    buf.extend_from_slice(&kv.value);
    buf
}

pub(crate) fn decode_kv(key: String, record: &[u8]) -> Result<KeyValue, CodecError> {
    let mut r = Reader::new(record);
    let version = r.u8("key record")?;
    if version != KV_RECORD_VERSION {
        return Err(CodecError::UnsupportedVersion {
            what: "key record",
            version,
        });
    }
    let create_revision = r.u64("create revision")?;
    let mod_revision = r.u64("mod revision")?;
    let lease = r.opt_u64("lease")?;
    let value = Bytes::copy_from_slice(r.rest());
    Ok(KeyValue {
        key,
        value,
        create_revision,
        mod_revision,
        lease,
    })
}

pub(crate) fn encode_lease(ttl_ms: u64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(9);
    put_u8(&mut buf, LEASE_RECORD_VERSION);
    put_u64(&mut buf, ttl_ms);
    buf
}

pub(crate) fn decode_lease(record: &[u8]) -> Result<u64, CodecError> {
    let mut r = Reader::new(record);
    let version = r.u8("lease record")?;
    if version != LEASE_RECORD_VERSION {
        return Err(CodecError::UnsupportedVersion {
            what: "lease record",
            version,
        });
    }
    let ttl = r.u64("lease ttl")?;
    r.finish()?;
    Ok(ttl)
}

pub(crate) fn encode_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub(crate) fn decode_u64(b: &[u8]) -> Result<u64, CodecError> {
    let mut r = Reader::new(b);
    let v = r.u64("u64 value")?;
    r.finish()?;
    Ok(v)
}

fn prefixed_u64(prefix: u8, v: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&v.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_roundtrip_and_reject_garbage() {
        let kv = KeyValue {
            key: "x".into(),
            value: Bytes::from_static(b"hello"),
            create_revision: 3,
            mod_revision: 5,
            lease: Some(11),
        };
        assert_eq!(decode_kv("x".into(), &encode_kv(&kv)).unwrap(), kv);
        assert!(decode_kv("x".into(), &[2, 0, 0]).is_err());
        assert!(decode_kv("x".into(), &encode_kv(&kv)[..10]).is_err());
        assert_eq!(decode_lease(&encode_lease(300)).unwrap(), 300);
        assert!(decode_lease(&[1, 2]).is_err());
        assert_eq!(entry_index(&entry_key(77)).unwrap(), 77);
        assert_eq!(attached_key(&attach_key(5, "k/ü")).unwrap(), "k/ü");
        assert!(user_key(&[KV_PREFIX, 0xff]).is_err());
    }

    #[test]
    fn entry_keys_sort_by_index() {
        assert!(entry_key(255) < entry_key(256));
        assert!(entry_key(1) < entry_key(u64::MAX));
    }
}
