//! `commit`: offset-commit throughput and latency for one consumer group.
//!
//! Each of `--concurrency` clients is its own consumer (its own broker connection) with
//! partition 0 of the topic assigned — and paused, so no fetch request ever sits on the
//! connection ahead of a commit — committing increasing offsets drawn from one shared
//! counter. Sync mode (`CommitMode::Sync`) measures the commit round trip; async mode
//! pipelines commits up to `--max-in-flight` per client and waits for every completion
//! before stopping the clock.
//!
//! Async commits go through `rd_kafka_commit_queue()` rather than rdkafka's
//! `CommitMode::Async`: in rdkafka 0.39 the latter hands librdkafka no reply queue, so the
//! result of a manual async commit is never reported to `ConsumerContext::commit_callback`
//! (rust-rdkafka issue #856) and neither completions nor failures could be counted. It is
//! the same librdkafka operation (one OffsetCommit request) with the result posted to the
//! consumer queue, where `BaseConsumer::poll` delivers it to `commit_callback`.
//!
//! Before the clock starts each client makes one untimed sync commit, so the
//! FindCoordinator lookup and connection setup are not part of the result.

use std::collections::VecDeque;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{IsError, KafkaError, KafkaResult};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::cluster::{self, ClientErrors, ConnArgs, ErrorContext};
use crate::report::{self, per_sec, LatencyStats, Progress, Snapshot, Stall, Summary};

#[derive(Args, Debug, Clone)]
pub struct CommitArgs {
    #[command(flatten)]
    pub conn: ConnArgs,

    /// Consumer group whose offsets are committed (created implicitly by the first commit).
    #[arg(long, default_value = "stratalog-bench-commit", value_name = "GROUP")]
    pub group: String,

    /// Total number of offset commits, across all clients.
    #[arg(long, default_value_t = 20_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub commits: u64,

    /// Number of committing clients, each a separate consumer with its own connection,
    /// all committing partition 0 of the same group.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,

    /// Commit synchronously (CommitMode::Sync): each client waits for every commit before
    /// the next, so latency is the commit round trip. Without --sync commits are async,
    /// pipelined up to --max-in-flight per client, and the run ends when all have completed.
    #[arg(long)]
    pub sync: bool,

    /// Async mode only: most commits a client may have outstanding at once.
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: u64,

    /// Replication factor if the topic has to be created (with 1 partition); -1 means the
    /// broker's default.
    #[arg(long, default_value_t = -1, value_name = "N", allow_negative_numbers = true, value_parser = cluster::parse_replication_factor)]
    pub replication_factor: i32,

    /// Extra librdkafka consumer property, repeatable. Applied last, so it overrides the
    /// defaults.
    #[arg(long = "consumer-prop", value_name = "KEY=VALUE", value_parser = cluster::parse_prop)]
    pub consumer_props: Vec<(String, String)>,

    /// Fail when no commit completes for this many seconds (including the untimed warm-up
    /// commit each client makes first).
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: u64,
}

/// State shared by all clients and the main thread.
#[derive(Default)]
struct Shared {
    /// Next commit number to claim; commit k writes offset k+1.
    next: AtomicU64,
    /// Commits completed, successfully or not.
    done: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Clients that finished their warm-up.
    ready: AtomicU64,
    /// Set by the main thread when all clients are ready: the clock has started.
    go: AtomicBool,
}

impl Shared {
    fn complete(&self, result: KafkaResult<()>) -> bool {
        self.done.fetch_add(1, Relaxed);
        match result {
            Ok(()) => true,
            Err(e) => {
                self.failed.fetch_add(1, Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
                false
            }
        }
    }
}

/// Per-client context; librdkafka calls `commit_callback` from `poll()` on the client's
/// own thread.
struct CommitContext {
    shared: Arc<Shared>,
    errors: ClientErrors,
    /// Async mode: issue times of outstanding commits, oldest first. Kafka answers the
    /// requests of one connection in order, so each completion belongs to the front one.
    pending: Mutex<VecDeque<Instant>>,
    latency: Mutex<Histogram<u64>>,
}

impl CommitContext {
    fn record_latency(&self, since: Instant) {
        let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        report::record_micros(&mut h, since.elapsed().as_micros() as u64);
    }

    fn outstanding(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl ClientContext for CommitContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.record(&error, reason);
    }
}

impl ConsumerContext for CommitContext {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        // Only async commits (see `AsyncCommitter`) are reported here; anything else has no
        // pending entry and is ignored.
        let Some(issued) = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
        else {
            return;
        };
        if self.shared.complete(result) {
            self.record_latency(issued);
        }
    }
}

/// Async offset commits whose results come back as events on the consumer queue (see
/// the module doc for why not `CommitMode::Async`).
struct AsyncCommitter {
    rk: *mut rdsys::rd_kafka_t,
    queue: *mut rdsys::rd_kafka_queue_t,
}

