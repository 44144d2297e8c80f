//! Just enough protobuf (proto3 wire format) for Alertmanager's `silencepb` and `nflogpb`
//! messages, which are both our snapshot format and Alertmanager's gossip payloads. See
//! `docs/format/silences-nflog.md` for the message layouts.
//!
//! Writers omit fields holding their default value, as proto3 encoders do; readers skip unknown
//! fields and reject truncated or malformed input with an error, never a panic.

use crate::time::Time;

/// Malformed protobuf input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("truncated protobuf message")]
    Truncated,
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    #[error("unsupported protobuf wire type {0}")]
    WireType(u8),
    #[error("field {field} has wire type {got}, want {want}")]
    WrongType { field: u32, got: u8, want: u8 },
    #[error("invalid UTF-8 in string field {0}")]
    Utf8(u32),
    #[error("timestamp out of range")]
    Timestamp,
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
}

pub const WIRE_VARINT: u8 = 0;
pub const WIRE_FIXED64: u8 = 1;
pub const WIRE_LEN: u8 = 2;
pub const WIRE_FIXED32: u8 = 5;

/// Largest single message accepted by [`read_delimited`].
pub const MAX_MESSAGE: usize = 32 << 20;

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

pub fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_key(out, field, WIRE_VARINT);
        put_varint(out, v);
    }
}

pub fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        put_key(out, field, WIRE_LEN);
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

/// An embedded message; written even when empty (a present message differs from an absent one).
pub fn put_message(out: &mut Vec<u8>, field: u32, f: impl FnOnce(&mut Vec<u8>)) {
    let mut buf = Vec::new();
    f(&mut buf);
    put_key(out, field, WIRE_LEN);
    put_varint(out, buf.len() as u64);
    out.extend_from_slice(&buf);
}

/// `repeated uint64` in proto3's packed encoding.
pub fn put_packed_uint(out: &mut Vec<u8>, field: u32, vs: &[u64]) {
    if vs.is_empty() {
        return;
    }
    let mut buf = Vec::with_capacity(vs.len() * 9);
    for v in vs {
        put_varint(&mut buf, *v);
    }
    put_bytes(out, field, &buf);
}

/// `google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2; }`
pub fn put_timestamp(out: &mut Vec<u8>, field: u32, t: Time) {
    let nanos = t.unix_nanos();
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let sub = nanos.rem_euclid(1_000_000_000) as u64;
    put_message(out, field, |b| {
        put_uint(b, 1, secs as u64);
        put_uint(b, 2, sub);
    });
}

/// A length-prefixed message, as Go's `pbutil.WriteDelimited` writes.
pub fn put_delimited(out: &mut Vec<u8>, msg: &[u8]) {
    put_varint(out, msg.len() as u64);
    out.extend_from_slice(msg);
}

pub fn read_varint(buf: &mut &[u8]) -> Result<u64, ProtoError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or(ProtoError::Truncated)?;
        *buf = rest;
        if i == 9 && b > 1 {
            return Err(ProtoError::VarintOverflow);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ProtoError::VarintOverflow)
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], ProtoError> {
    if buf.len() < n {
        return Err(ProtoError::Truncated);
    }
    let (a, b) = buf.split_at(n);
    *buf = b;
    Ok(a)
}

/// One field of a message.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed(u64),
}

impl<'a> Value<'a> {
    fn wire(&self) -> u8 {
        match self {
            Value::Varint(_) => WIRE_VARINT,
            Value::Len(_) => WIRE_LEN,
            Value::Fixed(_) => WIRE_FIXED64,
        }
    }

    pub fn uint(self, field: u32) -> Result<u64, ProtoError> {
        match self {
            Value::Varint(v) => Ok(v),
            other => Err(ProtoError::WrongType {
                field,
                got: other.wire(),
                want: WIRE_VARINT,
            }),
        }
    }

