//! RecordBatch v2 ("magic 2"), the only format Stratalog stores.
//!
//! ```text
//! offset  field                   notes
//!  0      base_offset      i64    assigned by the broker on append
//!  8      batch_length     i32    bytes after this field
//! 12      leader_epoch     i32
//! 16      magic            i8     must be 2
//! 17      crc              u32    CRC-32C of bytes 21..end
//! 21      attributes       i16    bits 0-2 codec, 3 log-append-time, 4 transactional, 5 control
//! 23      last_offset_delta i32
//! 27      base_timestamp   i64
//! 35      max_timestamp    i64
//! 43      producer_id      i64
//! 51      producer_epoch   i16
//! 53      base_sequence    i32
//! 57      records_count    i32
//! 61      records...              possibly compressed as a whole
//! ```
//!
//! Each record: `varint length, i8 attributes, varlong timestamp_delta, varint offset_delta,
//! varint key_len, key, varint value_len, value, varint header_count, headers...` where a
//! length of -1 means null.
use bytes::{Buf, BytesMut};

pub use super::compression::Compression;
use super::compression::{self, DecompressError};

pub const HEADER_LEN: usize = 61;
/// Largest a batch may inflate to. Kafka has no such limit; without one a small compressed
/// batch can claim more memory than the machine has.
pub const MAX_DECOMPRESSED: usize = 128 * 1024 * 1024;
const CRC_START: usize = 21;

/// A Kafka error code for a rejected batch, with the reason for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// CORRUPT_MESSAGE (2): the bytes are damaged (size, CRC, truncated records).
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// INVALID_RECORD (87): well-formed bytes that break a rule (magic, counts, offsets).
    #[error("invalid record batch: {0}")]
    Invalid(String),
    /// UNSUPPORTED_COMPRESSION_TYPE (76).
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(u8),
}

impl BatchError {
    pub fn kafka_code(&self) -> i16 {
        match self {
            BatchError::Corrupt(_) => 2,
            BatchError::Invalid(_) => 87,
            BatchError::UnsupportedCompression(_) => 76,
        }
    }
}

/// The header fields of a validated batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
    /// Total bytes of the batch, header included.
    pub size: usize,
}

impl BatchInfo {
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Ok(match self.attributes & 0x7 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(BatchError::UnsupportedCompression(other as u8)),
        })
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x8 != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0
    }
    /// Sequence number of the last record, wrapping at i32::MAX like Kafka.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        (last % (i32::MAX as i64 + 1)) as i32
    }
}

/// Reads the header of the batch at the start of `buf` without checking its body.
pub fn peek_header(buf: &[u8]) -> Result<BatchInfo, BatchError> {
    let info = header_prefix(buf)?;
    if info.size > buf.len() {
        return Err(BatchError::Corrupt(format!(
            "batch length {} does not fit the {} bytes sent",
            info.size - 12,
            buf.len()
        )));
    }
    Ok(info)
}

/// Decodes the header at the start of `buf`, which may hold only the header (the first
/// [`HEADER_LEN`] bytes of a batch, as a header-only read returns them); `size` is the
/// whole batch's size as the header states it.
pub fn header_prefix(buf: &[u8]) -> Result<BatchInfo, BatchError> {
    if buf.len() < HEADER_LEN {
        return Err(BatchError::Corrupt(format!(
            "{} bytes is shorter than a batch header ({HEADER_LEN})",
            buf.len()
        )));
    }
    let mut b = buf;
    let base_offset = b.get_i64();
    let batch_length = b.get_i32();
    if batch_length < (HEADER_LEN - 12) as i32 {
        return Err(BatchError::Corrupt(format!(
            "batch length {batch_length} is shorter than a batch header"
        )));
    }
    let size = batch_length as usize + 12;
    let _leader_epoch = b.get_i32();
    let magic = b.get_i8();
    if magic != 2 {
        return Err(BatchError::Invalid(format!(
            "magic {magic}; only RecordBatch v2 is accepted"
        )));
    }
    let _crc = b.get_u32();
    Ok(BatchInfo {
        base_offset,
        attributes: b.get_i16(),
        last_offset_delta: b.get_i32(),
        base_timestamp: b.get_i64(),
        max_timestamp: b.get_i64(),
        producer_id: b.get_i64(),
        producer_epoch: b.get_i16(),
        base_sequence: b.get_i32(),
        records_count: b.get_i32(),
        size,
    })
}

