//! One ledger as the broker sees it: an ensemble of bookies, written with a write quorum and
//! an ack quorum, read from whichever replica has each entry, and recovered (fenced, the
//! entries past the writer's last-add-confirmed re-replicated or cut off) when a new owner
//! takes the partition over.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use stratalog_protocol::internal::bookie::{BookieCode, EntryData, FindBy};
use stratalog_protocol::kafka::record_batch::{self, BatchInfo};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::budget::ReadBudget;
use crate::catalog::LedgerInfo;
use crate::clients::bookie::{BookieClient, BookieError};
use stratalog_metadata::client::{ClientError, MetadataClient};
use stratalog_metadata::cluster;

/// A registry listing, (id, address) by id, and when it was read.
type Listing = (Instant, Vec<(String, String)>);

/// Connections to bookies, shared by all partitions. Ledger ensembles name bookies by id;
/// the pool resolves ids to addresses through the bookie registry in the metadata store, so a
/// bookie that comes back on another address still serves its ledgers.
pub struct BookiePool {
    metadata: MetadataClient,
    addrs: Mutex<HashMap<String, String>>,
    clients: Mutex<HashMap<String, BookieClient>>,
    /// The last registry listing and when it was read.
    listed: Mutex<Option<Listing>>,
}

impl BookiePool {
    pub fn new(metadata: MetadataClient) -> BookiePool {
        BookiePool {
            metadata,
            addrs: Mutex::default(),
            clients: Mutex::default(),
            listed: Mutex::default(),
        }
    }

    /// The live bookies as of at most `max_age` ago (re-reading the registry if older), so
    /// frequent ledger rolls do not each list the registry.
    pub async fn live(&self, max_age: Duration) -> Result<Vec<(String, String)>, ClientError> {
        if let Some((at, live)) = self.listed.lock().as_ref() {
            if at.elapsed() < max_age {
                return Ok(live.clone());
            }
        }
        self.refresh().await
    }

    /// Re-reads the bookie registry; returns the live bookies as (id, address), by id.
    pub async fn refresh(&self) -> Result<Vec<(String, String)>, ClientError> {
        let live: Vec<(String, String)> = self
            .metadata
            .list(cluster::BOOKIES_PREFIX)
            .await?
            .into_iter()
            .filter_map(|kv| {
                Some((
                    cluster::bookie_id(&kv.key)?.to_string(),
                    String::from_utf8(kv.value.to_vec()).ok()?,
                ))
            })
            .collect();
        self.addrs.lock().extend(live.iter().cloned());
        *self.listed.lock() = Some((Instant::now(), live.clone()));
        Ok(live)
    }

    /// The client for bookie `id` if its address is known.
    pub fn cached(&self, id: &str) -> Option<BookieClient> {
        let addr = self.addrs.lock().get(id).cloned()?;
        Some(
            self.clients
                .lock()
                .entry(addr.clone())
                .or_insert_with(|| BookieClient::new(addr))
                .clone(),
        )
    }

    /// The client for bookie `id`, consulting the registry if the id is new to us.
    pub async fn get(&self, id: &str) -> Result<BookieClient, BookieError> {
        if let Some(client) = self.cached(id) {
            return Ok(client);
        }
        self.refresh()
            .await
            .map_err(|e| failed(id, format!("reading the bookie registry: {e}")))?;
        self.cached(id)
            .ok_or_else(|| failed(id, "bookie is not registered (is it running?)".into()))
    }
}

fn failed(bookie: &str, message: String) -> BookieError {
    BookieError::Failed {
        bookie: bookie.to_string(),
        code: BookieCode::Other,
        message,
    }
}

/// The bookies that store entry `entry_id` of a ledger (BookKeeper's round-robin striping).
fn write_set(info: &LedgerInfo, entry_id: u64) -> impl Iterator<Item = &str> {
    let e = info.ensemble.len().max(1);
    (0..info.write_quorum as usize).filter_map(move |i| {
        info.ensemble
            .get((entry_id as usize + i) % e)
            .map(String::as_str)
    })
}

