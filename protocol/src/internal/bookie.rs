//! The bookie service: what a broker asks of a storage node.
//!
//! Method ids 100..199. Every response starts with a [`BookieStatus`]; the rest is valid only
//! when it is `Ok`.
use bytes::Bytes;

use super::wire::Method;
use crate::wire_struct;

/// Outcome of a bookie call, mirrored from the bookie's error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u16)]
pub enum BookieCode {
    #[default]
    Ok = 0,
    /// The ledger is fenced: a newer writer took over. Never retry on this bookie.
    Fenced = 1,
    NoSuchLedger = 2,
    NoSuchEntry = 3,
    /// An entry failed its checksum: read it from another replica.
    Corrupt = 4,
    Io = 5,
    ShuttingDown = 6,
    Other = 7,
}

impl BookieCode {
    pub fn from_u16(v: u16) -> BookieCode {
        match v {
            0 => BookieCode::Ok,
            1 => BookieCode::Fenced,
            2 => BookieCode::NoSuchLedger,
            3 => BookieCode::NoSuchEntry,
            4 => BookieCode::Corrupt,
            5 => BookieCode::Io,
            6 => BookieCode::ShuttingDown,
            _ => BookieCode::Other,
        }
    }
}

wire_struct! {
    /// `code` is a [`BookieCode`]; `message` explains a failure for logs.
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct BookieStatus { pub code: u16, pub message: String }
}

impl BookieStatus {
    pub fn ok() -> BookieStatus {
        BookieStatus::default()
    }
    pub fn error(code: BookieCode, message: impl Into<String>) -> BookieStatus {
        BookieStatus {
            code: code as u16,
            message: message.into(),
        }
    }
    pub fn code(&self) -> BookieCode {
        BookieCode::from_u16(self.code)
    }
    pub fn is_ok(&self) -> bool {
        self.code == 0
    }
}

wire_struct! {
    /// An entry as stored: the writer's offset/time tag and the payload.
    #[derive(Debug, Clone, PartialEq)]
    pub struct EntryData {
        pub entry_id: u64,
        pub base_offset: i64,
        pub last_offset: i64,
        pub max_timestamp: i64,
        pub payload: Bytes,
    }
}

wire_struct! {
    #[derive(Debug, Clone)]
    pub struct AddEntryRequest {
        pub ledger_id: u64,
        /// BookKeeper's recovery add: allowed on a fenced ledger, used to re-replicate the
        /// last entries while closing it.
        pub recovery: bool,
        pub entry: EntryData;
        /// The writer's last-add-confirmed when it sent this add (BookKeeper's piggybacked
        /// LAC): every entry up to it reached the ack quorum.
        pub writer_lac: Option<u64>,
    }
}

wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct AddEntryResponse { pub status: BookieStatus }
}

wire_struct! {
    #[derive(Debug, Clone)]
    pub struct ReadEntriesRequest {
        pub ledger_id: u64,
        pub first_entry_id: u64,
        pub max_entries: u32,
        /// Soft limit: at least one entry is returned if `first_entry_id` exists.
        pub max_bytes: u32;
        /// If non-zero, return only the first `header_bytes` of each payload (a recovering
        /// writer needs batch headers, not records). `max_bytes` still counts whole entries.
        pub header_bytes: u32,
        /// Even the first entry must fit `max_bytes` (a read continued on another replica).
        pub strict_bytes: bool,
    }
}

wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct ReadEntriesResponse { pub status: BookieStatus, pub entries: Vec<EntryData> }
}

/// What [`FindEntryRequest::value`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FindBy {
    /// The entry containing this offset, else the first entry after it.
    Offset = 0,
    /// The first entry whose max timestamp is at or after this time.
    Timestamp = 1,
}

wire_struct! {
    #[derive(Debug, Clone)]
    pub struct FindEntryRequest { pub ledger_id: u64, pub by: u8, pub value: i64 }
}

wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct FindEntryResponse { pub status: BookieStatus, pub entry_id: Option<u64> }
}

wire_struct! {
    #[derive(Debug, Clone)]
    pub struct LedgerRequest { pub ledger_id: u64 }
}

wire_struct! {
    /// `lac`: the highest entry id such that every entry up to it is durable on this bookie.
    #[derive(Debug, Clone, Default)]
    pub struct LacResponse {
        pub status: BookieStatus,
        pub lac: Option<u64>;
        /// The highest LAC a writer piggybacked on an add durable on this bookie.
        pub writer_lac: Option<u64>,
    }
}

wire_struct! {
    #[derive(Debug, Clone, Default)]
    pub struct StatusResponse { pub status: BookieStatus }
}

macro_rules! methods {
    ($($(#[$meta:meta])* $name:ident = $id:literal : $req:ty => $resp:ty;)*) => {$(
        $(#[$meta])*
        pub struct $name;
        impl Method for $name {
            const ID: u16 = $id;
            const NAME: &'static str = stringify!($name);
            type Request = $req;
            type Response = $resp;
        }
    )*};
}
pub(crate) use methods;

methods! {
    AddEntry = 100: AddEntryRequest => AddEntryResponse;
    ReadEntries = 101: ReadEntriesRequest => ReadEntriesResponse;
    FindEntry = 102: FindEntryRequest => FindEntryResponse;
    ReadLac = 103: LedgerRequest => LacResponse;
    /// Fences the ledger and returns its LACs (recovery trusts `writer_lac`, not `lac`).
    Fence = 104: LedgerRequest => LacResponse;
    DeleteLedger = 105: LedgerRequest => StatusResponse;
}
