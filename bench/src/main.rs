//! # stratalog-bench
//!
//! A load generator for **any** Kafka-protocol endpoint — Stratalog or Kafka itself —
//! in the spirit of Kafka's `kafka-producer-perf-test` and `kafka-consumer-perf-test`.
//! It drives librdkafka (through `rdkafka`), the same client library most non-JVM
//! Kafka users run, so the numbers describe what real clients see:
//!
//! * `produce` — fixed-size records, as fast as possible or at a fixed MB/s; reports
//!   throughput and produce latency (send → delivery report) percentiles.
//! * `consume` — reads N records from the beginning; reports throughput.
//! * `commit`  — offset-commit throughput and latency for a consumer group.
//! * `rpc`     — Stratalog's internal RPC transport alone, in process (no Kafka).
//!
//! What it is **not**: a correctness test (it counts records and bytes, it does not
//! verify contents or ordering), a cluster management tool (it only creates the
//! benchmark topic when missing), or part of the server — it is a separate package,
//! outside the workspace's default members, and is never linked into the `stratalog`
//! binary, so the server does not carry librdkafka.
//!
//! Output: progress once a second on stderr; the final summary on stdout, either
//! human-readable or (`--json`) as one JSON object line for scripts.
//! Exit status: 0 on success, 1 when the run failed or any record/commit failed,
//! 2 on a command-line usage error.

mod cluster;
mod commit;
mod consume;
mod produce;
mod report;
mod rpc;
#[cfg(test)]
mod tests;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "stratalog-bench",
    version,
    about = "Benchmark any Kafka-compatible endpoint (Stratalog or Kafka): produce, consume and offset-commit throughput and latency",
    long_about = "Benchmark any Kafka-compatible endpoint (Stratalog or Kafka) through librdkafka, \
like kafka-producer-perf-test / kafka-consumer-perf-test.\n\n\
Progress is printed every second on stderr; the final summary goes to stdout \
(human-readable, or one JSON object line with --json).\n\
Exit status: 0 success, 1 run failed or some records/commits failed, 2 usage error.\n\n\
Examples:\n  \
stratalog-bench produce --bootstrap 127.0.0.1:9092 --topic bench --records 1000000 --record-size 1024\n  \
stratalog-bench produce --topic bench --rate 50 --duration-secs 60 --json\n  \
stratalog-bench consume --topic bench --records 1000000\n  \
stratalog-bench commit --group g --topic bench --commits 20000 --sync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Produce fixed-size records (max throughput or a fixed MB/s rate); report msgs/s, MB/s and
    /// produce latency percentiles (send -> delivery report).
    Produce(produce::ProduceArgs),
    /// Consume records from the beginning of a topic; report msgs/s and MB/s from the first record.
    Consume(consume::ConsumeArgs),
    /// Offset-commit throughput: commit increasing offsets for partition 0 of a topic in a group;
    /// report commits/s and commit latency percentiles.
    Commit(commit::CommitArgs),
    /// The internal RPC transport alone (in-process loopback server that acks at once):
    /// calls/s, MB/s and latency for a payload size and concurrency.
    Rpc(rpc::RpcArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Commit(args) => commit::run(args),
        Command::Rpc(args) => rpc::run(args),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line: what failed, then why.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
