//! The bookie's RPC service: decodes internal-protocol requests, calls [`Bookie`], encodes
//! the outcome. No storage logic lives here.
use bytes::Bytes;
use stratalog_protocol::internal::bookie::{
    self as msg, BookieCode, BookieStatus, EntryData, FindBy, LacResponse, StatusResponse,
};
use stratalog_protocol::internal::{Method, Status};
use stratalog_runtime::rpc::{handle, Service, ServiceFuture};

use crate::{Bookie, BookieError, EntryMeta};

pub struct BookieService {
    bookie: Bookie,
}

impl BookieService {
    pub fn new(bookie: Bookie) -> BookieService {
        BookieService { bookie }
    }
}

fn status(e: &BookieError) -> BookieStatus {
    let code = match e {
        BookieError::Fenced { .. } => BookieCode::Fenced,
        BookieError::NoSuchLedger { .. } | BookieError::LedgerDeleted { .. } => {
            BookieCode::NoSuchLedger
        }
        BookieError::NoSuchEntry { .. } => BookieCode::NoSuchEntry,
        BookieError::Corrupt { .. } => BookieCode::Corrupt,
        BookieError::Io { .. } => BookieCode::Io,
        BookieError::ShuttingDown => BookieCode::ShuttingDown,
        _ => BookieCode::Other,
    };
    BookieStatus::error(code, e.to_string())
}

impl Service for BookieService {
    fn call(&self, method: u16, body: Bytes) -> ServiceFuture {
        let bookie = self.bookie.clone();
        match method {
            msg::AddEntry::ID => handle::<msg::AddEntry, _, _>(body, |req| async move {
                let e = req.entry;
                let meta = EntryMeta {
                    base_offset: e.base_offset,
                    last_offset: e.last_offset,
                    max_timestamp: e.max_timestamp,
                };
                let result = bookie
                    .add_entry_with_lac(
                        req.ledger_id,
                        e.entry_id,
                        meta,
                        e.payload,
                        req.recovery,
                        req.writer_lac,
                    )
                    .await;
                msg::AddEntryResponse {
                    status: result.err().map_or_else(BookieStatus::ok, |e| status(&e)),
                }
            }),
            msg::ReadEntries::ID => handle::<msg::ReadEntries, _, _>(body, |req| async move {
                let read = bookie
                    .read_entries_within(
                        req.ledger_id,
                        req.first_entry_id,
                        req.max_entries as usize,
                        req.max_bytes as usize,
                        !req.strict_bytes,
                    )
                    .await;
                match read {
                    Ok(entries) => msg::ReadEntriesResponse {
                        status: BookieStatus::ok(),
                        entries: entries
                            .into_iter()
                            .map(|e| EntryData {
                                entry_id: e.entry_id,
                                base_offset: e.meta.base_offset,
                                last_offset: e.meta.last_offset,
                                max_timestamp: e.meta.max_timestamp,
                                payload: match req.header_bytes as usize {
                                    0 => e.payload,
                                    n => e.payload.slice(..n.min(e.payload.len())),
                                },
                            })
                            .collect(),
                    },
                    Err(e) => msg::ReadEntriesResponse {
                        status: status(&e),
                        entries: Vec::new(),
                    },
                }
            }),
            msg::FindEntry::ID => handle::<msg::FindEntry, _, _>(body, |req| async move {
                let found = if req.by == FindBy::Timestamp as u8 {
                    bookie.find_entry_by_timestamp(req.ledger_id, req.value)
                } else {
                    bookie.find_entry_by_offset(req.ledger_id, req.value)
                };
                match found {
                    Ok(entry_id) => msg::FindEntryResponse {
                        status: BookieStatus::ok(),
                        entry_id,
                    },
                    Err(e) => msg::FindEntryResponse {
                        status: status(&e),
                        entry_id: None,
                    },
                }
            }),
            msg::ReadLac::ID => handle::<msg::ReadLac, _, _>(body, |req| async move {
                let lac = bookie.last_add_confirmed(req.ledger_id);
                lac_response(&bookie, req.ledger_id, lac)
            }),
            msg::Fence::ID => handle::<msg::Fence, _, _>(body, |req| async move {
                let lac = bookie.fence(req.ledger_id).await;
                lac_response(&bookie, req.ledger_id, lac)
            }),
            msg::DeleteLedger::ID => handle::<msg::DeleteLedger, _, _>(body, |req| async move {
                StatusResponse {
                    status: bookie
                        .delete_ledger(req.ledger_id)
                        .await
                        .err()
                        .map_or_else(BookieStatus::ok, |e| status(&e)),
                }
            }),
            other => Box::pin(async move {
                Err((
                    Status::UnknownMethod,
                    format!("bookie has no method {other}"),
                ))
            }),
        }
    }
}

/// Both LACs of a ledger. After a fence the writer LAC is final: adds admitted before the
/// fence queued their Lac records ahead of it.
fn lac_response(
    bookie: &Bookie,
    ledger_id: u64,
    result: Result<Option<u64>, BookieError>,
) -> LacResponse {
    match result.and_then(|lac| Ok((lac, bookie.writer_lac(ledger_id)?))) {
        Ok((lac, writer_lac)) => LacResponse {
            status: BookieStatus::ok(),
            lac,
            writer_lac,
        },
        Err(e) => LacResponse {
            status: status(&e),
            lac: None,
            writer_lac: None,
        },
    }
}
