//! XOR float chunks, bit for bit the layout of Prometheus's `chunkenc` encoding 1 (see
//! `docs/format/head_chunks.md` and Prometheus's `tsdb/docs/format/chunks.md`).
//!
//! ```text
//! ┌──────────────────────┬───────────────┬───────────────┬──────────────────────┬─────────────────────┐
//! │ num_samples <u16 BE> │ ts_0 <varint> │ v_0 <64 bits> │ ts_1_delta <uvarint> │ v_1 <varbit_xor> …  │
//! └──────────────────────┴───────────────┴───────────────┴──────────────────────┴─────────────────────┘
//! then per sample: ts_n_dod <varbit_ts>, v_n <varbit_xor>; zero bits pad the last byte.
//! ```
//!
//! Bits are written most significant first. `varbit_ts` buckets a delta-of-delta as `0` (zero),
//! `10`+14 bits, `110`+17 bits, `1110`+20 bits, else `1111`+64 bits; `varbit_xor` is Gorilla's
//! XOR with a leading/trailing-zero window (`0` same value; `10` reuse the window; `11` + 5 bits
//! leading + 6 bits significant-bit count + the bits).

mod decode;

pub use decode::decode_xor;

/// The chunk encodings Prometheus defines; only [`Encoding::Xor`] is produced here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    None = 0,
    Xor = 1,
    Histogram = 2,
    FloatHistogram = 3,
}

impl Encoding {
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Encoding::None),
            1 => Some(Encoding::Xor),
            2 => Some(Encoding::Histogram),
            3 => Some(Encoding::FloatHistogram),
            _ => None,
        }
    }
}

/// Bytes of the sample-count header in front of every chunk.
const HEADER: usize = 2;
/// Marks "no leading/trailing window chosen yet" (Prometheus uses 0xff the same way).
const NO_WINDOW: u8 = 0xff;
/// The default growth step of a chunk's buffer. Small steps keep the slack of ~100k open head
/// chunks low (doubling wastes ~25% on average); see [`XorAppender::with_growth`].
const GROW_STEP: usize = 32;

/// Writes samples into a new XOR chunk. Timestamps must strictly increase (the head checks).
#[derive(Debug, Clone)]
pub struct XorAppender {
    buf: Vec<u8>,
    /// Unused low bits of the last byte of `buf`; 0 means the stream is byte aligned.
    free: u8,
    leading: u8,
    trailing: u8,
    /// Bytes added to the buffer each time it is full.
    step: u16,
    t: i64,
    t_delta: u64,
    v: u64,
}

impl Default for XorAppender {
    fn default() -> Self {
        Self::new()
    }
}

impl XorAppender {
    pub fn new() -> Self {
        Self::with_growth(GROW_STEP, GROW_STEP)
    }

    /// Empties the chunk to start a new one, keeping the buffer. A buffer much larger than the
    /// chunk it held is trimmed, so one unusual chunk does not pin memory.
    pub fn reset(&mut self) {
        let len = self.buf.len();
        if self.buf.capacity() > len + len / 2 + 64 {
            self.buf.shrink_to(len + usize::from(self.step));
        }
        self.buf.clear();
        self.buf.extend_from_slice(&[0, 0]);
        self.free = 0;
        self.leading = NO_WINDOW;
        self.trailing = 0;
        self.t = 0;
        self.t_delta = 0;
        self.v = 0;
    }

    /// The last sample appended: time and value bits (zeros while the chunk is empty).
    pub fn last(&self) -> (i64, u64) {
        (self.t, self.v)
    }

    /// A new chunk whose buffer starts with room for `cap` bytes and grows by `step` bytes.
    pub fn with_growth(cap: usize, step: usize) -> Self {
        let step = step.clamp(1, usize::from(u16::MAX)) as u16;
        let mut buf = Vec::with_capacity(cap.max(HEADER));
        buf.extend_from_slice(&[0, 0]);
        XorAppender {
            buf,
            free: 0,
            leading: NO_WINDOW,
            trailing: 0,
            step,
            t: 0,
            t_delta: 0,
            v: 0,
        }
    }

