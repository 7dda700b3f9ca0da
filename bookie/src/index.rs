//! The index, kept in one sled tree: where each entry lives, the offset and time
//! indexes, ledger state, entry log accounting and the checkpoint position.
//!
//! Everything a checkpoint changes goes into one `sled::Batch`, which sled applies
//! atomically, so after a crash the index is either entirely before or entirely after a
//! checkpoint — including the checkpoint's journal position, which says where replay
//! starts. That is what lets replay skip "is this entry already indexed?" checks.
//!
//! ## Key layout (keys and values big-endian, so keys sort numerically)
//!
//! ```text
//! key                                                        value
//! 'v'                                                        u32 format version (1)
//! 'c'                                                        u64 journal file id, u64 offset: replay starts here
//! 'l' ledger_id:u64                                          ledger state (see ledger.rs)
//! 'e' ledger_id:u64 entry_id:u64                             u64 entry log id, u64 record offset, u32 record length
//! 'o' ledger_id:u64 ord(last_offset):u64 entry_id:u64        empty
//! 't' ledger_id:u64 ord(running_max_ts):u64 entry_id:u64     empty
//! 'f' entry_log_id:u64                                       u64 total record bytes, u64 live record bytes
//! ```
//!
//! `ord(x) = (x as u64) ^ (1 << 63)` maps `i64` onto `u64` preserving order, so a range
//! scan from `ord(x)` finds the first key `>= x`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::entry_log::{FileStats, Location};
use crate::journal::JournalPos;
use crate::ledger::LedgerState;
use crate::BookieError;

const FORMAT_VERSION: u32 = 1;

const TAG_VERSION: u8 = b'v';
const TAG_CHECKPOINT: u8 = b'c';
const TAG_LEDGER: u8 = b'l';
const TAG_ENTRY: u8 = b'e';
const TAG_OFFSET: u8 = b'o';
const TAG_TIME: u8 = b't';
const TAG_FILE: u8 = b'f';

/// sled's own page cache. The index is small (tens of bytes per entry), so this keeps it
/// memory-resident for millions of entries without sled's 1 GiB default.
const SLED_CACHE_BYTES: u64 = 128 * 1024 * 1024;

fn ord(x: i64) -> u64 {
    (x as u64) ^ (1 << 63)
}

fn unord(x: u64) -> i64 {
    (x ^ (1 << 63)) as i64
}

fn key_ledger(tag: u8, ledger_id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..9].copy_from_slice(&ledger_id.to_be_bytes());
    k
}

fn key_entry(ledger_id: u64, entry_id: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = TAG_ENTRY;
    k[1..9].copy_from_slice(&ledger_id.to_be_bytes());
    k[9..17].copy_from_slice(&entry_id.to_be_bytes());
    k
}

fn key_ordered(tag: u8, ledger_id: u64, value: u64, entry_id: u64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = tag;
    k[1..9].copy_from_slice(&ledger_id.to_be_bytes());
    k[9..17].copy_from_slice(&value.to_be_bytes());
    k[17..25].copy_from_slice(&entry_id.to_be_bytes());
    k
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn encode_location(l: &Location) -> [u8; 20] {
    let mut v = [0u8; 20];
    v[0..8].copy_from_slice(&l.file_id.to_be_bytes());
    v[8..16].copy_from_slice(&l.offset.to_be_bytes());
    v[16..20].copy_from_slice(&l.len.to_be_bytes());
    v
}

fn decode_location(v: &[u8]) -> Option<Location> {
    if v.len() != 20 {
        return None;
    }
    Some(Location {
        file_id: be_u64(v, 0)?,
        offset: be_u64(v, 8)?,
        len: u32::from_be_bytes(v.get(16..20)?.try_into().ok()?),
    })
}

/// fsyncs every file and directory under `dir`, and `dir` itself.
fn sync_tree(dir: &Path) -> Result<(), BookieError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| BookieError::Io { op, path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io("listing index dir", dir))? {
        let path = entry.map_err(io("listing index dir", dir))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io("fsync index file", &path))?;
        }
    }
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io("fsync index dir", dir))
}

fn corrupt(what: &str) -> BookieError {
    BookieError::Index(format!("undecodable {what}"))
}

/// What [`Index::load`] finds at open. Ledger states are not loaded: they are read one
/// at a time, when a ledger is first used ([`Index::ledger_state`]).
pub(crate) struct Loaded {
    pub checkpoint: Option<JournalPos>,
    pub files: HashMap<u64, FileStats>,
}

/// Cheap to clone: clones share one sled database.
#[derive(Clone)]
pub(crate) struct Index {
    db: sled::Db,
    dir: PathBuf,
}