impl AsyncCommitter {
    /// `consumer` must have a group.id (so its consumer queue is the one `poll()` serves)
    /// and must outlive the returned value.
    fn new<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Result<Self> {
        let rk = consumer.client().native_ptr();
        // SAFETY: `rk` is a live consumer handle; the returned queue reference is released
        // in Drop, before the consumer (declared earlier) is destroyed.
        let queue = unsafe { rdsys::rd_kafka_queue_get_consumer(rk) };
        if queue.is_null() {
            bail!("librdkafka returned no consumer queue (is group.id set?)");
        }
        Ok(AsyncCommitter { rk, queue })
    }

    fn commit(&self, tpl: &TopicPartitionList) -> KafkaResult<()> {
        // SAFETY: both handles are live (see `new`); librdkafka copies `tpl`. With no C
        // callback the result is posted to `queue` as an OFFSET_COMMIT event.
        let err = unsafe {
            rdsys::rd_kafka_commit_queue(self.rk, tpl.ptr(), self.queue, None, ptr::null_mut())
        };
        if err.is_error() {
            Err(KafkaError::ConsumerCommit(err.into()))
        } else {
            Ok(())
        }
    }
}

impl Drop for AsyncCommitter {
    fn drop(&mut self) {
        // SAFETY: releases the reference taken in `new`, exactly once.
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue) };
    }
}

struct ClientResult {
    latency: Histogram<u64>,
    finished: Instant,
}

pub fn run(args: CommitArgs) -> Result<()> {
    let conn = &args.conn;
    let timeout = Duration::from_secs(args.timeout_secs);
    cluster::check_reachable(&conn.bootstrap, conn.connect_timeout())?;

    // Committing offsets for an unknown topic is rejected, so make sure it exists.
    let errors = ClientErrors::default();
    let partitions = {
        let meta: BaseConsumer<ErrorContext> = consumer_config(&args)
            .create_with_context(ErrorContext {
                errors: errors.clone(),
            })
            .context("creating the consumer (check --consumer-prop values)")?;
        cluster::ensure_topic(
            meta.client(),
            conn,
            &args.consumer_props,
            None,
            args.replication_factor,
            &errors,
        )?
    };

    let shared = Arc::new(Shared::default());
    let clients = args.concurrency;
    let (tx, rx) = mpsc::channel::<Result<ClientResult>>();
    for id in 0..clients {
        let (args, shared, errors, tx) = (
            args.clone(),
            Arc::clone(&shared),
            errors.clone(),
            tx.clone(),
        );
        thread::Builder::new()
            .name(format!("commit-{id}"))
            .spawn(move || {
                let _ = tx.send(
                    client(&args, shared, errors).with_context(|| format!("commit client {id}")),
                );
            })
            .context("spawning a commit client thread")?;
    }
    drop(tx);

    // Wait until every client has connected and made its warm-up commit.
    let mut stall = Stall::new(0);
    while shared.ready.load(Relaxed) < clients {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Err(e)) => return Err(e),
            Ok(Ok(_)) => bail!("a commit client finished before the benchmark started"),
            Err(RecvTimeoutError::Disconnected) => bail!("commit clients exited during warm-up"),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if stall.stuck(shared.ready.load(Relaxed), timeout) {
            bail!(
                "{} of {clients} commit clients still had no successful warm-up commit for group '{}' after {}s — \
                 does the endpoint support consumer-group offset commits (FindCoordinator, OffsetCommit)?{}",
                clients - shared.ready.load(Relaxed),
                args.group,
                args.timeout_secs,
                errors.hint()
            );
        }
    }
    let start = Instant::now();
    shared.go.store(true, Relaxed);

    let progress = {
        let shared = Arc::clone(&shared);
        Progress::start("commit", "commits", false, move || Snapshot {
            records: shared.done.load(Relaxed),
            bytes: 0,
            extra: format!(", failed {}", shared.failed.load(Relaxed)),
        })
    };
    let mut latency = report::new_histogram();
    let mut finished = start;
    let mut remaining = clients;
    let mut stall = Stall::new(0);
    while remaining > 0 {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(result) => {
                let result = result?;
                latency
                    .add(&result.latency)
                    .map_err(|e| anyhow!("merging latency histograms: {e}"))?;
                finished = finished.max(result.finished);
                remaining -= 1;
            }
            Err(RecvTimeoutError::Disconnected) => bail!("a commit client thread died"),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if stall.stuck(shared.done.load(Relaxed), timeout) {
            bail!(
                "no offset commit completed for {}s ({} of {} done) — the endpoint stopped answering commits{}",
                args.timeout_secs,
                shared.done.load(Relaxed),
                args.commits,
                errors.hint()
            );
        }
    }
    drop(progress);

    let elapsed = finished - start;
    let done = shared.done.load(Relaxed);
    let failed = shared.failed.load(Relaxed);
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut s = Summary::new("commit");
    s.text("bootstrap", "bootstrap", conn.bootstrap.clone())
        .text("topic", "topic", conn.topic.clone())
        .int("partitions", "topic partitions", partitions, "")
        .text("group", "group", args.group.clone())
        .text(
            "mode",
            "mode",
            if args.sync { "sync" } else { "async" }.into(),
        )
        .int("concurrency", "clients", clients, "");
    if !args.sync {
        s.int(
            "max_in_flight",
            "max in flight per client",
            args.max_in_flight,
            "",
        );
    }
    s.int("commits", "commits completed", done - failed, "")
        .int("errors", "errors", failed, "")
        .float("elapsed_secs", "elapsed", elapsed.as_secs_f64(), 3, "s")
        .float(
            "commits_per_sec",
            "throughput",
            per_sec((done - failed) as f64, elapsed),
            1,
            "commits/s",
        );
    LatencyStats::from_histogram(&latency).add_to(&mut s, "latency", "commit");
    if let Some(e) = &first_error {
        s.text("first_error", "first error", e.clone());
    }
    s.print(conn.json);

    if failed > 0 {
        bail!(
            "{failed} of {done} commits failed; first error: {}",
            first_error.as_deref().unwrap_or("unknown")
        );
    }
    Ok(())
}

