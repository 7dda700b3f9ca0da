//! One partition's log.
//!
//! Appends are serialised by the writer lock only for the cheap part (sequence check, offset
//! assignment, handing the entry to the bookies); the wait for the bookies happens outside it,
//! so many batches are in flight at once. A per-partition completer task takes the in-flight
//! entries in offset order, waits for each one's ack quorum, then advances the high watermark
//! and answers the producer — so acknowledgements, and what consumers can see, never run ahead
//! of a gap.
//!
//! The partition's metadata (see [`crate::catalog`]) is a small head, one key per segment and
//! one per producer. The writer holds only the head and the open segment; closed segments
//! are looked up by offset in the metadata store when a read needs them and kept in a small
//! cache, so a partition costs the same memory with ten ledgers or a million.
//!
//! Taking a partition over ([`PartitionLog::open`]) follows the managed-ledger protocol: read
//! the head and the last segment, fence and recover its ledger if it is still open (whoever
//! wrote it can then add nothing more), close it with a compare-and-set on the head, and
//! start a new ledger. A broker whose ledger was fenced gets NOT_LEADER_OR_FOLLOWER for the
//! adds in flight and a revision conflict on its next metadata update, so nothing it writes
//! after the take-over becomes part of the log. Today one broker serves every partition and
//! recovers its own ledger after a failed add; with several brokers, partition ownership
//! leases (next step) must stop a broker from taking a partition back by the same route.
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use stratalog_protocol::internal::bookie::{EntryData, FindBy};
use stratalog_protocol::internal::Wire;
use stratalog_protocol::kafka::record_batch::{self, BatchInfo};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{info, warn};

use super::budget::ReadBudget;
use super::cache::TailCache;
use super::ledger::{self, BookiePool};
use super::producer_state::{ProducerLimits, ProducerStates, SequenceCheck};
use crate::catalog::{
    self, LedgerInfo, Location, PartitionHead, ProducerEntry, Segment, TopicMeta,
};
use crate::clients::bookie::BookieError;
use crate::metrics;
use stratalog_metadata::client::{ClientError, MetadataClient};
use stratalog_metadata::{Expect, KeyValue, Op, RangeQuery, MAX_BATCH_OPS};

/// Kafka error codes this module produces.
pub mod codes {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
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

