//! Whole-chunk XOR decoding for the read path: [`decode_xor`] appends every sample of a chunk
//! to a vector in one tight loop.
//!
//! The bit stream is read by absolute bit position: each read loads the 8 bytes at the
//! position's byte (big endian) and shifts out the bits already consumed, which leaves at least
//! 57 valid bits — enough for a timestamp's control bits and delta-of-delta (up to 24 bits) or
//! a value's control bits, window and significant bits (up to 57) in one load; only 64-bit
//! fields take two. No per-bit loop, no refill bookkeeping: the position is the whole state.
//!
//! One sample reads at most 4 + 64 bits of timestamp and 2 + 5 + 6 + 64 bits of value, so its
//! loads stay within [`SAMPLE_REACH`] bytes of the byte it starts in. Samples that start at
//! least that far from the end of the chunk are decoded straight from the chunk; the rest
//! (at most [`SAMPLE_REACH`] bytes) are decoded from a zero-padded copy on the stack, checking
//! after each sample that it did not read into the padding. So a truncated or corrupt chunk
//! ends in an error after the samples that were whole, exactly where [`super::XorIterator`]
//! stops, and never reads out of bounds.

use super::{ChunkError, HEADER};
use crate::encoding::{unzigzag, uvarint};

/// Bytes a sample's loads can reach past the byte its first bit is in: a value's 64-bit field
/// ends within 4 + 64 + 13 + 64 bits of the sample's start and its second load starts 32
/// bits before that end and reads 8 bytes (23 bytes at most), rounded up with margin.
const SAMPLE_REACH: usize = 32;

/// The tail buffer: the last `SAMPLE_REACH` bytes at most, then zero padding for the loads of
/// one more sample.
const TAIL: usize = 2 * SAMPLE_REACH;

/// The decoder's state between samples.
#[derive(Debug, Clone, Copy)]
struct State {
    t: i64,
    t_delta: u64,
    v: u64,
    /// Trailing zeros and significant bits of the current XOR window (64 bits before one is
    /// read, as Prometheus starts with a zero window).
    trailing: u32,
    sig: u32,
}

/// The 64 bits from bit `bit` of `buf` on, most significant first; at least 57 of them are
/// data (the low `bit % 8` bits are zero). Callers keep `bit / 8 + 8 <= buf.len()`.
#[inline(always)]
fn peek(buf: &[u8], bit: usize) -> u64 {
    let i = bit >> 3;
    let b: [u8; 8] = buf[i..i + 8].try_into().expect("BUG: 8-byte slice");
    u64::from_be_bytes(b) << (bit & 7)
}

/// The `n` (1..=64) bits from bit `bit` on.
#[inline(always)]
fn read_bits(buf: &[u8], bit: usize, n: u32) -> u64 {
    if n <= 57 {
        peek(buf, bit) >> (64 - n)
    } else {
        let hi = peek(buf, bit) >> 32;
        let lo = peek(buf, bit + 32) >> (96 - n);
        (hi << (n - 32)) | lo
    }
}

/// Decodes one value (`0` same; `10` + bits in the current window; `11` + 5 bits leading
/// zeros + 6 bits significant-bit count + bits) at `bit`; returns the position after it.
/// Plain branches: on real data the control bits mostly repeat, and branch prediction lets
/// the next sample's loads start early (a branch-free version, bound by the dependency chain
/// from one field's length to the next field's load, measured 1.5-2x slower).
#[inline(always)]
fn read_value(buf: &[u8], bit: usize, st: &mut State) -> usize {
    read_value_from(peek(buf, bit), 57, buf, bit, st)
}

/// [`read_value`] with the word at `bit` already loaded: `w` holds the bits from `bit` on,
/// `valid` (at least 13) of them data.
#[inline(always)]
fn read_value_from(w: u64, valid: u32, buf: &[u8], mut bit: usize, st: &mut State) -> usize {
    if w >> 63 == 0 {
        return bit + 1;
    }
    let (field, head) = if w & (1 << 62) == 0 {
        (w << 2, 2)
    } else {
        let leading = ((w >> 57) & 0x1f) as u32;
        let mut sig = ((w >> 51) & 0x3f) as u32;
        if sig == 0 {
            sig = 64;
        }
        // compat: Prometheus computes trailing = 64 - leading - sig; a sum above 64 (only in
        // damaged chunks) leaves no trailing zeros and the bits after the leading ones.
        st.trailing = (64 - leading).saturating_sub(sig);
        st.sig = 64 - leading - st.trailing;
        (w << 13, 13)
    };
    bit += head as usize;
    let bits = if st.sig + head <= valid {
        field >> (64 - st.sig)
    } else {
        read_bits(buf, bit, st.sig)
    };
    st.v ^= bits << st.trailing;
    bit + st.sig as usize
}