impl Index {
    pub fn open(dir: &Path) -> Result<Index, BookieError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(SLED_CACHE_BYTES)
            // Durability comes from the journal and explicit flushes at checkpoints;
            // sled's periodic background flush would only add I/O.
            .flush_every_ms(None)
            .open()?;
        let index = Index {
            db,
            dir: dir.to_path_buf(),
        };
        let db = &index.db;
        match db.get([TAG_VERSION])? {
            None => {
                db.insert([TAG_VERSION], &FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(v) if v.as_ref() == FORMAT_VERSION.to_be_bytes() => {}
            Some(_) => {
                return Err(BookieError::Index(format!(
                    "index at {dir:?} has an unknown format version"
                )))
            }
        }
        Ok(index)
    }

    pub fn load(&self) -> Result<Loaded, BookieError> {
        let checkpoint = match self.db.get([TAG_CHECKPOINT])? {
            None => None,
            Some(v) if v.len() == 16 => Some(JournalPos {
                file_id: be_u64(&v, 0).ok_or_else(|| corrupt("checkpoint"))?,
                offset: be_u64(&v, 8).ok_or_else(|| corrupt("checkpoint"))?,
            }),
            Some(_) => return Err(corrupt("checkpoint")),
        };
        let mut files = HashMap::new();
        for kv in self.db.scan_prefix([TAG_FILE]) {
            let (k, v) = kv?;
            let id = be_u64(&k, 1).ok_or_else(|| corrupt("entry log key"))?;
            let (Some(total), Some(live)) = (be_u64(&v, 0), be_u64(&v, 8)) else {
                return Err(corrupt("entry log stats"));
            };
            files.insert(id, FileStats { total, live });
        }
        Ok(Loaded { checkpoint, files })
    }

    /// The checkpointed state of one ledger (tombstones included), `None` if the index
    /// has never recorded it. One point lookup of a 9-byte key.
    pub fn ledger_state(&self, ledger_id: u64) -> Result<Option<LedgerState>, BookieError> {
        match self.db.get(key_ledger(TAG_LEDGER, ledger_id))? {
            None => Ok(None),
            Some(v) => LedgerState::decode(&v).map(Some).ok_or_else(|| {
                BookieError::Index(format!("undecodable state of ledger {ledger_id}"))
            }),
        }
    }

    /// Every ledger id with a state in the index, with whether it is a tombstone, in id
    /// order. Reads only the flags byte of each value.
    pub fn scan_ledgers(&self) -> Result<Vec<(u64, bool)>, BookieError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix([TAG_LEDGER]) {
            let (k, v) = kv?;
            let id = be_u64(&k, 1).ok_or_else(|| corrupt("ledger key"))?;
            let deleted = LedgerState::encoded_is_deleted(&v)
                .ok_or_else(|| BookieError::Index(format!("undecodable state of ledger {id}")))?;
            out.push((id, deleted));
        }
        Ok(out)
    }

    pub fn location(&self, ledger_id: u64, entry_id: u64) -> Result<Option<Location>, BookieError> {
        match self.db.get(key_entry(ledger_id, entry_id))? {
            None => Ok(None),
            Some(v) => decode_location(&v)
                .map(Some)
                .ok_or_else(|| corrupt("entry location")),
        }
    }

    /// First `(value, entry_id)` in the `tag` index of `ledger_id` with value `>= from`.
    fn first_at_or_after(
        &self,
        tag: u8,
        ledger_id: u64,
        from: i64,
    ) -> Result<Option<(i64, u64)>, BookieError> {
        let start = key_ordered(tag, ledger_id, ord(from), 0);
        let end = key_ordered(tag, ledger_id, u64::MAX, u64::MAX);
        match self.db.range(start..=end).next() {
            None => Ok(None),
            Some(kv) => {
                let (k, _) = kv?;
                let (Some(v), Some(e)) = (be_u64(&k, 9), be_u64(&k, 17)) else {
                    return Err(corrupt("offset/time index key"));
                };
                Ok(Some((unord(v), e)))
            }
        }
    }

    /// The indexed entry with the smallest `(last_offset, entry_id)`, `last_offset >= offset`.
    pub fn find_by_offset(
        &self,
        ledger_id: u64,
        offset: i64,
    ) -> Result<Option<(i64, u64)>, BookieError> {
        self.first_at_or_after(TAG_OFFSET, ledger_id, offset)
    }

    /// The first time point with running max `>= ts`.
    pub fn find_by_time(&self, ledger_id: u64, ts: i64) -> Result<Option<(i64, u64)>, BookieError> {
        self.first_at_or_after(TAG_TIME, ledger_id, ts)
    }