    fn unknown(reason: impl Into<String>) -> LogError {
        LogError {
            code: codes::UNKNOWN_TOPIC_OR_PARTITION,
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
    pub producer_limits: ProducerLimits,
    /// Take-overs running at once (each reads a bounded amount, so this bounds the memory
    /// of many partitions reopening after a crash).
    pub recoveries: Semaphore,
    /// Ledger ids reserved but not used yet, and the lock that serialises refills.
    pub ledger_ids: parking_lot::Mutex<std::ops::Range<u64>>,
    pub ledger_id_refill: tokio::sync::Mutex<()>,
}

impl LogContext {
    /// Ids of the bookies registered in the metadata store, in a stable order.
    async fn live_bookies(&self) -> Result<Vec<String>, LogError> {
        Ok(self
            .bookies
            .live(Duration::from_secs(1))
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// A fresh ledger id. Ids are reserved from the metadata store in blocks of
    /// [`LEDGER_ID_BLOCK`] (one compare-and-set per block, not per roll); ids of a block
    /// left unused when the broker stops are skipped, never reused.
    async fn allocate_ledger_id(&self) -> Result<u64, LogError> {
        if let Some(id) = self.ledger_ids.lock().next() {
            return Ok(id);
        }
        let _one_refill = self.ledger_id_refill.lock().await;
        if let Some(id) = self.ledger_ids.lock().next() {
            return Ok(id);
        }
        loop {
            let current = self.metadata.get(catalog::LEDGER_ID_COUNTER).await?;
            let (next, expect) = match &current {
                Some(kv) => (
                    u64::decode(&mut kv.value.clone()).unwrap_or(1),
                    Expect::Revision(kv.mod_revision),
                ),
                None => (1, Expect::Absent),
            };
            let end = next + LEDGER_ID_BLOCK;
            match self
                .metadata
                .put(catalog::LEDGER_ID_COUNTER, end.to_bytes(), expect, None)
                .await
            {
                Ok(_) => {
                    let mut block = self.ledger_ids.lock();
                    *block = next + 1..end;
                    return Ok(next);
                }
                Err(ClientError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Ledger ids reserved per compare-and-set of the counter.
pub const LEDGER_ID_BLOCK: u64 = 64;

pub struct ReadResult {
    pub batches: Vec<Bytes>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

struct Pending {
    base_offset: i64,
    last_offset: i64,
    entry_id: u64,
    batch: Bytes,
    ack: oneshot::Receiver<Result<(), BookieError>>,
    reply: oneshot::Sender<Result<i64, LogError>>,
    /// The ledger's last-add-confirmed, advanced by the completer.
    lac: Arc<AtomicI64>,
}

struct Writer {
    head: PartitionHead,
    /// Revision of the head as this writer last wrote it: the fencing token.
    head_revision: u64,
    /// The open segment: where it starts, when it was created, its ledger.
    segment_start: i64,
    segment_created_ms: i64,
    ledger: LedgerInfo,
    next_entry_id: u64,
    ledger_bytes: u64,
    max_timestamp: i64,
    opened_at: Instant,
    next_offset: i64,
    producers: ProducerStates,
    completer: mpsc::UnboundedSender<Pending>,
    /// Highest entry id of the open ledger acknowledged in order (-1: none); piggybacked on
    /// every add so recovery knows what was confirmed.
    lac: Arc<AtomicI64>,
    /// Set by this writer's completer when an add failed, or by a failed metadata update:
    /// rebuild before appending again.
    failed: Arc<AtomicBool>,
}

/// What readers see without the writer lock.
#[derive(Clone, Default)]
struct View {
    log_start_offset: i64,
    open: Option<Segment>,
}

/// Closed segments recently read, so sequential reads do not ask the metadata store for
/// each batch. Bounded: a partition's memory does not grow with its number of segments.
struct SegmentCache {
    by_first_offset: BTreeMap<i64, Segment>,
    order: VecDeque<i64>,
}

const SEGMENT_CACHE_ENTRIES: usize = 32;

impl SegmentCache {
    fn new() -> SegmentCache {
        SegmentCache {
            by_first_offset: BTreeMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&self, offset: i64) -> Option<Segment> {
        let (_, seg) = self.by_first_offset.range(..=offset).next_back()?;
        seg.contains(offset).then(|| seg.clone())
    }

    fn insert(&mut self, seg: Segment) {
        if self
            .by_first_offset
            .insert(seg.first_offset, seg.clone())
            .is_none()
        {
            self.order.push_back(seg.first_offset);
        }
        while self.order.len() > SEGMENT_CACHE_ENTRIES {
            if let Some(first) = self.order.pop_front() {
                self.by_first_offset.remove(&first);
            }
        }
    }

    fn remove_below(&mut self, offset: i64) {
        self.by_first_offset.retain(|first, _| *first >= offset);
        self.order.retain(|first| *first >= offset);
    }
}

/// Walks a partition's segments oldest first, one page of the metadata store at a time, so
/// no caller holds more than a page however many segments there are.
struct SegmentCursor {
    prefix: String,
    start: String,
    done: bool,
}

impl SegmentCursor {
    const PAGE: usize = 256;

    fn new(prefix: String) -> SegmentCursor {
        SegmentCursor {
            prefix,
            start: String::new(),
            done: false,
        }
    }

    /// The next page; empty once every segment was returned.
    async fn next_page(&mut self, metadata: &MetadataClient) -> Result<Vec<Segment>, LogError> {
        if self.done {
            return Ok(Vec::new());
        }
        let (page, more) = metadata
            .range(&RangeQuery {
                prefix: self.prefix.clone(),
                start: self.start.clone(),
                limit: Self::PAGE,
                ..RangeQuery::default()
            })
            .await?;
        self.done = !more;
        if let Some(last) = page.last() {
            self.start = format!("{}\0", last.key);
        }
        page.into_iter()
            .map(|kv| catalog::decode::<Segment>(&kv.key, kv.value).map_err(LogError::storage))
            .collect()
    }
}

/// The metadata keys of one partition.
struct Keys {
    head: String,
    segments: String,
    producers: String,
}

pub struct PartitionLog {
    pub topic: String,
    pub partition: i32,
    pub topic_id: [u8; 16],
    keys: Keys,
    ctx: Arc<LogContext>,
    writer: tokio::sync::Mutex<Option<Writer>>,
    /// Set once the partition stops being served (topic deleted, shutdown): no append
    /// succeeds afterwards.
    closed: AtomicBool,
    view: parking_lot::RwLock<View>,
    segments: parking_lot::Mutex<SegmentCache>,
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
        let key = catalog::topic_key(topic);
        let meta: TopicMeta = match ctx.metadata.get(&key).await? {
            Some(kv) => catalog::decode(&key, kv.value).map_err(LogError::storage)?,
            None => return Err(LogError::unknown(format!("topic {topic} does not exist"))),
        };
        if !(0..meta.partitions).contains(&partition) {
            return Err(LogError::unknown(format!(
                "topic {topic} has {} partitions, not {partition}",
                meta.partitions
            )));
        }
        let id = meta.id;
        let log = Arc::new(PartitionLog {
            topic: topic.to_string(),
            partition,
            topic_id: id,
            keys: Keys {
                head: catalog::head_key(&id, partition),
                segments: catalog::segments_prefix(&id, partition),
                producers: catalog::producers_prefix(&id, partition),
            },
            writer: tokio::sync::Mutex::new(None),
            closed: AtomicBool::new(false),
            view: parking_lot::RwLock::new(View::default()),
            segments: parking_lot::Mutex::new(SegmentCache::new()),
            high_watermark: watch::channel(0).0,
            cache: Arc::new(parking_lot::Mutex::new(TailCache::new(ctx.cache_bytes))),
            leader_epoch: Default::default(),
            read_hint: parking_lot::Mutex::new(None),
            ctx,
        });
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

    fn segment_key(&self, first_offset: i64) -> String {
        catalog::segment_key(&self.topic_id, self.partition, first_offset)
    }

    /// The last segment of the log, if any.
    async fn last_segment(&self) -> Result<Option<Segment>, LogError> {
        let (page, _) = self
            .ctx
            .metadata
            .range(&RangeQuery {
                prefix: self.keys.segments.clone(),
                limit: 1,
                reverse: true,
                ..RangeQuery::default()
            })
            .await?;
        page.into_iter()
            .next()
            .map(|kv| self.decode_segment(kv))
            .transpose()
    }

    fn decode_segment(&self, kv: KeyValue) -> Result<Segment, LogError> {
        catalog::decode::<Segment>(&kv.key, kv.value).map_err(LogError::storage)
    }

    /// Every stored producer of the partition, page by page.
    async fn stored_producers(&self) -> Result<Vec<(i64, ProducerEntry)>, LogError> {
        let mut out = Vec::new();
        for kv in self.ctx.metadata.list(&self.keys.producers).await? {
            let Some(id) = catalog::producer_id_of(&kv.key) else {
                warn!(key = %kv.key, "ignoring a producer key without a producer id");
                continue;
            };
            let entry =
                catalog::decode::<ProducerEntry>(&kv.key, kv.value).map_err(LogError::storage)?;
            out.push((id, entry));
        }
        Ok(out)
    }

    /// Recovers the partition and returns a writer positioned at its end.
    async fn take_over(&self) -> Result<Writer, LogError> {
        metrics::TAKEOVERS_WAITING.inc();
        let permit = self.ctx.recoveries.acquire().await;
        metrics::TAKEOVERS_WAITING.dec();
        let _permit = permit.map_err(|_| LogError::storage("broker is shutting down"))?;
        metrics::TAKEOVERS_RUNNING.inc();
        let result = self.take_over_now().await;
        metrics::TAKEOVERS_RUNNING.dec();
        result
    }

    async fn take_over_now(&self) -> Result<Writer, LogError> {
        let started = Instant::now();
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::unknown("the partition is no longer served"));
        }
        let (mut head, mut revision) = match self.ctx.metadata.get(&self.keys.head).await? {
            Some(kv) => (
                catalog::decode::<PartitionHead>(&kv.key, kv.value).map_err(LogError::storage)?,
                Some(kv.mod_revision),
            ),
            None => (PartitionHead::default(), None),
        };
        let now = now_ms();
        let mut producers = ProducerStates::new(self.ctx.producer_limits);
        producers.restore(self.stored_producers().await?, now);
        let mut ops = Vec::new();
        let mut recovered_entries = 0i64;
        let mut empty_ledger = None;
        let next_offset = match self.last_segment().await? {
            Some(mut seg) if !seg.closed => {
                let Location::Ledger(mut ledger) = seg.location.clone() else {
                    return Err(LogError::storage(format!(
                        "the open segment at offset {} is not a ledger",
                        seg.first_offset
                    )));
                };
                let recovered = ledger::recover(&self.ctx.bookies, &ledger, |batch| {
                    producers.update(batch, batch.base_offset, now)
                })
                .await?;
                recovered_entries = recovered.last_entry_id + 1;
                let key = self.segment_key(seg.first_offset);
                match recovered.last_offset {
                    None => {
                        // It holds nothing: drop it from the log.
                        ops.push(Op::Delete {
                            key,
                            expect: Expect::Any,
                        });
                        empty_ledger = Some(ledger);
                        seg.first_offset
                    }
                    Some(last_offset) => {
                        ledger.last_entry_id = recovered.last_entry_id;
                        seg.closed = true;
                        seg.last_offset = last_offset;
                        seg.max_timestamp = recovered.max_timestamp;
                        seg.location = Location::Ledger(ledger);
                        ops.push(Op::Put {
                            key,
                            value: seg.to_bytes(),
                            expect: Expect::Any,
                            lease: None,
                        });
                        last_offset + 1
                    }
                }
            }
            Some(seg) => seg.last_offset + 1,
            None => head.log_start_offset,
        }
        .max(head.log_start_offset);
        head.leader_epoch += 1;
        revision = Some(
            self.write_producers(&mut producers, &head, revision)
                .await?,
        );
        let ledger = self.new_ledger().await?;
        let segment = Segment::open(next_offset, now_ms(), ledger.clone());
        ops.push(Op::Put {
            key: self.segment_key(next_offset),
            value: segment.to_bytes(),
            expect: Expect::Any,
            lease: None,
        });
        let head_revision = self.commit(&head, revision, ops).await?;
        if let Some(empty) = empty_ledger {
            for (bookie, e) in ledger::delete(&self.ctx.bookies, &empty).await {
                warn!(topic = %self.topic, partition = self.partition, ledger = empty.ledger_id, %bookie, error = %e, "deleting an empty recovered ledger failed");
            }
        }

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
            .store(head.leader_epoch, Ordering::Relaxed);
        *self.view.write() = View {
            log_start_offset: head.log_start_offset,
            open: Some(segment.clone()),
        };
        self.high_watermark.send_replace(next_offset);
        info!(
            topic = %self.topic, partition = self.partition, next_offset, ledger = ledger.ledger_id,
            recovered_entries, producers = producers.len(), epoch = head.leader_epoch,
            took_ms = started.elapsed().as_millis() as u64, "partition opened"
        );
        Ok(Writer {
            head,
            head_revision,
            segment_start: segment.first_offset,
            segment_created_ms: segment.created_ms,
            ledger,
            next_entry_id: 0,
            ledger_bytes: 0,
            max_timestamp: -1,
            opened_at: Instant::now(),
            next_offset,
            producers,
            completer,
            lac: Arc::new(AtomicI64::new(-1)),
            failed,
        })
    }

    /// One transaction: the head (compare-and-set against `revision`, or absent) plus
    /// `ops`. Returns the head's new revision.
    async fn commit(
        &self,
        head: &PartitionHead,
        revision: Option<u64>,
        ops: Vec<Op>,
    ) -> Result<u64, LogError> {
        let mut all = Vec::with_capacity(ops.len() + 1);
        all.push(Op::Put {
            key: self.keys.head.clone(),
            value: head.to_bytes(),
            expect: revision.map_or(Expect::Absent, Expect::Revision),
            lease: None,
        });
        all.extend(ops);
        let results = self.ctx.metadata.batch(all).await?;
        match results.first() {
            Some(Some(kv)) => Ok(kv.mod_revision),
            _ => Err(LogError::storage("metadata batch returned no head")),
        }
    }

    /// Writes the producers that changed (and deletes the forgotten ones), in transactions
    /// that each also compare-and-set the head, so a fenced owner cannot overwrite a newer
    /// owner's producer state. Returns the head's revision afterwards.
    async fn write_producers(
        &self,
        producers: &mut ProducerStates,
        head: &PartitionHead,
        mut revision: Option<u64>,
    ) -> Result<u64, LogError> {
        let changes = producers.take_changes();
        let mut ops: Vec<Op> = changes
            .upserts
            .iter()
            .map(|(id, entry)| Op::Put {
                key: catalog::producer_key(&self.topic_id, self.partition, *id),
                value: entry.to_bytes(),
                expect: Expect::Any,
                lease: None,
            })
            .chain(changes.removals.iter().map(|id| Op::Delete {
                key: catalog::producer_key(&self.topic_id, self.partition, *id),
                expect: Expect::Any,
            }))
            .collect();
        let written = ops.len() as u64;
        loop {
            let chunk: Vec<Op> = ops.drain(..ops.len().min(MAX_BATCH_OPS - 1)).collect();
            if chunk.is_empty() && revision.is_some() {
                break;
            }
            match self.commit(head, revision, chunk).await {
                Ok(r) => revision = Some(r),
                Err(e) => {
                    producers.restore_changes(&changes);
                    return Err(e);
                }
            }
            if ops.is_empty() {
                break;
            }
        }
        metrics::PRODUCER_STATE_WRITES.inc_by(written);
        Ok(revision.unwrap_or(0))
    }

    /// A new ledger on `E` registered bookies, for the next open segment.
    async fn new_ledger(&self) -> Result<LedgerInfo, LogError> {
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
            last_entry_id: -1,
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
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::unknown("the partition is no longer served"));
        }
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
            if let Err(e) = self.roll(writer).await {
                // Whatever state the metadata store is in now (the roll may even have been
                // applied with its reply lost), the next append re-reads it.
                writer.failed.store(true, Ordering::Release);
                return Err(e);
            }
        }
        let base_offset = writer.next_offset;
        let last_offset = base_offset + info.last_offset_delta as i64;
        let max_timestamp = log_append_time.unwrap_or(info.max_timestamp);
        let mut stamped = BytesMut::from(&batch[..]);
        record_batch::assign(&mut stamped, base_offset, log_append_time);
        let stamped = stamped.freeze();
        let entry_id = writer.next_entry_id;
        let entry = EntryData {
            entry_id,
            base_offset,
            last_offset,
            max_timestamp,
            payload: stamped.clone(),
        };
        let writer_lac = u64::try_from(writer.lac.load(Ordering::Acquire)).ok();
        let ack = ledger::add_entry(&self.ctx.bookies, &writer.ledger, entry, writer_lac);
        let (reply, done) = oneshot::channel();
        if writer
            .completer
            .send(Pending {
                base_offset,
                last_offset,
                entry_id,
                batch: stamped,
                ack,
                reply,
                lac: writer.lac.clone(),
            })
            .is_err()
        {
            writer.failed.store(true, Ordering::Release);
            return Err(LogError::storage("partition completer stopped"));
        }
        writer.next_entry_id += 1;
        writer.ledger_bytes += batch.len() as u64;
        writer.max_timestamp = writer.max_timestamp.max(max_timestamp);
        writer.next_offset = last_offset + 1;
        writer.producers.update(&info, base_offset, now_ms());
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

    /// Closes the current ledger once everything in flight is acknowledged, and opens the
    /// next: producer changes first, then one transaction with the head, the closed segment
    /// and the new one. Its cost does not depend on how many segments the log has.
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
        let closed = Segment {
            first_offset: writer.segment_start,
            last_offset: writer.next_offset - 1,
            max_timestamp: writer.max_timestamp,
            created_ms: writer.segment_created_ms,
            closed: true,
            location: Location::Ledger(LedgerInfo {
                last_entry_id: writer.next_entry_id as i64 - 1,
                ..writer.ledger.clone()
            }),
        };
        writer.producers.expire(now_ms());
        writer.head_revision = self
            .write_producers(
                &mut writer.producers,
                &writer.head,
                Some(writer.head_revision),
            )
            .await?;
        let next_ledger = self.new_ledger().await?;
        let next = Segment::open(writer.next_offset, now_ms(), next_ledger.clone());
        let ops = vec![
            Op::Put {
                key: self.segment_key(closed.first_offset),
                value: closed.to_bytes(),
                expect: Expect::Any,
                lease: None,
            },
            Op::Put {
                key: self.segment_key(next.first_offset),
                value: next.to_bytes(),
                expect: Expect::Absent,
                lease: None,
            },
        ];
        writer.head_revision = self
            .commit(&writer.head, Some(writer.head_revision), ops)
            .await?;
        info!(topic = %self.topic, partition = self.partition, closed = writer.ledger.ledger_id, opened = next_ledger.ledger_id, "ledger rolled");
        metrics::LEDGERS_CLOSED.inc();
        self.segments.lock().insert(closed);
        writer.segment_start = next.first_offset;
        writer.segment_created_ms = next.created_ms;
        self.view.write().open = Some(next);
        writer.ledger = next_ledger;
        writer.next_entry_id = 0;
        writer.ledger_bytes = 0;
        writer.max_timestamp = -1;
        writer.opened_at = Instant::now();
        writer.lac = Arc::new(AtomicI64::new(-1));
        Ok(())
    }

    /// The segment holding `offset`: the open one, a cached one, or the last segment that
    /// starts at or before it, read from the metadata store.
    async fn segment_for(&self, offset: i64) -> Result<Option<Segment>, LogError> {
        if let Some(open) = self
            .view
            .read()
            .open
            .as_ref()
            .filter(|s| s.contains(offset))
        {
            return Ok(Some(open.clone()));
        }
        if let Some(seg) = self.segments.lock().get(offset) {
            return Ok(Some(seg));
        }
        let (page, _) = self
            .ctx
            .metadata
            .range(&RangeQuery {
                prefix: self.keys.segments.clone(),
                end: self.segment_key(offset.saturating_add(1)),
                limit: 1,
                reverse: true,
                ..RangeQuery::default()
            })
            .await?;
        let Some(kv) = page.into_iter().next() else {
            return Ok(None);
        };
        let seg = self.decode_segment(kv)?;
        if !seg.contains(offset) {
            return Ok(None);
        }
        if seg.closed {
            self.segments.lock().insert(seg.clone());
        }
        Ok(Some(seg))
    }

    /// Reads batches from `offset` (which may fall inside a batch: the whole batch is returned
    /// and the client skips what it did not ask for), up to `max_bytes`. A first batch larger
    /// than `max_bytes` is returned alone if `first_may_exceed` (Kafka's "min one message",
    /// for the first partition of a fetch response), else nothing is.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        first_may_exceed: bool,
    ) -> Result<ReadResult, LogError> {
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
        let mut budget = ReadBudget::new(max_bytes, first_may_exceed);
        if let Some(batches) = self.cache.lock().read(offset, budget, high_watermark) {
            metrics::READ_CACHE_HITS.inc();
            return Ok(result(batches));
        }
        let Some(segment) = self.segment_for(offset).await? else {
            return Ok(result(Vec::new()));
        };
        let Some(ledger) = segment.ledger() else {
            return Err(LogError::storage(format!(
                "offset {offset} is on object storage, which this broker cannot read yet"
            )));
        };
        let until = if segment.closed {
            high_watermark.min(segment.last_offset + 1)
        } else {
            high_watermark
        };
        let hint = *self.read_hint.lock();
        let first = match hint {
            Some((id, next_offset, next_entry))
                if id == ledger.ledger_id && next_offset == offset =>
            {
                Some(next_entry)
            }
            _ => ledger::find_entry(&self.ctx.bookies, ledger, FindBy::Offset, offset).await?,
        };
        let Some(first) = first else {
            return Ok(result(Vec::new()));
        };
        let entries =
            ledger::read_entries(&self.ctx.bookies, ledger, first, until, budget, 0).await?;
        let mut batches = Vec::with_capacity(entries.len());
        for entry in entries {
            if !budget.take(entry.payload.len()) {
                break;
            }
            *self.read_hint.lock() =
                Some((ledger.ledger_id, entry.last_offset + 1, entry.entry_id + 1));
            batches.push(entry.payload);
        }
        metrics::READ_BOOKIE.inc();
        Ok(result(batches))
    }

    /// The first offset whose record timestamp is at or after `timestamp`, with that
    /// timestamp; `None` if every record is older. Segments whose largest timestamp is
    /// older are skipped without asking a bookie.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let high_watermark = self.high_watermark();
        let mut cursor = SegmentCursor::new(self.keys.segments.clone());
        loop {
            let page = cursor.next_page(&self.ctx.metadata).await?;
            if page.is_empty() {
                return Ok(None);
            }
            for seg in page {
                // An open segment nothing was written to yet is unknown to the bookies.
                if (seg.closed && seg.max_timestamp < timestamp)
                    || seg.first_offset >= high_watermark
                {
                    continue;
                }
                let Some(ledger) = seg.ledger() else {
                    continue;
                };
                if let Some(found) = self
                    .find_in_ledger(ledger, timestamp, high_watermark)
                    .await?
                {
                    return Ok(Some(found));
                }
            }
        }
    }

    /// The record with the largest timestamp (ListOffsets `MAX_TIMESTAMP`, KIP-734): its
    /// offset and timestamp, the earliest such record on ties; `None` for an empty log.
    /// Closed segments know their largest timestamp; the open one's is found through the
    /// bookies (see [`Self::open_segment_max_timestamp`]). The record is then read from the
    /// first entry of the winning segment that reaches that timestamp.
    pub async fn offset_of_max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let high_watermark = self.high_watermark();
        let mut best: Option<(LedgerInfo, i64, i64)> = None;
        let mut cursor = SegmentCursor::new(self.keys.segments.clone());
        loop {
            let page = cursor.next_page(&self.ctx.metadata).await?;
            if page.is_empty() {
                break;
            }
            for seg in page {
                if seg.first_offset >= high_watermark
                    || (seg.closed && seg.last_offset < seg.first_offset)
                {
                    continue;
                }
                let Some(ledger) = seg.ledger() else {
                    continue;
                };
                let until = if seg.closed {
                    high_watermark.min(seg.last_offset + 1)
                } else {
                    high_watermark
                };
                let max = if seg.closed {
                    seg.max_timestamp
                } else {
                    match self.open_segment_max_timestamp(ledger, until).await? {
                        Some(max) => max,
                        None => continue,
                    }
                };
                if best.as_ref().is_none_or(|(_, _, m)| max > *m) {
                    best = Some((ledger.clone(), until, max));
                }
            }
        }
        let Some((ledger, until, max)) = best else {
            return Ok(None);
        };
        let bookies = &self.ctx.bookies;
        let Some(entry_id) = ledger::find_entry(bookies, &ledger, FindBy::Timestamp, max).await?
        else {
            return Ok(None);
        };
        let entries = ledger::read_entries(
            bookies,
            &ledger,
            entry_id,
            until,
            ReadBudget::new(1, true),
            0,
        )
        .await?;
        Ok(entries
            .first()
            .and_then(|e| record_batch::first_at_or_after(&e.payload, max)))
    }

    /// The largest record timestamp of the open segment's entries below `until`. The bookies
    /// index a ledger by running maximum timestamp, so "does an entry up to the last visible
    /// one reach `t`" is one lookup: start from the last visible entry's timestamp (the
    /// answer when timestamps grow, confirmed by one lookup), else gallop and bisect.
    async fn open_segment_max_timestamp(
        &self,
        ledger: &LedgerInfo,
        until: i64,
    ) -> Result<Option<i64>, LogError> {
        let bookies = &self.ctx.bookies;
        let Some(last_entry) =
            ledger::find_entry(bookies, ledger, FindBy::Offset, until - 1).await?
        else {
            return Ok(None);
        };
        let Some(entry) = ledger::read_entries(
            bookies,
            ledger,
            last_entry,
            until,
            ReadBudget::new(1, true),
            0,
        )
        .await?
        .into_iter()
        .next() else {
            return Ok(None);
        };
        let reaches = |t: i64| async move {
            Ok::<_, LogError>(
                ledger::find_entry(bookies, ledger, FindBy::Timestamp, t)
                    .await?
                    .is_some_and(|e| e <= last_entry),
            )
        };
        let mut low = entry.max_timestamp; // reached
        if low < i64::MAX && reaches(low + 1).await? {
            low += 1;
            let mut step = 1i64;
            let mut high = loop {
                let probe = low.saturating_add(step);
                if probe == low {
                    break None; // low is i64::MAX
                }
                if reaches(probe).await? {
                    low = probe;
                    step = step.saturating_mul(2);
                } else {
                    break Some(probe);
                }
            };
            while let Some(h) = high {
                if h - low <= 1 {
                    break;
                }
                let mid = low + (h - low) / 2;
                if reaches(mid).await? {
                    low = mid;
                } else {
                    high = Some(mid);
                }
            }
        }
        Ok(Some(low))
    }

    async fn find_in_ledger(
        &self,
        ledger: &LedgerInfo,
        timestamp: i64,
        high_watermark: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let Some(entry_id) =
            ledger::find_entry(&self.ctx.bookies, ledger, FindBy::Timestamp, timestamp).await?
        else {
            return Ok(None);
        };
        let entries = ledger::read_entries(
            &self.ctx.bookies,
            ledger,
            entry_id,
            high_watermark,
            ReadBudget::new(1, true),
            0,
        )
        .await?;
        Ok(entries
            .iter()
            .find_map(|e| record_batch::first_at_or_after(&e.payload, timestamp)))
    }

    /// Time-based retention (Kafka's `retention.ms`): drops the oldest closed segments whose
    /// every record was appended more than `retention` ago — known because the next segment
    /// was created after the last of them — moves the log start past them and deletes their
    /// ledgers from the bookies. Works through the oldest segments a page at a time. Returns
    /// the number of segments dropped. The open segment is never dropped, so retention is as
    /// coarse as the ledger roll (`ledger_roll_bytes`/`_ms`).
    pub async fn enforce_retention(&self, retention: Duration) -> Result<usize, LogError> {
        const PAGE: usize = 256;
        let cutoff = now_ms().saturating_sub(retention.as_millis() as i64);
        let mut dropped_total = 0;
        loop {
            let mut guard = self.writer.lock().await;
            let Some(writer) = guard.as_mut().filter(|w| !w.failed.load(Ordering::Acquire)) else {
                return Ok(dropped_total);
            };
            let (page, _) = self
                .ctx
                .metadata
                .range(&RangeQuery {
                    prefix: self.keys.segments.clone(),
                    limit: PAGE + 1,
                    ..RangeQuery::default()
                })
                .await?;
            let segments = page
                .into_iter()
                .map(|kv| self.decode_segment(kv))
                .collect::<Result<Vec<_>, _>>()?;
            let expired = segments
                .windows(2)
                .take_while(|pair| pair[0].closed && pair[1].created_ms < cutoff)
                .count();
            if expired == 0 {
                return Ok(dropped_total);
            }
            let mut head = writer.head;
            head.log_start_offset = segments[expired].first_offset;
            let ops = segments[..expired]
                .iter()
                .map(|seg| Op::Delete {
                    key: self.segment_key(seg.first_offset),
                    expect: Expect::Any,
                })
                .collect();
            match self.commit(&head, Some(writer.head_revision), ops).await {
                Ok(revision) => {
                    writer.head = head;
                    writer.head_revision = revision;
                }
                Err(e) => {
                    writer.failed.store(true, Ordering::Release);
                    return Err(e);
                }
            }
            self.view.write().log_start_offset = head.log_start_offset;
            self.segments.lock().remove_below(head.log_start_offset);
            *self.read_hint.lock() = None;
            drop(guard);
            // The segments are out of the log; deleting their ledgers may lag (a bookie
            // that is down keeps its copy until the ledger is deleted again by hand).
            for ledger in segments[..expired].iter().filter_map(Segment::ledger) {
                for (bookie, e) in ledger::delete(&self.ctx.bookies, ledger).await {
                    warn!(topic = %self.topic, partition = self.partition, ledger = ledger.ledger_id, %bookie, error = %e, "deleting an expired ledger failed");
                }
            }
            dropped_total += expired;
            info!(topic = %self.topic, partition = self.partition, segments = expired, log_start_offset = head.log_start_offset, "retention dropped expired segments");
        }
    }

    /// Stops accepting appends for good (topic deleted, or shutdown): appends after this
    /// fail, and whatever is in flight is failed by the bookies' fence or deletion.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        *self.writer.lock().await = None;
    }

    /// Deletes the partition's ledgers from the bookies, page by page (the metadata keys
    /// are deleted by the caller). Call after [`PartitionLog::close`].
    pub async fn delete_ledgers(
        ctx: &LogContext,
        topic_id: &[u8; 16],
        partition: i32,
    ) -> Result<usize, LogError> {
        let mut cursor = SegmentCursor::new(catalog::segments_prefix(topic_id, partition));
        let mut deleted = 0;
        loop {
            let page = cursor.next_page(&ctx.metadata).await?;
            if page.is_empty() {
                return Ok(deleted);
            }
            for ledger in page.iter().filter_map(Segment::ledger) {
                for (bookie, e) in ledger::delete(&ctx.bookies, ledger).await {
                    warn!(partition, ledger = ledger.ledger_id, %bookie, error = %e, "deleting a ledger of a deleted topic failed");
                }
                deleted += 1;
            }
        }
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
                p.lac.store(p.entry_id as i64, Ordering::Release);
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
