//! The record codec shared by journal files and entry log files.
//!
//! An entry is framed the same way in both places, so its CRC32C is computed once, when
//! the add arrives, and reused when the checkpoint copies the entry into an entry log.
//!
//! ## Record layout (all integers little-endian)
//!
//! ```text
//! offset  size  field
//!      0     4  body_len   u32   bytes after this 8-byte header
//!      4     4  crc        u32   CRC32C (Castagnoli) of the body bytes
//!      8     1  kind       u8    1 = Add, 2 = Fence, 3 = Delete, 4 = Lac
//! Add (body_len = 41 + payload length):
//!      9     8  ledger_id      u64
//!     17     8  entry_id       u64
//!     25     8  base_offset    i64
//!     33     8  last_offset    i64
//!     41     8  max_timestamp  i64
//!     49     n  payload
//! Fence / Delete (body_len = 9):
//!      9     8  ledger_id      u64
//! Lac (body_len = 17; journal only):
//!      9     8  ledger_id      u64
//!     17     8  lac            u64   the writer's last-add-confirmed piggybacked on an add
//! ```
//!
//! Entry logs only ever contain Add records. A reader validates, in order: `body_len`
//! within bounds and inside the file, the CRC over the body, a known kind, and the body
//! length expected for that kind. Anything else is a torn or corrupt record.

use bytes::{BufMut, Bytes};

use crate::EntryMeta;

/// Length of the fixed header in front of every body (`body_len` + `crc`).
pub(crate) const RECORD_HEADER_LEN: usize = 8;
/// Body bytes of an Add record before the payload.
pub(crate) const ADD_BODY_PREFIX_LEN: usize = 1 + 8 * 5;
/// Full framing of an Add record before the payload (header + body prefix).
pub(crate) const ADD_FRAME_LEN: usize = RECORD_HEADER_LEN + ADD_BODY_PREFIX_LEN;
/// Full length of a Fence or Delete record.
pub(crate) const LEDGER_OP_RECORD_LEN: usize = RECORD_HEADER_LEN + 1 + 8;

pub(crate) const KIND_ADD: u8 = 1;
pub(crate) const KIND_FENCE: u8 = 2;
pub(crate) const KIND_DELETE: u8 = 3;
pub(crate) const KIND_LAC: u8 = 4;
/// Full length of a Lac record.
pub(crate) const LAC_RECORD_LEN: usize = RECORD_HEADER_LEN + 1 + 8 + 8;

/// Largest body a reader accepts; anything larger is treated as garbage rather than
/// allocated.
pub(crate) const MAX_BODY_LEN: usize = ADD_BODY_PREFIX_LEN + crate::MAX_ENTRY_BYTES;

fn add_body_prefix(ledger_id: u64, entry_id: u64, meta: &EntryMeta) -> [u8; ADD_BODY_PREFIX_LEN] {
    let mut b = [0u8; ADD_BODY_PREFIX_LEN];
    b[0] = KIND_ADD;
    b[1..9].copy_from_slice(&ledger_id.to_le_bytes());
    b[9..17].copy_from_slice(&entry_id.to_le_bytes());
    b[17..25].copy_from_slice(&meta.base_offset.to_le_bytes());
    b[25..33].copy_from_slice(&meta.last_offset.to_le_bytes());
    b[33..41].copy_from_slice(&meta.max_timestamp.to_le_bytes());
    b
}

/// CRC32C of an Add record's body: covers the ids and metadata as well as the payload,
/// so a record copied to the wrong place or with a flipped metadata bit is caught too.
pub(crate) fn add_crc(ledger_id: u64, entry_id: u64, meta: &EntryMeta, payload: &[u8]) -> u32 {
    let prefix = add_body_prefix(ledger_id, entry_id, meta);
    crc32c::crc32c_append(crc32c::crc32c(&prefix), payload)
}

/// Appends the 49-byte frame of an Add record (everything but the payload) to `buf`.
/// The caller writes the payload right after it (with `writev`, without copying it).
pub(crate) fn put_add_frame(
    buf: &mut Vec<u8>,
    ledger_id: u64,
    entry_id: u64,
    meta: &EntryMeta,
    payload_len: usize,
    crc: u32,
) {
    // payload_len <= MAX_ENTRY_BYTES is checked on entry to the bookie, so this fits.
    buf.put_u32_le((ADD_BODY_PREFIX_LEN + payload_len) as u32);
    buf.put_u32_le(crc);
    buf.put_slice(&add_body_prefix(ledger_id, entry_id, meta));
}

/// Appends a complete Fence or Delete record to `buf`.
pub(crate) fn put_ledger_op(buf: &mut Vec<u8>, kind: u8, ledger_id: u64) {
    let mut body = [0u8; 9];
    body[0] = kind;
    body[1..9].copy_from_slice(&ledger_id.to_le_bytes());
    buf.put_u32_le(body.len() as u32);
    buf.put_u32_le(crc32c::crc32c(&body));
    buf.put_slice(&body);
}

/// Appends a complete Lac record to `buf`.
pub(crate) fn put_lac(buf: &mut Vec<u8>, ledger_id: u64, lac: u64) {
    let mut body = [0u8; 17];
    body[0] = KIND_LAC;
    body[1..9].copy_from_slice(&ledger_id.to_le_bytes());
    body[9..17].copy_from_slice(&lac.to_le_bytes());
    buf.put_u32_le(body.len() as u32);
    buf.put_u32_le(crc32c::crc32c(&body));
    buf.put_slice(&body);
}

