//! Commands: what a raft entry's data means, and its encoding.
//!
//! Every entry starts with a format version byte ([`COMMAND_VERSION`]) and a command tag, so
//! later releases can add commands or fields without misreading old logs: a node that meets a
//! version or tag it does not know fails that entry deterministically (every replica reaches
//! the same verdict) rather than guessing.
//!
//! ```text
//! entry   := version:u8 (=1) tag:u8 body
//! tag 1 Txn          count:u32 op*         (put, delete and batch all travel as a Txn)
//!   op    := 1 key:str value:bytes expect lease:opt_u64    (put)
//!          | 2 key:str expect                              (delete)
//!   expect:= 0 (any) | 1 (absent) | 2 revision:u64
//! tag 2 DeletePrefix prefix:str
//! tag 3 GrantLease   ttl_ms:u64            (the lease id is the entry's raft index)
//! tag 4 RevokeLease  lease:u64
//! tag 5 ExpireLease  lease:u64             (proposed by the leader when a deadline passes)
//! str/bytes := len:u32 payload; opt_u64 := 0 | 1 value:u64; integers big-endian
//! ```
use bytes::Bytes;

use crate::codec::{put_bytes, put_opt_u64, put_u64, put_u8, CodecError, Reader};
use crate::types::{Expect, KeyValue, LeaseId, Op};

pub(crate) const COMMAND_VERSION: u8 = 1;

const TAG_TXN: u8 = 1;
const TAG_DELETE_PREFIX: u8 = 2;
const TAG_GRANT: u8 = 3;
const TAG_REVOKE: u8 = 4;
const TAG_EXPIRE: u8 = 5;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Command {
    /// All expectations are checked against the state before the command, then all ops apply.
    Txn(Vec<Op>),
    DeletePrefix(String),
    GrantLease {
        ttl_ms: u64,
    },
    RevokeLease(LeaseId),
    ExpireLease(LeaseId),
}

/// What a successfully applied command returns to its proposer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Response {
    /// Per op: `Put` gives the new key state; `Delete` the deleted key's previous state, or
    /// `None` if there was nothing to delete.
    Txn(Vec<Option<KeyValue>>),
    /// Number of keys removed by `DeletePrefix`.
    Deleted(u64),
    Lease(LeaseId),
    /// `RevokeLease` / `ExpireLease` done.
    LeaseGone,
}

impl Command {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64);
        put_u8(&mut buf, COMMAND_VERSION);
        match self {
            Command::Txn(ops) => {
                put_u8(&mut buf, TAG_TXN);
                buf.extend_from_slice(&(ops.len() as u32).to_be_bytes());
                for op in ops {
                    match op {
                        Op::Put {
                            key,
                            value,
                            expect,
                            lease,
                        } => {
                            put_u8(&mut buf, OP_PUT);
                            put_bytes(&mut buf, key.as_bytes());
                            put_bytes(&mut buf, value);
                            put_expect(&mut buf, *expect);
                            put_opt_u64(&mut buf, *lease);
                        }
                        Op::Delete { key, expect } => {
                            put_u8(&mut buf, OP_DELETE);
                            put_bytes(&mut buf, key.as_bytes());
                            put_expect(&mut buf, *expect);
                        }
                    }
                }
            }
            Command::DeletePrefix(prefix) => {
                put_u8(&mut buf, TAG_DELETE_PREFIX);
                put_bytes(&mut buf, prefix.as_bytes());
            }
            Command::GrantLease { ttl_ms } => {
                put_u8(&mut buf, TAG_GRANT);
                put_u64(&mut buf, *ttl_ms);
            }
            Command::RevokeLease(id) => {
                put_u8(&mut buf, TAG_REVOKE);
                put_u64(&mut buf, *id);
            }
            Command::ExpireLease(id) => {
                put_u8(&mut buf, TAG_EXPIRE);
                put_u64(&mut buf, *id);
            }
        }
        buf
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Command, CodecError> {
        let mut r = Reader::new(data);
        let version = r.u8("command version")?;
        if version != COMMAND_VERSION {
            return Err(CodecError::UnsupportedVersion {
                what: "command",
                version,
            });
        }
        let cmd = match r.u8("command tag")? {
            TAG_TXN => {
                let count = r.u32("op count")?;
                // Smallest op: tag + empty key + expect tag.
                let mut ops = Vec::with_capacity(r.capacity_hint(u64::from(count), 6));
                for _ in 0..count {
                    ops.push(decode_op(&mut r)?);
                }
                Command::Txn(ops)
            }
            TAG_DELETE_PREFIX => Command::DeletePrefix(r.string("prefix")?),
            TAG_GRANT => Command::GrantLease {
                ttl_ms: r.u64("ttl")?,
            },
            TAG_REVOKE => Command::RevokeLease(r.u64("lease")?),
            TAG_EXPIRE => Command::ExpireLease(r.u64("lease")?),
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "command",
                    tag,
                })
            }
        };
        r.finish()?;
        Ok(cmd)
    }
}