/// Decodes one delta of delta (`0`; `10` + 14 bits; `110` + 17; `1110` + 20; `1111` + 64) at
/// `bit`; returns it and the position after it.
/// `w` holds the bits from `bit` on (at least 57 of them data).
#[inline(always)]
fn read_dod_from(w: u64, buf: &[u8], bit: usize) -> (i64, usize) {
    if w >> 63 == 0 {
        return (0, bit + 1);
    }
    let (prefix, size) = match w.leading_ones() {
        1 => (2, 14),
        2 => (3, 17),
        3 => (4, 20),
        _ => return (read_bits(buf, bit + 4, 64) as i64, bit + 68),
    };
    let mut v = (w << prefix) >> (64 - size);
    // compat: Prometheus sign-extends only values strictly above 2^(size-1).
    if v > 1 << (size - 1) {
        v = v.wrapping_sub(1 << size);
    }
    (v as i64, bit + (prefix + size) as usize)
}

/// Decodes samples from `buf` starting at `bit` while `left > 0` and a sample starts at or
/// before `stop`. `TAIL`: `buf` is the padded tail, and a sample that ends after `end` (the
/// last bit of real data) is an error; elsewhere `stop` keeps every sample inside the data.
/// `VALUE_ONLY` decodes the second sample, whose timestamp was read before.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run<const VALUE_ONLY: bool, const TAIL: bool>(
    buf: &[u8],
    mut bit: usize,
    stop: usize,
    end: usize,
    st: &mut State,
    left: &mut u16,
    out: &mut Vec<(i64, f64)>,
) -> Result<usize, ChunkError> {
    // The state in locals for the loop (registers), written back once.
    let mut s = *st;
    let mut n = *left;
    let mut res = Ok(());
    while n > 0 && bit <= stop {
        let mut next = s;
        if VALUE_ONLY {
            bit = read_value(buf, bit, &mut next);
        } else {
            let w = peek(buf, bit);
            let head = w >> 61;
            if head == 0b010 && next.sig <= 54 {
                // The usual sample of a regular scrape of a counter: `0` (same interval),
                // `10` (value in the current window) and its bits, all in this load.
                next.t = next.t.wrapping_add(next.t_delta as i64);
                next.v ^= ((w << 3) >> (64 - next.sig)) << next.trailing;
                bit += 3 + next.sig as usize;
            } else if w >> 63 == 0 {
                // Same interval; the value's control bits (and often its bits) are in this
                // load too.
                next.t = next.t.wrapping_add(next.t_delta as i64);
                bit = read_value_from(w << 1, 56, buf, bit + 1, &mut next);
            } else {
                let (dod, b) = read_dod_from(w, buf, bit);
                next.t_delta = (next.t_delta as i64).wrapping_add(dod) as u64;
                next.t = next.t.wrapping_add(next.t_delta as i64);
                bit = read_value(buf, b, &mut next);
            }
        }
        if TAIL && bit > end {
            res = Err(ChunkError::Truncated);
            break;
        }
        s = next;
        n -= 1;
        out.push((s.t, f64::from_bits(s.v)));
    }
    *st = s;
    *left = n;
    res.map(|()| bit)
}

