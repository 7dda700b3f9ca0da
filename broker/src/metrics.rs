//! Broker metrics, registered in the process-wide Prometheus registry.
use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

fn must<T>(metric: prometheus::Result<T>, name: &str) -> T {
    // Registration only fails on a duplicate name, which is a programming error caught by
    // the first test that touches metrics.
    metric.unwrap_or_else(|e| panic!("registering metric {name}: {e}"))
}

pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    must(
        register_int_counter_vec!(
            "stratalog_broker_requests_total",
            "Kafka requests by API",
            &["api"]
        ),
        "requests",
    )
});
pub static REQUEST_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    must(
        register_int_counter_vec!(
            "stratalog_broker_request_errors_total",
            "Kafka partition-level errors returned, by API and error code",
            &["api", "code"]
        ),
        "request_errors",
    )
});
pub static REQUEST_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    must(
        register_histogram_vec!(
            "stratalog_broker_request_seconds",
            "Time from reading a Kafka request to having its response ready, by API",
            &["api"],
            vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0
            ]
        ),
        "request_latency",
    )
});
pub static BYTES_IN: LazyLock<IntCounter> = LazyLock::new(|| {
    must(
        register_int_counter!(
            "stratalog_broker_bytes_in_total",
            "Record batch bytes appended"
        ),
        "bytes_in",
    )
});
pub static BYTES_OUT: LazyLock<IntCounter> = LazyLock::new(|| {
    must(
        register_int_counter!(
            "stratalog_broker_bytes_out_total",
            "Record batch bytes fetched"
        ),
        "bytes_out",
    )
});
pub static CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    must(
        register_int_gauge!(
            "stratalog_broker_connections",
            "Open Kafka client connections"
        ),
        "connections",
    )
});
pub static CONNECTIONS_CLOSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    must(
        register_int_counter_vec!(
            "stratalog_broker_connections_closed_total",
            "Kafka connections closed, by reason",
            &["reason"]
        ),
        "connections_closed",
    )
});
pub static LEDGERS_OPENED: LazyLock<IntCounter> = LazyLock::new(|| {
    must(
        register_int_counter!(
            "stratalog_broker_ledgers_opened_total",
            "Ledgers created for appends"
        ),
        "ledgers_opened",
    )
});
pub static LEDGERS_CLOSED: LazyLock<IntCounter> = LazyLock::new(|| {
    must(
        register_int_counter!(
            "stratalog_broker_ledgers_closed_total",
            "Ledgers closed by a roll"
        ),
        "ledgers_closed",
    )
});
pub static READ_CACHE_HITS: LazyLock<IntCounter> = LazyLock::new(|| {
    must(
        register_int_counter!(
            "stratalog_broker_read_cache_hits_total",
            "Reads served from the tail cache"
        ),
        "cache_hits",
    )
});
pub static READ_BOOKIE: LazyLock<IntCounter> = LazyLock::new(|| {
    must(
        register_int_counter!(
            "stratalog_broker_read_bookie_total",
            "Reads served from bookies"
        ),
        "read_bookie",
    )
});
pub static PARTITIONS_OWNED: LazyLock<IntGauge> = LazyLock::new(|| {
    must(
        register_int_gauge!(
            "stratalog_broker_partitions_owned",
            "Partitions this broker serves"
        ),
        "partitions",
    )
});
pub static TAKEOVERS_RUNNING: LazyLock<IntGauge> = LazyLock::new(|| {
    must(
        register_int_gauge!(
            "stratalog_broker_takeovers_running",
            "Partition take-overs (fence, recover, reopen) running now; bounded by recovery_concurrency"
        ),
        "takeovers_running",
    )
});
pub static TAKEOVERS_WAITING: LazyLock<IntGauge> = LazyLock::new(|| {
    must(
        register_int_gauge!(
            "stratalog_broker_takeovers_waiting",
            "Partition take-overs waiting for a recovery slot"
        ),
        "takeovers_waiting",
    )
});
pub static PRODUCER_STATE_WRITES: LazyLock<IntCounter> = LazyLock::new(|| {
    must(
        register_int_counter!(
            "stratalog_broker_producer_state_writes_total",
            "Producer state keys written or deleted in the metadata store"
        ),
        "producer_state_writes",
    )
});
pub static CONNECTIONS_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    must(
        register_int_counter_vec!(
            "stratalog_broker_connections_refused_total",
            "Kafka connections closed at accept, by the limit they hit",
            &["reason"]
        ),
        "connections_refused",
    )
});
pub static ACCEPT_PAUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    must(
        register_int_counter!(
            "stratalog_broker_accept_paused_total",
            "Times the Kafka listener stopped accepting because max_connections were open"
        ),
        "accept_paused",
    )
});
pub static QUEUED_REQUEST_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    must(
        register_int_gauge!(
            "stratalog_broker_queued_request_bytes",
            "Request bytes read from Kafka connections and not yet answered (bounded by queued_max_request_bytes)"
        ),
        "queued_request_bytes",
    )
});
pub static CPU_POOL_WAITING: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    must(
        register_int_gauge_vec!(
            "stratalog_broker_cpu_pool_waiting",
            "Batch checks waiting for a thread of a bounded CPU pool (crc: uncompressed, inflate: compressed batches)",
            &["pool"]
        ),
        "cpu_pool_waiting",
    )
});