fn consumer_config(args: &CommitArgs) -> rdkafka::ClientConfig {
    // No auto-commit: only the benchmark's own commits may reach the group.
    cluster::client_config(
        &args.conn.bootstrap,
        &[
            ("group.id", args.group.clone()),
            ("enable.auto.commit", "false".into()),
        ],
        &args.consumer_props,
    )
}

/// One committing client, run on its own thread.
fn client(args: &CommitArgs, shared: Arc<Shared>, errors: ClientErrors) -> Result<ClientResult> {
    let topic = args.conn.topic.as_str();
    let consumer: BaseConsumer<CommitContext> = consumer_config(args)
        .create_with_context(CommitContext {
            shared: Arc::clone(&shared),
            errors: errors.clone(),
            pending: Mutex::new(VecDeque::new()),
            latency: Mutex::new(report::new_histogram()),
        })
        .context("creating the consumer (check --consumer-prop values)")?;
    let ctx = Arc::clone(consumer.context());

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::End)?;
    consumer.assign(&tpl).context("assigning partition 0")?;
    consumer.pause(&tpl).context("pausing partition 0")?;

    // Untimed warm-up: retried, since a fresh group's coordinator may need a moment; the
    // main thread gives up after --timeout-secs and reports the last error kept here.
    tpl.set_partition_offset(topic, 0, Offset::Offset(0))?;
    loop {
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => break,
            Err(e) => {
                errors.record(&e, &format!("warm-up offset commit failed: {e}"));
                thread::sleep(Duration::from_millis(200));
            }
        }
    }
    consumer.poll(Duration::ZERO);
    shared.ready.fetch_add(1, Relaxed);
    while !shared.go.load(Relaxed) {
        thread::sleep(Duration::from_millis(1));
    }

    let total = args.commits;
    if args.sync {
        loop {
            let k = shared.next.fetch_add(1, Relaxed);
            if k >= total {
                break;
            }
            tpl.set_partition_offset(topic, 0, Offset::Offset(k as i64 + 1))?;
            let issued = Instant::now();
            if shared.complete(consumer.commit(&tpl, CommitMode::Sync)) {
                ctx.record_latency(issued);
            }
            // Serve queued events (errors, commit reports) now and then.
            if k % 64 == 0 {
                consumer.poll(Duration::ZERO);
            }
        }
    } else {
        let committer = AsyncCommitter::new(&consumer)?;
        let window = args.max_in_flight as usize;
        loop {
            while ctx.outstanding() >= window {
                consumer.poll(Duration::from_millis(100));
            }
            let k = shared.next.fetch_add(1, Relaxed);
            if k >= total {
                break;
            }
            tpl.set_partition_offset(topic, 0, Offset::Offset(k as i64 + 1))?;
            ctx.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_back(Instant::now());
            if let Err(e) = committer.commit(&tpl) {
                // Rejected locally, so no report will come for it.
                ctx.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pop_back();
                shared.complete(Err(e));
            }
            // Serve completions as they arrive so the window keeps moving.
            consumer.poll(Duration::ZERO);
        }
        // Wait for every outstanding commit; the main thread gives up if they stop coming.
        while ctx.outstanding() > 0 {
            consumer.poll(Duration::from_millis(100));
        }
    }
    let finished = Instant::now();
    let latency = ctx
        .latency
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(ClientResult { latency, finished })
}