/// Sends `entry` to its write set and resolves once `ack_quorum` bookies have it on disk.
/// `writer_lac` (the highest entry id this writer has seen reach the ack quorum) rides on
/// the add, so a later recovery knows which entries were acknowledged. The writes start
/// before this returns, so calls made in order reach the bookies in order.
pub fn add_entry(
    pool: &BookiePool,
    info: &LedgerInfo,
    entry: EntryData,
    writer_lac: Option<u64>,
) -> oneshot::Receiver<Result<(), BookieError>> {
    let (done, result) = oneshot::channel();
    let targets: Vec<BookieClient> = match write_set(info, entry.entry_id)
        .map(|id| pool.cached(id).ok_or(id))
        .collect()
    {
        Ok(targets) => targets,
        Err(id) => {
            let _ = done.send(Err(failed(id, "bookie address unknown".into())));
            return result;
        }
    };
    let ledger_id = info.ledger_id;
    let needed = (info.ack_quorum as usize).clamp(1, targets.len().max(1));
    let state = Arc::new(Mutex::new(QuorumState {
        acks: 0,
        failures: 0,
        done: Some(done),
    }));
    let can_fail = targets.len().saturating_sub(needed);
    for bookie in targets {
        let entry = entry.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let result = bookie.add(ledger_id, entry, false, writer_lac).await;
            let mut s = state.lock();
            match result {
                Ok(()) => {
                    s.acks += 1;
                    if s.acks == needed {
                        if let Some(done) = s.done.take() {
                            let _ = done.send(Ok(()));
                        }
                    }
                }
                Err(e) => {
                    s.failures += 1;
                    if s.failures > can_fail {
                        if let Some(done) = s.done.take() {
                            let _ = done.send(Err(e));
                        }
                    }
                }
            }
        });
    }
    result
}

struct QuorumState {
    acks: usize,
    failures: usize,
    done: Option<oneshot::Sender<Result<(), BookieError>>>,
}

/// What one replica said about an entry.
enum Probe {
    Found(Vec<EntryData>),
    /// The bookie answered and does not have it.
    Missing,
    Failed(BookieError),
}

/// How a replica is asked for entries.
#[derive(Clone, Copy)]
struct ReadSpec {
    max_bytes: u32,
    header_bytes: u32,
    /// Even the first entry must fit `max_bytes` (a read continued past its first entry).
    strict: bool,
}

async fn probe(
    pool: &BookiePool,
    info: &LedgerInfo,
    bookie_id: &str,
    first: u64,
    spec: ReadSpec,
) -> Probe {
    let bookie = match pool.get(bookie_id).await {
        Ok(bookie) => bookie,
        Err(e) => return Probe::Failed(e),
    };
    match bookie
        .read_within(
            info.ledger_id,
            first,
            10_000,
            spec.max_bytes,
            spec.header_bytes,
            spec.strict,
        )
        .await
    {
        Ok(entries) if entries.is_empty() => Probe::Missing,
        Ok(entries) => Probe::Found(entries),
        Err(BookieError::Failed {
            code: BookieCode::NoSuchEntry | BookieCode::NoSuchLedger,
            ..
        }) => Probe::Missing,
        Err(e) => {
            debug!(ledger = info.ledger_id, entry = first, bookie = bookie_id, error = %e, "read failed, trying next replica");
            Probe::Failed(e)
        }
    }
}

/// Reads consecutive entries from `first` while their offsets stay below `until_offset`,
/// within `budget` (see [`ReadBudget`]), switching replicas whenever the one read from
/// lacks the next entry (with `Qa < Qw` any replica may miss some). Every bookie read asks
/// only for entries that fit what is left of the budget, so nothing is read that the
/// caller would drop. With `header_bytes > 0` only that prefix of each payload is returned
/// (the budget still counts whole entries, as the bookie does). Empty if no replica has
/// `first`.
pub async fn read_entries(
    pool: &BookiePool,
    info: &LedgerInfo,
    first: u64,
    until_offset: i64,
    budget: ReadBudget,
    header_bytes: u32,
) -> Result<Vec<EntryData>, BookieError> {
    let max_bytes = budget.max_bytes().min(u32::MAX as usize) as u64;
    let mut out: Vec<EntryData> = Vec::new();
    let mut bytes = 0u64;
    let mut next = first;
    loop {
        let mut last_error = None;
        let mut got = None;
        let spec = ReadSpec {
            max_bytes: max_bytes.saturating_sub(bytes) as u32,
            header_bytes,
            strict: !out.is_empty() || !budget.first_may_exceed(),
        };
        if spec.strict && spec.max_bytes == 0 {
            return Ok(out);
        }
        for bookie_id in write_set(info, next) {
            match probe(pool, info, bookie_id, next, spec).await {
                Probe::Found(entries) => {
                    got = Some(entries);
                    break;
                }
                Probe::Missing => {}
                Probe::Failed(e) => last_error = Some(e),
            }
        }
        let Some(entries) = got else {
            // Nobody had `next`: fine after the first entries (end of what exists), an
            // error only if nothing was read and some replica could not be asked.
            return match (out.is_empty(), last_error) {
                (true, Some(e)) => Err(e),
                _ => Ok(out),
            };
        };
        for entry in entries {
            if entry.entry_id != next || entry.base_offset >= until_offset {
                return Ok(out);
            }
            next += 1;
            bytes += entry.payload.len() as u64;
            let done = entry.last_offset + 1 >= until_offset;
            out.push(entry);
            if done || bytes >= max_bytes {
                return Ok(out);
            }
        }
    }
}

