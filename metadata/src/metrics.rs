//! Prometheus metrics, registered once per process in the default registry under the
//! `stratalog_metadata_` prefix. Gauges describe the (usually single) node in the process.
use std::sync::OnceLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts};
use tracing::warn;

pub(crate) struct Metrics {
    pub proposals: IntCounter,
    pub dropped_messages: IntCounter,
    pub apply_seconds: Histogram,
    pub persist_seconds: Histogram,
    pub entries_per_ready: Histogram,
    pub leases: IntGauge,
    pub keys: IntGauge,
    pub is_leader: IntGauge,
    pub term: IntGauge,
}

/// Registers `c`; if that fails (already registered by someone else) the metric still works,
/// it is just not exported, which is better than refusing to start.
fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    if let Err(e) = prometheus::register(Box::new(c.clone())) {
        warn!(error = %e, "could not register a metadata metric");
    }
    c
}

// The names and buckets below are constants (checked by the test at the bottom), so
// constructing the metrics cannot fail at run time; no input reaches these `expect`s.
fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::with_opts(Opts::new(name, help)).expect("valid metric name"))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::with_opts(Opts::new(name, help)).expect("valid metric name"))
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .expect("valid metric name and buckets"),
    )
}

/// 50 µs .. ~1.6 s, doubling.
fn latency_buckets() -> Vec<f64> {
    (0..16).map(|i| 50e-6 * f64::from(1u32 << i)).collect()
}

pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        proposals: counter(
            "stratalog_metadata_proposals_total",
            "Commands proposed to raft by this node (client writes and lease expiries).",
        ),
        dropped_messages: counter(
            "stratalog_metadata_raft_messages_dropped_total",
            "Incoming raft messages dropped because the node's inbox was full.",
        ),
        apply_seconds: histogram(
            "stratalog_metadata_apply_seconds",
            "Time to apply the committed entries of one raft Ready to the state machine (one sled batch).",
            latency_buckets(),
        ),
        persist_seconds: histogram(
            "stratalog_metadata_ready_persist_seconds",
            "Time to write and fsync one raft Ready (the group commit).",
            latency_buckets(),
        ),
        entries_per_ready: histogram(
            "stratalog_metadata_entries_per_ready",
            "Log entries persisted per raft Ready (proposals sharing one fsync).",
            (0..12).map(|i| f64::from(1u32 << i)).collect(),
        ),
        leases: gauge("stratalog_metadata_leases", "Live leases."),
        keys: gauge("stratalog_metadata_keys", "Keys in the store."),
        is_leader: gauge(
            "stratalog_metadata_is_leader",
            "1 if this node is the raft leader.",
        ),
        term: gauge("stratalog_metadata_term", "Current raft term."),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn metrics_construct_and_register() {
        let m = super::metrics();
        m.proposals.inc();
        let names: Vec<String> = prometheus::gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert!(names
            .iter()
            .any(|n| n == "stratalog_metadata_proposals_total"));
    }
}
