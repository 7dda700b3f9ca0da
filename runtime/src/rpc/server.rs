//! Serving a [`Service`] on a TCP listener.
//!
//! Each connection has a reader loop and a writer task. The reader hands every request to the
//! service at once (pipelining) and the writer sends answers as they complete, in any order.
//! A semaphore caps the requests in flight per connection: when it is exhausted the reader
//! stops reading, so TCP flow control pushes back on the caller.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use stratalog_protocol::internal::{Frame, FrameKind, Method, Status, Wire};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::MAX_FRAME;
use crate::framing::{read_frame, FrameError};

/// Requests one connection may have in flight before the server stops reading from it.
const MAX_IN_FLIGHT: usize = 4096;

pub type ServiceFuture = Pin<Box<dyn Future<Output = Result<Bytes, (Status, String)>> + Send>>;

/// A role's RPC handler: method id and request body in, response body out.
pub trait Service: Send + Sync + 'static {
    fn call(&self, method: u16, body: Bytes) -> ServiceFuture;
}

/// Decodes a request for `M`, runs `f` on it and encodes its response: the usual body of a
/// [`Service::call`] match arm.
pub fn handle<M, F, Fut>(body: Bytes, f: F) -> ServiceFuture
where
    M: Method,
    F: FnOnce(M::Request) -> Fut,
    Fut: Future<Output = M::Response> + Send + 'static,
{
    let mut body = body;
    match M::Request::decode(&mut body) {
        Ok(request) => {
            let response = f(request);
            Box::pin(async move { Ok(response.await.to_bytes()) })
        }
        Err(e) => {
            let message = format!("{}: {e}", M::NAME);
            Box::pin(async move { Err((Status::BadRequest, message)) })
        }
    }
}

/// Serves `service` on every connection accepted until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, service: Arc<dyn Service>, shutdown: CancellationToken) {
    let conn_shutdown = shutdown.clone();
    crate::net::accept_loop(listener, "internal RPC", shutdown, move |stream, peer| {
        let (service, shutdown) = (service.clone(), conn_shutdown.clone());
        async move {
            match serve_connection(stream, service, shutdown).await {
                Ok(()) => debug!(%peer, "RPC connection closed"),
                Err(e) => warn!(%peer, error = %e, "RPC connection dropped"),
            }
        }
    })
    .await
}

async fn serve_connection(
    stream: TcpStream,
    service: Arc<dyn Service>,
    shutdown: CancellationToken,
) -> Result<(), FrameError> {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let (tx, rx) = mpsc::channel::<Frame>(1024);
    let writer = tokio::spawn(write_frames(write, rx));
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut buf = BytesMut::new();
    let result = loop {
        let payload = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            read = read_frame(&mut reader, &mut buf, MAX_FRAME) => match read {
                Ok(payload) => payload,
                Err(FrameError::Closed) => break Ok(()),
                Err(e) => break Err(e),
            },
        };
        let request = match Frame::decode(payload) {
            Ok(frame) if frame.kind == FrameKind::Request => frame,
            Ok(_) => break Err(FrameError::Io(invalid("response frame sent to a server"))),
            Err(e) => break Err(FrameError::Io(invalid(&e.to_string()))),
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break Ok(());
        };
        let reply = service.call(request.method, request.body);
        let tx = tx.clone();
        tokio::spawn(async move {
            let (status, body) = match reply.await {
                Ok(body) => (Status::Ok, body),
                Err((status, message)) => (status, Bytes::from(message)),
            };
            let response = Frame {
                kind: FrameKind::Response,
                method: request.method,
                status,
                correlation_id: request.correlation_id,
                body,
            };
            let _ = tx.send(response).await;
            drop(permit);
        });
    };
    drop(tx);
    let _ = writer.await;
    result
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Writes frames as they come, coalescing whatever is queued into one write.
pub(crate) async fn write_frames<W: tokio::io::AsyncWrite + Unpin>(
    mut write: W,
    mut rx: mpsc::Receiver<Frame>,
) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(64 * 1024);
    while let Some(frame) = rx.recv().await {
        frame.encode(&mut out);
        while out.len() < 1024 * 1024 {
            match rx.try_recv() {
                Ok(frame) => frame.encode(&mut out),
                Err(_) => break,
            }
        }
        write.write_all(&out).await?;
        out.clear();
    }
    write.shutdown().await
}
