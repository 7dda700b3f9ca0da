//! Length-prefixed frames (`u32`/`i32` big-endian size, then the bytes), as both Kafka and the
//! internal RPC use them.
//!
//! A frame's buffer grows as its bytes arrive; a claimed size alone allocates nothing beyond
//! a first read's worth. [`read_frame`] serves the internal RPC (trusted peers, no budget).
//! [`FrameReader`] serves client connections: every byte it holds is charged to a
//! process-wide [`RequestBudget`] when it arrives and released when the [`Frame`] holding it
//! is dropped; when the budget is spent it stops reading (TCP flow control pushes back on
//! the client) instead of failing. It also closes connections that stay idle or leave a
//! frame unfinished for too long.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prometheus::IntGauge;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Semaphore;

/// The first read of a frame, and the smallest read made while the budget is short.
const MIN_READ: usize = 4 * 1024;
/// The largest single read. Reads double from [`MIN_READ`] up to this as a frame arrives.
const MAX_READ: usize = 256 * 1024;
/// [`read_frame`] reserves up to this much at once when a size arrives (internal peers send
/// entries of up to a few MiB; reserving them whole keeps the hot path to one allocation).
const RPC_FIRST_RESERVE: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed")]
    Closed,
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: u64, limit: usize },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("i/o error reading a frame: {0}")]
    Io(#[from] std::io::Error),
    /// Nothing was read or written, and no request was outstanding, for this long.
    #[error("idle for {0:?}")]
    Idle(Duration),
    /// A frame was started but not finished within the read timeout.
    #[error("request not complete after {timeout:?} ({received} bytes of {expected})")]
    ReadTimeout {
        timeout: Duration,
        received: usize,
        /// The claimed size including the 4-byte prefix, or "?" if not yet known.
        expected: String,
    },
}

/// Reads one frame into `buf` (reusing its allocation) and returns the frame's bytes.
///
/// The size is checked against `limit` before anything is allocated, and the buffer grows
/// as the bytes arrive: a peer that claims 128 MiB and stops costs at most
/// [`RPC_FIRST_RESERVE`]. Nothing is zero-filled.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    limit: usize,
) -> Result<Bytes, FrameError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    match reader.read_exact(&mut size[1..]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(FrameError::Truncated)
        }
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size);
    if size < 0 || size as u64 > limit as u64 {
        return Err(FrameError::TooLarge {
            size: size as u32 as u64,
            limit,
        });
    }
    let size = size as usize;
    buf.clear();
    buf.reserve(size.min(RPC_FIRST_RESERVE));
    while buf.len() < size {
        let want = (size - buf.len()).min(buf.len().clamp(RPC_FIRST_RESERVE, 16 * MAX_READ));
        buf.reserve(want);
        if reader.read_buf(&mut (&mut *buf).limit(want)).await? == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(buf.split().freeze())
}

/// A process-wide bound on request bytes held by client connections: bytes read but not yet
/// framed, and frames whose handling has not finished. Cloning shares the budget.
#[derive(Clone)]
pub struct RequestBudget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    /// `None`: unbounded (only counted).
    limit: Option<usize>,
    permits: Semaphore,
    used: AtomicUsize,
    gauge: Option<IntGauge>,
}

impl RequestBudget {
    /// A budget of `limit` bytes (`None`: unbounded). `gauge`, if given, follows the bytes
    /// charged.
    pub fn new(limit: Option<usize>, gauge: Option<IntGauge>) -> RequestBudget {
        let limit = limit.map(|l| l.clamp(1, Semaphore::MAX_PERMITS));
        RequestBudget {
            inner: Arc::new(BudgetInner {
                limit,
                permits: Semaphore::new(limit.unwrap_or(0)),
                used: AtomicUsize::new(0),
                gauge,
            }),
        }
    }

    pub fn limit(&self) -> Option<usize> {
        self.inner.limit
    }

    /// Bytes charged right now.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Bytes that can be charged without waiting.
    pub fn available(&self) -> usize {
        match self.inner.limit {
            Some(_) => self.inner.permits.available_permits(),
            None => usize::MAX,
        }
    }

    /// Charges `bytes` (at most the limit), waiting until the budget has room.
    pub async fn charge(&self, bytes: usize) -> Charge {
        let bytes = self.inner.limit.map_or(bytes, |limit| bytes.min(limit));
        if self.inner.limit.is_some() {
            // Bounded by MAX_READ at the call sites, so the u32 cannot overflow; the
            // semaphore is never closed.
            let n = u32::try_from(bytes).unwrap_or(u32::MAX);
            if let Ok(permit) = self.inner.permits.acquire_many(n).await {
                permit.forget();
            }
        }
        self.account(bytes as i64);
        Charge {
            budget: self.clone(),
            bytes,
        }
    }

