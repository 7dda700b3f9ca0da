//! `produce`: send fixed-size records and measure throughput and produce latency
//! (time from handing the record to librdkafka to its delivery report).
//!
//! Design, for low measurement overhead:
//! * `ThreadedProducer` (a `BaseProducer` plus a dedicated polling thread): delivery
//!   reports are handled on that thread while this one only enqueues.
//! * The enqueue time travels with the record as its delivery opaque, encoded as
//!   microseconds since a fixed base instant in the pointer-sized integer itself, so no
//!   allocation per record (a `Box<Instant>` would cost a malloc/free pair per record).
//! * Latencies go into an HDR histogram: constant-time record, fixed memory.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::cluster::{self, ClientErrors, ConnArgs};
use crate::report::{self, per_sec, LatencyStats, Progress, Snapshot, Stall, Summary, MB, MIB};

// The enqueue timestamp (µs) is stored in a usize; on 32-bit targets it would wrap after
// ~71 minutes. Nobody benchmarks from a 32-bit host; refuse rather than mis-measure.
#[cfg(not(target_pointer_width = "64"))]
compile_error!("stratalog-bench needs a 64-bit target (latency timestamps are stored in a usize)");

const DEFAULT_RECORDS: u64 = 1_000_000;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub conn: ConnArgs,

    /// Number of records to send [default: 1000000 unless --duration-secs is given].
    #[arg(long, value_name = "N", conflicts_with = "duration_secs", value_parser = clap::value_parser!(u64).range(1..))]
    pub records: Option<u64>,

    /// Send for this many seconds instead of a fixed number of records.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub duration_secs: Option<u64>,

    /// Payload size of each record in bytes (records have no key).
    #[arg(long, default_value_t = 1024, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub record_size: u32,

    /// Acknowledgements the partition leader waits for before answering: 0, 1 or all (= -1).
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    pub acks: String,

    /// Send at a fixed rate of this many MB/s (10^6 payload bytes per second), scheduled by
    /// elapsed time so latency is measured at a steady load. Without it: as fast as possible.
    #[arg(long, value_name = "MB_PER_SEC", value_parser = parse_rate, conflicts_with = "throughput_mode")]
    pub rate: Option<f64>,

    /// Send as fast as possible. This is the default; the flag only makes it explicit.
    #[arg(long)]
    pub throughput_mode: bool,

    /// librdkafka linger.ms: how long a partition batch may wait to fill before it is sent.
    #[arg(long, default_value_t = 5, value_name = "MS")]
    pub linger_ms: u64,

    /// librdkafka batch.size: maximum bytes of one partition batch (also capped by
    /// librdkafka's message.max.bytes, default 1000000).
    #[arg(long, default_value_t = 1_048_576, value_name = "BYTES")]
    pub batch_size: u64,

    /// Compression codec (zstd needs a librdkafka built with zstd; this build's is not).
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,

    /// Partitions to create the topic with if it does not exist [default: 1]. An existing
    /// topic is used as it is.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: Option<i32>,

    /// Replication factor when creating the topic; -1 means the broker's default.
    #[arg(long, default_value_t = -1, value_name = "N", allow_negative_numbers = true, value_parser = cluster::parse_replication_factor)]
    pub replication_factor: i32,

    /// Extra librdkafka producer property, repeatable. Applied last, so it overrides the
    /// options above (e.g. --producer-prop enable.idempotence=true).
    #[arg(long = "producer-prop", value_name = "KEY=VALUE", value_parser = cluster::parse_prop)]
    pub producer_props: Vec<(String, String)>,

    /// Fail when records are outstanding and no delivery report has arrived for this many
    /// seconds (the endpoint stopped acknowledging).
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: u64,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive number of MB/s, got '{s}'")),
    }
}

/// Shared between the sending thread, the polling thread (delivery callbacks) and the
/// progress thread.
struct ProduceContext {
    /// Origin of the µs timestamps carried in the delivery opaque.
    base: Instant,
    acked: AtomicU64,
    failed: AtomicU64,
    /// µs since `base` of the latest delivery report: the end of the measured interval.
    last_delivery_us: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    first_error: Mutex<Option<String>>,
    errors: ClientErrors,
}

impl ProduceContext {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    fn done(&self) -> u64 {
        self.acked.load(Relaxed) + self.failed.load(Relaxed)
    }
}

impl ClientContext for ProduceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.record(&error, reason);
    }
}