/// A record header as read from disk, before its body is looked at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordHeader {
    pub body_len: usize,
    pub crc: u32,
}

pub(crate) fn parse_header(h: &[u8; RECORD_HEADER_LEN]) -> RecordHeader {
    let [a, b, c, d, e, f, g, i] = *h;
    RecordHeader {
        body_len: u32::from_le_bytes([a, b, c, d]) as usize,
        crc: u32::from_le_bytes([e, f, g, i]),
    }
}

/// A decoded record body.
#[derive(Debug)]
pub(crate) enum Record {
    Add {
        ledger_id: u64,
        entry_id: u64,
        meta: EntryMeta,
        crc: u32,
        /// A slice of the buffer the body was read into (no copy).
        payload: Bytes,
    },
    Fence {
        ledger_id: u64,
    },
    Delete {
        ledger_id: u64,
    },
    /// The writer's last-add-confirmed, journaled with the add that carried it, so
    /// recovery knows which entries the writer saw acknowledged (BookKeeper's piggybacked
    /// LAC). Never in entry logs.
    Lac {
        ledger_id: u64,
        lac: u64,
    },
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Validates and decodes a body. Never panics: every index is checked against the length
/// first.
pub(crate) fn decode_body(header: RecordHeader, body: Bytes) -> Result<Record, &'static str> {
    if body.len() != header.body_len {
        return Err("body length mismatch");
    }
    if crc32c::crc32c(&body) != header.crc {
        return Err("crc32c mismatch");
    }
    match body.first().copied() {
        Some(KIND_ADD) if body.len() >= ADD_BODY_PREFIX_LEN => Ok(Record::Add {
            ledger_id: le_u64(&body, 1),
            entry_id: le_u64(&body, 9),
            meta: EntryMeta {
                base_offset: le_u64(&body, 17) as i64,
                last_offset: le_u64(&body, 25) as i64,
                max_timestamp: le_u64(&body, 33) as i64,
            },
            crc: header.crc,
            payload: body.slice(ADD_BODY_PREFIX_LEN..),
        }),
        Some(KIND_FENCE) if body.len() == 9 => Ok(Record::Fence {
            ledger_id: le_u64(&body, 1),
        }),
        Some(KIND_DELETE) if body.len() == 9 => Ok(Record::Delete {
            ledger_id: le_u64(&body, 1),
        }),
        Some(KIND_LAC) if body.len() == 17 => Ok(Record::Lac {
            ledger_id: le_u64(&body, 1),
            lac: le_u64(&body, 9),
        }),
        Some(KIND_ADD | KIND_FENCE | KIND_DELETE | KIND_LAC) => Err("body too short for its kind"),
        _ => Err("unknown record kind"),
    }
}

/// Decodes a whole record (header + body) held in one buffer, as read back from an
/// entry log.
pub(crate) fn decode_record(rec: Bytes) -> Result<Record, &'static str> {
    let Some(h) = rec.get(..RECORD_HEADER_LEN) else {
        return Err("record shorter than its header");
    };
    let mut hb = [0u8; RECORD_HEADER_LEN];
    hb.copy_from_slice(h);
    let header = parse_header(&hb);
    if header.body_len > MAX_BODY_LEN {
        return Err("record length out of range");
    }
    decode_body(header, rec.slice(RECORD_HEADER_LEN..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_round_trip_and_crc_reuse() {
        let meta = EntryMeta {
            base_offset: -3,
            last_offset: 7,
            max_timestamp: i64::MIN,
        };
        let payload = b"hello world";
        let crc = add_crc(5, 9, &meta, payload);
        let mut buf = Vec::new();
        put_add_frame(&mut buf, 5, 9, &meta, payload.len(), crc);
        assert_eq!(buf.len(), ADD_FRAME_LEN);
        buf.extend_from_slice(payload);
        match decode_record(Bytes::from(buf.clone())) {
            Ok(Record::Add {
                ledger_id: 5,
                entry_id: 9,
                meta: m,
                payload: p,
                ..
            }) => {
                assert_eq!(m, meta);
                assert_eq!(&p[..], payload);
            }
            other => panic!("unexpected {other:?}"),
        }
        // Any flipped byte is rejected.
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(decode_record(Bytes::from(bad)).is_err(), "byte {i}");
        }
        // Truncation is rejected.
        assert!(decode_record(Bytes::from(buf[..buf.len() - 1].to_vec())).is_err());
        assert!(decode_record(Bytes::from_static(b"abc")).is_err());
    }

    #[test]
    fn ledger_ops_round_trip() {
        let mut buf = Vec::new();
        put_ledger_op(&mut buf, KIND_FENCE, 77);
        put_ledger_op(&mut buf, KIND_DELETE, 78);
        assert_eq!(buf.len(), 2 * LEDGER_OP_RECORD_LEN);
        let a = decode_record(Bytes::copy_from_slice(&buf[..LEDGER_OP_RECORD_LEN]));
        let b = decode_record(Bytes::copy_from_slice(&buf[LEDGER_OP_RECORD_LEN..]));
        assert!(matches!(a, Ok(Record::Fence { ledger_id: 77 })));
        assert!(matches!(b, Ok(Record::Delete { ledger_id: 78 })));
    }
}