    pub fn bytes(self, field: u32) -> Result<&'a [u8], ProtoError> {
        match self {
            Value::Len(b) => Ok(b),
            other => Err(ProtoError::WrongType {
                field,
                got: other.wire(),
                want: WIRE_LEN,
            }),
        }
    }

    pub fn string(self, field: u32) -> Result<String, ProtoError> {
        let b = self.bytes(field)?;
        String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Utf8(field))
    }

    pub fn timestamp(self, field: u32) -> Result<Time, ProtoError> {
        let (mut secs, mut nanos) = (0i64, 0i64);
        for_each_field(self.bytes(field)?, |f, v| {
            match f {
                1 => secs = v.uint(f)? as i64,
                2 => nanos = i64::from(v.uint(f)? as i32),
                _ => {}
            }
            Ok(())
        })?;
        let total = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        jiff::Timestamp::from_nanosecond(total)
            .map(Time::from_timestamp)
            .map_err(|_| ProtoError::Timestamp)
    }

    /// Packed or unpacked `repeated uint64`, appended to `out`.
    pub fn uints_into(self, field: u32, out: &mut Vec<u64>) -> Result<(), ProtoError> {
        match self {
            Value::Varint(v) => out.push(v),
            Value::Len(mut b) => {
                while !b.is_empty() {
                    out.push(read_varint(&mut b)?);
                }
            }
            other => {
                return Err(ProtoError::WrongType {
                    field,
                    got: other.wire(),
                    want: WIRE_LEN,
                });
            }
        }
        Ok(())
    }
}

/// Calls `f(field, value)` for each field of a message.
pub fn for_each_field<'a>(
    mut buf: &'a [u8],
    mut f: impl FnMut(u32, Value<'a>) -> Result<(), ProtoError>,
) -> Result<(), ProtoError> {
    while !buf.is_empty() {
        let key = read_varint(&mut buf)?;
        let field = u32::try_from(key >> 3).map_err(|_| ProtoError::Truncated)?;
        let v = match (key & 7) as u8 {
            WIRE_VARINT => Value::Varint(read_varint(&mut buf)?),
            WIRE_FIXED64 => {
                let b = take(&mut buf, 8)?;
                Value::Fixed(u64::from_le_bytes(
                    b.try_into().map_err(|_| ProtoError::Truncated)?,
                ))
            }
            WIRE_LEN => {
                let n =
                    usize::try_from(read_varint(&mut buf)?).map_err(|_| ProtoError::Truncated)?;
                Value::Len(take(&mut buf, n)?)
            }
            WIRE_FIXED32 => {
                let b = take(&mut buf, 4)?;
                Value::Fixed(u64::from(u32::from_le_bytes(
                    b.try_into().map_err(|_| ProtoError::Truncated)?,
                )))
            }
            w => return Err(ProtoError::WireType(w)),
        };
        f(field, v)?;
    }
    Ok(())
}

/// Splits a stream of length-prefixed messages.
pub fn read_delimited(mut buf: &[u8]) -> Result<Vec<&[u8]>, ProtoError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let n = usize::try_from(read_varint(&mut buf)?).map_err(|_| ProtoError::Truncated)?;
        if n > MAX_MESSAGE {
            return Err(ProtoError::TooLarge {
                len: n,
                limit: MAX_MESSAGE,
            });
        }
        out.push(take(&mut buf, n)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(v in any::<u64>()) {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut s = b.as_slice();
            prop_assert_eq!(read_varint(&mut s).unwrap(), v);
            prop_assert!(s.is_empty());
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read_delimited(&b);
            let _ = for_each_field(&b, |_, _| Ok(()));
        }
    }

    #[test]
    fn timestamps_round_trip() {
        let t = Time::parse("2024-06-19T10:00:00.123456789Z").unwrap();
        let mut b = Vec::new();
        put_timestamp(&mut b, 5, t);
        let mut got = None;
        for_each_field(&b, |f, v| {
            got = Some((f, v.timestamp(f)?));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, Some((5, t)));
    }

    #[test]
    fn truncation_is_an_error() {
        assert_eq!(read_delimited(&[5, 1, 2]), Err(ProtoError::Truncated));
        assert_eq!(
            for_each_field(&[0x0a, 3, 1], |_, _| Ok(())),
            Err(ProtoError::Truncated)
        );
    }
}
