//! The partitions this broker serves: opened (taken over) on first use, then kept.
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;
use tracing::warn;

use crate::catalog::{self, TopicMeta};
use crate::log::{LogContext, LogError, PartitionLog};
use crate::metrics;

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

    /// Stops serving the topic and deletes its data: ledgers on bookies, then its metadata,
    /// partition by partition (bounded memory however large the topic). Call after the
    /// topic's key is deleted, so no new take-over can start.
    pub async fn delete_topic(&self, topic: &str, meta: &TopicMeta) {
        for partition in 0..meta.partitions {
            let slot = self.logs.lock().remove(&(topic.to_string(), partition));
            if let Some(slot) = slot {
                // A take-over in progress finishes first (an uninitialised slot stays so),
                // so whatever it wrote is deleted below rather than left behind.
                let _ = slot
                    .get_or_try_init(|| async { Err::<Arc<PartitionLog>, ()>(()) })
                    .await;
                if let Some(log) = slot.get() {
                    log.close().await;
                    metrics::PARTITIONS_OWNED.dec();
                }
            }
            if let Err(e) = PartitionLog::delete_ledgers(&self.ctx, &meta.id, partition).await {
                warn!(topic, partition, error = %e, "cannot list the ledgers of a deleted partition; some stay on the bookies");
            }
            let prefix = catalog::partition_prefix(&meta.id, partition);
            if let Err(e) = self.ctx.metadata.delete_prefix(&prefix).await {
                warn!(topic, partition, error = %e, "deleting the partition's metadata failed");
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
