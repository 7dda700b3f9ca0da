//! Journal files: the write-ahead log that makes an add durable before it is
//! acknowledged.
//!
//! ## File layout (`journal/<id as 16 hex digits>.jnl`, integers little-endian)
//!
//! ```text
//! offset  size
//!      0     8  magic "STRLJRN1"
//!      8     8  file id u64
//!     16     …  records back to back (see record.rs): Add, Fence and Delete, each
//!               u32 body_len, u32 crc32c(body), body
//! ```
//!
//! ## Group commit
//!
//! The committer thread (committer.rs) writes every record queued since its last write
//! as one group: one `writev` of all frames and payloads, then one `fdatasync`, then it
//! acknowledges the whole group. A group never spans two files; after a group, a file
//! that reached `journal_max_bytes` is closed and a new one is started. Each start of the
//! bookie also starts a new file, so a file is only ever appended to by one process
//! lifetime and a torn tail can only be at the end of the newest file a crash left.
//!
//! ## Replay
//!
//! The index stores a checkpoint position `(file id, offset)`: every record before it is
//! reflected in entry logs + index. At open, files before the checkpoint's file are
//! deleted and records from the position on are re-applied in order. A record that fails
//! validation (length out of range or past the end of the file, CRC mismatch, unknown
//! kind) ends the replay of its file:
//! - in the newest file it is a torn write from a crash (the group was never
//!   acknowledged, since acknowledgement waits for `fdatasync` of the whole file): the
//!   file is truncated at that record and a warning logged;
//! - in an older file it is real corruption: an error is logged, the rest of that file is
//!   skipped and replay continues with the next file (the file itself is left alone).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tracing::{error, warn};

use crate::fsutil::{list_numbered, numbered_path, sync_dir, write_all_vectored};
use crate::record::{self, Record, MAX_BODY_LEN, RECORD_HEADER_LEN};
use crate::BookieError;

pub(crate) const EXT: &str = "jnl";
const MAGIC: [u8; 8] = *b"STRLJRN1";
pub(crate) const FILE_HEADER_LEN: u64 = 16;

/// A position in the journal: a file and a byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct JournalPos {
    pub file_id: u64,
    pub offset: u64,
}

/// The appender, owned by the committer thread.
pub(crate) struct JournalWriter {
    dir: PathBuf,
    max_bytes: u64,
    id: u64,
    path: PathBuf,
    file: File,
    size: u64,
}

impl JournalWriter {
    /// Creates journal file `id` (which must not exist) and makes its creation durable.
    pub fn create(dir: &Path, id: u64, max_bytes: u64) -> Result<JournalWriter, BookieError> {
        let path = numbered_path(dir, id, EXT);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| BookieError::io("create journal", &path, e))?;
        let mut header = [0u8; FILE_HEADER_LEN as usize];
        header[..8].copy_from_slice(&MAGIC);
        header[8..].copy_from_slice(&id.to_le_bytes());
        file.write_all(&header)
            .and_then(|_| file.sync_all())
            .map_err(|e| BookieError::io("write journal header", &path, e))?;
        sync_dir(dir)?;
        Ok(JournalWriter {
            dir: dir.to_path_buf(),
            max_bytes,
            id,
            path,
            file,
            size: FILE_HEADER_LEN,
        })
    }

    /// The position right after the last record written.
    pub fn position(&self) -> JournalPos {
        JournalPos {
            file_id: self.id,
            offset: self.size,
        }
    }

    /// Writes one group with a single `writev` sequence and makes it durable with a
    /// single `fdatasync`. Returns the time the `fdatasync` took.
    pub fn write_group(
        &mut self,
        slices: &mut [IoSlice<'_>],
        len: u64,
    ) -> Result<Duration, BookieError> {
        write_all_vectored(&mut self.file, slices)
            .map_err(|e| BookieError::io("write journal", &self.path, e))?;
        self.size += len;
        let t = Instant::now();
        self.file
            .sync_data()
            .map_err(|e| BookieError::io("fdatasync journal", &self.path, e))?;
        Ok(t.elapsed())
    }

    /// Starts a new file if this one is full. Called between groups.
    pub fn maybe_roll(&mut self) -> Result<(), BookieError> {
        if self.size >= self.max_bytes {
            *self = JournalWriter::create(&self.dir, self.id + 1, self.max_bytes)?;
        }
        Ok(())
    }
}