    /// Continues an existing chunk, restoring the appender's state by decoding it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ChunkError> {
        let mut it = XorIterator::new(bytes)?;
        while it.next().is_some() {}
        if let Some(e) = it.err() {
            return Err(e);
        }
        let used_bits = it.br.consumed_bits();
        let len = HEADER + used_bits.div_ceil(8);
        let mut buf = Vec::with_capacity(len + GROW_STEP);
        buf.extend_from_slice(&bytes[..len]);
        // Clear padding bits so later writes can OR into the last byte.
        let free = ((8 - used_bits % 8) % 8) as u8;
        if free > 0
            && let Some(last) = buf.last_mut()
        {
            *last &= !((1u8 << free) - 1);
        }
        Ok(XorAppender {
            buf,
            free,
            // A chunk whose values never changed has no window yet, as for a new appender.
            leading: if it.window_set { it.leading } else { NO_WINDOW },
            trailing: it.trailing,
            step: GROW_STEP as u16,
            t: it.t,
            t_delta: it.t_delta,
            v: it.v,
        })
    }

    pub fn num_samples(&self) -> u16 {
        u16::from_be_bytes([self.buf[0], self.buf[1]])
    }

    /// The encoded chunk (header included), valid after every append.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Heap bytes held, for memory accounting.
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends one sample; returns false (and changes nothing) when the chunk already holds
    /// `u16::MAX` samples, the most its header can count.
    pub fn append(&mut self, t: i64, v: f64) -> bool {
        let num = self.num_samples();
        if num == u16::MAX {
            return false;
        }
        let vbits = v.to_bits();
        match num {
            0 => {
                let mut tmp = Vec::with_capacity(crate::encoding::MAX_VARINT_LEN);
                crate::encoding::put_varint(&mut tmp, t);
                for b in tmp {
                    self.write_bits(u64::from(b), 8);
                }
                self.write_bits(vbits, 64);
            }
            1 => {
                let delta = t.wrapping_sub(self.t) as u64;
                let mut tmp = Vec::with_capacity(crate::encoding::MAX_VARINT_LEN);
                crate::encoding::put_uvarint(&mut tmp, delta);
                for b in tmp {
                    self.write_bits(u64::from(b), 8);
                }
                self.write_value(vbits);
                self.t_delta = delta;
            }
            _ => {
                let delta = t.wrapping_sub(self.t) as u64;
                let dod = delta.wrapping_sub(self.t_delta) as i64;
                self.write_dod(dod);
                self.write_value(vbits);
                self.t_delta = delta;
            }
        }
        self.t = t;
        self.v = vbits;
        let [hi, lo] = (num + 1).to_be_bytes();
        self.buf[0] = hi;
        self.buf[1] = lo;
        true
    }

    fn write_dod(&mut self, dod: i64) {
        // compat: Prometheus's buckets accept +2^(n-1) but not -2^(n-1), since the reader
        // sign-extends only values strictly above 2^(n-1).
        let fits = |n: u32| -((1i64 << (n - 1)) - 1) <= dod && dod <= 1i64 << (n - 1);
        if dod == 0 {
            self.write_bits(0, 1);
        } else if fits(14) {
            self.write_bits(0b10, 2);
            self.write_bits(dod as u64, 14);
        } else if fits(17) {
            self.write_bits(0b110, 3);
            self.write_bits(dod as u64, 17);
        } else if fits(20) {
            self.write_bits(0b1110, 4);
            self.write_bits(dod as u64, 20);
        } else {
            self.write_bits(0b1111, 4);
            self.write_bits(dod as u64, 64);
        }
    }

    fn write_value(&mut self, vbits: u64) {
        let delta = vbits ^ self.v;
        if delta == 0 {
            self.write_bits(0, 1);
            return;
        }
        self.write_bits(1, 1);
        // compat: Prometheus caps leading zeros at 31 because the field has 5 bits.
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != NO_WINDOW && leading >= self.leading && trailing >= self.trailing {
            self.write_bits(0, 1);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.write_bits(delta >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.write_bits(1, 1);
        self.write_bits(u64::from(leading), 5);
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        // compat: 64 significant bits do not fit in 6 bits and are written as 0; 0 significant
        // bits never occur because an unchanged value takes the `0` branch above.
        self.write_bits(u64::from(sig) & 0x3f, 6);
        self.write_bits(delta >> trailing, sig);
    }

    /// Writes the low `n` bits of `v` (n <= 64), most significant first.
    #[inline]
    fn write_bits(&mut self, v: u64, mut n: u32) {
        while n > 0 {
            if self.free == 0 {
                if self.buf.len() == self.buf.capacity() {
                    self.buf.reserve_exact(usize::from(self.step));
                }
                self.buf.push(0);
                self.free = 8;
            }
            let take = n.min(u32::from(self.free));
            let bits = ((v >> (n - take)) & ((1u64 << take) - 1)) as u8;
            let last = self.buf.len() - 1;
            self.buf[last] |= bits << (u32::from(self.free) - take);
            self.free -= take as u8;
            n -= take;
        }
    }
}

/// Why a chunk could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk shorter than its header")]
    TooShort,
    #[error("chunk data ends before its declared sample count")]
    Truncated,
}

