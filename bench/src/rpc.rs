//! `rpc`: the internal RPC transport on its own, over loopback TCP in this process. A server
//! answers bookie `AddEntry` calls at once (no disk), and `--concurrency` callers send
//! payloads of `--payload-size` bytes on one shared connection for `--duration-secs`. This is
//! the ceiling the transport puts on produce (broker → bookie) before any storage work.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use stratalog_protocol::internal::bookie::{
    AddEntry, AddEntryRequest, AddEntryResponse, BookieStatus, EntryData,
};
use stratalog_protocol::internal::{Method, Status};
use stratalog_runtime::rpc::{self, RpcClient, RpcOptions, Service, ServiceFuture};
use stratalog_runtime::CancellationToken;

#[derive(Args, Debug)]
pub struct RpcArgs {
    /// Bytes of payload per call.
    #[arg(long, default_value_t = 65536)]
    payload_size: usize,
    /// Calls in flight at once on the one connection.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
}

struct Ack;

impl Service for Ack {
    fn call(&self, method: u16, body: Bytes) -> ServiceFuture {
        match method {
            AddEntry::ID => rpc::handle::<AddEntry, _, _>(body, |_req| async {
                AddEntryResponse {
                    status: BookieStatus::ok(),
                }
            }),
            other => {
                Box::pin(async move { Err((Status::UnknownMethod, format!("method {other}"))) })
            }
        }
    }
}

pub fn run(args: RpcArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_async(args))
}

async fn run_async(args: RpcArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let shutdown = CancellationToken::new();
    tokio::spawn(rpc::serve(listener, Arc::new(Ack), shutdown.clone()));
    let client = RpcClient::new(addr, RpcOptions::default());
    let payload = Bytes::from(vec![0x5a; args.payload_size]);
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, payload, stop, calls) =
            (client.clone(), payload.clone(), stop.clone(), calls.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            let mut entry_id = 0;
            while !stop.load(Ordering::Relaxed) {
                let req = AddEntryRequest {
                    ledger_id: 1,
                    recovery: false,
                    entry: EntryData {
                        entry_id,
                        base_offset: 0,
                        last_offset: 0,
                        max_timestamp: 0,
                        payload: payload.clone(),
                    },
                    writer_lac: None,
                };
                let t = Instant::now();
                client.call::<AddEntry>(&req).await?;
                latencies.record(t.elapsed().as_micros() as u64).ok();
                calls.fetch_add(1, Ordering::Relaxed);
                entry_id += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    for second in 1..=args.duration_secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        eprintln!(
            "[{second:>3}s] rpc: {} calls",
            calls.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = hdrhistogram::Histogram::<u64>::new(3)?;
    for w in workers {
        all.add(w.await??)?;
    }
    shutdown.cancel();
    let elapsed = started.elapsed().as_secs_f64();
    let n = calls.load(Ordering::Relaxed) as f64;
    println!("payload size      {} bytes", args.payload_size);
    println!("concurrency       {}", args.concurrency);
    println!("calls/s           {:.0}", n / elapsed);
    println!(
        "payload MB/s      {:.1}",
        n * args.payload_size as f64 / elapsed / 1e6
    );
    for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
        println!(
            "latency {name:<9} {:.3} ms",
            all.value_at_quantile(q) as f64 / 1000.0
        );
    }
    Ok(())
}
