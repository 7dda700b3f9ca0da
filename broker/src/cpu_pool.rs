//! A bounded pool for CPU-heavy work that must not run on the async worker threads: checking
//! a produced batch's CRC32C and decompressing it can take hundreds of milliseconds (a
//! compression bomb expands to 128 MiB before it is refused), and on a 2-core machine two
//! such batches on the workers would stall every connection.
//!
//! Work runs on tokio's blocking threads, at most `threads` at once; callers beyond that
//! wait (asynchronously) for a slot, so the async workers stay free for every other
//! connection. The broker keeps two pools (`Broker::crc_pool` for uncompressed batches,
//! `Broker::inflate_pool` for compressed ones), so compression bombs queue only behind each
//! other and not in front of ordinary uncompressed produce requests.
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::metrics;

pub struct CpuPool {
    name: &'static str,
    slots: Arc<Semaphore>,
    threads: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("the task panicked or was cancelled")]
pub struct TaskFailed;

impl CpuPool {
    /// A pool of `threads` (at least 1); `name` labels its metric.
    pub fn new(name: &'static str, threads: usize) -> CpuPool {
        let threads = threads.max(1);
        CpuPool {
            name,
            slots: Arc::new(Semaphore::new(threads)),
            threads,
        }
    }

    /// One thread per core.
    pub fn per_core(name: &'static str) -> CpuPool {
        CpuPool::new(
            name,
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        )
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `work` on a blocking thread once a slot is free. The slot is held by the work
    /// itself, so a caller that goes away does not free it before the work ends.
    pub async fn run<T, F>(&self, work: F) -> Result<T, TaskFailed>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let waiting = metrics::CPU_POOL_WAITING.with_label_values(&[self.name]);
        waiting.inc();
        let slot = self.slots.clone().acquire_owned().await;
        waiting.dec();
        let slot = slot.map_err(|_| TaskFailed)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|_| TaskFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_most_threads_at_once_off_the_workers() {
        let pool = Arc::new(CpuPool::new("test", 2));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    running.fetch_sub(1, Ordering::SeqCst);
                    std::thread::current().name().map(str::to_string)
                })
                .await
                .unwrap()
            }));
        }
        // The async workers stay free while the pool is busy.
        let ticks = tokio::spawn(async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        ticks.await.unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert!(pool.run(|| panic!("boom")).await.is_err());
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }
}
