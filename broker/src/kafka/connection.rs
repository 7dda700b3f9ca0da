//! One Kafka client connection.
//!
//! Kafka clients pipeline requests and expect responses in request order. The reader decodes
//! each request and runs the first stage of its handler right away, in order (for Produce
//! that is validation and offset assignment, so batches from one connection keep their
//! order); the rest of the handler (waiting for bookies, a fetch's long poll) becomes a
//! future queued for the writer, which awaits the futures one after another and writes each
//! response as it completes. A cap on queued futures stops the reader when a client pipelines
//! more than that.
//!
//! Memory: the frame reader (`stratalog_runtime::framing::FrameReader`) charges every byte it
//! reads to the broker's request budget; a request's charge travels with it to the writer and
//! is released once its response is written. When the budget is spent the reader stops
//! reading. It also ends connections that stay idle (`connections_max_idle_ms`) or leave a
//! request unfinished (`request_read_timeout_ms`).
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use stratalog_protocol::kafka::header::{self, HeaderPrefix};
use stratalog_runtime::framing::{Activity, Charge, FrameError, FrameLimits, FrameReader};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::handlers::{self, Reply, RequestContext};
use super::versions;
use crate::{metrics, Broker};

/// Requests a connection may have waiting for their responses.
const MAX_PIPELINED: usize = 256;

pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) {
    metrics::CONNECTIONS.inc();
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let activity = Activity::new();
    let reader = FrameReader::new(
        read,
        broker.request_budget.clone(),
        FrameLimits {
            max_frame: broker.config.max_request_bytes,
            idle_timeout: broker.config.connections_max_idle(),
            read_timeout: broker.config.request_read_timeout(),
        },
        activity.clone(),
    );
    let (tx, rx) = mpsc::channel::<Queued>(MAX_PIPELINED);
    let writer = tokio::spawn(write_responses(write, rx, activity.clone()));
    let reason = read_requests(reader, peer, &broker, tx, &activity, shutdown).await;
    if matches!(reason, Close::Frame(FrameError::Idle(_))) {
        // Idle with no response being prepared: the writer has nothing left to do, or is
        // stuck on a client that stopped reading. Either way it stops now.
        writer.abort();
    }
    // Otherwise the writer finishes what was queued before the connection closes.
    let _ = writer.await;
    metrics::CONNECTIONS.dec();
    metrics::CONNECTIONS_CLOSED
        .with_label_values(&[reason.label()])
        .inc();
    match reason {
        Close::ClientClosed | Close::Shutdown => {
            debug!(%peer, reason = %reason, "Kafka connection closed")
        }
        Close::Frame(FrameError::Idle(_)) => {
            info!(%peer, reason = %reason, "closing idle Kafka connection")
        }
        other => warn!(%peer, reason = %other, "closing Kafka connection"),
    }
}

/// Why the broker stopped reading from a connection.
#[derive(Debug, thiserror::Error)]
enum Close {
    #[error("client closed the connection")]
    ClientClosed,
    #[error("broker shutting down")]
    Shutdown,
    #[error("{0}")]
    Frame(FrameError),
    #[error("{0}")]
    BadRequest(String),
}

impl Close {
    fn label(&self) -> &'static str {
        match self {
            Close::ClientClosed => "client_closed",
            Close::Shutdown => "shutdown",
            Close::Frame(FrameError::TooLarge { .. }) => "too_large",
            Close::Frame(FrameError::Idle(_)) => "idle",
            Close::Frame(FrameError::ReadTimeout { .. }) => "read_timeout",
            Close::Frame(_) => "framing",
            Close::BadRequest(_) => "bad_request",
        }
    }
}

struct Queued {
    reply: Reply,
    api: &'static str,
    started: Instant,
    /// The request's bytes in the request budget, released once it is answered.
    _charge: Charge,
}

