//! Stratalog broker (work in progress).
pub mod group;