/// The entry holding `value` (an offset or a timestamp). Every bookie of the ensemble that
/// answers is asked and the lowest entry id wins: a bookie that missed an entry answers with
/// a later one, never an earlier one.
pub async fn find_entry(
    pool: &BookiePool,
    info: &LedgerInfo,
    by: FindBy,
    value: i64,
) -> Result<Option<u64>, BookieError> {
    let mut last_error = None;
    let mut answered = false;
    let mut found: Option<u64> = None;
    for addr in &info.ensemble {
        let bookie = match pool.get(addr).await {
            Ok(bookie) => bookie,
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        match bookie.find(info.ledger_id, by, value).await {
            Ok(entry) => {
                answered = true;
                found = match (found, entry) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Err(e) => last_error = Some(e),
        }
    }
    if answered {
        return Ok(found);
    }
    Err(last_error.unwrap_or_else(|| no_bookies(info)))
}

fn no_bookies(info: &LedgerInfo) -> BookieError {
    failed(
        "",
        format!("ledger {} has an empty ensemble", info.ledger_id),
    )
}

/// Deletes the ledger from every bookie of its ensemble; returns the bookies that failed.
pub async fn delete(pool: &BookiePool, info: &LedgerInfo) -> Vec<(String, BookieError)> {
    let mut failures = Vec::new();
    for id in &info.ensemble {
        let deleted = match pool.get(id).await {
            Ok(bookie) => bookie.delete_ledger(info.ledger_id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = deleted {
            failures.push((id.clone(), e));
        }
    }
    failures
}

/// Bytes of a Kafka batch header: all [`BatchInfo`] needs.
const BATCH_HEADER_BYTES: u32 = record_batch::HEADER_LEN as u32;
/// Bytes of entries one recovery read asks for; bounds a recovery's memory.
const RECOVERY_READ_BYTES: usize = 4 * 1024 * 1024;

/// A ledger after recovery: where it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Last entry id, -1 if the ledger holds none.
    pub last_entry_id: i64,
    /// Last offset, `None` if the ledger holds none.
    pub last_offset: Option<i64>,
    /// Largest entry timestamp, -1 if none.
    pub max_timestamp: i64,
}

impl Recovered {
    /// Takes `entry` as the ledger's last so far; its batch header goes to `on_batch`.
    fn note(&mut self, entry: &EntryData, on_batch: &mut impl FnMut(&BatchInfo)) {
        // One batch per entry; a header-only read holds just its header.
        if let Ok(batch) = record_batch::header_prefix(&entry.payload) {
            on_batch(&batch);
        }
        self.last_entry_id = entry.entry_id as i64;
        self.last_offset = Some(entry.last_offset);
        self.max_timestamp = self.max_timestamp.max(entry.max_timestamp);
    }
}

/// BookKeeper-style recovery of a ledger whose writer is gone.
///
/// 1. Fence it on the ensemble so the old writer can add nothing more: at least
///    `E - Qa + 1` bookies must confirm, so every ack quorum holds a fenced bookie.
/// 2. Take the highest LAC the writer piggybacked on its adds (`confirmed`): every entry up
///    to it reached the ack quorum. Only their batch headers are read, to feed
///    `on_batch` (producer state), streamed in bounded reads.
/// 3. Past `confirmed`, read each entry from any replica and re-add it to its write set
///    (as a recovery add) before relying on it; at least `Qa` copies must be written. The
///    ledger ends at the first entry that `Qw - Qa + 1` replicas say they lack: no ack
///    quorum can have had it, so no client was told it was written. If too few replicas
///    answer to decide, recovery fails and is retried later: cutting the ledger there
///    could drop an acknowledged entry.
pub async fn recover(
    pool: &BookiePool,
    info: &LedgerInfo,
    mut on_batch: impl FnMut(&BatchInfo),
) -> Result<Recovered, BookieError> {
    let needed = info.ensemble.len().saturating_sub(info.ack_quorum as usize) + 1;
    let mut fenced = 0;
    let mut confirmed: Option<u64> = None;
    let mut last_error = None;
    for addr in &info.ensemble {
        let fence = match pool.get(addr).await {
            Ok(bookie) => bookie.fence(info.ledger_id).await,
            Err(e) => Err(e),
        };
        match fence {
            Ok(writer_lac) => {
                fenced += 1;
                confirmed = confirmed.max(writer_lac);
            }
            Err(e) => {
                warn!(ledger = info.ledger_id, bookie = %addr, error = %e, "fencing failed on a bookie");
                last_error = Some(e);
            }
        }
    }
    if fenced < needed {
        return Err(last_error.unwrap_or_else(|| no_bookies(info)));
    }
    let mut done = Recovered {
        last_entry_id: -1,
        last_offset: None,
        max_timestamp: -1,
    };
    // 2. The acknowledged prefix: headers only.
    if let Some(confirmed) = confirmed {
        let mut next = 0u64;
        while next <= confirmed {
            let entries = read_entries(
                pool,
                info,
                next,
                i64::MAX,
                ReadBudget::new(RECOVERY_READ_BYTES, true),
                BATCH_HEADER_BYTES,
            )
            .await?;
            let entries: Vec<_> = entries
                .into_iter()
                .take_while(|e| e.entry_id <= confirmed)
                .collect();
            let Some(last) = entries.last() else {
                return Err(failed(
                    "",
                    format!(
                        "ledger {}: entry {next} is at or below the writer's confirmed entry {confirmed} but no replica returned it",
                        info.ledger_id
                    ),
                ));
            };
            next = last.entry_id + 1;
            for entry in &entries {
                done.note(entry, &mut on_batch);
            }
        }
    }
    // 3. Past the confirmed point: re-replicate entry by entry, or stop.
    let mut next = confirmed.map_or(0, |c| c + 1);
    loop {
        let mut missing = 0usize;
        let mut found = None;
        let mut last_error = None;
        for bookie_id in write_set(info, next) {
            let spec = ReadSpec {
                max_bytes: 1,
                header_bytes: 0,
                strict: false,
            };
            match probe(pool, info, bookie_id, next, spec).await {
                Probe::Found(mut entries) if entries[0].entry_id == next => {
                    entries.truncate(1);
                    found = entries.pop();
                    break;
                }
                Probe::Found(_) | Probe::Missing => missing += 1,
                Probe::Failed(e) => last_error = Some(e),
            }
        }
        let Some(entry) = found else {
            let write_quorum = info.write_quorum as usize;
            let ack_quorum = info.ack_quorum as usize;
            if missing > write_quorum.saturating_sub(ack_quorum) {
                break;
            }
            return Err(last_error.unwrap_or_else(|| {
                failed(
                    "",
                    format!(
                        "ledger {}: cannot tell whether entry {next} was acknowledged",
                        info.ledger_id
                    ),
                )
            }));
        };
        re_replicate(pool, info, &entry).await?;
        done.note(&entry, &mut on_batch);
        next += 1;
    }
    Ok(done)
}

/// Writes `entry` to its whole write set as a recovery add; fails unless `Qa` copies took.
async fn re_replicate(
    pool: &BookiePool,
    info: &LedgerInfo,
    entry: &EntryData,
) -> Result<(), BookieError> {
    let mut written = 0usize;
    let mut last_error = None;
    for bookie_id in write_set(info, entry.entry_id) {
        let added = match pool.get(bookie_id).await {
            Ok(bookie) => bookie.add(info.ledger_id, entry.clone(), true, None).await,
            Err(e) => Err(e),
        };
        match added {
            Ok(()) => written += 1,
            Err(e) => {
                warn!(ledger = info.ledger_id, entry = entry.entry_id, bookie = bookie_id, error = %e, "re-replicating an entry during recovery failed on a bookie");
                last_error = Some(e);
            }
        }
    }
    if written >= (info.ack_quorum as usize).max(1) {
        Ok(())
    } else {
        Err(last_error.unwrap_or_else(|| no_bookies(info)))
    }
}
