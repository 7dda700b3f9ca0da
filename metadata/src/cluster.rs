//! Where cluster membership lives in the store: the key layout that every role reads or
//! writes, so that a bookie can register itself without knowing any broker code. Only names;
//! who owns what is decided by the broker in terms of these keys.
//!
//! ```text
//! /stratalog/bookies/{bookie-id}    the bookie's RPC address (UTF-8), attached to its lease
//! ```

/// Prefix of the bookie registry.
pub const BOOKIES_PREFIX: &str = "/stratalog/bookies/";

/// The registry key of bookie `id`.
pub fn bookie_key(id: &str) -> String {
    format!("{BOOKIES_PREFIX}{id}")
}

/// The bookie id of a registry key.
pub fn bookie_id(key: &str) -> Option<&str> {
    key.strip_prefix(BOOKIES_PREFIX)
}