/// [`run`] over the whole of `data` from `bit`: straight from `data` while a sample's loads
/// stay inside it, then from a zero-padded copy of the rest.
#[inline(always)]
fn run_all<const VALUE_ONLY: bool>(
    data: &[u8],
    mut bit: usize,
    st: &mut State,
    left: &mut u16,
    out: &mut Vec<(i64, f64)>,
) -> Result<usize, ChunkError> {
    let end = data.len() * 8;
    if let Some(safe) = data.len().checked_sub(SAMPLE_REACH) {
        bit = run::<VALUE_ONLY, false>(data, bit, safe * 8, end, st, left, out)?;
    }
    if *left == 0 {
        return Ok(bit);
    }
    let from = (bit / 8).min(data.len());
    let rest = &data[from..];
    if rest.len() > SAMPLE_REACH {
        // Only when the loop above stopped early, which it does not; stay safe regardless.
        return Err(ChunkError::Truncated);
    }
    let mut tail = [0u8; TAIL];
    tail[..rest.len()].copy_from_slice(rest);
    let local = bit - from * 8;
    let local =
        run::<VALUE_ONLY, true>(&tail, local, rest.len() * 8, rest.len() * 8, st, left, out)?;
    if *left > 0 {
        // The loop stopped because the next sample would start past the data.
        return Err(ChunkError::Truncated);
    }
    Ok(from * 8 + local)
}

