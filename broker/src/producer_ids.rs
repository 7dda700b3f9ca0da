//! Producer id allocation for idempotent producers: blocks of ids reserved from a counter in
//! the metadata store, so ids stay unique across brokers and restarts.
use parking_lot::Mutex;
use stratalog_protocol::internal::Wire;

use crate::catalog::PRODUCER_ID_COUNTER;
use stratalog_metadata::client::{ClientError, MetadataClient};
use stratalog_metadata::Expect;

const BLOCK: i64 = 1000;

pub struct ProducerIds {
    metadata: MetadataClient,
    /// Next id to hand out and the end (exclusive) of the reserved block.
    block: Mutex<(i64, i64)>,
    reserve: tokio::sync::Mutex<()>,
}

impl ProducerIds {
    pub fn new(metadata: MetadataClient) -> ProducerIds {
        ProducerIds {
            metadata,
            block: Mutex::new((0, 0)),
            reserve: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn next(&self) -> Result<i64, ClientError> {
        loop {
            {
                let mut block = self.block.lock();
                if block.0 < block.1 {
                    block.0 += 1;
                    return Ok(block.0 - 1);
                }
            }
            let _reserving = self.reserve.lock().await;
            let refilled = {
                let block = self.block.lock();
                block.0 < block.1
            };
            if refilled {
                // Another caller reserved a block while we waited.
                continue;
            }
            let start = self.reserve_block().await?;
            *self.block.lock() = (start, start + BLOCK);
        }
    }

    async fn reserve_block(&self) -> Result<i64, ClientError> {
        loop {
            let current = self.metadata.get(PRODUCER_ID_COUNTER).await?;
            let (start, expect) = match &current {
                Some(kv) => (
                    i64::decode(&mut kv.value.clone()).unwrap_or(0),
                    Expect::Revision(kv.mod_revision),
                ),
                None => (0, Expect::Absent),
            };
            match self
                .metadata
                .put(
                    PRODUCER_ID_COUNTER,
                    (start + BLOCK).to_bytes(),
                    expect,
                    None,
                )
                .await
            {
                Ok(_) => return Ok(start),
                Err(ClientError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