    /// A charge of nothing, to merge others into.
    pub fn empty(&self) -> Charge {
        Charge {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn account(&self, delta: i64) {
        if delta >= 0 {
            self.inner.used.fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            self.inner
                .used
                .fetch_sub(delta.unsigned_abs() as usize, Ordering::Relaxed);
        }
        if let Some(gauge) = &self.inner.gauge {
            gauge.add(delta);
        }
    }

    fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        if self.inner.limit.is_some() {
            self.inner.permits.add_permits(bytes);
        }
        self.account(-(bytes as i64));
    }
}

/// Bytes charged to a [`RequestBudget`]; released when dropped.
pub struct Charge {
    budget: RequestBudget,
    bytes: usize,
}

impl Charge {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Moves `bytes` (at most all of this charge) into a new charge.
    pub fn split(&mut self, bytes: usize) -> Charge {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Charge {
            budget: self.budget.clone(),
            bytes,
        }
    }

    /// Takes over `other`'s bytes.
    pub fn merge(&mut self, mut other: Charge) {
        self.bytes += std::mem::take(&mut other.bytes);
    }

    /// Releases everything above `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.budget.release(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Charge({} bytes)", self.bytes)
    }
}

/// When a connection last did anything, and whether the broker is still preparing a
/// response for it; shared by its reader (which closes it when idle) and its writer.
///
/// A connection is idle when nothing was read, no response was written and no response
/// was being prepared for the idle timeout. A client that stops reading its responses
/// leaves the writer stuck and so, in time, counts as idle too.
pub struct Activity {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last byte read or response written.
    last_ms: AtomicU64,
    /// Responses whose handler is still working (a produce awaiting bookies, a long poll).
    preparing: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            preparing: AtomicUsize::new(0),
        })
    }

    /// Records activity now.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// The broker started waiting for a response to be ready.
    pub fn preparing_started(&self) {
        self.preparing.fetch_add(1, Ordering::Relaxed);
    }

    /// That response is ready.
    pub fn preparing_finished(&self) {
        self.preparing.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    pub fn preparing(&self) -> usize {
        self.preparing.load(Ordering::Relaxed)
    }

    /// Resolves once the connection has been idle for `idle`.
    pub async fn until_idle(&self, idle: Duration) {
        loop {
            tokio::time::sleep_until((self.last() + idle).into()).await;
            if self.preparing() > 0 {
                // Waiting for our own response is not idleness: count from now.
                self.touch();
            } else if self.last().elapsed() >= idle {
                return;
            }
        }
    }
}

/// Limits of a [`FrameReader`].
#[derive(Debug, Clone)]
pub struct FrameLimits {
    /// Largest frame accepted, without its 4-byte size.
    pub max_frame: usize,
    /// Close the connection when nothing was read or written and no response was being
    /// prepared for this long (`None`: never); see [`Activity`].
    pub idle_timeout: Option<Duration>,
    /// Close the connection when a frame is not complete this long after its first byte was
    /// available (`None`: never). Time spent waiting for the budget counts too, so frames
    /// stuck half-way cannot hold the budget forever.
    pub read_timeout: Option<Duration>,
}

/// One received frame and the budget it holds until dropped.
#[derive(Debug)]
pub struct Frame {
    pub bytes: Bytes,
    pub charge: Charge,
}

/// Reads frames from a client connection under a [`RequestBudget`]; see the module docs.
///
/// [`FrameReader::next_frame`] is cancel-safe: bytes already read stay buffered.
pub struct FrameReader {
    read: OwnedReadHalf,
    /// Bytes read but not yet returned as frames.
    buf: BytesMut,
    /// The budget `buf`'s bytes hold.
    charge: Charge,
    budget: RequestBudget,
    limits: FrameLimits,
    activity: Arc<Activity>,
    /// When the incomplete frame at the front of `buf` started to be waited for.
    started: Option<Instant>,
}

impl FrameReader {
    pub fn new(
        read: OwnedReadHalf,
        budget: RequestBudget,
        limits: FrameLimits,
        activity: Arc<Activity>,
    ) -> FrameReader {
        activity.touch();
        FrameReader {
            read,
            buf: BytesMut::new(),
            charge: budget.empty(),
            budget,
            limits,
            activity,
            started: None,
        }
    }

