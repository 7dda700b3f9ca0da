//! The binary primitives shared by every hand-written encoding in this crate (raft commands,
//! stored records, snapshots): big-endian integers and `u32`-length-prefixed byte strings.
//! Decoding is total: truncated or malformed input is an error, never a panic, and a corrupt
//! length cannot trigger a huge allocation.
use bytes::BufMut;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("unsupported {what} format version {version}")]
    UnsupportedVersion { what: &'static str, version: u8 },
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

pub(crate) fn put_u8(buf: &mut Vec<u8>, v: u8) {
    buf.put_u8(v);
}

pub(crate) fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.put_u64(v);
}

/// Writes `b` prefixed by its length as `u32`. Callers bound sizes well below 4 GiB (keys
/// and values are validated at the API), so the cast cannot truncate.
pub(crate) fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.put_u32(b.len() as u32);
    buf.put_slice(b);
}

pub(crate) fn put_opt_u64(buf: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => buf.put_u8(0),
        Some(v) => {
            buf.put_u8(1);
            buf.put_u64(v);
        }
    }
}

/// A cursor over an input slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, CodecError> {
        let b = self.bytes(what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| CodecError::InvalidUtf8(what))
    }

    pub(crate) fn opt_u64(&mut self, what: &'static str) -> Result<Option<u64>, CodecError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.u64(what)?)),
            tag => Err(CodecError::UnknownTag { what, tag }),
        }
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Checks that the input was consumed entirely.
    pub(crate) fn finish(self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes(self.buf.len()))
        }
    }

    /// A capacity hint for `count` items of at least `min_size` bytes each that cannot exceed
    /// what the remaining input could hold, so a corrupt count cannot exhaust memory.
    pub(crate) fn capacity_hint(&self, count: u64, min_size: usize) -> usize {
        let fits = self.buf.len() / min_size.max(1);
        usize::try_from(count).unwrap_or(usize::MAX).min(fits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_truncation() {
        let mut buf = Vec::new();
        put_u8(&mut buf, 7);
        put_u64(&mut buf, u64::MAX - 1);
        put_bytes(&mut buf, b"hello");
        put_opt_u64(&mut buf, Some(9));
        put_opt_u64(&mut buf, None);
        let mut r = Reader::new(&buf);
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u64("b").unwrap(), u64::MAX - 1);
        assert_eq!(r.string("c").unwrap(), "hello");
        assert_eq!(r.opt_u64("d").unwrap(), Some(9));
        assert_eq!(r.opt_u64("e").unwrap(), None);
        r.finish().unwrap();

        for cut in 0..buf.len() {
            let mut r = Reader::new(&buf[..cut]);
            let res = (|| -> Result<(), CodecError> {
                r.u8("a")?;
                r.u64("b")?;
                r.string("c")?;
                r.opt_u64("d")?;
                r.opt_u64("e")?;
                Ok(())
            })();
            assert!(res.is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn huge_length_is_an_error_not_an_allocation() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 1, 2]);
        assert!(r.bytes("x").is_err());
        let r = Reader::new(&[0; 16]);
        assert_eq!(r.capacity_hint(u64::MAX, 4), 4);
    }
}