async fn read_requests(
    mut reader: FrameReader,
    peer: SocketAddr,
    broker: &Arc<Broker>,
    tx: mpsc::Sender<Queued>,
    activity: &Activity,
    shutdown: CancellationToken,
) -> Close {
    let idle = broker.config.connections_max_idle();
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => return Close::Shutdown,
            frame = reader.next_frame() => match frame {
                Ok(frame) => frame,
                Err(FrameError::Closed) => return Close::ClientClosed,
                // Clients that exit without closing their sockets cleanly are routine.
                Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return Close::ClientClosed,
                Err(e) => return Close::Frame(e),
            },
        };
        let started = Instant::now();
        let (reply, api) = match decode_and_dispatch(frame.bytes, peer, broker).await {
            Ok(done) => done,
            Err(reason) => return Close::BadRequest(reason),
        };
        let queued = Queued {
            reply,
            api,
            started,
            _charge: frame.charge,
        };
        // A full queue behind a writer that cannot write (the client stopped reading) is
        // idleness too.
        let sent = match idle {
            Some(idle) => tokio::select! {
                sent = tx.send(queued) => sent,
                _ = activity.until_idle(idle) => return Close::Frame(FrameError::Idle(idle)),
            },
            None => tx.send(queued).await,
        };
        if sent.is_err() {
            return Close::ClientClosed;
        }
    }
}

async fn decode_and_dispatch(
    mut frame: Bytes,
    peer: SocketAddr,
    broker: &Arc<Broker>,
) -> Result<(Reply, &'static str), String> {
    let prefix = HeaderPrefix::peek(&frame).map_err(|e| e.to_string())?;
    let Ok(api_key) = ApiKey::try_from(prefix.api_key) else {
        return Err(format!(
            "unknown API key {} (correlation id {})",
            prefix.api_key, prefix.correlation_id
        ));
    };
    let api = api_name(api_key);
    metrics::REQUESTS.with_label_values(&[api]).inc();
    let supported = versions::range(api_key);
    let version_ok = supported.is_some_and(|(min, max)| (min..=max).contains(&prefix.api_version));
    if !version_ok && api_key != ApiKey::ApiVersions {
        // Kafka closes the connection here too: the body cannot be parsed, so there is no
        // well-formed response to send. ApiVersions is the exception (below).
        return Err(match supported {
            Some((min, max)) => format!(
                "{api} v{} is not supported (supported: v{min}-v{max})",
                prefix.api_version
            ),
            None => format!("{api} is not supported by Stratalog"),
        });
    }
    let ctx = if version_ok {
        let header = header::decode_header(api_key, &mut frame).map_err(|e| e.to_string())?;
        RequestContext {
            api_key,
            version: prefix.api_version,
            correlation_id: prefix.correlation_id,
            client_id: header.client_id.map(|s| s.to_string()).unwrap_or_default(),
            peer,
        }
    } else {
        // An ApiVersions version newer than ours: answer v0 with UNSUPPORTED_VERSION and our
        // ranges (KIP-511), without parsing a header we may not understand.
        RequestContext {
            api_key,
            version: -1,
            correlation_id: prefix.correlation_id,
            client_id: String::new(),
            peer,
        }
    };
    let reply = handlers::dispatch(broker, ctx, frame)
        .await
        .map_err(|e| format!("{api}: {e}"))?;
    Ok((reply, api))
}

async fn write_responses(
    write: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Queued>,
    activity: Arc<Activity>,
) {
    // The buffer is allocated with the first response, so connections that never complete
    // a request do not hold one.
    let Some(mut next) = rx.recv().await else {
        return;
    };
    let mut write = BufWriter::with_capacity(64 * 1024, write);
    loop {
        let Queued {
            reply,
            api,
            started,
            _charge: charge,
        } = next;
        let response = match reply {
            Reply::Now(bytes) => Some(bytes),
            Reply::Later(future) => {
                // While the handler works the connection is not idle, however long it takes.
                activity.preparing_started();
                let prepared = future.await;
                activity.preparing_finished();
                match prepared {
                    Ok(response) => response,
                    Err(reason) => {
                        // Unanswerable (a response we failed to encode): closing tells the
                        // client at once instead of leaving it to time out.
                        warn!(api, %reason, "closing Kafka connection");
                        return;
                    }
                }
            }
            Reply::None => None,
        };
        metrics::REQUEST_LATENCY
            .with_label_values(&[api])
            .observe(started.elapsed().as_secs_f64());
        if let Some(bytes) = response {
            if write.write_all(&bytes).await.is_err() {
                return;
            }
        }
        // The request is answered: its bytes leave the budget and the idle clock restarts.
        drop(charge);
        activity.touch();
        // Flush only when nothing else is ready, so pipelined responses share a write.
        if rx.is_empty() && write.flush().await.is_err() {
            return;
        }
        match rx.recv().await {
            Some(queued) => next = queued,
            None => break,
        }
    }
    let _ = write.flush().await;
}

pub fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::DescribeCluster => "DescribeCluster",
        _ => "Other",
    }
}
