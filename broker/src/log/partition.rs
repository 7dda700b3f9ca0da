//! One partition's log.
//!
//! Appends are serialised by the writer lock only for the cheap part (sequence check, offset
//! assignment, handing the entry to the bookies); the wait for the bookies happens outside it,
//! so many batches are in flight at once. A per-partition completer task takes the in-flight
//! entries in offset order, waits for each one's ack quorum, then advances the high watermark
//! and answers the producer — so acknowledgements, and what consumers can see, never run ahead
//! of a gap.
//!
//! Taking a partition over ([`PartitionLog::open`]) follows the managed-ledger protocol: read
//! the ledger list, fence and recover the last ledger if it is still open (whoever wrote it
//! can then add nothing more), close it in the metadata store with a compare-and-set, and
//! start a new ledger. A broker whose ledger was fenced gets NOT_LEADER_OR_FOLLOWER for the
//! adds in flight and a revision conflict on its next metadata update, so nothing it writes
//! after the take-over becomes part of the log. Today one broker serves every partition and
//! recovers its own ledger after a failed add; with several brokers, partition ownership
//! leases (next step) must stop a broker from taking a partition back by the same route.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use stratalog_protocol::internal::bookie::{BookieCode, EntryData, FindBy};
use stratalog_protocol::internal::Wire;
use stratalog_protocol::kafka::record_batch::{self, BatchInfo};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use super::cache::TailCache;
use super::ledger::{self, BookiePool};
use super::producer_state::{ProducerStates, SequenceCheck};
use crate::catalog::{self, LedgerInfo, PartitionMeta};
use crate::clients::bookie::BookieError;
use crate::metrics;
use stratalog_metadata::client::{ClientError, MetadataClient};
use stratalog_metadata::Expect;

/// Kafka error codes this module produces.
pub mod codes {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
}

/// Why an append or read failed: a Kafka error code plus the reason for the log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason} (kafka error {code})")]
pub struct LogError {
    pub code: i16,
    pub reason: String,
}

impl LogError {
    fn storage(reason: impl Into<String>) -> LogError {
        LogError {
            code: codes::KAFKA_STORAGE_ERROR,
            reason: reason.into(),
        }
    }
}

impl From<ClientError> for LogError {
    fn from(e: ClientError) -> LogError {
        match e {
            ClientError::Conflict { key, .. } => LogError {
                code: codes::NOT_LEADER_OR_FOLLOWER,
                reason: format!("{key} changed under us: another broker owns the partition"),
            },
            other => LogError::storage(format!("metadata: {other}")),
        }
    }
}

impl From<BookieError> for LogError {
    fn from(e: BookieError) -> LogError {
        match e {
            BookieError::Fenced { .. } => LogError {
                code: codes::NOT_LEADER_OR_FOLLOWER,
                reason: format!("{e}: another broker took the partition over"),
            },
            other => LogError::storage(other.to_string()),
        }
    }
}

/// What every partition log shares.
pub struct LogContext {
    pub metadata: MetadataClient,
    pub bookies: BookiePool,
    pub ensemble_size: usize,
    pub write_quorum: usize,
    pub ack_quorum: usize,
    pub roll_bytes: u64,
    pub roll_age: Duration,
    pub cache_bytes: usize,
}

