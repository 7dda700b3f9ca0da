//! Prometheus metrics, registered once per process in the default registry.
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `stratalog_bookie_journal_fsync_seconds` | histogram | duration of each journal `fdatasync` |
//! | `stratalog_bookie_journal_group_entries` | histogram | records written per `fdatasync` (group size) |
//! | `stratalog_bookie_journal_group_bytes` | histogram | bytes written per `fdatasync` |
//! | `stratalog_bookie_adds_total` | counter | entries acknowledged (duplicates included) |
//! | `stratalog_bookie_add_bytes_total` | counter | payload bytes acknowledged |
//! | `stratalog_bookie_reads_total` | counter | entries returned by reads |
//! | `stratalog_bookie_read_bytes_total` | counter | payload bytes returned by reads |
//! | `stratalog_bookie_read_cache_hits_total` | counter | entries served from the write cache |
//! | `stratalog_bookie_cached_ledger_states` | gauge | ledger states in memory (hot ledgers; the index holds all), updated at each checkpoint tick |
//! | `stratalog_bookie_ledger_state_loads_total` | counter | ledger states read back from the index on a cache miss |
//! | `stratalog_bookie_ledger_state_evictions_total` | counter | cold ledger states dropped from memory |
//! | `stratalog_bookie_checkpoints_total` | counter | checkpoints completed |
//! | `stratalog_bookie_checkpoint_seconds` | histogram | checkpoint duration |
//! | `stratalog_bookie_write_cache_bytes` | gauge | bytes in the write cache, updated at each checkpoint |
//! | `stratalog_bookie_entry_log_files_deleted_total` | counter | entry log files reclaimed |
//! | `stratalog_bookie_journal_truncations_total` | counter | torn journal tails truncated at open |
//!
//! Gauges assume one bookie per process (several in one process, as in tests, overwrite
//! each other's values; counters add up).

use std::sync::OnceLock;

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge};
use tracing::warn;

pub(crate) struct Metrics {
    pub fsync_seconds: Histogram,
    pub group_entries: Histogram,
    pub group_bytes: Histogram,
    pub adds: IntCounter,
    pub add_bytes: IntCounter,
    pub reads: IntCounter,
    pub read_bytes: IntCounter,
    pub read_cache_hits: IntCounter,
    pub cached_ledgers: IntGauge,
    pub ledger_loads: IntCounter,
    pub ledger_evictions: IntCounter,
    pub checkpoints: IntCounter,
    pub checkpoint_seconds: Histogram,
    pub write_cache_bytes: IntGauge,
    pub entry_logs_deleted: IntCounter,
    pub journal_truncations: IntCounter,
}

/// Registers `c` in the default registry. A clash (another component registered the
/// same name) is logged, and the metric still works, just unexported.
fn register<C: Collector + Clone + 'static>(c: C) -> C {
    if let Err(e) = prometheus::register(Box::new(c.clone())) {
        warn!(error = %e, "could not register a bookie metric");
    }
    c
}

// The constructors below only fail on invalid names or bucket lists; every argument is a
// constant of this file, so failing is a programming error caught by the first test.
fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .expect("constant histogram definition is valid"),
    )
}

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).expect("constant counter definition is valid"))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help).expect("constant gauge definition is valid"))
}

/// `start * factor^i` for `i in 0..count`.
fn exp_buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    (0..count).map(|i| start * factor.powi(i as i32)).collect()
}

pub(crate) fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics {
        fsync_seconds: histogram(
            "stratalog_bookie_journal_fsync_seconds",
            "Duration of each journal fdatasync",
            exp_buckets(50e-6, 2.0, 16),
        ),
        group_entries: histogram(
            "stratalog_bookie_journal_group_entries",
            "Journal records made durable by one fdatasync",
            exp_buckets(1.0, 2.0, 14),
        ),
        group_bytes: histogram(
            "stratalog_bookie_journal_group_bytes",
            "Journal bytes made durable by one fdatasync",
            exp_buckets(1024.0, 4.0, 10),
        ),
        adds: counter("stratalog_bookie_adds_total", "Entries acknowledged"),
        add_bytes: counter(
            "stratalog_bookie_add_bytes_total",
            "Payload bytes acknowledged",
        ),
        reads: counter("stratalog_bookie_reads_total", "Entries returned by reads"),
        read_bytes: counter(
            "stratalog_bookie_read_bytes_total",
            "Payload bytes returned by reads",
        ),
        read_cache_hits: counter(
            "stratalog_bookie_read_cache_hits_total",
            "Entries read from the write cache rather than entry logs",
        ),
        cached_ledgers: gauge(
            "stratalog_bookie_cached_ledger_states",
            "Ledger states held in memory (hot ledgers); the index holds every ledger's state",
        ),
        ledger_loads: counter(
            "stratalog_bookie_ledger_state_loads_total",
            "Ledger states read back from the index on a cache miss",
        ),
        ledger_evictions: counter(
            "stratalog_bookie_ledger_state_evictions_total",
            "Cold ledger states dropped from memory (they stay in the index)",
        ),
        checkpoints: counter(
            "stratalog_bookie_checkpoints_total",
            "Checkpoints completed",
        ),
        checkpoint_seconds: histogram(
            "stratalog_bookie_checkpoint_seconds",
            "Duration of a checkpoint",
            exp_buckets(1e-3, 2.0, 14),
        ),
        write_cache_bytes: gauge(
            "stratalog_bookie_write_cache_bytes",
            "Bytes of entries durable in the journal but not yet in entry logs",
        ),
        entry_logs_deleted: counter(
            "stratalog_bookie_entry_log_files_deleted_total",
            "Entry log files deleted because none of their entries was live",
        ),
        journal_truncations: counter(
            "stratalog_bookie_journal_truncations_total",
            "Torn journal tails truncated during replay",
        ),
    })
}
