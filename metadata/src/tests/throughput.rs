use std::time::Instant;

use bytes::Bytes;

use super::harness::single;
use crate::Expect;

/// The group-commit check: 5,000 puts of ~100-byte values from 64 concurrent tasks.
/// Prints the rate; does not assert on time (machines differ; the target is >= 5,000/s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_rate() {
    const TOTAL: usize = 5_000;
    const TASKS: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let (node, store) = single(dir.path()).await;
    let value = Bytes::from(vec![b'v'; 100]);
    // Process-wide metrics: other tests running in parallel add to them, so the per-fsync
    // figures are approximate unless this test runs alone.
    let m = crate::metrics::metrics();
    let readies_before = m.entries_per_ready.get_sample_count();
    let persist_before = m.persist_seconds.get_sample_sum();
    let apply_before = m.apply_seconds.get_sample_sum();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < TOTAL {
                store
                    .put(
                        &format!("bench/{t:02}/{i:05}"),
                        value.clone(),
                        Expect::Any,
                        None,
                    )
                    .await
                    .unwrap();
                i += TASKS;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let readies = m.entries_per_ready.get_sample_count() - readies_before;
    let persist = m.persist_seconds.get_sample_sum() - persist_before;
    let apply = m.apply_seconds.get_sample_sum() - apply_before;
    let rate = TOTAL as f64 / elapsed.as_secs_f64();
    println!(
        "concurrent_puts_rate: {TOTAL} puts from {TASKS} tasks in {:.3}s = {rate:.0} puts/s \
         ({readies} persisted Readies, ~{:.1} entries per fsync; {persist:.3}s persisting, \
         {apply:.3}s applying)",
        elapsed.as_secs_f64(),
        TOTAL as f64 / readies.max(1) as f64,
    );
    assert_eq!(store.revision(), TOTAL as u64);
    assert_eq!(store.list("bench/").await.unwrap().len(), TOTAL);
    drop(store);
    node.shutdown().await;
}