/// Reads bits most significant first, refilling a 64-bit accumulator a byte at a time.
#[derive(Debug, Clone)]
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
}

#[inline]
fn shl(x: u64, n: u32) -> u64 {
    if n >= 64 { 0 } else { x << n }
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            acc: 0,
            n: 0,
        }
    }

    fn consumed_bits(&self) -> usize {
        self.pos * 8 - self.n as usize
    }

    #[inline]
    fn refill(&mut self) {
        // Whole bytes that fit behind the `n` buffered bits, from one 8-byte load when there
        // are 8 bytes left (the usual case), else byte by byte.
        let take = (64 - self.n) / 8;
        if take > 0
            && let Some(word) = self.data.get(self.pos..self.pos + 8)
        {
            let mut b = [0u8; 8];
            b.copy_from_slice(word);
            let word = u64::from_be_bytes(b);
            let bits = take * 8;
            let chunk = if bits == 64 {
                word
            } else {
                word >> (64 - bits)
            };
            self.acc |= chunk << (64 - self.n - bits);
            self.n += bits;
            self.pos += take as usize;
            return;
        }
        while self.n <= 56 && self.pos < self.data.len() {
            self.acc |= u64::from(self.data[self.pos]) << (56 - self.n);
            self.n += 8;
            self.pos += 1;
        }
    }

    #[inline(always)]
    fn read_bits(&mut self, nbits: u32) -> Option<u64> {
        debug_assert!((1..=64).contains(&nbits));
        if self.n < nbits {
            self.refill();
        }
        if self.n >= nbits {
            let v = self.acc >> (64 - nbits);
            self.acc = shl(self.acc, nbits);
            self.n -= nbits;
            return Some(v);
        }
        // Only 58..=64-bit reads get here: take what is buffered, refill, take the rest.
        let have = self.n;
        let hi = if have == 0 {
            0
        } else {
            self.acc >> (64 - have)
        };
        let need = nbits - have;
        self.acc = 0;
        self.n = 0;
        self.refill();
        if self.n < need {
            return None;
        }
        let lo = self.acc >> (64 - need);
        self.acc = shl(self.acc, need);
        self.n -= need;
        Some(shl(hi, need) | lo)
    }

    #[inline]
    fn read_bit(&mut self) -> Option<bool> {
        self.read_bits(1).map(|b| b == 1)
    }

    /// The next `k` (1..=8) bits without consuming them, when that many are left.
    #[inline(always)]
    fn peek(&mut self, k: u32) -> Option<u64> {
        if self.n < k {
            self.refill();
            if self.n < k {
                return None;
            }
        }
        Some(self.acc >> (64 - k))
    }

    /// Drops `k` bits that [`BitReader::peek`] showed.
    #[inline(always)]
    fn skip(&mut self, k: u32) {
        self.acc = shl(self.acc, k);
        self.n -= k;
    }

    fn read_uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..crate::encoding::MAX_VARINT_LEN {
            let b = self.read_bits(8)?;
            if b < 0x80 {
                if i == crate::encoding::MAX_VARINT_LEN - 1 && b > 1 {
                    return None;
                }
                return Some(v | (b << (7 * i)));
            }
            v |= (b & 0x7f) << (7 * i);
        }
        None
    }
}

/// Decodes an XOR chunk. Stops at the declared sample count; a chunk that ends early or has
/// garbage stops the iterator and leaves [`XorIterator::err`] set, never a panic.
#[derive(Debug, Clone)]
pub struct XorIterator<'a> {
    br: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    t_delta: u64,
    v: u64,
    leading: u8,
    trailing: u8,
    window_set: bool,
    err: Option<ChunkError>,
}

impl<'a> XorIterator<'a> {
    /// `bytes` is a whole chunk, sample-count header included.
    pub fn new(bytes: &'a [u8]) -> Result<Self, ChunkError> {
        if bytes.len() < HEADER {
            return Err(ChunkError::TooShort);
        }
        Ok(XorIterator {
            br: BitReader::new(&bytes[HEADER..]),
            total: u16::from_be_bytes([bytes[0], bytes[1]]),
            read: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
            window_set: false,
            err: None,
        })
    }

    /// The sample count from the chunk header.
    pub fn num_samples(&self) -> u16 {
        self.total
    }

    pub fn err(&self) -> Option<ChunkError> {
        self.err
    }

