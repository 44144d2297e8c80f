//! Byte-level helpers shared by the on-disk formats: Go-compatible varints (`encoding/binary`'s
//! `PutUvarint`/`PutVarint`) and a bounds-checked decoder that never panics on bad input.

/// The longest a 64-bit varint can be.
pub const MAX_VARINT_LEN: usize = 10;

/// Appends `v` as an unsigned LEB128 varint (Go's `binary.PutUvarint`).
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zig-zag encoded (Go's `binary.PutVarint`).
#[inline]
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Decodes an unsigned varint from the front of `b`: the value and the bytes used, or `None`
/// when `b` ends early or the varint overflows 64 bits (as Go's `binary.Uvarint` rejects).
#[inline]
pub fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    let mut shift = 0u32;
    for (i, &byte) in b.iter().enumerate().take(MAX_VARINT_LEN) {
        if byte < 0x80 {
            if i == MAX_VARINT_LEN - 1 && byte > 1 {
                return None;
            }
            return Some((v | (u64::from(byte) << shift), i + 1));
        }
        v |= u64::from(byte & 0x7f) << shift;
        shift += 7;
    }
    None
}

/// A cursor over a record or file region. Every read is bounds-checked; a failed read returns
/// `None` and the caller turns that into a corruption error with its own context.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    b: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Decoder { b }
    }

    pub fn remaining(&self) -> usize {
        self.b.len()
    }

    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    pub fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.b.split_first()?;
        self.b = rest;
        Some(first)
    }

    pub fn be_u64(&mut self) -> Option<u64> {
        let bytes = self.bytes(8)?;
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }

    pub fn be_u32(&mut self) -> Option<u32> {
        let bytes = self.bytes(4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }

    pub fn uvarint(&mut self) -> Option<u64> {
        let (v, n) = uvarint(self.b)?;
        self.b = &self.b[n..];
        Some(v)
    }

    pub fn varint(&mut self) -> Option<i64> {
        self.uvarint().map(unzigzag)
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Some(head)
    }

    /// A uvarint length followed by that many bytes of UTF-8.
    pub fn uvarint_str(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.uvarint()?).ok()?;
        std::str::from_utf8(self.bytes(n)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_compatible_examples() {
        // Values from Go's encoding/binary documentation and tests.
        let mut b = Vec::new();
        put_uvarint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        b.clear();
        put_varint(&mut b, -1);
        assert_eq!(b, [0x01]);
        b.clear();
        put_varint(&mut b, 1);
        assert_eq!(b, [0x02]);
        b.clear();
        put_varint(&mut b, i64::MIN);
        assert_eq!(b.len(), 10);
        assert_eq!(uvarint(&[0x80; 10]), None, "overflow is rejected");
        assert_eq!(uvarint(&[0x80]), None, "truncated is rejected");
    }

    proptest! {
        #[test]
        fn varint_round_trip(v: i64, u: u64) {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            put_uvarint(&mut b, u);
            let mut d = Decoder::new(&b);
            prop_assert_eq!(d.varint(), Some(v));
            prop_assert_eq!(d.uvarint(), Some(u));
            prop_assert!(d.is_empty());
        }

        #[test]
        fn decoder_never_panics(b: Vec<u8>) {
            let mut d = Decoder::new(&b);
            while d.uvarint_str().is_some() {}
            let mut d = Decoder::new(&b);
            while d.be_u64().is_some() && d.varint().is_some() {}
        }
    }
}
