//! Client of one bookie.
use bytes::Bytes;
use stratalog_protocol::internal::bookie::{
    self as msg, BookieCode, BookieStatus, EntryData, FindBy,
};
use stratalog_runtime::rpc::{RpcClient, RpcError, RpcOptions};

#[derive(Debug, Clone, thiserror::Error)]
pub enum BookieError {
    #[error("ledger {ledger_id} is fenced on {bookie}")]
    Fenced { bookie: String, ledger_id: u64 },
    #[error("bookie {bookie}: {code:?}: {message}")]
    Failed {
        bookie: String,
        code: BookieCode,
        message: String,
    },
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

#[derive(Clone)]
pub struct BookieClient {
    rpc: RpcClient,
}

impl BookieClient {
    pub fn new(addr: impl Into<String>) -> BookieClient {
        BookieClient {
            rpc: RpcClient::new(addr, RpcOptions::default()),
        }
    }

    pub fn addr(&self) -> &str {
        self.rpc.addr()
    }

    fn check(&self, status: BookieStatus, ledger_id: u64) -> Result<(), BookieError> {
        match status.code() {
            BookieCode::Ok => Ok(()),
            BookieCode::Fenced => Err(BookieError::Fenced {
                bookie: self.addr().into(),
                ledger_id,
            }),
            code => Err(BookieError::Failed {
                bookie: self.addr().into(),
                code,
                message: status.message,
            }),
        }
    }

    /// Adds an entry; `writer_lac` is the writer's last-add-confirmed, piggybacked.
    pub async fn add(
        &self,
        ledger_id: u64,
        entry: EntryData,
        recovery: bool,
        writer_lac: Option<u64>,
    ) -> Result<(), BookieError> {
        let resp = self
            .rpc
            .call::<msg::AddEntry>(&msg::AddEntryRequest {
                ledger_id,
                recovery,
                entry,
                writer_lac,
            })
            .await?;
        self.check(resp.status, ledger_id)
    }

    /// Reads consecutive entries; with `header_bytes > 0` only that prefix of each payload.
    pub async fn read(
        &self,
        ledger_id: u64,
        first_entry_id: u64,
        max_entries: u32,
        max_bytes: u32,
        header_bytes: u32,
    ) -> Result<Vec<EntryData>, BookieError> {
        self.read_within(
            ledger_id,
            first_entry_id,
            max_entries,
            max_bytes,
            header_bytes,
            false,
        )
        .await
    }

    /// [`BookieClient::read`]; with `strict_bytes` even the first entry must fit
    /// `max_bytes` (the bookie reads nothing it would exceed the budget with).
    pub async fn read_within(
        &self,
        ledger_id: u64,
        first_entry_id: u64,
        max_entries: u32,
        max_bytes: u32,
        header_bytes: u32,
        strict_bytes: bool,
    ) -> Result<Vec<EntryData>, BookieError> {
        let req = msg::ReadEntriesRequest {
            ledger_id,
            first_entry_id,
            max_entries,
            max_bytes,
            header_bytes,
            strict_bytes,
        };
        let resp = self.rpc.call::<msg::ReadEntries>(&req).await?;
        self.check(resp.status, ledger_id)?;
        Ok(resp.entries)
    }

    pub async fn find(
        &self,
        ledger_id: u64,
        by: FindBy,
        value: i64,
    ) -> Result<Option<u64>, BookieError> {
        let resp = self
            .rpc
            .call::<msg::FindEntry>(&msg::FindEntryRequest {
                ledger_id,
                by: by as u8,
                value,
            })
            .await?;
        self.check(resp.status, ledger_id)?;
        Ok(resp.entry_id)
    }

    /// Fences the ledger; returns the highest LAC its writer piggybacked on an add this
    /// bookie holds (every entry up to it reached the ack quorum).
    pub async fn fence(&self, ledger_id: u64) -> Result<Option<u64>, BookieError> {
        let resp = self
            .rpc
            .call::<msg::Fence>(&msg::LedgerRequest { ledger_id })
            .await?;
        self.check(resp.status, ledger_id)?;
        Ok(resp.writer_lac)
    }

    pub async fn delete_ledger(&self, ledger_id: u64) -> Result<(), BookieError> {
        let resp = self
            .rpc
            .call::<msg::DeleteLedger>(&msg::LedgerRequest { ledger_id })
            .await?;
        self.check(resp.status, ledger_id)
    }
}

/// An entry's payload with its offset tag, as the broker builds it.
pub fn entry(
    entry_id: u64,
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    payload: Bytes,
) -> EntryData {
    EntryData {
        entry_id,
        base_offset,
        last_offset,
        max_timestamp,
        payload,
    }
}
