//! A small, explicit binary codec for internal messages.
//!
//! Integers are big-endian and fixed width; byte strings and UTF-8 strings carry a `u32`
//! length; `Option<T>` is a `u8` tag (0 = none, 1 = some) followed by `T`; `Vec<T>` is a `u32`
//! count followed by the items. Structs are their fields in order (see [`wire_struct!`]).
//! Decoding never panics: every read checks what is left and returns [`DecodeError`].
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message truncated: needed {needed} more bytes while reading {what}")]
    Truncated { what: &'static str, needed: usize },
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

/// A value with a binary encoding.
pub trait Wire: Sized {
    fn encode(&self, buf: &mut BytesMut);
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError>;

    /// Decodes a field that an older peer may not have sent: absent means default.
    fn decode_trailing(buf: &mut Bytes) -> Result<Self, DecodeError>
    where
        Self: Default,
    {
        if buf.has_remaining() {
            Self::decode(buf)
        } else {
            Ok(Self::default())
        }
    }

    fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// An RPC method: its id on the wire and its request and response messages.
pub trait Method {
    const ID: u16;
    const NAME: &'static str;
    type Request: Wire + Send + 'static;
    type Response: Wire + Send + 'static;
}

fn need(buf: &Bytes, n: usize, what: &'static str) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError::Truncated {
            what,
            needed: n - buf.remaining(),
        })
    } else {
        Ok(())
    }
}

macro_rules! wire_int {
    ($($t:ty => $put:ident, $get:ident;)*) => {$(
        impl Wire for $t {
            fn encode(&self, buf: &mut BytesMut) {
                buf.$put(*self);
            }
            fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
                need(buf, std::mem::size_of::<$t>(), stringify!($t))?;
                Ok(buf.$get())
            }
        }
    )*};
}

wire_int! {
    u8 => put_u8, get_u8;
    u16 => put_u16, get_u16;
    u32 => put_u32, get_u32;
    u64 => put_u64, get_u64;
    i16 => put_i16, get_i16;
    i32 => put_i32, get_i32;
    i64 => put_i64, get_i64;
}

impl Wire for bool {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(*self as u8);
    }
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        match u8::decode(buf)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::Invalid {
                what: "bool",
                detail: format!("byte {other}"),
            }),
        }
    }
}

impl Wire for Bytes {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32(self.len() as u32);
        buf.put_slice(self);
    }
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        let len = u32::decode(buf)? as usize;
        need(buf, len, "bytes")?;
        Ok(buf.split_to(len))
    }
}

impl Wire for String {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32(self.len() as u32);
        buf.put_slice(self.as_bytes());
    }
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        let raw = Bytes::decode(buf)?;
        String::from_utf8(raw.to_vec()).map_err(|e| DecodeError::Invalid {
            what: "string",
            detail: e.to_string(),
        })
    }
}

impl<T: Wire> Wire for Option<T> {
    fn encode(&self, buf: &mut BytesMut) {
        match self {
            None => buf.put_u8(0),
            Some(v) => {
                buf.put_u8(1);
                v.encode(buf);
            }
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        match u8::decode(buf)? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(buf)?)),
            other => Err(DecodeError::Invalid {
                what: "option tag",
                detail: format!("{other}"),
            }),
        }
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32(self.len() as u32);
        for item in self {
            item.encode(buf);
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        let count = u32::decode(buf)? as usize;
        // Every item takes at least one byte, so a count larger than what is left is a lie:
        // refuse it before allocating.
        need(buf, count, "vec items")?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(T::decode(buf)?);
        }
        Ok(items)
    }
}

/// Fixed-size byte arrays (ids, UUIDs): the bytes, no length.
impl<const N: usize> Wire for [u8; N] {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(self);
    }
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        need(buf, N, "byte array")?;
        let mut out = [0u8; N];
        buf.copy_to_slice(&mut out);
        Ok(out)
    }
}

impl Wire for () {
    fn encode(&self, _: &mut BytesMut) {}
    fn decode(_: &mut Bytes) -> Result<Self, DecodeError> {
        Ok(())
    }
}

/// Declares a struct and its [`Wire`] encoding: the fields in declaration order. Fields after
/// a `#[trailing]`-free list are required; fields listed after `;` are trailing (added in a
/// later version) and default when an older peer did not send them.
#[macro_export]
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
            $(; $( $(#[$tmeta:meta])* pub $tfield:ident : $tty:ty ),* $(,)? )?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            $($( $(#[$tmeta])* pub $tfield: $tty, )*)?
        }

        impl $crate::internal::wire::Wire for $name {
            fn encode(&self, buf: &mut ::bytes::BytesMut) {
                $( $crate::internal::wire::Wire::encode(&self.$field, buf); )*
                $($( $crate::internal::wire::Wire::encode(&self.$tfield, buf); )*)?
            }
            fn decode(buf: &mut ::bytes::Bytes) -> Result<Self, $crate::internal::wire::DecodeError> {
                Ok(Self {
                    $( $field: $crate::internal::wire::Wire::decode(buf)?, )*
                    $($( $tfield: $crate::internal::wire::Wire::decode_trailing(buf)?, )*)?
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::wire_struct! {
        #[derive(Debug, PartialEq, Default)]
        pub struct V1 { pub a: u64, pub b: Bytes }
    }
    crate::wire_struct! {
        #[derive(Debug, PartialEq, Default)]
        pub struct V2 { pub a: u64, pub b: Bytes; pub c: Option<String> }
    }

    #[test]
    fn round_trip_and_version_skew() {
        let v2 = V2 {
            a: 7,
            b: Bytes::from_static(b"xy"),
            c: Some("z".into()),
        };
        let mut bytes = v2.to_bytes();
        // An old reader ignores the trailing field.
        let v1 = V1::decode(&mut bytes.clone()).unwrap();
        assert_eq!(
            v1,
            V1 {
                a: 7,
                b: Bytes::from_static(b"xy")
            }
        );
        assert_eq!(V2::decode(&mut bytes).unwrap(), v2);
        // A new reader defaults a field an old writer did not send.
        let mut old = v1.to_bytes();
        assert_eq!(V2::decode(&mut old).unwrap().c, None);
    }

    #[test]
    fn lies_about_lengths_are_errors() {
        let mut huge_vec = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1]);
        assert!(matches!(
            Vec::<u64>::decode(&mut huge_vec),
            Err(DecodeError::Truncated { .. })
        ));
        let mut short = Bytes::from_static(&[0, 0, 0, 9, b'a']);
        assert!(Bytes::decode(&mut short).is_err());
        let mut bad_tag = Bytes::from_static(&[7]);
        assert!(Option::<u8>::decode(&mut bad_tag).is_err());
    }
}