/// What replay found.
#[derive(Debug, Default)]
pub(crate) struct ReplaySummary {
    pub files: usize,
    pub records: u64,
    pub bytes: u64,
    /// Torn tail cut off the newest file: (file, offset it was truncated to, reason).
    pub truncated: Option<(PathBuf, u64, &'static str)>,
    /// Older files whose tail was unreadable.
    pub corrupt_files: usize,
    /// Highest journal file id present (the new writer must use a higher one).
    pub max_file_id: Option<u64>,
}

/// Re-applies every record from `from` on, in order, by calling `apply`. Deletes journal
/// files that lie entirely before `from`. Never panics on bad file contents.
pub(crate) fn replay(
    dir: &Path,
    from: Option<JournalPos>,
    mut apply: impl FnMut(Record),
) -> Result<ReplaySummary, BookieError> {
    let from = from.unwrap_or(JournalPos {
        file_id: 0,
        offset: 0,
    });
    let ids = list_numbered(dir, EXT)?;
    let mut summary = ReplaySummary {
        max_file_id: ids.last().copied(),
        ..Default::default()
    };
    remove_before(dir, from.file_id)?;
    let to_replay: Vec<u64> = ids.into_iter().filter(|id| *id >= from.file_id).collect();
    for (n, &id) in to_replay.iter().enumerate() {
        let newest = n + 1 == to_replay.len();
        let start = if id == from.file_id {
            from.offset.max(FILE_HEADER_LEN)
        } else {
            FILE_HEADER_LEN
        };
        summary.files += 1;
        replay_file(dir, id, start, newest, &mut summary, &mut apply)?;
    }
    Ok(summary)
}

fn replay_file(
    dir: &Path,
    id: u64,
    start: u64,
    newest: bool,
    summary: &mut ReplaySummary,
    apply: &mut impl FnMut(Record),
) -> Result<(), BookieError> {
    let path = numbered_path(dir, id, EXT);
    let io = |op: &'static str| {
        let path = path.clone();
        move |e| BookieError::io(op, &path, e)
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io("open journal"))?;
    let len = file.metadata().map_err(io("stat journal"))?.len();

    // Header.
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    if len < FILE_HEADER_LEN {
        if newest {
            // Crash while creating the file: nothing in it was ever acknowledged.
            warn!(
                ?path,
                len, "journal file has a torn header; truncating it to empty"
            );
            file.set_len(0)
                .and_then(|_| file.sync_all())
                .map_err(io("truncate journal"))?;
            summary.truncated = Some((path, 0, "torn file header"));
        } else {
            error!(
                ?path,
                len, "journal file is shorter than its header; skipping it"
            );
            summary.corrupt_files += 1;
        }
        return Ok(());
    }
    file.read_exact(&mut header).map_err(io("read journal"))?;
    if header[..8] != MAGIC || header[8..] != id.to_le_bytes() {
        error!(
            ?path,
            "journal file has a bad header (not a Stratalog journal, or renamed); skipping it"
        );
        summary.corrupt_files += 1;
        return Ok(());
    }
    if start > len {
        warn!(
            ?path,
            start, len, "checkpoint lies past the end of the journal file; nothing to replay in it"
        );
        return Ok(());
    }

    let mut pos = start;
    file.seek(SeekFrom::Start(pos))
        .map_err(io("seek journal"))?;
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let bad: Option<&'static str> = loop {
        if pos == len {
            break None;
        }
        if len - pos < RECORD_HEADER_LEN as u64 {
            break Some("torn record header");
        }
        let mut hb = [0u8; RECORD_HEADER_LEN];
        reader.read_exact(&mut hb).map_err(io("read journal"))?;
        let h = record::parse_header(&hb);
        if h.body_len > MAX_BODY_LEN || h.body_len as u64 > len - pos - RECORD_HEADER_LEN as u64 {
            break Some("record length out of range or past the end of the file");
        }
        let mut body = BytesMut::zeroed(h.body_len);
        reader.read_exact(&mut body).map_err(io("read journal"))?;
        match record::decode_body(h, body.freeze()) {
            Ok(rec) => {
                pos += (RECORD_HEADER_LEN + h.body_len) as u64;
                summary.records += 1;
                summary.bytes += (RECORD_HEADER_LEN + h.body_len) as u64;
                apply(rec);
            }
            Err(reason) => break Some(reason),
        }
    };
    drop(reader);
    if let Some(reason) = bad {
        if newest {
            warn!(?path, offset = pos, dropped_bytes = len - pos, reason,
                "torn record at the journal tail (crash mid-write); truncating, earlier records are intact");
            file.set_len(pos)
                .and_then(|_| file.sync_all())
                .map_err(io("truncate journal"))?;
            summary.truncated = Some((path, pos, reason));
        } else {
            error!(
                ?path,
                offset = pos,
                lost_bytes = len - pos,
                reason,
                "corrupt record in the middle of the journal; the rest of this file is skipped"
            );
            summary.corrupt_files += 1;
        }
    }
    Ok(())
}

/// Deletes journal files with id below `file_id`: everything in them is checkpointed.
pub(crate) fn remove_before(dir: &Path, file_id: u64) -> Result<usize, BookieError> {
    let mut n = 0;
    for id in list_numbered(dir, EXT)? {
        if id >= file_id {
            break;
        }
        let path = numbered_path(dir, id, EXT);
        match crate::fsutil::remove_gradually(&path) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BookieError::io("delete journal", &path, e)),
        }
    }
    Ok(n)
}
