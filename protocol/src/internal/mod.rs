//! Messages between Stratalog roles (broker ⇄ bookie, broker ⇄ metadata, metadata ⇄ metadata).
//!
//! Every call is one [`frame::Frame`] each way; a request names its method by a `u16` id.
//! There is no version number: methods evolve by appending fields. A decoder ignores trailing
//! bytes it does not know (newer peer) and gives defaults to trailing fields that are absent
//! (older peer), so roles can be upgraded one at a time. A method whose meaning changes gets a
//! new id, and a server answers an id it does not know with `Status::UnknownMethod`.
pub mod bookie;
pub mod frame;
pub mod metadata;
pub mod wire;

pub use frame::{Frame, FrameKind, Status};
pub use wire::{DecodeError, Method, Wire};
