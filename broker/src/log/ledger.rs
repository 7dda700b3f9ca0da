//! One ledger as the broker sees it: an ensemble of bookies, written with a write quorum and
//! an ack quorum, read from whichever replica has the entry, and recovered (fenced, its
//! last entry found and re-replicated) when a new owner takes the partition over.
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use stratalog_protocol::internal::bookie::{BookieCode, EntryData, FindBy};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::catalog::{self, LedgerInfo};
use crate::clients::bookie::{BookieClient, BookieError};
use stratalog_metadata::client::{ClientError, MetadataClient};

/// Connections to bookies, shared by all partitions. Ledger ensembles name bookies by id;
/// the pool resolves ids to addresses through the bookie registry in the metadata store, so a
/// bookie that comes back on another address still serves its ledgers.
pub struct BookiePool {
    metadata: MetadataClient,
    addrs: Mutex<HashMap<String, String>>,
    clients: Mutex<HashMap<String, BookieClient>>,
}

impl BookiePool {
    pub fn new(metadata: MetadataClient) -> BookiePool {
        BookiePool {
            metadata,
            addrs: Mutex::default(),
            clients: Mutex::default(),
        }
    }

    /// Re-reads the bookie registry; returns the live bookies as (id, address), by id.
    pub async fn refresh(&self) -> Result<Vec<(String, String)>, ClientError> {
        let prefix = catalog::bookies_prefix();
        let live: Vec<(String, String)> = self
            .metadata
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|kv| {
                Some((
                    kv.key[prefix.len()..].to_string(),
                    String::from_utf8(kv.value.to_vec()).ok()?,
                ))
            })
            .collect();
        self.addrs.lock().extend(live.iter().cloned());
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
/// The writes start before this returns, so calls made in order reach the bookies in order.
pub fn add_entry(
    pool: &BookiePool,
    info: &LedgerInfo,
    entry: EntryData,
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
            let result = bookie.add(ledger_id, entry, false).await;
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

/// Reads up to `max_bytes` of consecutive entries starting at `first`, from the first replica
/// in the entry's write set that has it; empty if none has it.
pub async fn read_entries(
    pool: &BookiePool,
    info: &LedgerInfo,
    first: u64,
    max_bytes: u32,
) -> Result<Vec<EntryData>, BookieError> {
    let mut last_error = None;
    let mut answered = false;
    for addr in write_set(info, first) {
        let bookie = match pool.get(addr).await {
            Ok(bookie) => bookie,
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        match bookie.read(info.ledger_id, first, 10_000, max_bytes).await {
            // A replica whose add failed (Qa < Qw) may lack the entry: ask the next one.
            Ok(entries) if entries.is_empty() => answered = true,
            Ok(entries) => return Ok(entries),
            Err(e) => {
                debug!(ledger = info.ledger_id, entry = first, bookie = addr, error = %e, "read failed, trying next replica");
                last_error = Some(e);
            }
        }
    }
    if answered {
        return Ok(Vec::new());
    }
    Err(last_error.unwrap_or_else(|| no_bookies(info)))
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

/// A ledger after recovery: what it durably holds.
pub struct Recovered {
    /// Every entry, in order (needed to rebuild producer state).
    pub entries: Vec<EntryData>,
}

/// BookKeeper-style recovery of a ledger whose writer is gone: fence it on the ensemble so
/// the old writer can add nothing more, take the highest last-add-confirmed, then read on past
/// it while entries are found, re-replicating each one to its whole write set.
pub async fn recover(pool: &BookiePool, info: &LedgerInfo) -> Result<Recovered, BookieError> {
    let needed = info.ensemble.len().saturating_sub(info.ack_quorum as usize) + 1;
    let mut fenced = 0;
    let mut lac: Option<u64> = None;
    let mut last_error = None;
    for addr in &info.ensemble {
        let fence = match pool.get(addr).await {
            Ok(bookie) => bookie.fence(info.ledger_id).await,
            Err(e) => Err(e),
        };
        match fence {
            Ok(bookie_lac) => {
                fenced += 1;
                lac = lac.max(bookie_lac);
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
    let mut entries = Vec::new();
    let mut next = 0u64;
    loop {
        let batch = match read_entries(pool, info, next, 64 * 1024 * 1024).await {
            Ok(batch) => batch,
            Err(BookieError::Failed {
                code: BookieCode::NoSuchEntry | BookieCode::NoSuchLedger,
                ..
            }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let Some(last) = batch.last() else { break };
        next = last.entry_id + 1;
        let beyond_lac = batch
            .iter()
            .filter(|e| lac.is_none_or(|lac| e.entry_id > lac));
        for entry in beyond_lac {
            // Found past the LAC: make sure its whole write set has it before we rely on it.
            for addr in write_set(info, entry.entry_id) {
                pool.get(addr)
                    .await?
                    .add(info.ledger_id, entry.clone(), true)
                    .await?;
            }
        }
        entries.extend(batch);
    }
    // Entries after a hole are not part of the ledger: nobody was acknowledged for them.
    let contiguous = entries
        .iter()
        .enumerate()
        .take_while(|(i, e)| e.entry_id == *i as u64)
        .count();
    entries.truncate(contiguous);
    Ok(Recovered { entries })
}