impl ProducerContext for ProduceContext {
    /// Enqueue time in µs since `base` (see module doc).
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at_us: Self::DeliveryOpaque) {
        let now = self.now_us();
        match result {
            Ok(_) => {
                let mut hist = self.latency.lock().unwrap_or_else(|p| p.into_inner());
                report::record_micros(&mut hist, now.saturating_sub(sent_at_us as u64));
                drop(hist);
                self.acked.fetch_add(1, Relaxed);
            }
            Err((err, _)) => {
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                if first.is_none() {
                    *first = Some(err.to_string());
                }
                drop(first);
                self.failed.fetch_add(1, Relaxed);
            }
        }
        self.last_delivery_us.fetch_max(now, Relaxed);
    }
}

/// Record payloads: random uppercase letters like kafka-producer-perf-test (so codecs
/// have something to do, ~4.7 bits of entropy per byte), but each record is a window at
/// a pseudo-random offset of a 16 MiB pool instead of one repeated payload, which every
/// codec would shrink to almost nothing and make compressed runs meaninglessly fast.
struct Payloads {
    pool: Vec<u8>,
    size: usize,
    state: u64,
}

impl Payloads {
    fn new(size: usize) -> Self {
        let len = (16 << 20).max(size * 4);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let pool = (0..len)
            .map(|_| {
                state = xorshift(state);
                b'A' + (state % 26) as u8
            })
            .collect();
        Payloads { pool, size, state }
    }