/// Validates a batch a producer sent: exactly one batch, intact CRC, magic 2, a record count
/// that matches the records, and offset deltas 0, 1, 2, ... (decompressing if needed).
pub fn validate(buf: &[u8]) -> Result<BatchInfo, BatchError> {
    let info = peek_header(buf)?;
    if info.size != buf.len() {
        return Err(BatchError::Invalid(format!(
            "{} trailing bytes after the batch; a produce request carries exactly one batch per partition",
            buf.len() - info.size
        )));
    }
    let stored_crc = u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]);
    let crc = crc32c::crc32c(&buf[CRC_START..]);
    if crc != stored_crc {
        return Err(BatchError::Corrupt(format!(
            "CRC mismatch: batch says {stored_crc:#010x}, content is {crc:#010x}"
        )));
    }
    if info.records_count <= 0 {
        return Err(BatchError::Invalid(format!(
            "records_count {}",
            info.records_count
        )));
    }
    if info.last_offset_delta != info.records_count - 1 {
        return Err(BatchError::Invalid(format!(
            "last_offset_delta {} with {} records",
            info.last_offset_delta, info.records_count
        )));
    }
    let body = &buf[HEADER_LEN..];
    match info.compression()? {
        Compression::None => check_records(body, info.records_count)?,
        codec => {
            let raw = decompress(codec, body)?;
            check_records(&raw, info.records_count)?
        }
    }
    Ok(info)
}

fn decompress(codec: Compression, body: &[u8]) -> Result<Vec<u8>, BatchError> {
    compression::decompress(codec, body, MAX_DECOMPRESSED).map_err(|e| match e {
        DecompressError::TooLarge { .. } => BatchError::Invalid(e.to_string()),
        DecompressError::Corrupt { .. } => BatchError::Corrupt(e.to_string()),
    })
}

/// Walks the records, checking each one's framing and that offset deltas count up from 0.
fn check_records(mut body: &[u8], expected: i32) -> Result<(), BatchError> {
    let mut index = 0i32;
    while !body.is_empty() {
        let len = read_varint(&mut body)?;
        if len < 0 || len as usize > body.len() {
            return Err(BatchError::Corrupt(format!(
                "record {index} claims {len} bytes"
            )));
        }
        let (mut record, rest) = body.split_at(len as usize);
        body = rest;
        if record.is_empty() {
            return Err(BatchError::Corrupt(format!("record {index} is empty")));
        }
        record.advance(1); // attributes
        read_varlong(&mut record)?; // timestamp delta
        let offset_delta = read_varint(&mut record)?;
        if offset_delta != index {
            return Err(BatchError::Invalid(format!(
                "record {index} has offset delta {offset_delta}"
            )));
        }
        skip_bytes(&mut record, "key")?;
        skip_bytes(&mut record, "value")?;
        let headers = read_varint(&mut record)?;
        if headers < 0 {
            return Err(BatchError::Corrupt(format!(
                "record {index} has {headers} headers"
            )));
        }
        for _ in 0..headers {
            skip_bytes(&mut record, "header key")?;
            skip_bytes(&mut record, "header value")?;
        }
        if !record.is_empty() {
            return Err(BatchError::Corrupt(format!(
                "record {index} has trailing bytes"
            )));
        }
        index += 1;
    }
    if index != expected {
        return Err(BatchError::Invalid(format!(
            "header says {expected} records, body holds {index}"
        )));
    }
    Ok(())
}