    /// The sample last returned by `next`.
    pub fn at(&self) -> (i64, f64) {
        (self.t, f64::from_bits(self.v))
    }

    fn fail(&mut self) -> Option<(i64, f64)> {
        self.err = Some(ChunkError::Truncated);
        self.read = self.total;
        None
    }

    #[inline(always)]
    fn read_value(&mut self) -> Option<()> {
        // The two control bits at once when both are there ('0': same value; '10': reuse
        // the window; '11': new window).
        let new_window = match self.br.peek(2) {
            Some(c) if c & 0b10 == 0 => {
                self.br.skip(1);
                return Some(());
            }
            Some(c) => {
                self.br.skip(2);
                c & 1 == 1
            }
            None => {
                if !self.br.read_bit()? {
                    return Some(());
                }
                self.br.read_bit()?
            }
        };
        if new_window {
            self.leading = self.br.read_bits(5)? as u8;
            let mut sig = self.br.read_bits(6)? as u8;
            if sig == 0 {
                sig = 64;
            }
            self.trailing = 64u8.saturating_sub(self.leading).saturating_sub(sig);
            self.window_set = true;
        }
        let sig = 64u32.saturating_sub(u32::from(self.leading) + u32::from(self.trailing));
        if sig == 0 {
            return None;
        }
        let bits = self.br.read_bits(sig)?;
        self.v ^= shl(bits, u32::from(self.trailing));
        Some(())
    }

    #[inline(always)]
    fn read_dod(&mut self) -> Option<i64> {
        // The prefix is up to four bits: as many ones as the size class, then a zero (none
        // after four ones). Counted from one peek when four bits are there.
        let ones = match self.br.peek(4) {
            Some(p) => {
                let ones = ((p << 60).leading_ones()).min(4);
                self.br.skip(if ones == 4 { 4 } else { ones + 1 });
                ones
            }
            None => {
                let mut ones = 0;
                while ones < 4 && self.br.read_bit()? {
                    ones += 1;
                }
                ones
            }
        };
        let size = match ones {
            0 => return Some(0),
            1 => 14,
            2 => 17,
            3 => 20,
            _ => return self.br.read_bits(64).map(|b| b as i64),
        };
        let mut bits = self.br.read_bits(size)?;
        if bits > 1 << (size - 1) {
            bits = bits.wrapping_sub(1 << size);
        }
        Some(bits as i64)
    }

    #[inline(always)]
    fn step(&mut self) -> Option<()> {
        match self.read {
            0 => {
                let u = self.br.read_uvarint()?;
                self.t = crate::encoding::unzigzag(u);
                self.v = self.br.read_bits(64)?;
            }
            1 => {
                self.t_delta = self.br.read_uvarint()?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
            _ => {
                let dod = self.read_dod()?;
                self.t_delta = (self.t_delta as i64).wrapping_add(dod) as u64;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
        }
        Some(())
    }
}

impl Iterator for XorIterator<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        if self.read >= self.total {
            return None;
        }
        if self.step().is_none() {
            return self.fail();
        }
        self.read += 1;
        Some(self.at())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut a = XorAppender::new();
        for &(t, v) in samples {
            assert!(a.append(t, v));
        }
        a.into_bytes()
    }

    fn decode(b: &[u8]) -> Vec<(i64, u64)> {
        let mut it = XorIterator::new(b).unwrap();
        let out: Vec<_> = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
        assert_eq!(it.err(), None);
        out
    }

    #[test]
    fn golden_bytes_small_series() {
        // Hand-derived from the layout in the module docs:
        // header 0x0004; ts_0=1000 as zig-zag varint (2000 = d0 0f); v_0=1.0 raw;
        // ts_1 delta 1000 as uvarint (e8 07); v_1=2.0: xor 0x7ff0.. -> '1','1', leading 1 (5b),
        // sigbits 11 (6b), bits 0b11111111111; ts_2 dod 0 -> '0'; v_2=2.0 -> '0';
        // ts_3 dod +10 -> '10' + 14 bits; v_3=3.0: xor 0x0008.. has leading 12 >= 1 but trailing
        // 51 < 52, so a new window: '11', leading 12, sigbits 1.
        let b = encode(&[(1000, 1.0), (2000, 2.0), (3000, 2.0), (4010, 3.0)]);
        let want: Vec<u8> = vec![
            0x00,
            0x04, // num samples
            0xd0,
            0x0f, // ts_0 varint
            0x3f,
            0xf0,
            0,
            0,
            0,
            0,
            0,
            0, // v_0
            0xe8,
            0x07, // ts_1 delta
            // '11' '00001' '001011' '11111111111' '0' '0' '10' '00000000001010' '1' '1' '01100' '000001' '1'
            // = 56 bits, so no padding.
            0b1100_0010,
            0b0101_1111,
            0b1111_1111,
            0b0010_0000,
            0b0000_0010,
            0b1011_0110,
            0b0000_0011,
        ];
        assert_eq!(b, want, "{:02x?}", b);
        assert_eq!(
            decode(&b),
            vec![
                (1000, 1f64.to_bits()),
                (2000, 2f64.to_bits()),
                (3000, 2f64.to_bits()),
                (4010, 3f64.to_bits())
            ]
        );
    }