    /// Adds to `batch` the removal of every index key of `ledger_id` (entries, offset
    /// and time points) and returns the locations of the removed entries, so the caller
    /// can subtract them from the entry logs' live bytes.
    pub fn remove_ledger(
        &self,
        batch: &mut IndexBatch,
        ledger_id: u64,
    ) -> Result<Vec<Location>, BookieError> {
        let mut locations = Vec::new();
        for kv in self.db.scan_prefix(key_ledger(TAG_ENTRY, ledger_id)) {
            let (k, v) = kv?;
            locations.push(decode_location(&v).ok_or_else(|| corrupt("entry location"))?);
            batch.0.remove(k);
        }
        for tag in [TAG_OFFSET, TAG_TIME] {
            for kv in self.db.scan_prefix(key_ledger(tag, ledger_id)) {
                let (k, _) = kv?;
                batch.0.remove(k);
            }
        }
        Ok(locations)
    }

    /// Applies `batch` atomically and makes it durable.
    pub fn commit(&self, batch: IndexBatch) -> Result<(), BookieError> {
        self.db.apply_batch(batch.0)?;
        self.flush()
    }

    /// Flushes sled, then fsyncs its files: sled 0.34's flush writes with `sync_file_range`,
    /// which neither flushes the disk cache nor covers new files (blobs) and directory
    /// entries. The checkpoint deletes journal files after this, so it must really be on disk.
    pub fn flush(&self) -> Result<(), BookieError> {
        self.db.flush()?;
        sync_tree(&self.dir)
    }
}

/// The index changes of one checkpoint.
#[derive(Default)]
pub(crate) struct IndexBatch(sled::Batch);

impl IndexBatch {
    pub fn put_entry(&mut self, ledger_id: u64, entry_id: u64, last_offset: i64, loc: &Location) {
        self.0
            .insert(&key_entry(ledger_id, entry_id), &encode_location(loc));
        self.0.insert(
            &key_ordered(TAG_OFFSET, ledger_id, ord(last_offset), entry_id),
            &[],
        );
    }

    pub fn put_time_point(&mut self, ledger_id: u64, running_max_ts: i64, entry_id: u64) {
        self.0.insert(
            &key_ordered(TAG_TIME, ledger_id, ord(running_max_ts), entry_id),
            &[],
        );
    }

    /// `encoded` is [`LedgerState::encode`]'s output.
    pub fn put_ledger_raw(&mut self, ledger_id: u64, encoded: &[u8]) {
        self.0.insert(&key_ledger(TAG_LEDGER, ledger_id), encoded);
    }

    pub fn put_file_stats(&mut self, file_id: u64, s: &FileStats) {
        let mut v = [0u8; 16];
        v[0..8].copy_from_slice(&s.total.to_be_bytes());
        v[8..16].copy_from_slice(&s.live.to_be_bytes());
        self.0.insert(&key_ledger(TAG_FILE, file_id), &v);
    }

    pub fn remove_file_stats(&mut self, file_id: u64) {
        self.0.remove(&key_ledger(TAG_FILE, file_id));
    }

    pub fn put_checkpoint(&mut self, pos: JournalPos) {
        let mut v = [0u8; 16];
        v[0..8].copy_from_slice(&pos.file_id.to_be_bytes());
        v[8..16].copy_from_slice(&pos.offset.to_be_bytes());
        self.0.insert(&[TAG_CHECKPOINT], &v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ord_preserves_order() {
        let xs = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in xs.windows(2) {
            assert!(ord(w[0]) < ord(w[1]));
            assert_eq!(unord(ord(w[0])), w[0]);
        }
    }

    #[test]
    fn offset_lookup_range_scan() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(dir.path()).unwrap();
        let loc = Location {
            file_id: 1,
            offset: 16,
            len: 60,
        };
        let mut b = IndexBatch::default();
        b.put_entry(3, 0, 9, &loc);
        b.put_entry(3, 1, 19, &loc);
        b.put_entry(4, 0, -1, &loc);
        idx.commit(b).unwrap();
        assert_eq!(idx.find_by_offset(3, 10).unwrap(), Some((19, 1)));
        assert_eq!(idx.find_by_offset(3, -100).unwrap(), Some((9, 0)));
        assert_eq!(
            idx.find_by_offset(3, 20).unwrap(),
            None,
            "must not leak into ledger 4"
        );
        assert_eq!(idx.location(3, 1).unwrap(), Some(loc));
        let mut b = IndexBatch::default();
        assert_eq!(idx.remove_ledger(&mut b, 3).unwrap().len(), 2);
        idx.commit(b).unwrap();
        assert_eq!(idx.find_by_offset(3, 0).unwrap(), None);
        assert_eq!(idx.location(4, 0).unwrap(), Some(loc));
    }
}
