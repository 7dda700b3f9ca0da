//! The Kafka error codes the coordinator answers with, and how a failed store write maps to
//! one. Constants and two pure functions; it knows nothing of groups.

use kafka_protocol::error::ResponseError as E;

use super::store::StoreError;

pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = E::UnknownServerError.code();
pub const OFFSET_METADATA_TOO_LARGE: i16 = E::OffsetMetadataTooLarge.code();
pub const COORDINATOR_NOT_AVAILABLE: i16 = E::CoordinatorNotAvailable.code();
pub const NOT_COORDINATOR: i16 = E::NotCoordinator.code();
pub const ILLEGAL_GENERATION: i16 = E::IllegalGeneration.code();
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = E::InconsistentGroupProtocol.code();
pub const INVALID_GROUP_ID: i16 = E::InvalidGroupId.code();
pub const UNKNOWN_MEMBER_ID: i16 = E::UnknownMemberId.code();
pub const INVALID_SESSION_TIMEOUT: i16 = E::InvalidSessionTimeout.code();
pub const REBALANCE_IN_PROGRESS: i16 = E::RebalanceInProgress.code();
pub const INVALID_COMMIT_OFFSET_SIZE: i16 = E::InvalidCommitOffsetSize.code();
pub const NON_EMPTY_GROUP: i16 = E::NonEmptyGroup.code();
pub const GROUP_ID_NOT_FOUND: i16 = E::GroupIdNotFound.code();
pub const MEMBER_ID_REQUIRED: i16 = E::MemberIdRequired.code();
pub const GROUP_MAX_SIZE_REACHED: i16 = E::GroupMaxSizeReached.code();
pub const FENCED_INSTANCE_ID: i16 = E::FencedInstanceId.code();

/// Error code for a failed group metadata write (Kafka's
/// `appendGroupMetadataErrorToResponseError`).
pub(crate) fn group_write_error(e: &StoreError) -> i16 {
    match e {
        StoreError::Unavailable(_) => COORDINATOR_NOT_AVAILABLE,
        StoreError::NotCoordinator(_) => NOT_COORDINATOR,
        StoreError::TooLarge(_) | StoreError::Corrupt(_) | StoreError::Other(_) => {
            UNKNOWN_SERVER_ERROR
        }
    }
}

/// Error code for a failed offset write (Kafka's offset-commit append error mapping).
pub(crate) fn offset_write_error(e: &StoreError) -> i16 {
    match e {
        StoreError::Unavailable(_) => COORDINATOR_NOT_AVAILABLE,
        StoreError::NotCoordinator(_) => NOT_COORDINATOR,
        StoreError::TooLarge(_) => INVALID_COMMIT_OFFSET_SIZE,
        StoreError::Corrupt(_) | StoreError::Other(_) => UNKNOWN_SERVER_ERROR,
    }
}
