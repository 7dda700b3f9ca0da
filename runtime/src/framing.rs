//! Length-prefixed frames (`u32`/`i32` big-endian size, then the bytes), as both Kafka and the
//! internal RPC use them.
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

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
}

/// Reads one frame into `buf` (reusing its allocation) and returns the frame's bytes.
///
/// The size is checked against `limit` before anything is allocated, so a peer that claims
/// 2 GiB costs nothing.
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
    read_exact(reader, &mut size[1..]).await?;
    let size = i32::from_be_bytes(size);
    if size < 0 || size as u64 > limit as u64 {
        return Err(FrameError::TooLarge {
            size: size as u32 as u64,
            limit,
        });
    }
    let size = size as usize;
    buf.clear();
    buf.reserve(size);
    // SAFETY-free zero fill: resize is cheap next to the read and keeps this code safe.
    buf.resize(size, 0);
    read_exact(reader, &mut buf[..]).await?;
    Ok(buf.split().freeze())
}

async fn read_exact<R: AsyncRead + Unpin>(
    reader: &mut R,
    out: &mut [u8],
) -> Result<(), FrameError> {
    match reader.read_exact(out).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