fn skip_bytes(buf: &mut &[u8], what: &str) -> Result<(), BatchError> {
    let len = read_varint(buf)?;
    if len < -1 || len as i64 > buf.len() as i64 {
        return Err(BatchError::Corrupt(format!(
            "{what} length {len} out of range"
        )));
    }
    if len > 0 {
        buf.advance(len as usize);
    }
    Ok(())
}

pub fn read_varint(buf: &mut &[u8]) -> Result<i32, BatchError> {
    let v = read_varlong(buf)?;
    i32::try_from(v).map_err(|_| BatchError::Corrupt(format!("varint {v} overflows i32")))
}

/// Zig-zag encoded variable-length integer, as in protobuf.
pub fn read_varlong(buf: &mut &[u8]) -> Result<i64, BatchError> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let Some((&byte, rest)) = buf.split_first() else {
            return Err(BatchError::Corrupt("truncated varint".into()));
        };
        *buf = rest;
        if shift == 63 && byte > 1 {
            break;
        }
        raw |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(BatchError::Corrupt("varint longer than 10 bytes".into()))
}

/// Sets the broker-owned fields of a validated batch: its base offset and, for topics using
/// log-append time, the timestamps (which changes the CRC).
pub fn assign(batch: &mut BytesMut, base_offset: i64, log_append_time: Option<i64>) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    if let Some(now) = log_append_time {
        let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x8;
        batch[21..23].copy_from_slice(&attributes.to_be_bytes());
        batch[35..43].copy_from_slice(&now.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Splits a buffer of concatenated stored batches (as held in one log entry or returned by a
/// fetch) into their header infos. Stops at the first incomplete batch.
pub fn iter_headers(mut buf: &[u8]) -> impl Iterator<Item = BatchInfo> + '_ {
    std::iter::from_fn(move || {
        let info = peek_header(buf).ok()?;
        buf = &buf[info.size..];
        Some(info)
    })
}

/// The first record of a stored batch whose timestamp is at or after `timestamp`, as
/// `(offset, timestamp)`; `None` if the batch is unreadable or every record is older.
pub fn first_at_or_after(batch: &[u8], timestamp: i64) -> Option<(i64, i64)> {
    let info = peek_header(batch).ok()?;
    if info.max_timestamp < timestamp {
        return None;
    }
    if info.is_log_append_time() {
        return Some((info.base_offset, info.max_timestamp));
    }
    let body = &batch[HEADER_LEN..info.size];
    let raw;
    let mut records: &[u8] = match info.compression().ok()? {
        Compression::None => body,
        codec => {
            raw = decompress(codec, body).ok()?;
            &raw
        }
    };
    while !records.is_empty() {
        let len = read_varint(&mut records).ok()?;
        if len < 0 || len as usize > records.len() {
            return None;
        }
        let (mut record, rest) = records.split_at(len as usize);
        records = rest;
        record.advance(1.min(record.len()));
        let ts = info.base_timestamp + read_varlong(&mut record).ok()?;
        let offset_delta = read_varint(&mut record).ok()?;
        if ts >= timestamp {
            return Some((info.base_offset + offset_delta as i64, ts));
        }
    }
    None
}

/// Indexes (within the batch, from 0) of the records with a null key, which a compacted
/// topic refuses. For a batch that passed [`validate`].
pub fn records_without_key(batch: &[u8]) -> Result<Vec<i32>, BatchError> {
    let info = peek_header(batch)?;
    let body = &batch[HEADER_LEN..info.size.min(batch.len())];
    let raw;
    let mut records: &[u8] = match info.compression()? {
        Compression::None => body,
        codec => {
            raw = decompress(codec, body)?;
            &raw
        }
    };
    let mut keyless = Vec::new();
    let mut index = 0i32;
    while !records.is_empty() {
        let len = read_varint(&mut records)?;
        if len < 0 || len as usize > records.len() {
            return Err(BatchError::Corrupt(format!(
                "record {index} claims {len} bytes"
            )));
        }
        let (mut record, rest) = records.split_at(len as usize);
        records = rest;
        record.advance(1.min(record.len())); // attributes
        read_varlong(&mut record)?; // timestamp delta
        read_varint(&mut record)?; // offset delta
        if read_varint(&mut record)? < 0 {
            keyless.push(index);
        }
        index += 1;
    }
    Ok(keyless)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use bytes::BufMut;

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    /// Builds an uncompressed batch of `n` records with values "v0".."vN".
    pub fn batch(n: i32) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..n {
            let mut r = Vec::new();
            r.push(0);
            put_varint(&mut r, i as i64); // timestamp delta
            put_varint(&mut r, i as i64); // offset delta
            put_varint(&mut r, -1); // null key
            let value = format!("v{i}");
            put_varint(&mut r, value.len() as i64);
            r.extend_from_slice(value.as_bytes());
            put_varint(&mut r, 0);
            put_varint(&mut records, r.len() as i64);
            records.extend_from_slice(&r);
        }
        let mut b = Vec::new();
        b.put_i64(0);
        b.put_i32((HEADER_LEN - 12 + records.len()) as i32);
        b.put_i32(-1);
        b.put_i8(2);
        b.put_u32(0);
        b.put_i16(0);
        b.put_i32(n - 1);
        b.put_i64(1000);
        b.put_i64(1000 + n as i64 - 1);
        b.put_i64(-1);
        b.put_i16(-1);
        b.put_i32(-1);
        b.put_i32(n);
        b.extend_from_slice(&records);
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn finds_records_without_a_key() {
        // The test batch's records all have null keys.
        assert_eq!(records_without_key(&batch(3)).unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn valid_batch_passes() {
        let info = validate(&batch(3)).unwrap();
        assert_eq!(info.records_count, 3);
        assert_eq!(info.max_timestamp, 1002);
    }

    #[test]
    fn flipped_byte_is_corrupt() {
        let mut b = batch(3);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(validate(&b), Err(BatchError::Corrupt(_))));
    }

    #[test]
    fn wrong_magic_and_counts_are_invalid() {
        let mut b = batch(2);
        b[16] = 1;
        assert!(matches!(validate(&b), Err(BatchError::Invalid(_))));

        // Claim 3 records while holding 2 (fix up deltas and CRC so only the count is wrong).
        let mut b = batch(2);
        b[57..61].copy_from_slice(&3i32.to_be_bytes());
        b[23..27].copy_from_slice(&2i32.to_be_bytes());
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(validate(&b), Err(BatchError::Invalid(_))));
    }

    #[test]
    fn truncated_and_oversized_lengths_are_corrupt() {
        let b = batch(2);
        assert!(validate(&b[..b.len() - 1]).is_err());
        assert!(validate(&b[..30]).is_err());
        let mut huge = b.clone();
        huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(validate(&huge).is_err());
    }

    #[test]
    fn assign_sets_offset_and_keeps_crc_valid() {
        let mut b = BytesMut::from(&batch(2)[..]);
        assign(&mut b, 42, Some(5000));
        let info = validate(&b).unwrap();
        assert_eq!(info.base_offset, 42);
        assert_eq!(info.max_timestamp, 5000);
        assert!(info.is_log_append_time());
    }

    #[test]
    fn finds_first_record_at_or_after_a_timestamp() {
        let mut b = BytesMut::from(&batch(3)[..]);
        assign(&mut b, 10, None);
        assert_eq!(first_at_or_after(&b, 1001), Some((11, 1001)));
        assert_eq!(first_at_or_after(&b, 0), Some((10, 1000)));
        assert_eq!(first_at_or_after(&b, 5000), None);
    }

    #[test]
    fn varints_reject_overlong() {
        let mut over: &[u8] = &[0xff; 11];
        assert!(read_varlong(&mut over).is_err());
        let mut minus_one: &[u8] = &[1];
        assert_eq!(read_varlong(&mut minus_one).unwrap(), -1);
    }
}
