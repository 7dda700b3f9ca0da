//! Makes a sled flush durable.
//!
//! sled 0.34 "flushes" with `sync_file_range` on Linux, which neither flushes the disk's
//! volatile write cache nor persists the file-size metadata of a growing file, and it writes
//! large items (over ~128 KiB, e.g. a leaf holding a few big values) to separate files under
//! `blobs/` that it never fsyncs at all (upstream issues spacejam/sled#1452, #1351, #1077).
//! For a Raft log that is not good enough: a vote or an acknowledged entry lost on power
//! failure breaks Raft's safety. So after every `flush_async` the node also calls
//! `fdatasync` on sled's main file, `fsync` on every blob file it has not synced before, and
//! on the `blobs/` directory when new blobs appeared. With group commit this is one extra
//! sync per Ready, not per write.
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

pub(crate) struct DurableSync {
    /// sled's main file (`db`); fsync applies to the inode, so a read-only handle of our own
    /// flushes what sled wrote through its handle.
    db_file: File,
    dir: PathBuf,
    blobs_dir: PathBuf,
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl DurableSync {
    /// `sled_dir` is the directory sled was opened at (it has created `db` and `blobs/`).
    pub(crate) fn open(sled_dir: &Path) -> io::Result<Self> {
        let sync = DurableSync {
            db_file: File::open(sled_dir.join("db"))?,
            dir: sled_dir.to_path_buf(),
            blobs_dir: sled_dir.join("blobs"),
            synced_blobs: Mutex::new(HashSet::new()),
        };
        // Make the directory entries sled just created durable, once.
        sync_dir(&sync.dir)?;
        if let Some(parent) = sync.dir.parent() {
            sync_dir(parent)?;
        }
        sync.sync()?;
        Ok(sync)
    }

    /// Blocking: call it from `spawn_blocking`, after `flush_async` returned.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.db_file.sync_data()?;
        let entries = match std::fs::read_dir(&self.blobs_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut synced = self.synced_blobs.lock();
        let mut present = HashSet::new();
        let mut new_blobs = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                match File::open(entry.path()) {
                    Ok(f) => f.sync_all()?,
                    // Garbage-collected by sled in the meantime.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                new_blobs = true;
            }
            present.insert(name);
        }
        if new_blobs {
            sync_dir(&self.blobs_dir)?;
        }
        *synced = present;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_db_and_new_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let sled_dir = dir.path().join("sled");
        let db = sled::open(&sled_dir).unwrap();
        let sync = DurableSync::open(&sled_dir).unwrap();
        // A value big enough to be written as a blob.
        db.insert(b"big", vec![7u8; 300 * 1024]).unwrap();
        db.flush().unwrap();
        sync.sync().unwrap();
        assert!(
            !sync.synced_blobs.lock().is_empty(),
            "expected sled to have written a blob file"
        );
        sync.sync().unwrap();
    }
}
