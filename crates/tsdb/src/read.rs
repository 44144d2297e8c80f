//! Sample iterators shared by the block and head readers.
//!
//! [`ChunkSeqIter`] reads a series' chunks one at a time, opening each only when reached, and
//! decodes a whole XOR chunk per step into a small buffer ([`decode_xor`]: one tight loop per
//! chunk instead of a decoder call per sample; a seek inside a chunk is a binary search). [`ChainIter`] reads the
//! parts of one series from non-overlapping sources (blocks in time order, then the head) one
//! after the other, without a per-sample merge. [`QueryLive`] counts what a query holds
//! (series and open iterators), so tests can check that reading many blocks stays bounded.
//! [`limited`] cuts a querier's series to the select's limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use model::Timestamp;
use storage::{Result, SampleIterator, Series, SeriesSet};

use crate::block::tombstones::is_deleted;
use crate::chunkenc::{ChunkError, decode_xor};

/// A querier's series as the [`SeriesSet`] a select returns, cut to `limit` series (0: all;
/// `SelectHints::limit`).
pub(crate) fn limited<'a>(
    set: impl Iterator<Item = Result<Box<dyn Series>>> + Send + 'a,
    limit: usize,
) -> SeriesSet<'a> {
    match limit {
        0 => Box::new(set),
        n => Box::new(set.take(n)),
    }
}

/// Live query objects of one database: selected series not yet dropped, and sample iterators
/// not yet dropped.
#[derive(Debug, Default)]
pub(crate) struct QueryLive {
    series: AtomicUsize,
    iters: AtomicUsize,
}

impl QueryLive {
    pub(crate) fn series(&self) -> usize {
        self.series.load(Ordering::Relaxed)
    }

    pub(crate) fn iters(&self) -> usize {
        self.iters.load(Ordering::Relaxed)
    }
}

/// Held by a selected series; counts it in [`QueryLive`] until dropped.
pub(crate) struct SeriesGuard(Arc<QueryLive>);

impl SeriesGuard {
    pub(crate) fn new(live: &Arc<QueryLive>) -> Self {
        live.series.fetch_add(1, Ordering::Relaxed);
        SeriesGuard(live.clone())
    }

    pub(crate) fn live(&self) -> &QueryLive {
        &self.0
    }
}

impl Drop for SeriesGuard {
    fn drop(&mut self) {
        self.0.series.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Held by a sample iterator; counts it in [`QueryLive`] until dropped.
pub(crate) struct IterGuard<'a>(&'a QueryLive);

impl<'a> IterGuard<'a> {
    pub(crate) fn new(live: &'a QueryLive) -> Self {
        live.iters.fetch_add(1, Ordering::Relaxed);
        IterGuard(live)
    }
}

impl Drop for IterGuard<'_> {
    fn drop(&mut self) {
        self.0.iters.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The chunks of one series, in time order, opened by index.
pub(crate) trait ChunkList<'a> {
    fn len(&self) -> usize;
    /// Timestamp of chunk `i`'s last sample.
    fn maxt(&self, i: usize) -> i64;
    /// The XOR bytes of chunk `i` (sample-count header included), or `None` when it cannot be
    /// read (the implementation reports why).
    fn bytes(&self, i: usize) -> Option<&'a [u8]>;
}

/// Samples of a [`ChunkList`] within `[mint, maxt]`, minus deleted intervals.
pub(crate) struct ChunkSeqIter<'a, L> {
    list: L,
    next_chunk: usize,
    /// The decoded samples of the current chunk that are in range; `pos` is the next to return.
    buf: Vec<(Timestamp, f64)>,
    pos: usize,
    mint: i64,
    maxt: i64,
    deleted: &'a [(i64, i64)],
    /// No chunk after the buffered one can hold samples in range.
    done: bool,
    /// A chunk with samples at or after `mint` was read, so every later chunk's samples are
    /// in range from below.
    past_mint: bool,
    _live: IterGuard<'a>,
}