    #[test]
    fn dod_bucket_edges() {
        // Exercise each bucket boundary, including the asymmetric ones.
        let mut t = 0i64;
        let mut samples = vec![(0, 0.0), (10, 0.0)];
        let mut delta = 10i64;
        for dod in [
            0,
            1,
            -1,
            8191,
            -8191,
            8192,
            -8192,
            65536,
            -65535,
            -65536,
            524_288,
            -524_288,
            1 << 40,
            -(1 << 40),
        ] {
            delta += dod;
            t = samples.last().unwrap().0;
            samples.push((t + delta, dod as f64));
        }
        let _ = t;
        let b = encode(&samples);
        let got: Vec<_> = decode(&b)
            .into_iter()
            .map(|(t, v)| (t, f64::from_bits(v)))
            .collect();
        assert_eq!(got, samples);
    }

    #[test]
    fn special_values_round_trip() {
        let vals = [
            0.0,
            -0.0,
            f64::NAN,
            model::STALE_NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            1e300,
            -1.5,
        ];
        let samples: Vec<_> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 * 15_000, v))
            .collect();
        let b = encode(&samples);
        let got = decode(&b);
        let want: Vec<_> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(got, want);
        assert!(model::is_stale_nan(f64::from_bits(got[3].1)));
    }

    #[test]
    fn truncated_and_garbage_inputs_error() {
        let b = encode(&[(1, 1.0), (2, 2.0), (3, 7.5), (100, -3.0)]);
        assert_eq!(XorIterator::new(&b[..1]).err(), Some(ChunkError::TooShort));
        for cut in HEADER..b.len() - 1 {
            let mut it = XorIterator::new(&b[..cut]).unwrap();
            let n = it.by_ref().count();
            assert!(n < 4, "cut {cut} decoded {n}");
            assert_eq!(it.err(), Some(ChunkError::Truncated));
        }
        let mut garbage = vec![0xff, 0xff];
        garbage.extend(std::iter::repeat_n(0xab, 40));
        let mut it = XorIterator::new(&garbage).unwrap();
        while it.next().is_some() {}
        assert!(it.err().is_some());
    }

    #[test]
    fn continue_existing_chunk() {
        let samples: Vec<_> = (0..50)
            .map(|i| (i * 1000 + (i % 3), (i * i) as f64 * 0.25))
            .collect();
        let full = encode(&samples);
        for split in 0..samples.len() {
            let part = encode(&samples[..split]);
            let mut a = XorAppender::from_bytes(&part).unwrap();
            for &(t, v) in &samples[split..] {
                a.append(t, v);
            }
            assert_eq!(a.bytes(), &full[..], "split at {split}");
        }
    }

    fn sample_strategy() -> impl Strategy<Value = Vec<(i64, f64)>> {
        let start = -(1i64 << 50)..(1i64 << 50);
        let gaps = prop::collection::vec(
            prop_oneof![Just(15_000i64), 1i64..100, 1i64..100_000, 1i64..(1 << 40)],
            0..300,
        );
        let vals = prop::collection::vec(
            prop_oneof![
                any::<f64>(),
                (0i64..1000).prop_map(|i| i as f64),
                Just(model::STALE_NAN),
                any::<u64>().prop_map(f64::from_bits),
            ],
            301,
        );
        (start, gaps, vals).prop_map(|(start, gaps, vals)| {
            let mut t = start;
            let mut out = vec![(t, vals[0])];
            for (i, g) in gaps.into_iter().enumerate() {
                t += g;
                out.push((t, vals[i + 1]));
            }
            out
        })
    }

    proptest! {
        #[test]
        fn round_trip(samples in sample_strategy()) {
            let b = encode(&samples);
            let got = decode(&b);
            let want: Vec<_> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn garbage_never_panics(b in prop::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(mut it) = XorIterator::new(&b) {
                while it.next().is_some() {}
            }
            let _ = XorAppender::from_bytes(&b);
        }
    }
}
