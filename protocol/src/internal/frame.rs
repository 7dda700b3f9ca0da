//! The internal RPC frame.
//!
//! ```text
//! u32 length            bytes that follow this field
//! u8  kind              0 = request, 1 = response
//! u16 method            method id (see the service modules)
//! u8  status            request: 0; response: see [`Status`]
//! u64 correlation id    chosen by the caller, echoed by the response
//! ..  body              the method's request or response message, or (status != Ok) a
//!                       UTF-8 error text
//! ```
//!
//! Correlation ids let one connection carry many calls at once, answered in any order.
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::wire::DecodeError;

/// Bytes of a frame header after the length prefix.
pub const HEADER_LEN: usize = 1 + 2 + 1 + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Request = 0,
    Response = 1,
}

/// Outcome of a call, carried in the response frame. Method-level errors (a fenced ledger, a
/// failed compare-and-set) are part of the method's response message; a status other than
/// `Ok` means the call itself could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    /// The server does not know this method id (an older peer).
    UnknownMethod = 1,
    /// The request body did not decode.
    BadRequest = 2,
    /// The server is overloaded or shutting down; retry later or elsewhere.
    Unavailable = 3,
    /// The handler failed; the body says why.
    Internal = 4,
}

impl Status {
    fn from_u8(v: u8) -> Result<Status, DecodeError> {
        Ok(match v {
            0 => Status::Ok,
            1 => Status::UnknownMethod,
            2 => Status::BadRequest,
            3 => Status::Unavailable,
            4 => Status::Internal,
            other => {
                return Err(DecodeError::Invalid {
                    what: "status",
                    detail: other.to_string(),
                })
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: FrameKind,
    pub method: u16,
    pub status: Status,
    pub correlation_id: u64,
    pub body: Bytes,
}

impl Frame {
    /// Appends the frame, length prefix included.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(4 + HEADER_LEN + self.body.len());
        buf.put_u32((HEADER_LEN + self.body.len()) as u32);
        buf.put_u8(self.kind as u8);
        buf.put_u16(self.method);
        buf.put_u8(self.status as u8);
        buf.put_u64(self.correlation_id);
        buf.put_slice(&self.body);
    }

    /// Decodes one frame from `payload`, the bytes after the length prefix.
    pub fn decode(mut payload: Bytes) -> Result<Frame, DecodeError> {
        if payload.len() < HEADER_LEN {
            return Err(DecodeError::Truncated {
                what: "frame header",
                needed: HEADER_LEN - payload.len(),
            });
        }
        let kind = match payload.get_u8() {
            0 => FrameKind::Request,
            1 => FrameKind::Response,
            other => {
                return Err(DecodeError::Invalid {
                    what: "frame kind",
                    detail: other.to_string(),
                })
            }
        };
        let method = payload.get_u16();
        let status = Status::from_u8(payload.get_u8())?;
        let correlation_id = payload.get_u64();
        Ok(Frame {
            kind,
            method,
            status,
            correlation_id,
            body: payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip() {
        let frame = Frame {
            kind: FrameKind::Response,
            method: 42,
            status: Status::Internal,
            correlation_id: 9,
            body: Bytes::from_static(b"boom"),
        };
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        let mut bytes = buf.freeze();
        let len = bytes.get_u32() as usize;
        assert_eq!(len, bytes.len());
        let back = Frame::decode(bytes).unwrap();
        assert_eq!(back.kind, FrameKind::Response);
        assert_eq!(back.method, 42);
        assert_eq!(back.status, Status::Internal);
        assert_eq!(back.correlation_id, 9);
        assert_eq!(&back.body[..], b"boom");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Frame::decode(Bytes::from_static(&[9; 3])).is_err());
        assert!(Frame::decode(Bytes::from_static(&[7; HEADER_LEN])).is_err());
    }
}