impl<'a, L: ChunkList<'a>> ChunkSeqIter<'a, L> {
    pub(crate) fn new(
        list: L,
        (mint, maxt): (i64, i64),
        deleted: &'a [(i64, i64)],
        live: &'a QueryLive,
    ) -> Self {
        ChunkSeqIter {
            list,
            next_chunk: 0,
            buf: Vec::new(),
            pos: 0,
            mint,
            maxt,
            deleted,
            done: mint > maxt,
            past_mint: false,
            _live: IterGuard::new(live),
        }
    }

    /// Decodes the next readable chunk with samples in range into the buffer; false at the end.
    fn fill(&mut self) -> bool {
        self.buf.clear();
        self.pos = 0;
        while !self.done && self.next_chunk < self.list.len() {
            let i = self.next_chunk;
            self.next_chunk += 1;
            let Some(bytes) = self.list.bytes(i) else {
                continue;
            };
            // A damaged chunk keeps the samples before the damage, as a sample iterator would.
            match decode_xor(bytes, &mut self.buf) {
                Ok(()) => {}
                Err(e @ ChunkError::TooShort) => {
                    tracing::error!(error = %e, "skipping undecodable chunk");
                }
                Err(e) => tracing::error!(error = %e, "chunk ended early"),
            }
            self.trim();
            if !self.buf.is_empty() {
                self.past_mint = true;
                return true;
            }
        }
        self.done = true;
        false
    }

    /// With the buffer used up: decodes the next chunks that lie wholly within the range and
    /// at or before `t` straight into `out` (no copy through the buffer). Samples a chunk holds
    /// after its indexed end (a damaged chunk) go to the buffer instead, trimmed as usual;
    /// returns whether the buffer holds samples again.
    fn decode_into(&mut self, t: Timestamp, out: &mut Vec<(Timestamp, f64)>) -> bool {
        let upto = t.min(self.maxt);
        while self.past_mint
            && !self.done
            && self.deleted.is_empty()
            && self.next_chunk < self.list.len()
            && self.list.maxt(self.next_chunk) <= upto
        {
            let i = self.next_chunk;
            self.next_chunk += 1;
            let Some(bytes) = self.list.bytes(i) else {
                continue;
            };
            let first = out.len();
            if let Err(e) = decode_xor(bytes, out) {
                tracing::error!(error = %e, "chunk ended early");
            }
            let split = first + out[first..].partition_point(|s| s.0 <= upto);
            if split < out.len() {
                self.buf.clear();
                self.buf.extend_from_slice(&out[split..]);
                out.truncate(split);
                self.pos = 0;
                self.trim();
                return !self.buf.is_empty();
            }
        }
        false
    }

    /// Drops the decoded samples outside `[mint, maxt]` and in deleted intervals; a sample
    /// after `maxt` means no later chunk is needed. Chunks wholly inside the range (all but
    /// the first and last of a query) cost two comparisons.
    fn trim(&mut self) {
        let (mint, maxt) = (self.mint, self.maxt);
        if self.buf.last().is_some_and(|s| s.0 > maxt) {
            let keep = self.buf.partition_point(|s| s.0 <= maxt);
            self.buf.truncate(keep);
            self.done = true;
        }
        if self.buf.first().is_some_and(|s| s.0 < mint) {
            let skip = self.buf.partition_point(|s| s.0 < mint);
            self.buf.drain(..skip);
        }
        if !self.deleted.is_empty() {
            let deleted = self.deleted;
            self.buf.retain(|s| !is_deleted(deleted, s.0));
        }
    }
}