fn put_expect(buf: &mut Vec<u8>, expect: Expect) {
    match expect {
        Expect::Any => put_u8(buf, 0),
        Expect::Absent => put_u8(buf, 1),
        Expect::Revision(rev) => {
            put_u8(buf, 2);
            put_u64(buf, rev);
        }
    }
}

fn decode_expect(r: &mut Reader<'_>) -> Result<Expect, CodecError> {
    match r.u8("expect")? {
        0 => Ok(Expect::Any),
        1 => Ok(Expect::Absent),
        2 => Ok(Expect::Revision(r.u64("expected revision")?)),
        tag => Err(CodecError::UnknownTag {
            what: "expect",
            tag,
        }),
    }
}

fn decode_op(r: &mut Reader<'_>) -> Result<Op, CodecError> {
    match r.u8("op tag")? {
        OP_PUT => {
            let key = r.string("key")?;
            let value = Bytes::copy_from_slice(r.bytes("value")?);
            let expect = decode_expect(r)?;
            let lease = r.opt_u64("lease")?;
            Ok(Op::Put {
                key,
                value,
                expect,
                lease,
            })
        }
        OP_DELETE => {
            let key = r.string("key")?;
            let expect = decode_expect(r)?;
            Ok(Op::Delete { key, expect })
        }
        tag => Err(CodecError::UnknownTag { what: "op", tag }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Command> {
        vec![
            Command::Txn(vec![
                Op::Put {
                    key: "a/b".into(),
                    value: Bytes::from_static(b"v"),
                    expect: Expect::Absent,
                    lease: Some(42),
                },
                Op::Delete {
                    key: "c".into(),
                    expect: Expect::Revision(7),
                },
                Op::Put {
                    key: "".into(),
                    value: Bytes::new(),
                    expect: Expect::Any,
                    lease: None,
                },
            ]),
            Command::Txn(vec![]),
            Command::DeletePrefix("topics/".into()),
            Command::GrantLease { ttl_ms: 300 },
            Command::RevokeLease(9),
            Command::ExpireLease(10),
        ]
    }

    #[test]
    fn roundtrip() {
        for cmd in samples() {
            assert_eq!(Command::decode(&cmd.encode()).unwrap(), cmd);
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        for cmd in samples() {
            let data = cmd.encode();
            for cut in 0..data.len() {
                assert!(Command::decode(&data[..cut]).is_err(), "{cmd:?} cut {cut}");
            }
            let mut longer = data.clone();
            longer.push(0);
            assert!(Command::decode(&longer).is_err());
        }
    }

    #[test]
    fn unknown_version_and_tag_are_rejected() {
        let mut data = Command::RevokeLease(1).encode();
        data[0] = 2;
        assert!(matches!(
            Command::decode(&data),
            Err(CodecError::UnsupportedVersion { version: 2, .. })
        ));
        data[0] = COMMAND_VERSION;
        data[1] = 99;
        assert!(matches!(
            Command::decode(&data),
            Err(CodecError::UnknownTag { tag: 99, .. })
        ));
        // A corrupt op count must not allocate gigabytes.
        let data = [COMMAND_VERSION, TAG_TXN, 0xff, 0xff, 0xff, 0xff];
        assert!(Command::decode(&data).is_err());
    }
}