/// Appends every sample of the XOR chunk `chunk` (sample-count header included) to `out`.
/// On a truncated or damaged chunk, the samples before the damage are appended (the same ones
/// [`super::XorIterator`] returns) and the error is returned.
pub fn decode_xor(chunk: &[u8], out: &mut Vec<(i64, f64)>) -> Result<(), ChunkError> {
    if chunk.len() < HEADER {
        return Err(ChunkError::TooShort);
    }
    let total = u16::from_be_bytes([chunk[0], chunk[1]]);
    if total == 0 {
        return Ok(());
    }
    let data = &chunk[HEADER..];
    out.reserve(usize::from(total));
    // The first sample and the second timestamp are byte aligned: varint, 64 bits, uvarint.
    let (u, n) = uvarint(data).ok_or(ChunkError::Truncated)?;
    let v = data
        .get(n..n + 8)
        .map(|b| u64::from_be_bytes(b.try_into().expect("BUG: 8-byte slice")))
        .ok_or(ChunkError::Truncated)?;
    let mut st = State {
        t: unzigzag(u),
        t_delta: 0,
        v,
        trailing: 0,
        sig: 64,
    };
    out.push((st.t, f64::from_bits(v)));
    let mut left = total - 1;
    if left == 0 {
        return Ok(());
    }
    let pos = n + 8;
    let (delta, n) = data
        .get(pos..)
        .and_then(uvarint)
        .ok_or(ChunkError::Truncated)?;
    st.t_delta = delta;
    st.t = st.t.wrapping_add(delta as i64);
    let mut one = 1;
    let bit = run_all::<true>(data, (pos + n) * 8, &mut st, &mut one, out)?;
    left -= 1;
    run_all::<false>(data, bit, &mut st, &mut left, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{XorAppender, XorIterator};
    use super::*;
    use proptest::prelude::*;

    /// What the reference iterator yields: the samples and whether it ended in an error.
    fn reference(chunk: &[u8]) -> (Vec<(i64, u64)>, Option<ChunkError>) {
        match XorIterator::new(chunk) {
            Ok(mut it) => {
                let s = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
                (s, it.err())
            }
            Err(e) => (Vec::new(), Some(e)),
        }
    }

    fn fast(chunk: &[u8]) -> (Vec<(i64, u64)>, Option<ChunkError>) {
        let mut out = vec![(-1, 0.5)];
        let r = decode_xor(chunk, &mut out);
        assert_eq!(out[0], (-1, 0.5), "appends, never overwrites");
        let s = out[1..].iter().map(|&(t, v)| (t, v.to_bits())).collect();
        (s, r.err())
    }

    #[track_caller]
    fn same(chunk: &[u8]) {
        assert_eq!(fast(chunk), reference(chunk), "chunk {chunk:02x?}");
    }

    fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut a = XorAppender::new();
        for &(t, v) in samples {
            assert!(a.append(t, v));
        }
        a.into_bytes()
    }

    /// Samples whose values and time gaps exercise every encoding bucket: equal values,
    /// reused and new XOR windows of every width, NaN and staleness markers, and
    /// delta-of-deltas in each size class including the asymmetric edges.
    fn every_bucket() -> Vec<(i64, f64)> {
        let mut out = vec![(1_700_000_000_000i64, 0.0f64)];
        let dods = [
            0i64,
            1,
            -1,
            8191,
            8192,
            -8191,
            -8192,
            65535,
            65536,
            -65535,
            -65536,
            524_287,
            524_288,
            -524_287,
            -524_288,
            1 << 30,
            -(1 << 30),
            1 << 40,
        ];
        let mut delta = 15_000i64;
        for k in 0..400usize {
            let dod = dods[k % dods.len()];
            delta = (delta + dod).max(1);
            let t = out.last().unwrap().0 + delta;
            let v = match k % 11 {
                0 => f64::NAN,
                1 => model::STALE_NAN,
                2 | 3 => out.last().unwrap().1,
                4 => f64::from_bits(1u64 << (k % 64)),
                5 => f64::from_bits(u64::MAX >> (k % 64)),
                6 => -(k as f64),
                7 => f64::INFINITY,
                8 => k as f64 * 0.1,
                9 => f64::from_bits(0x8000_0000_0000_0001),
                _ => 1e300 / (k as f64 + 1.0),
            };
            out.push((t, v));
        }
        out
    }

    #[test]
    fn equals_the_iterator_on_every_bucket_and_each_truncation() {
        let b = encode(&every_bucket());
        let (got, err) = fast(&b);
        assert_eq!(err, None);
        assert_eq!(got.len(), 401);
        same(&b);
        for cut in 0..b.len() {
            same(&b[..cut]);
        }
    }

    #[test]
    fn small_and_empty_chunks() {
        same(&[]);
        same(&[0]);
        same(&[0, 0]);
        for n in 0..40 {
            let samples: Vec<_> = (0..n).map(|i| (i * 15_000, (i * 3) as f64)).collect();
            let b = encode(&samples);
            assert_eq!(fast(&b).0.len(), n as usize);
            same(&b);
        }
    }

    #[test]
    fn a_header_claiming_more_samples_errors() {
        let mut b = encode(&[(1, 1.0), (2, 2.0), (3, 3.0)]);
        b[1] = 200;
        let (got, err) = fast(&b);
        assert_eq!(err, Some(ChunkError::Truncated));
        assert!(got.len() >= 3 && got.len() < 200);
        same(&b);
    }

    fn samples() -> impl Strategy<Value = Vec<(i64, f64)>> {
        let gaps = prop::collection::vec(
            prop_oneof![
                Just(15_000i64),
                14_990i64..15_010,
                1i64..100,
                1i64..(1 << 21),
                1i64..(1 << 40)
            ],
            0..300,
        );
        let vals = prop::collection::vec(
            prop_oneof![
                any::<f64>(),
                (0i64..1000).prop_map(|i| i as f64),
                (0i64..1 << 40).prop_map(|i| i as f64 / 4.0),
                Just(f64::NAN),
                Just(model::STALE_NAN),
                any::<u64>().prop_map(f64::from_bits),
            ],
            301,
        );
        (-(1i64 << 50)..(1i64 << 50), gaps, vals, any::<bool>()).prop_map(
            |(start, gaps, vals, repeat)| {
                let mut t = start;
                let mut out = vec![(t, vals[0])];
                for (i, g) in gaps.into_iter().enumerate() {
                    t += g;
                    // Runs of equal values, as gauges that do not change have.
                    let v = if repeat && i % 3 != 0 {
                        out[i].1
                    } else {
                        vals[i + 1]
                    };
                    out.push((t, v));
                }
                out
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn equals_the_iterator(s in samples()) {
            let b = encode(&s);
            let (got, err) = fast(&b);
            prop_assert_eq!(err, None);
            let want: Vec<_> = s.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!((got, err), reference(&b));
        }

        #[test]
        fn damaged_chunks_equal_the_iterator(
            s in samples(),
            cut in any::<prop::sample::Index>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
        ) {
            let mut b = encode(&s);
            for (at, bit) in flips {
                let i = at.index(b.len());
                b[i] ^= 1 << bit;
            }
            let n = cut.index(b.len() + 1);
            prop_assert_eq!(fast(&b[..n]), reference(&b[..n]));
            prop_assert_eq!(fast(&b), reference(&b));
        }

        #[test]
        fn garbage_equals_the_iterator(b in prop::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(fast(&b), reference(&b));
        }
    }
}