    fn next(&mut self) -> &[u8] {
        self.state = xorshift(self.state);
        let offset = (self.state % (self.pool.len() - self.size + 1) as u64) as usize;
        &self.pool[offset..offset + self.size]
    }
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

pub fn run(args: ProduceArgs) -> Result<()> {
    let conn = &args.conn;
    let size = args.record_size as usize;
    let limit = match args.duration_secs {
        Some(_) => None,
        None => Some(args.records.unwrap_or(DEFAULT_RECORDS)),
    };
    let run_for = args.duration_secs.map(Duration::from_secs);
    let stall_timeout = Duration::from_secs(args.timeout_secs);

    cluster::check_reachable(&conn.bootstrap, conn.connect_timeout())?;

    let errors = ClientErrors::default();
    let ctx = ProduceContext {
        base: Instant::now(),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_delivery_us: AtomicU64::new(0),
        latency: Mutex::new(report::new_histogram()),
        first_error: Mutex::new(None),
        errors: errors.clone(),
    };
    let producer: ThreadedProducer<ProduceContext> = cluster::client_config(
        &conn.bootstrap,
        &[
            ("acks", args.acks.clone()),
            ("linger.ms", args.linger_ms.to_string()),
            ("batch.size", args.batch_size.to_string()),
            ("compression.type", args.compression.clone()),
        ],
        &args.producer_props,
    )
    .create_with_context(ctx)
    .context(
        "creating the producer (check --compression, --batch-size and --producer-prop values)",
    )?;
    let ctx = Arc::clone(producer.context());

    let partitions = cluster::ensure_topic(
        producer.client(),
        conn,
        &args.producer_props,
        args.partitions,
        args.replication_factor,
        &errors,
    )?;

    let mut payloads = Payloads::new(size);
    let sent = Arc::new(AtomicU64::new(0));
    let progress = {
        let (ctx, sent) = (Arc::clone(&ctx), Arc::clone(&sent));
        Progress::start("produce", "acked", true, move || {
            let acked = ctx.acked.load(Relaxed);
            Snapshot {
                records: acked,
                bytes: acked * size as u64,
                extra: format!(
                    ", sent {}, failed {}",
                    sent.load(Relaxed),
                    ctx.failed.load(Relaxed)
                ),
            }
        })
    };

    // Fixed-rate mode: record i is due at start + i/rate. Whatever is due is sent at once
    // (so oversleeping or a full queue is caught up, keeping the average rate exact), and
    // the sender sleeps until the next record is due.
    let records_per_sec = args.rate.map(|mbps| mbps * MB / size as f64);
    let start = Instant::now();
    let start_us = ctx.now_us();
    // Dead-endpoint watch: fail once records are outstanding and no delivery report has
    // arrived for --timeout-secs. Checked every 1024 records, after sleeps and while
    // blocked, so it adds nothing to the per-record cost.
    let mut watch = Stall::new(0);
    let stalled = |n: u64, done: u64| {
        anyhow!(
            "{} of {n} records unacknowledged and no delivery report for {}s — the endpoint \
             stopped acknowledging{}",
            n - done,
            args.timeout_secs,
            errors.hint()
        )
    };
    let mut n: u64 = 0;
    loop {
        if limit.is_some_and(|limit| n >= limit) {
            break;
        }
        let mut now = Instant::now();
        if run_for.is_some_and(|d| now - start >= d) {
            break;
        }
        let mut slept = false;
        if let Some(rps) = records_per_sec {
            let due = start + Duration::from_secs_f64(n as f64 / rps);
            if due > now {
                thread::sleep(due - now);
                now = Instant::now();
                slept = true;
            }
        }
        // Latency counts from the first attempt, so time spent waiting on a full local
        // queue (backpressure) is part of it, as it is for an application.
        let sent_at_us = (now - ctx.base).as_micros() as usize;
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(&conn.topic, sent_at_us)
            .payload(payloads.next());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // librdkafka's queue is full: serve delivery reports, then retry.
                    record = returned;
                    producer.poll(Duration::from_millis(1));
                    let done = ctx.done();
                    if watch.stuck(done, stall_timeout) {
                        return Err(stalled(n, done));
                    }
                }
                Err((err, _)) => bail!(
                    "sending record {n} to topic '{}' failed: {err}{}",
                    conn.topic,
                    errors.hint()
                ),
            }
        }
        n += 1;
        sent.store(n, Relaxed);
        if slept || n % 1024 == 0 {
            let done = ctx.done();
            if done == n {
                // Nothing outstanding: silence is not a stall.
                watch = Stall::new(done);
            } else if watch.stuck(done, stall_timeout) {
                return Err(stalled(n, done));
            }
        }
    }
    let send_elapsed = start.elapsed();

    // Wait for every outstanding delivery report; give up only if they stop coming.
    while producer.flush(Duration::from_millis(500)).is_err() {
        let done = ctx.done();
        if watch.stuck(done, stall_timeout) {
            return Err(stalled(n, done));
        }
    }
    drop(progress);

    let acked = ctx.acked.load(Relaxed);
    let failed = ctx.failed.load(Relaxed);
    // Measured interval: first send to last delivery report.
    let elapsed =
        Duration::from_micros(ctx.last_delivery_us.load(Relaxed).saturating_sub(start_us));
    let latency =
        LatencyStats::from_histogram(&ctx.latency.lock().unwrap_or_else(|p| p.into_inner()));
    let first_error = ctx
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let acked_bytes = (acked * size as u64) as f64;
    let send_mbps = per_sec((n * size as u64) as f64, send_elapsed) / MB;

    let mut s = Summary::new("produce");
    s.text("bootstrap", "bootstrap", conn.bootstrap.clone())
        .text("topic", "topic", conn.topic.clone())
        .int("partitions", "partitions", partitions, "")
        .int("record_size", "record size", size, "bytes")
        .text("acks", "acks", args.acks.clone())
        .text("compression", "compression", args.compression.clone())
        .text(
            "mode",
            "mode",
            if args.rate.is_some() {
                "fixed rate"
            } else {
                "max throughput"
            }
            .into(),
        );
    if let Some(rate) = args.rate {
        s.float("target_mb_per_sec", "target rate", rate, 2, "MB/s");
    }
    s.float(
        "send_mb_per_sec",
        "achieved send rate",
        send_mbps,
        2,
        "MB/s",
    )
    .int("records_sent", "records sent", n, "")
    .int("records_acked", "records acked", acked, "")
    .int("errors", "errors", failed, "")
    .float("elapsed_secs", "elapsed", elapsed.as_secs_f64(), 3, "s")
    .float(
        "msgs_per_sec",
        "throughput",
        per_sec(acked as f64, elapsed),
        1,
        "msgs/s",
    )
    .float(
        "mb_per_sec",
        "throughput",
        per_sec(acked_bytes, elapsed) / MB,
        2,
        "MB/s",
    )
    .float(
        "mib_per_sec",
        "throughput",
        per_sec(acked_bytes, elapsed) / MIB,
        2,
        "MiB/s",
    );
    latency.add_to(&mut s, "latency", "produce");
    if let Some(e) = &first_error {
        s.text("first_error", "first error", e.clone());
    }
    s.print(conn.json);

    if let Some(rate) = args.rate.filter(|&r| send_mbps < r * 0.95) {
        eprintln!(
            "warning: achieved {send_mbps:.2} MB/s of the {rate:.2} MB/s target — the client or the \
             endpoint could not keep up, so latencies include queueing"
        );
    }
    if failed > 0 {
        bail!(
            "{failed} of {n} records failed; first error: {}",
            first_error.as_deref().unwrap_or("unknown")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_letters_and_vary() {
        let mut p = Payloads::new(100);
        let a = p.next().to_vec();
        let b = p.next().to_vec();
        assert_eq!(a.len(), 100);
        assert!(a.iter().all(u8::is_ascii_uppercase));
        assert_ne!(a, b);
    }

    #[test]
    fn rate_must_be_positive() {
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("nan").is_err());
        assert_eq!(parse_rate("12.5"), Ok(12.5));
    }
}
