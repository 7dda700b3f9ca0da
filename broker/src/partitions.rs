//! The partitions this broker serves: opened (taken over) on first use, then kept.
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;
use tracing::warn;

use crate::catalog;
use crate::log::{ledger, LogContext, LogError, PartitionLog};
use crate::metrics;
use stratalog_metadata::Expect;

type Slot = Arc<OnceCell<Arc<PartitionLog>>>;

pub struct Partitions {
    ctx: Arc<LogContext>,
    logs: Mutex<HashMap<(String, i32), Slot>>,
}

impl Partitions {
    pub fn new(ctx: Arc<LogContext>) -> Partitions {
        Partitions {
            ctx,
            logs: Mutex::new(HashMap::new()),
        }
    }

    /// The partition's log, taking the partition over if this broker does not serve it yet.
    /// Concurrent callers share one take-over; a failed one is retried by the next caller.
    pub async fn get(&self, topic: &str, partition: i32) -> Result<Arc<PartitionLog>, LogError> {
        let slot = self
            .logs
            .lock()
            .entry((topic.to_string(), partition))
            .or_default()
            .clone();
        let log = slot
            .get_or_try_init(|| async {
                let log = PartitionLog::open(self.ctx.clone(), topic, partition).await?;
                metrics::PARTITIONS_OWNED.inc();
                Ok::<_, LogError>(log)
            })
            .await?;
        Ok(log.clone())
    }

    /// Stops serving the topic and deletes its data: ledgers on bookies, then the ledger lists.
    pub async fn delete_topic(&self, topic: &str, partitions: i32) {
        for partition in 0..partitions {
            let slot = self.logs.lock().remove(&(topic.to_string(), partition));
            if let Some(log) = slot.and_then(|s| s.get().cloned()) {
                log.close().await;
                metrics::PARTITIONS_OWNED.dec();
            }
            let key = catalog::partition_key(topic, partition);
            let ledgers = match self.ctx.metadata.get(&key).await {
                Ok(Some(kv)) => catalog::decode::<catalog::PartitionMeta>(&key, kv.value)
                    .map(|m| m.ledgers)
                    .unwrap_or_default(),
                Ok(None) => Vec::new(),
                Err(e) => {
                    warn!(topic, partition, error = %e, "cannot read the ledger list of a deleted partition; its ledgers stay on the bookies");
                    Vec::new()
                }
            };
            for ledger in ledgers {
                for (bookie, e) in ledger::delete(&self.ctx.bookies, &ledger).await {
                    warn!(topic, partition, ledger = ledger.ledger_id, %bookie, error = %e, "deleting a ledger failed");
                }
            }
            if let Err(e) = self.ctx.metadata.delete(&key, Expect::Any).await {
                warn!(topic, partition, error = %e, "deleting the partition's ledger list failed");
            }
        }
    }

    /// Every partition this broker serves.
    pub fn open_logs(&self) -> Vec<Arc<PartitionLog>> {
        self.logs
            .lock()
            .values()
            .filter_map(|slot| slot.get().cloned())
            .collect()
    }

    /// Stops appending on every partition (shutdown).
    pub async fn close_all(&self) {
        let logs: Vec<_> = self
            .logs
            .lock()
            .drain()
            .filter_map(|(_, slot)| slot.get().cloned())
            .collect();
        for log in logs {
            log.close().await;
        }
    }
}
