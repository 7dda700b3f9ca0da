//! `consume`: read N records from the beginning of a topic and measure throughput from
//! the first record (so group join and connection setup are reported separately, not
//! averaged into the rate).
//!
//! A `BaseConsumer` polled in a tight loop on this thread: no async runtime and no
//! per-message allocation between librdkafka and the counter.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::cluster::{self, ClientErrors, ConnArgs, ErrorContext};
use crate::report::{per_sec, Progress, Snapshot, Stall, Summary, MB, MIB};

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub conn: ConnArgs,

    /// Number of records to consume; the run ends when this many have arrived.
    #[arg(long, default_value_t = 1_000_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub records: u64,

    /// Consumer group to subscribe() with (offsets are auto-committed, librdkafka's
    /// default). Use a fresh name per run: an existing group resumes from its committed
    /// offsets. Without --group, every partition is assign()ed from the beginning and no
    /// offsets are committed.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Extra librdkafka consumer property, repeatable. Applied last, so it overrides the
    /// defaults (e.g. --consumer-prop fetch.max.bytes=104857600).
    #[arg(long = "consumer-prop", value_name = "KEY=VALUE", value_parser = cluster::parse_prop)]
    pub consumer_props: Vec<(String, String)>,

    /// Fail when no record arrives for this many seconds (this also bounds the wait for
    /// the first record).
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: u64,
}

pub fn run(args: ConsumeArgs) -> Result<()> {
    let conn = &args.conn;
    let timeout = Duration::from_secs(args.timeout_secs);
    cluster::check_reachable(&conn.bootstrap, conn.connect_timeout())?;

    // Defaults except what a benchmark from the beginning needs. librdkafka's assign()
    // requires a group.id even when no group is used, so the no-group mode gets a
    // throwaway one and commits nothing.
    let mut defaults = vec![("auto.offset.reset", "earliest".to_string())];
    match &args.group {
        Some(g) => defaults.push(("group.id", g.clone())),
        None => {
            defaults.push((
                "group.id",
                format!("stratalog-bench-assign-{}", std::process::id()),
            ));
            defaults.push(("enable.auto.commit", "false".into()));
        }
    }
    let errors = ClientErrors::default();
    let consumer: BaseConsumer<ErrorContext> =
        cluster::client_config(&conn.bootstrap, &defaults, &args.consumer_props)
            .create_with_context(ErrorContext {
                errors: errors.clone(),
            })
            .context("creating the consumer (check --consumer-prop values)")?;

    let Some(partitions) = cluster::find_topic(consumer.client(), conn, &errors)? else {
        bail!(
            "topic '{}' does not exist on {} — fill it first with `stratalog-bench produce --bootstrap {} --topic {} --records {}`",
            conn.topic,
            conn.bootstrap,
            conn.bootstrap,
            conn.topic,
            args.records
        );
    };
    match &args.group {
        Some(g) => consumer
            .subscribe(&[&conn.topic])
            .with_context(|| format!("subscribing group '{g}' to topic '{}'", conn.topic))?,
        None => {
            let mut tpl = TopicPartitionList::with_capacity(partitions);
            for p in 0..partitions as i32 {
                tpl.add_partition_offset(&conn.topic, p, Offset::Beginning)?;
            }
            consumer
                .assign(&tpl)
                .with_context(|| format!("assigning the partitions of '{}'", conn.topic))?;
        }
    }

    let records = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let progress = {
        let (records, bytes) = (Arc::clone(&records), Arc::clone(&bytes));
        Progress::start("consume", "records", true, move || Snapshot {
            records: records.load(Relaxed),
            bytes: bytes.load(Relaxed),
            extra: String::new(),
        })
    };

    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let (mut count, mut total_bytes, mut poll_errors) = (0u64, 0u64, 0u64);
    let mut stall = Stall::new(0);
    while count < args.records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                if first.is_none() {
                    first = Some(Instant::now());
                }
                count += 1;
                total_bytes += (msg.payload_len() + msg.key().map_or(0, <[u8]>::len)) as u64;
                // Plain stores (single writer): the progress thread only needs a recent value.
                records.store(count, Relaxed);
                bytes.store(total_bytes, Relaxed);
                continue;
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(err @ KafkaError::MessageConsumptionFatal(_))) => {
                bail!(
                    "consumer failed after {count} records: {err}{}",
                    errors.hint()
                )
            }
            Some(Err(err)) => {
                // Transient (e.g. a broker connection dropped): librdkafka recovers by itself.
                poll_errors += 1;
                errors.record(&err, "");
            }
        }
        // Only reached when no record came back, so the clock stays off the fast path.
        if stall.stuck(count, timeout) {
            bail!(
                "received {count} of {} records, then nothing for {}s — does topic '{}' hold that many \
                 (produce more, or lower --records)?{}",
                args.records,
                args.timeout_secs,
                conn.topic,
                errors.hint()
            );
        }
    }
    let end = Instant::now();
    drop(progress);

    let first = first.unwrap_or(end);
    let elapsed = end - first;
    let mut s = Summary::new("consume");
    s.text("bootstrap", "bootstrap", conn.bootstrap.clone())
        .text("topic", "topic", conn.topic.clone())
        .int("partitions", "partitions", partitions, "")
        .text(
            "group",
            "group",
            args.group.clone().unwrap_or_else(|| "none (assign)".into()),
        )
        .int("records", "records", count, "")
        .int("bytes", "bytes", total_bytes, "")
        .float(
            "time_to_first_record_secs",
            "time to first record",
            (first - started).as_secs_f64(),
            3,
            "s",
        )
        .float(
            "elapsed_secs",
            "elapsed (from first record)",
            elapsed.as_secs_f64(),
            3,
            "s",
        )
        .float(
            "msgs_per_sec",
            "throughput",
            per_sec(count as f64, elapsed),
            1,
            "msgs/s",
        )
        .float(
            "mb_per_sec",
            "throughput",
            per_sec(total_bytes as f64, elapsed) / MB,
            2,
            "MB/s",
        )
        .float(
            "mib_per_sec",
            "throughput",
            per_sec(total_bytes as f64, elapsed) / MIB,
            2,
            "MiB/s",
        )
        .int("poll_errors", "transient poll errors", poll_errors, "");
    s.print(conn.json);
    // Dropping the consumer (leaving the group) can take a moment; the summary is out first.
    drop(consumer);
    Ok(())
}