impl LogContext {
    /// Ids of the bookies registered in the metadata store, in a stable order.
    async fn live_bookies(&self) -> Result<Vec<String>, LogError> {
        Ok(self
            .bookies
            .refresh()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    async fn allocate_ledger_id(&self) -> Result<u64, LogError> {
        loop {
            let current = self.metadata.get(catalog::LEDGER_ID_COUNTER).await?;
            let (next, expect) = match &current {
                Some(kv) => (
                    u64::decode(&mut kv.value.clone()).unwrap_or(1),
                    Expect::Revision(kv.mod_revision),
                ),
                None => (1, Expect::Absent),
            };
            match self
                .metadata
                .put(
                    catalog::LEDGER_ID_COUNTER,
                    (next + 1).to_bytes(),
                    expect,
                    None,
                )
                .await
            {
                Ok(_) => return Ok(next),
                Err(ClientError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

pub struct ReadResult {
    pub batches: Vec<Bytes>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

struct Pending {
    base_offset: i64,
    last_offset: i64,
    batch: Bytes,
    ack: oneshot::Receiver<Result<(), BookieError>>,
    reply: oneshot::Sender<Result<i64, LogError>>,
}

struct Writer {
    meta: PartitionMeta,
    meta_revision: u64,
    ledger: LedgerInfo,
    next_entry_id: u64,
    ledger_bytes: u64,
    opened_at: Instant,
    next_offset: i64,
    producers: ProducerStates,
    completer: mpsc::UnboundedSender<Pending>,
    /// Set by this writer's completer when an add failed: rebuild before appending again.
    failed: Arc<AtomicBool>,
}

pub struct PartitionLog {
    pub topic: String,
    pub partition: i32,
    ctx: Arc<LogContext>,
    writer: tokio::sync::Mutex<Option<Writer>>,
    /// Ledger list and log start, for readers.
    view: parking_lot::RwLock<PartitionMeta>,
    high_watermark: watch::Sender<i64>,
    cache: Arc<parking_lot::Mutex<TailCache>>,
    leader_epoch: std::sync::atomic::AtomicI32,
    /// Where the last sequential read stopped: (ledger, next offset, next entry id).
    read_hint: parking_lot::Mutex<Option<(u64, i64, u64)>>,
}

pub enum Appended {
    /// Resolves with the batch's base offset once it is durable.
    Pending(oneshot::Receiver<Result<i64, LogError>>),
    /// A retry of a batch already in the log, at this base offset.
    Duplicate(i64),
}

impl PartitionLog {
    /// Takes the partition over: recovers whatever a previous owner left and opens a new
    /// ledger for appends.
    pub async fn open(
        ctx: Arc<LogContext>,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionLog>, LogError> {
        let log = Arc::new(PartitionLog {
            topic: topic.to_string(),
            partition,
            ctx,
            writer: tokio::sync::Mutex::new(None),
            view: parking_lot::RwLock::new(PartitionMeta::default()),
            high_watermark: watch::channel(0).0,
            cache: Arc::new(parking_lot::Mutex::new(TailCache::new(0))),
            leader_epoch: Default::default(),
            read_hint: parking_lot::Mutex::new(None),
        });
        *log.cache.lock() = TailCache::new(log.ctx.cache_bytes);
        let writer = log.take_over().await?;
        *log.writer.lock().await = Some(writer);
        Ok(log)
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.view.read().log_start_offset
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Relaxed)
    }

    fn key(&self) -> String {
        catalog::partition_key(&self.topic, self.partition)
    }

    /// Recovers the partition and returns a writer positioned at its end.
    async fn take_over(&self) -> Result<Writer, LogError> {
        let started = Instant::now();
        let key = self.key();
        let (mut meta, mut revision) = match self.ctx.metadata.get(&key).await? {
            Some(kv) => (
                catalog::decode::<PartitionMeta>(&key, kv.value).map_err(LogError::storage)?,
                Some(kv.mod_revision),
            ),
            None => (PartitionMeta::default(), None),
        };
        let mut producers = ProducerStates::from_snapshots(&meta.producers);
        let mut recovered_entries = 0;
        if let Some(last) = meta.ledgers.last_mut().filter(|l| !l.closed) {
            let recovered = ledger::recover(&self.ctx.bookies, last).await?;
            recovered_entries = recovered.entries.len();
            let mut last_offset = last.first_offset - 1;
            for entry in &recovered.entries {
                for info in record_batch::iter_headers(&entry.payload) {
                    producers.update(&info, info.base_offset);
                }
                last_offset = entry.last_offset;
            }
            last.closed = true;
            last.last_offset = last_offset;
            last.last_entry_id = recovered.entries.last().map_or(-1, |e| e.entry_id as i64);
            meta.producers = producers.snapshots();
        }
        // An empty closed ledger holds nothing: drop it from the list.
        meta.ledgers.retain(|l| !(l.closed && l.last_entry_id < 0));
        meta.leader_epoch += 1;
        let next_offset = meta
            .ledgers
            .last()
            .map_or(meta.log_start_offset, |l| l.last_offset + 1);
        let ledger = self.new_ledger(next_offset).await?;
        meta.ledgers.push(ledger.clone());
        let expect = revision.map_or(Expect::Absent, Expect::Revision);
        revision = Some(
            self.ctx
                .metadata
                .put(&key, meta.to_bytes(), expect, None)
                .await?
                .mod_revision,
        );

        let (completer, pending) = mpsc::unbounded_channel();
        let failed = Arc::new(AtomicBool::new(false));
        tokio::spawn(complete_in_order(
            pending,
            self.high_watermark.clone(),
            self.cache.clone(),
            failed.clone(),
        ));
        self.cache.lock().clear();
        *self.read_hint.lock() = None;
        self.leader_epoch
            .store(meta.leader_epoch, Ordering::Relaxed);
        *self.view.write() = meta.clone();
        self.high_watermark.send_replace(next_offset);
        info!(
            topic = %self.topic, partition = self.partition, next_offset, ledger = ledger.ledger_id,
            recovered_entries, epoch = meta.leader_epoch, took_ms = started.elapsed().as_millis() as u64,
            "partition opened"
        );
        Ok(Writer {
            meta,
            meta_revision: revision.unwrap_or(0),
            ledger,
            next_entry_id: 0,
            ledger_bytes: 0,
            opened_at: Instant::now(),
            next_offset,
            producers,
            completer,
            failed,
        })
    }

    async fn new_ledger(&self, first_offset: i64) -> Result<LedgerInfo, LogError> {
        let bookies = self.ctx.live_bookies().await?;
        if bookies.len() < self.ctx.ensemble_size {
            return Err(LogError::storage(format!(
                "need {} bookies for a ledger ensemble, {} registered",
                self.ctx.ensemble_size,
                bookies.len()
            )));
        }
        let ledger_id = self.ctx.allocate_ledger_id().await?;
        // Spread ensembles over the bookies by ledger id.
        let start = ledger_id as usize % bookies.len();
        let ensemble = (0..self.ctx.ensemble_size)
            .map(|i| bookies[(start + i) % bookies.len()].clone())
            .collect();
        metrics::LEDGERS_OPENED.inc();
        Ok(LedgerInfo {
            ledger_id,
            ensemble,
            write_quorum: self.ctx.write_quorum as u8,
            ack_quorum: self.ctx.ack_quorum as u8,
            first_offset,
            last_offset: -1,
            last_entry_id: -1,
            closed: false,
            created_ms: now_ms(),
        })
    }

    /// Appends one validated batch; with `log_append_time` (topics with
    /// `message.timestamp.type=LogAppendTime`) its timestamps become that time. The returned
    /// future resolves when the batch is durable.
    pub async fn append(
        &self,
        batch: Bytes,
        info: BatchInfo,
        log_append_time: Option<i64>,
    ) -> Result<Appended, LogError> {
        let mut guard = self.writer.lock().await;
        let writer = match guard.take() {
            Some(writer) if !writer.failed.load(Ordering::Acquire) => guard.insert(writer),
            _ => {
                warn!(topic = %self.topic, partition = self.partition, "recovering the partition before appending");
                guard.insert(self.take_over().await?)
            }
        };
        match writer.producers.check(&info) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate { base_offset } => {
                return Ok(self.duplicate(base_offset, writer.failed.clone()))
            }
            SequenceCheck::Reject(code) => {
                return Err(LogError {
                    code,
                    reason: format!(
                        "producer {} sequence {} rejected",
                        info.producer_id, info.base_sequence
                    ),
                })
            }
        }
        if writer.ledger_bytes >= self.ctx.roll_bytes
            || (writer.next_entry_id > 0 && writer.opened_at.elapsed() >= self.ctx.roll_age)
        {
            self.roll(writer).await?;
        }
        let base_offset = writer.next_offset;
        let last_offset = base_offset + info.last_offset_delta as i64;
        let mut stamped = BytesMut::from(&batch[..]);
        record_batch::assign(&mut stamped, base_offset, log_append_time);
        let stamped = stamped.freeze();
        let entry = EntryData {
            entry_id: writer.next_entry_id,
            base_offset,
            last_offset,
            max_timestamp: log_append_time.unwrap_or(info.max_timestamp),
            payload: stamped.clone(),
        };
        let ack = ledger::add_entry(&self.ctx.bookies, &writer.ledger, entry);
        let (reply, done) = oneshot::channel();
        if writer
            .completer
            .send(Pending {
                base_offset,
                last_offset,
                batch: stamped,
                ack,
                reply,
            })
            .is_err()
        {
            writer.failed.store(true, Ordering::Release);
            return Err(LogError::storage("partition completer stopped"));
        }
        writer.next_entry_id += 1;
        writer.ledger_bytes += batch.len() as u64;
        writer.next_offset = last_offset + 1;
        writer.producers.update(&info, base_offset);
        Ok(Appended::Pending(done))
    }

    /// A retry of a batch already appended at `base_offset`. If the original is still in
    /// flight, the retry is answered only once the original is durable; if the original fails,
    /// so does the retry (and the producer retries again after the partition recovers).
    fn duplicate(&self, base_offset: i64, failed: Arc<AtomicBool>) -> Appended {
        if base_offset < self.high_watermark() {
            return Appended::Duplicate(base_offset);
        }
        let (reply, done) = oneshot::channel();
        let mut hw = self.high_watermark.subscribe();
        tokio::spawn(async move {
            let wait = async {
                loop {
                    if *hw.borrow_and_update() > base_offset {
                        return Ok(base_offset);
                    }
                    if failed.load(Ordering::Acquire) || hw.changed().await.is_err() {
                        return Err(LogError::storage(
                            "the original of this retried batch was not written; retry",
                        ));
                    }
                }
            };
            let result = tokio::time::timeout(Duration::from_secs(120), wait)
                .await
                .unwrap_or_else(|_| {
                    Err(LogError::storage(
                        "the original of this retried batch is still not durable",
                    ))
                });
            let _ = reply.send(result);
        });
        Appended::Pending(done)
    }

    /// Closes the current ledger once everything in flight is acknowledged, and opens the next.
    async fn roll(&self, writer: &mut Writer) -> Result<(), LogError> {
        let mut hw = self.high_watermark.subscribe();
        while *hw.borrow_and_update() < writer.next_offset {
            if writer.failed.load(Ordering::Acquire) {
                return Err(LogError::storage(
                    "an append failed while rolling the ledger",
                ));
            }
            if tokio::time::timeout(Duration::from_secs(30), hw.changed())
                .await
                .is_err()
            {
                return Err(LogError::storage(
                    "timed out waiting for in-flight appends before a ledger roll",
                ));
            }
        }
        let mut meta = writer.meta.clone();
        if let Some(last) = meta.ledgers.last_mut() {
            last.closed = true;
            last.last_offset = writer.next_offset - 1;
            last.last_entry_id = writer.next_entry_id as i64 - 1;
        }
        meta.producers = writer.producers.snapshots();
        let ledger = self.new_ledger(writer.next_offset).await?;
        meta.ledgers.push(ledger.clone());
        self.store_meta(writer, meta).await?;
        info!(topic = %self.topic, partition = self.partition, closed = writer.ledger.ledger_id, opened = ledger.ledger_id, "ledger rolled");
        metrics::LEDGERS_CLOSED.inc();
        writer.ledger = ledger;
        writer.next_entry_id = 0;
        writer.ledger_bytes = 0;
        writer.opened_at = Instant::now();
        Ok(())
    }

    /// Writes `meta` over the partition's managed ledger with a compare-and-set against the
    /// revision this writer last wrote, and publishes it to readers. A conflict means another
    /// broker took the partition over.
    async fn store_meta(&self, writer: &mut Writer, meta: PartitionMeta) -> Result<(), LogError> {
        let kv = self
            .ctx
            .metadata
            .put(
                &self.key(),
                meta.to_bytes(),
                Expect::Revision(writer.meta_revision),
                None,
            )
            .await?;
        writer.meta_revision = kv.mod_revision;
        *self.view.write() = meta.clone();
        writer.meta = meta;
        Ok(())
    }

    /// Reads batches from `offset` (which may fall inside a batch: the whole batch is returned
    /// and the client skips what it did not ask for), up to `max_bytes` (at least one batch).
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        let high_watermark = self.high_watermark();
        let log_start_offset = self.log_start_offset();
        let result = |batches| ReadResult {
            batches,
            high_watermark,
            log_start_offset,
        };
        if offset < log_start_offset || offset > high_watermark {
            return Err(LogError {
                code: codes::OFFSET_OUT_OF_RANGE,
                reason: format!(
                    "offset {offset} is outside [{log_start_offset}, {high_watermark}]"
                ),
            });
        }
        if offset == high_watermark {
            return Ok(result(Vec::new()));
        }
        if let Some(batches) = self.cache.lock().read(offset, max_bytes, high_watermark) {
            metrics::READ_CACHE_HITS.inc();
            return Ok(result(batches));
        }
        let Some(ledger) = self.ledger_for(offset) else {
            return Ok(result(Vec::new()));
        };
        let hint = *self.read_hint.lock();
        let first = match hint {
            Some((id, next_offset, next_entry))
                if id == ledger.ledger_id && next_offset == offset =>
            {
                Some(next_entry)
            }
            _ => ledger::find_entry(&self.ctx.bookies, &ledger, FindBy::Offset, offset).await?,
        };
        let Some(first) = first else {
            return Ok(result(Vec::new()));
        };
        let entries =
            match ledger::read_entries(&self.ctx.bookies, &ledger, first, max_bytes as u32).await {
                Ok(entries) => entries,
                Err(BookieError::Failed {
                    code: BookieCode::NoSuchEntry,
                    ..
                }) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
        let mut batches = Vec::with_capacity(entries.len());
        let mut size = 0;
        for entry in entries
            .into_iter()
            .take_while(|e| e.base_offset < high_watermark)
        {
            if !batches.is_empty() && size + entry.payload.len() > max_bytes {
                break;
            }
            size += entry.payload.len();
            *self.read_hint.lock() =
                Some((ledger.ledger_id, entry.last_offset + 1, entry.entry_id + 1));
            batches.push(entry.payload);
        }
        metrics::READ_BOOKIE.inc();
        Ok(result(batches))
    }

    fn ledger_for(&self, offset: i64) -> Option<LedgerInfo> {
        let view = self.view.read();
        view.ledgers
            .iter()
            .find(|l| l.first_offset <= offset && (!l.closed || offset <= l.last_offset))
            .cloned()
    }

    /// The first offset whose record timestamp is at or after `timestamp`, with that
    /// timestamp; `None` if every record is older.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let ledgers = self.view.read().ledgers.clone();
        let high_watermark = self.high_watermark();
        for ledger in ledgers {
            let Some(entry_id) =
                ledger::find_entry(&self.ctx.bookies, &ledger, FindBy::Timestamp, timestamp)
                    .await?
            else {
                continue;
            };
            let entries = ledger::read_entries(&self.ctx.bookies, &ledger, entry_id, 1).await?;
            for entry in entries.iter().filter(|e| e.base_offset < high_watermark) {
                if let Some(found) = record_batch::first_at_or_after(&entry.payload, timestamp) {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Time-based retention (Kafka's `retention.ms`): drops the oldest closed ledgers whose
    /// every record was appended more than `retention` ago — known because the next ledger
    /// was created after the last of them — moves the log start past them and deletes them
    /// from the bookies. Returns the number of ledgers dropped. The open ledger is never
    /// dropped, so retention is as coarse as the ledger roll (`ledger_roll_bytes`/`_ms`).
    pub async fn enforce_retention(&self, retention: Duration) -> Result<usize, LogError> {
        let cutoff = now_ms().saturating_sub(retention.as_millis() as i64);
        let mut guard = self.writer.lock().await;
        let Some(writer) = guard.as_mut() else {
            return Ok(0);
        };
        let ledgers = &writer.meta.ledgers;
        let expired = ledgers
            .windows(2)
            .take_while(|pair| pair[0].closed && pair[1].created_ms < cutoff)
            .count();
        if expired == 0 {
            return Ok(0);
        }
        let mut meta = writer.meta.clone();
        let dropped: Vec<LedgerInfo> = meta.ledgers.drain(..expired).collect();
        meta.log_start_offset = meta
            .ledgers
            .first()
            .map_or(writer.next_offset, |l| l.first_offset);
        self.store_meta(writer, meta).await?;
        *self.read_hint.lock() = None;
        drop(guard);
        // The ledgers are out of the log; deleting them from the bookies may lag (a bookie
        // that is down keeps its copy until the ledger is deleted again by hand).
        for ledger in &dropped {
            for (bookie, e) in ledger::delete(&self.ctx.bookies, ledger).await {
                warn!(topic = %self.topic, partition = self.partition, ledger = ledger.ledger_id, %bookie, error = %e, "deleting an expired ledger failed");
            }
        }
        info!(topic = %self.topic, partition = self.partition, ledgers = dropped.len(), log_start_offset = self.log_start_offset(), "retention dropped expired ledgers");
        Ok(dropped.len())
    }

    /// Stops accepting appends and fails whatever is in flight (topic deleted, or shutdown).
    pub async fn close(&self) {
        *self.writer.lock().await = None;
    }
}

/// Acknowledges appends in offset order as their ack quorums arrive.
async fn complete_in_order(
    mut pending: mpsc::UnboundedReceiver<Pending>,
    high_watermark: watch::Sender<i64>,
    cache: Arc<parking_lot::Mutex<TailCache>>,
    failed: Arc<AtomicBool>,
) {
    while let Some(p) = pending.recv().await {
        if failed.load(Ordering::Acquire) {
            let _ = p.reply.send(Err(LogError::storage(
                "an earlier append to this partition failed; retry",
            )));
            continue;
        }
        let result = match p.ack.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(LogError::from(e)),
            Err(_) => Err(LogError::storage("bookie write abandoned")),
        };
        match result {
            Ok(()) => {
                cache.lock().insert(p.base_offset, p.last_offset, p.batch);
                high_watermark.send_replace(p.last_offset + 1);
                let _ = p.reply.send(Ok(p.base_offset));
            }
            Err(e) => {
                warn!(error = %e, "append failed; the partition will be recovered before the next append");
                failed.store(true, Ordering::Release);
                let _ = p.reply.send(Err(e));
            }
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