impl<'a, L: ChunkList<'a> + Send> SampleIterator for ChunkSeqIter<'a, L> {
    #[inline]
    fn next(&mut self) -> Option<(Timestamp, f64)> {
        loop {
            if let Some(&s) = self.buf.get(self.pos) {
                self.pos += 1;
                return Some(s);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    fn seek(&mut self, t: Timestamp) -> Option<(Timestamp, f64)> {
        if self.pos > 0 && self.buf[self.pos - 1].0 >= t {
            return Some(self.buf[self.pos - 1]);
        }
        if self.buf.last().is_none_or(|l| l.0 < t) {
            // Whole chunks before `t` are skipped without decoding them.
            if self.done {
                self.buf.clear();
                self.pos = 0;
                return None;
            }
            while self.next_chunk < self.list.len() && self.list.maxt(self.next_chunk) < t {
                self.next_chunk += 1;
            }
            loop {
                if !self.fill() {
                    return None;
                }
                if self.buf.last().is_some_and(|l| l.0 >= t) {
                    break;
                }
            }
        }
        let i = self.pos + self.buf[self.pos..].partition_point(|s| s.0 < t);
        self.pos = i + 1;
        self.buf.get(i).copied()
    }

    fn next_until(
        &mut self,
        t: Timestamp,
        out: &mut Vec<(Timestamp, f64)>,
    ) -> Option<(Timestamp, f64)> {
        loop {
            let rest = &self.buf[self.pos..];
            let k = rest.partition_point(|s| s.0 <= t);
            out.extend_from_slice(&rest[..k]);
            self.pos += k;
            if let Some(&s) = self.buf.get(self.pos) {
                self.pos += 1;
                return Some(s);
            }
            if self.decode_into(t, out) {
                continue;
            }
            if !self.fill() {
                return None;
            }
        }
    }

    fn max_time_hint(&self) -> Option<Timestamp> {
        if self.pos < self.buf.len() || !self.done {
            let last = match self.list.len() {
                0 => self.buf.last().map(|s| s.0)?,
                n => self
                    .list
                    .maxt(n - 1)
                    .max(self.buf.last().map_or(i64::MIN, |s| s.0)),
            };
            Some(last.min(self.maxt))
        } else {
            None
        }
    }
}

/// Iterators of the parts of one series whose time spans do not overlap, in time order: each
/// is opened when reached and read to its end, and dropped, before the next starts.
pub(crate) struct ChainIter<P: Iterator> {
    rest: P,
    cur: Option<<P as Iterator>::Item>,
    last: Option<(Timestamp, f64)>,
    /// An upper bound of all parts' timestamps, when known.
    max_time: Option<Timestamp>,
}

impl<P> ChainIter<P>
where
    P: Iterator,
    P::Item: SampleIterator,
{
    pub(crate) fn new(parts: P, max_time: Option<Timestamp>) -> Self {
        ChainIter {
            rest: parts,
            cur: None,
            last: None,
            max_time,
        }
    }

    fn current(&mut self) -> Option<&mut P::Item> {
        if self.cur.is_none() {
            self.cur = self.rest.next();
        }
        self.cur.as_mut()
    }
}

impl<P> SampleIterator for ChainIter<P>
where
    P: Iterator + Send,
    P::Item: SampleIterator,
{
    #[inline]
    fn next(&mut self) -> Option<(Timestamp, f64)> {
        while let Some(p) = self.current() {
            if let Some(s) = p.next() {
                self.last = Some(s);
                return Some(s);
            }
            self.cur = None;
        }
        None
    }

    fn seek(&mut self, t: Timestamp) -> Option<(Timestamp, f64)> {
        if let Some(l) = self.last
            && l.0 >= t
        {
            return Some(l);
        }
        while let Some(p) = self.current() {
            if let Some(s) = p.seek(t) {
                self.last = Some(s);
                return Some(s);
            }
            self.cur = None;
        }
        None
    }

    fn next_until(
        &mut self,
        t: Timestamp,
        out: &mut Vec<(Timestamp, f64)>,
    ) -> Option<(Timestamp, f64)> {
        let before = out.len();
        while let Some(p) = self.current() {
            if let Some(s) = p.next_until(t, out) {
                self.last = Some(s);
                return Some(s);
            }
            self.cur = None;
        }
        if out.len() > before {
            self.last = out.last().copied();
        }
        None
    }

    fn max_time_hint(&self) -> Option<Timestamp> {
        self.max_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunkenc::XorAppender;

    /// Chunks in memory; `maxts` may differ from the data (a damaged index).
    struct Chunks {
        data: Vec<Vec<u8>>,
        maxts: Vec<i64>,
    }

    impl<'a> ChunkList<'a> for &'a Chunks {
        fn len(&self) -> usize {
            self.data.len()
        }
        fn maxt(&self, i: usize) -> i64 {
            self.maxts[i]
        }
        fn bytes(&self, i: usize) -> Option<&'a [u8]> {
            Some(&self.data[i])
        }
    }

    /// 10 chunks of 120 samples at 15 s.
    fn chunks() -> (Chunks, Vec<(i64, f64)>) {
        let mut all = Vec::new();
        let (mut data, mut maxts) = (Vec::new(), Vec::new());
        for c in 0..10i64 {
            let mut a = XorAppender::new();
            for k in 0..120 {
                let t = (c * 120 + k) * 15_000;
                let v = (t / 1000) as f64 * 0.5;
                assert!(a.append(t, v));
                all.push((t, v));
            }
            maxts.push(all.last().unwrap().0);
            data.push(a.into_bytes());
        }
        (Chunks { data, maxts }, all)
    }

    #[track_caller]
    fn reads_like_next(list: &Chunks, range: (i64, i64), deleted: &[(i64, i64)], step: i64) {
        let live = QueryLive::default();
        let mut want = Vec::new();
        let mut it = ChunkSeqIter::new(list, range, deleted, &live);
        while let Some(s) = it.next() {
            want.push(s);
        }
        let mut got = Vec::new();
        let mut it = ChunkSeqIter::new(list, range, deleted, &live);
        let mut t = range.0.max(0);
        loop {
            let before = got.len();
            let r = it.next_until(t, &mut got);
            assert!(got[before..].iter().all(|s| s.0 <= t));
            match r {
                Some(s) => {
                    assert!(s.0 > t);
                    got.push(s);
                    assert_eq!(it.seek(s.0), Some(s), "the returned sample is current");
                }
                None => break,
            }
            t += step;
        }
        assert_eq!(got, want, "range {range:?} deleted {deleted:?} step {step}");
    }

    #[test]
    fn next_until_equals_next_with_whole_chunks_decoded_into_the_output() {
        let (list, all) = chunks();
        let end = all.last().unwrap().0;
        for range in [
            (0, end),
            (1, end - 1),
            (500_000, 10_000_000),
            (-5, 7),
            (3, 2),
        ] {
            for step in [1, 15_000, 1_000_000, 1_800_000, 3_600_000, 100_000_000] {
                reads_like_next(&list, range, &[], step);
                reads_like_next(&list, range, &[(2_000_000, 4_000_000)], step);
            }
        }
        let live = QueryLive::default();
        let mut it = ChunkSeqIter::new(&list, (0, end), &[], &live);
        let mut out = Vec::new();
        assert_eq!(it.next_until(end, &mut out), None);
        assert_eq!(out, all, "every chunk straight into the output");
    }

    #[test]
    fn a_chunk_past_its_indexed_end_stays_in_range() {
        let (mut list, all) = chunks();
        // Chunk 3 claims to end 10 minutes before its last sample.
        list.maxts[3] -= 600_000;
        for step in [1_000_000, 3_600_000, 100_000_000] {
            reads_like_next(&list, (0, 20_000_000), &[], step);
        }
        let maxt = list.maxts[3];
        let live = QueryLive::default();
        let mut it = ChunkSeqIter::new(&list, (0, maxt), &[], &live);
        let mut out = Vec::new();
        assert_eq!(it.next_until(i64::MAX, &mut out), None);
        let want: Vec<_> = all.iter().copied().filter(|s| s.0 <= maxt).collect();
        assert_eq!(out, want);
    }
}
