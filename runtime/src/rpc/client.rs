//! A multiplexing RPC client: many calls in flight on one TCP connection.
//!
//! Each call takes a correlation id and a slot in the pending map, sends its frame through the
//! connection's writer task and waits for the reader task to hand back the matching response.
//! The connection is opened on first use and replaced after it fails; calls in flight on a
//! failed connection fail with [`RpcError::Disconnected`] (the caller decides whether a retry
//! is safe).
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use stratalog_protocol::internal::{DecodeError, Frame, FrameKind, Method, Status, Wire};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::debug;

use super::server::write_frames;
use super::MAX_FRAME;
use crate::framing::read_frame;

#[derive(Debug, Clone)]
pub struct RpcOptions {
    pub connect_timeout: Duration,
    /// Default deadline for one call, from send to response.
    pub call_timeout: Duration,
    /// Calls allowed in flight per connection; more wait (back-pressure).
    pub max_in_flight: usize,
}

impl Default for RpcOptions {
    fn default() -> Self {
        RpcOptions {
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(30),
            max_in_flight: 4096,
        }
    }
}

/// Why a call failed. Cheap to create and match: this is on the produce path.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to {addr} lost before {method} completed")]
    Disconnected { addr: String, method: &'static str },
    #[error("{method} to {addr} timed out after {after:?}")]
    Timeout {
        addr: String,
        method: &'static str,
        after: Duration,
    },
    #[error("{method} to {addr} failed: {status:?}: {message}")]
    Remote {
        addr: String,
        method: &'static str,
        status: Status,
        message: String,
    },
    #[error("{method} response from {addr} did not decode: {error}")]
    Decode {
        addr: String,
        method: &'static str,
        error: DecodeError,
    },
}

type Pending = Mutex<HashMap<u64, oneshot::Sender<Frame>>>;

struct Connection {
    tx: mpsc::Sender<Frame>,
    pending: Arc<Pending>,
    alive: Arc<AtomicBool>,
    permits: Arc<Semaphore>,
}

#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    options: RpcOptions,
    next_id: AtomicU64,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

impl RpcClient {
    /// A client for `addr` ("host:port"). Connects lazily, on the first call.
    pub fn new(addr: impl Into<String>, options: RpcOptions) -> RpcClient {
        RpcClient {
            inner: Arc::new(Inner {
                addr: addr.into(),
                options,
                next_id: AtomicU64::new(1),
                connection: tokio::sync::Mutex::new(None),
            }),
        }
    }

    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    pub async fn call<M: Method>(&self, request: &M::Request) -> Result<M::Response, RpcError> {
        self.call_with_timeout::<M>(request, self.inner.options.call_timeout)
            .await
    }

    pub async fn call_with_timeout<M: Method>(
        &self,
        request: &M::Request,
        timeout: Duration,
    ) -> Result<M::Response, RpcError> {
        let addr = &self.inner.addr;
        let connection = self.connection().await?;
        let _permit = connection
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RpcError::Disconnected {
                addr: addr.clone(),
                method: M::NAME,
            })?;
        let correlation_id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, response) = oneshot::channel();
        connection.pending.lock().insert(correlation_id, done);
        let frame = Frame {
            kind: FrameKind::Request,
            method: M::ID,
            status: Status::Ok,
            correlation_id,
            body: request.to_bytes(),
        };
        let disconnected = || RpcError::Disconnected {
            addr: addr.clone(),
            method: M::NAME,
        };
        if connection.tx.send(frame).await.is_err() {
            connection.pending.lock().remove(&correlation_id);
            return Err(disconnected());
        }
        let frame = match tokio::time::timeout(timeout, response).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(_)) => return Err(disconnected()),
            Err(_) => {
                connection.pending.lock().remove(&correlation_id);
                return Err(RpcError::Timeout {
                    addr: addr.clone(),
                    method: M::NAME,
                    after: timeout,
                });
            }
        };
        let mut body = frame.body;
        if frame.status != Status::Ok {
            let message = String::from_utf8_lossy(&body).into_owned();
            return Err(RpcError::Remote {
                addr: addr.clone(),
                method: M::NAME,
                status: frame.status,
                message,
            });
        }
        M::Response::decode(&mut body).map_err(|error| RpcError::Decode {
            addr: addr.clone(),
            method: M::NAME,
            error,
        })
    }

    async fn connection(&self) -> Result<Arc<Connection>, RpcError> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            if conn.alive.load(Ordering::Acquire) {
                return Ok(conn.clone());
            }
        }
        let conn = Arc::new(self.connect().await?);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self) -> Result<Connection, RpcError> {
        let addr = self.inner.addr.clone();
        let connect_error = |reason: String| RpcError::Connect {
            addr: addr.clone(),
            reason,
        };
        let stream = tokio::time::timeout(
            self.inner.options.connect_timeout,
            TcpStream::connect(&addr),
        )
        .await
        .map_err(|_| connect_error("timed out".into()))?
        .map_err(|e| connect_error(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::channel(1024);
        let pending: Arc<Pending> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        tokio::spawn(write_frames(write, rx));
        tokio::spawn(read_responses(
            addr.clone(),
            BufReader::with_capacity(64 * 1024, read),
            pending.clone(),
            alive.clone(),
        ));
        debug!(%addr, "RPC connected");
        Ok(Connection {
            tx,
            pending,
            alive,
            permits: Arc::new(Semaphore::new(self.inner.options.max_in_flight)),
        })
    }
}

async fn read_responses(
    addr: String,
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    pending: Arc<Pending>,
    alive: Arc<AtomicBool>,
) {
    let mut buf = BytesMut::new();
    loop {
        let frame = match read_frame(&mut reader, &mut buf, MAX_FRAME).await {
            Ok(payload) => match Frame::decode(payload) {
                Ok(frame) if frame.kind == FrameKind::Response => frame,
                Ok(_) => {
                    debug!(%addr, "server sent a request frame; dropping connection");
                    break;
                }
                Err(e) => {
                    debug!(%addr, error = %e, "undecodable response frame; dropping connection");
                    break;
                }
            },
            Err(e) => {
                debug!(%addr, error = %e, "RPC connection ended");
                break;
            }
        };
        if let Some(done) = pending.lock().remove(&frame.correlation_id) {
            let _ = done.send(frame);
        }
    }
    alive.store(false, Ordering::Release);
    // Dropping the senders fails every call still waiting on this connection.
    pending.lock().clear();
}