    /// Bytes read and not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Memory reserved for them (at most about twice `buffered`, plus one read).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The next frame: its bytes after the size prefix, and its charge.
    pub async fn next_frame(&mut self) -> Result<Frame, FrameError> {
        loop {
            if let Some(frame) = self.take_frame()? {
                return Ok(frame);
            }
            if self.buf.is_empty() {
                self.started = None;
                self.fill_idle().await?;
            } else {
                let started = *self.started.get_or_insert_with(Instant::now);
                self.fill_partial(started).await?;
            }
        }
    }

    fn claimed_size(&self) -> Option<i32> {
        let prefix: [u8; 4] = self.buf.get(..4)?.try_into().ok()?;
        Some(i32::from_be_bytes(prefix))
    }

    fn take_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(size) = self.claimed_size() else {
            return Ok(None);
        };
        if size < 0 || size as u64 > self.limits.max_frame as u64 {
            return Err(FrameError::TooLarge {
                size: size as u32 as u64,
                limit: self.limits.max_frame,
            });
        }
        let total = 4 + size as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let mut bytes = self.buf.split_to(total);
        bytes.advance(4);
        let charge = self.charge.split(total);
        if self.buf.is_empty() {
            // Let go of the allocation now shared with the frame, so a connection between
            // requests holds no buffer at all.
            self.buf = BytesMut::new();
        }
        self.started = None;
        Ok(Some(Frame {
            bytes: bytes.freeze(),
            charge,
        }))
    }

    /// Waits for the first bytes of a frame, closing the connection when it stays idle.
    async fn fill_idle(&mut self) -> Result<(), FrameError> {
        let Some(idle) = self.limits.idle_timeout else {
            return self.read_some().await;
        };
        let activity = self.activity.clone();
        tokio::select! {
            read = self.read_some() => read,
            _ = activity.until_idle(idle) => Err(FrameError::Idle(idle)),
        }
    }

    /// Reads more of a started frame, within the read timeout.
    async fn fill_partial(&mut self, started: Instant) -> Result<(), FrameError> {
        let Some(timeout) = self.limits.read_timeout else {
            return self.read_some().await;
        };
        match tokio::time::timeout_at((started + timeout).into(), self.read_some()).await {
            Ok(read) => read,
            Err(_) => Err(FrameError::ReadTimeout {
                timeout,
                received: self.buf.len(),
                expected: match self.claimed_size() {
                    Some(size) => (size as i64 + 4).to_string(),
                    None => "?".into(),
                },
            }),
        }
    }

    /// How much the next read may take: doubling with what is buffered, from [`MIN_READ`] to
    /// [`MAX_READ`], less when the budget is short (but at least [`MIN_READ`], so a frame
    /// keeps moving once room appears), never more than the whole budget.
    fn next_read_size(&self) -> usize {
        let want = self.buf.len().clamp(MIN_READ, MAX_READ);
        let want = want.min(self.budget.available().max(MIN_READ));
        want.min(self.budget.limit().unwrap_or(usize::MAX))
    }

    /// One read: waits until the socket has data, charges the budget (waiting while it is
    /// spent: back-pressure), then reads what is there. Cancel-safe: state changes only after
    /// the last await.
    async fn read_some(&mut self) -> Result<(), FrameError> {
        loop {
            self.read.readable().await?;
            let want = self.next_read_size();
            if self.budget.available() < want {
                // About to wait for the budget: first see whether the peer has gone, which
                // costs nothing to find out. Otherwise a client that left half-way would
                // hold its bytes until the read timeout, however short the budget.
                let mut probe = [0u8; 1];
                if self.read.peek(&mut probe).await? == 0 {
                    return Err(if self.buf.is_empty() {
                        FrameError::Closed
                    } else {
                        FrameError::Truncated
                    });
                }
            }
            let mut charge = self.budget.charge(want).await;
            self.buf.reserve(want);
            match self.read.try_read_buf(&mut (&mut self.buf).limit(want)) {
                Ok(0) if self.buf.is_empty() => return Err(FrameError::Closed),
                Ok(0) => return Err(FrameError::Truncated),
                Ok(n) => {
                    charge.shrink_to(n);
                    self.charge.merge(charge);
                    self.activity.touch();
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::tcp::OwnedWriteHalf;
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn reads_frames_and_refuses_huge_ones() {
        let mut input: &[u8] = &[0, 0, 0, 2, b'h', b'i', 0, 0, 0];
        let mut buf = BytesMut::new();
        assert_eq!(
            &read_frame(&mut input, &mut buf, 10).await.unwrap()[..],
            b"hi"
        );
        assert!(matches!(
            read_frame(&mut input, &mut buf, 10).await,
            Err(FrameError::Truncated)
        ));

        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut huge, &mut buf, 10).await,
            Err(FrameError::TooLarge { .. })
        ));
        let mut empty: &[u8] = &[];
        assert!(matches!(
            read_frame(&mut empty, &mut buf, 10).await,
            Err(FrameError::Closed)
        ));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(
            read_frame(&mut negative, &mut buf, 10).await,
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn read_frame_grows_with_the_bytes_not_the_claim() {
        // Claims 100 MiB, sends 10 bytes, ends.
        let mut input = vec![0x06, 0x40, 0, 0];
        input.extend_from_slice(&[7; 10]);
        let mut reader: &[u8] = &input;
        let mut buf = BytesMut::new();
        assert!(matches!(
            read_frame(&mut reader, &mut buf, 128 << 20).await,
            Err(FrameError::Truncated)
        ));
        assert_eq!(buf.len(), 10);
        assert!(
            buf.capacity() <= 2 * RPC_FIRST_RESERVE,
            "{}",
            buf.capacity()
        );

        // A large frame that does arrive is read whole, across many reads.
        let size = 5 * 1024 * 1024 + 3;
        let mut input = (size as u32).to_be_bytes().to_vec();
        input.extend((0..size).map(|i| i as u8));
        let mut reader: &[u8] = &input;
        let frame = read_frame(&mut reader, &mut buf, 128 << 20).await.unwrap();
        assert_eq!(&frame[..], &input[4..]);
    }

    /// The halves a test does not use; dropping a write half would shut it down.
    struct Unused(
        #[allow(dead_code)] OwnedWriteHalf,
        #[allow(dead_code)] OwnedReadHalf,
    );

    async fn pair(
        budget: &RequestBudget,
        limits: FrameLimits,
    ) -> (FrameReader, OwnedWriteHalf, Unused) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (read, server_write) = server.into_split();
        let (client_read, client_write) = client.into_split();
        (
            FrameReader::new(read, budget.clone(), limits, Activity::new()),
            client_write,
            Unused(server_write, client_read),
        )
    }

    fn limits() -> FrameLimits {
        FrameLimits {
            max_frame: 100 << 20,
            idle_timeout: None,
            read_timeout: None,
        }
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// Lets the reader take in whatever has arrived, then stops it.
    async fn drain(reader: &mut FrameReader) {
        let _ = tokio::time::timeout(Duration::from_millis(300), reader.next_frame()).await;
    }

    #[tokio::test]
    async fn pipelined_frames_hold_their_budget_until_dropped() {
        let budget = RequestBudget::new(Some(1 << 20), None);
        let (mut reader, mut client, _keep) = pair(&budget, limits()).await;
        let mut bytes = frame(b"one");
        bytes.extend(frame(b""));
        bytes.extend(frame(&[9; 100_000]));
        client.write_all(&bytes).await.unwrap();
        let one = reader.next_frame().await.unwrap();
        assert_eq!(&one.bytes[..], b"one");
        assert_eq!(one.charge.bytes(), 7);
        let empty = reader.next_frame().await.unwrap();
        assert!(empty.bytes.is_empty());
        let big = reader.next_frame().await.unwrap();
        assert_eq!(big.bytes.len(), 100_000);
        assert_eq!(budget.used(), bytes.len());
        assert_eq!(reader.buffered(), 0);
        drop((one, empty));
        assert_eq!(budget.used(), 100_004);
        drop(big);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_claimed_size_costs_only_the_bytes_that_arrive() {
        let budget = RequestBudget::new(Some(256 << 20), None);
        let (mut reader, mut client, _keep) = pair(&budget, limits()).await;
        client
            .write_all(&(100u32 << 20).to_be_bytes())
            .await
            .unwrap();
        client.write_all(&[1; 10_000]).await.unwrap();
        drain(&mut reader).await;
        assert_eq!(reader.buffered(), 10_004);
        assert_eq!(budget.used(), 10_004);
        assert!(
            reader.buffer_capacity() < 64 * 1024,
            "{}",
            reader.buffer_capacity()
        );
        // Feeding the rest completes the frame; the buffer only grew with the data.
        let rest = vec![2u8; (100 << 20) - 10_000];
        let writer = tokio::spawn(async move {
            client.write_all(&rest).await.unwrap();
            client
        });
        let frame = reader.next_frame().await.unwrap();
        assert_eq!(frame.bytes.len(), 100 << 20);
        assert_eq!(budget.used(), (100 << 20) + 4);
        drop(frame);
        assert_eq!(budget.used(), 0);
        drop(writer.await.unwrap());
        assert!(matches!(reader.next_frame().await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn a_spent_budget_stops_reading_until_bytes_are_released() {
        let budget = RequestBudget::new(Some(64 * 1024), None);
        let (mut hog, mut hog_client, keep_hog) = pair(&budget, limits()).await;
        // Part of a 1 MiB frame: the hog takes nearly all of the budget.
        hog_client
            .write_all(&(1u32 << 20).to_be_bytes())
            .await
            .unwrap();
        hog_client.write_all(&[0; 65_000]).await.unwrap();
        drain(&mut hog).await;
        assert_eq!(budget.used(), 65_004);
        assert_eq!(budget.available(), 64 * 1024 - 65_004);

        let (mut other, mut other_client, _keep_other) = pair(&budget, limits()).await;
        other_client.write_all(&frame(b"small")).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), other.next_frame())
                .await
                .is_err(),
            "read past the budget"
        );
        // The hog's client goes away: although the budget is short, the hog notices, its
        // bytes are released, and the small frame gets through.
        drop((hog_client, keep_hog));
        let gone = tokio::time::timeout(Duration::from_secs(20), hog.next_frame())
            .await
            .expect("hog sees the close");
        assert!(matches!(gone, Err(FrameError::Truncated)), "{gone:?}");
        drop(hog);
        let small = tokio::time::timeout(Duration::from_secs(20), other.next_frame())
            .await
            .expect("frame after release")
            .unwrap();
        assert_eq!(&small.bytes[..], b"small");
        assert_eq!(budget.used(), 9);
    }

    #[tokio::test]
    async fn frames_over_the_limit_are_refused_from_the_size_alone() {
        let budget = RequestBudget::new(Some(1 << 20), None);
        let limits = FrameLimits {
            max_frame: 1000,
            ..limits()
        };
        let (mut reader, mut client, _keep) = pair(&budget, limits.clone()).await;
        client.write_all(&1001u32.to_be_bytes()).await.unwrap();
        assert!(matches!(
            reader.next_frame().await,
            Err(FrameError::TooLarge { size: 1001, .. })
        ));
        let (mut reader, mut client, _keep) = pair(&budget, limits).await;
        client.write_all(&[0xff, 0xff, 0xff, 0xf0]).await.unwrap();
        assert!(matches!(
            reader.next_frame().await,
            Err(FrameError::TooLarge { .. })
        ));
        // Half a frame, then the client leaves.
        let (mut reader, mut client, _keep) = pair(&budget, self::limits()).await;
        client.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
        client.shutdown().await.unwrap();
        assert!(matches!(
            reader.next_frame().await,
            Err(FrameError::Truncated)
        ));
    }

    #[tokio::test]
    async fn an_unfinished_frame_times_out_even_while_trickling() {
        let budget = RequestBudget::new(Some(1 << 20), None);
        let limits = FrameLimits {
            read_timeout: Some(Duration::from_millis(500)),
            ..limits()
        };
        let (mut reader, mut client, _keep) = pair(&budget, limits).await;
        let trickle = tokio::spawn(async move {
            client.write_all(&1000u32.to_be_bytes()).await.unwrap();
            for _ in 0..1000 {
                if client.write_all(&[0]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let result = tokio::time::timeout(Duration::from_secs(20), reader.next_frame())
            .await
            .expect("timed out by the reader");
        assert!(
            matches!(&result, Err(FrameError::ReadTimeout { expected, .. }) if expected == "1004"),
            "{result:?}"
        );
        drop(reader);
        trickle.abort();
    }

    #[tokio::test]
    async fn idle_connections_close_unless_a_response_is_being_prepared() {
        let budget = RequestBudget::new(None, None);
        let limits = FrameLimits {
            idle_timeout: Some(Duration::from_millis(200)),
            ..limits()
        };
        let (mut reader, mut client, _keep) = pair(&budget, limits).await;
        client.write_all(&frame(b"req")).await.unwrap();
        let _req = reader.next_frame().await.unwrap();
        reader.activity.preparing_started();
        // Our response is being prepared: not idle however long it takes.
        assert!(
            tokio::time::timeout(Duration::from_millis(800), reader.next_frame())
                .await
                .is_err(),
            "closed while a response was being prepared"
        );
        reader.activity.preparing_finished();
        let result = tokio::time::timeout(Duration::from_secs(20), reader.next_frame())
            .await
            .expect("closed for idleness");
        assert!(matches!(result, Err(FrameError::Idle(_))), "{result:?}");
    }
}
