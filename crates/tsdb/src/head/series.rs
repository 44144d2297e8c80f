//! One in-memory series: its labels, the references of its full chunks on disk, and the open
//! chunk samples are appended to. Everything mutable sits behind one small mutex.

use std::sync::Arc;

use model::Labels;
use parking_lot::Mutex;

use crate::chunkenc::{XorAppender, XorIterator};
use crate::head_chunks::{ChunkDiskMapper, ChunkRef};

/// Samples per chunk Prometheus aims for.
pub(crate) const SAMPLES_PER_CHUNK: u16 = 120;

/// A full chunk that lives in a head chunk file. Packed to 20 bytes (from 24): with hours of
/// head data a series holds dozens of these.
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
pub(crate) struct MmapChunk {
    chunk_ref: ChunkRef,
    mint: i64,
    /// maxt - mint; a chunk never spans more than its chunk range, and `append` cuts one before
    /// it could reach 2^32 ms.
    span: u32,
}

impl MmapChunk {
    pub(crate) fn new(chunk_ref: ChunkRef, mint: i64, maxt: i64) -> Self {
        let span = u32::try_from(maxt.saturating_sub(mint)).unwrap_or(u32::MAX);
        MmapChunk {
            chunk_ref,
            mint,
            span,
        }
    }
    pub(crate) fn chunk_ref(&self) -> ChunkRef {
        self.chunk_ref
    }
    pub(crate) fn mint(&self) -> i64 {
        self.mint
    }
    pub(crate) fn maxt(&self) -> i64 {
        let (mint, span) = (self.mint, self.span);
        mint + i64::from(span)
    }
}

/// The open chunk. Its max time is its last sample's, kept by the appender.
pub(crate) struct HeadChunk {
    pub(crate) app: XorAppender,
    pub(crate) mint: i64,
    /// Cut the chunk at the first sample at or after this time.
    next_at: i64,
}

impl HeadChunk {
    pub(crate) fn maxt(&self) -> i64 {
        self.app.last().0
    }
}

/// Why a sample was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    OutOfOrder,
    Duplicate,
    /// The open chunk is at its sample limit because chunk writes keep failing.
    ChunkFull,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Stored; `new_chunk` when it opened a head chunk.
    Stored { new_chunk: bool },
    /// Same timestamp and identical value bits as the last sample: accepted, not stored again.
    Duplicate,
}

/// Mutable state of a series. Kept small on purpose (see the size test): the last sample lives
/// in the open chunk's appender, or at the end of the last full chunk.
pub(crate) struct SeriesState {
    pub(crate) mmapped: Box<[MmapChunk]>,
    pub(crate) head: Option<HeadChunk>,
    /// Samples appended to open appenders but not committed; GC keeps the series while > 0.
    pub(crate) pending: u32,
    /// Whether the WAL holds this series' record.
    pub(crate) logged: bool,
    /// Set by GC once the series is out of the index; appenders then look it up again.
    pub(crate) removed: bool,
}

pub(crate) struct MemSeries {
    pub(crate) series_ref: u64,
    pub(crate) labels: Labels,
    pub(crate) state: Mutex<SeriesState>,
}

impl MemSeries {
    pub(crate) fn new(series_ref: u64, labels: Labels, logged: bool) -> Self {
        MemSeries {
            series_ref,
            labels,
            state: Mutex::new(SeriesState {
                mmapped: Box::default(),
                head: None,
                pending: 0,
                logged,
                removed: false,
            }),
        }
    }
}

/// Prefetches the memory of a series: the `Arc` counts (16 bytes before the data) up to the
/// end of its state.
pub(crate) fn prefetch_series(s: &Arc<MemSeries>) {
    let p = Arc::as_ptr(s).cast::<u8>().wrapping_sub(16);
    crate::prefetch::prefetch_range(p, 16 + std::mem::size_of::<MemSeries>());
}

/// compat: Prometheus's rangeForTimestamp, the end of the chunk range holding `t` (Go's
/// truncating division included).
fn range_end(t: i64, width: i64) -> i64 {
    (t / width) * width + width
}

/// compat: Prometheus's computeChunkEndTime. Once a quarter of a chunk is filled, predict an end
/// time that spreads the rest of the range evenly over chunks of ~120 samples.
fn chunk_end_time(start: i64, cur: i64, max: i64) -> i64 {
    let n = (max - start) / ((cur - start + 1) * 4);
    if n <= 1 {
        return max;
    }
    start + (max - start) / n
}

impl SeriesState {
    /// Time of the newest sample, `i64::MIN` when the series has none.
    pub(crate) fn last_t(&self) -> i64 {
        match &self.head {
            Some(h) => h.maxt(),
            None => self.mmapped_maxt(),
        }
    }

    /// Value bits of the sample at `last_t`. Without an open chunk (right after a restart) it is
    /// read back from the last full chunk.
    fn last_value_bits(&self, chunks: &ChunkDiskMapper) -> Option<u64> {
        if let Some(h) = &self.head {
            return Some(h.app.last().1);
        }
        let last = self.mmapped.last()?;
        let bytes = chunks.chunk(last.chunk_ref()).ok()?;
        let (t, v) = XorIterator::new(bytes.as_slice()).ok()?.last()?;
        (t == last.maxt()).then_some(v.to_bits())
    }

    /// Prefetches the start of the open chunk (its sample count) and its end, where the commit
    /// will append: by then the appender has moved on through a scrape's worth of other series.
    pub(crate) fn prefetch_open_chunk(&self) {
        if let Some(h) = &self.head {
            let b = h.app.bytes();
            crate::prefetch::prefetch(b.as_ptr());
            crate::prefetch::prefetch(b.as_ptr().wrapping_add(b.len().saturating_sub(1)));
        }
    }

    /// Checks a sample against the series without changing it.
    pub(crate) fn appendable(
        &self,
        t: i64,
        v: f64,
        chunks: &ChunkDiskMapper,
    ) -> Result<Appended, Rejection> {
        let last_t = self.last_t();
        if t > last_t {
            return Ok(Appended::Stored { new_chunk: false });
        }
        if t < last_t {
            return Err(Rejection::OutOfOrder);
        }
        // compat: exact duplicates are accepted silently, as federation and retries produce them.
        if self.last_value_bits(chunks) == Some(v.to_bits()) {
            Ok(Appended::Duplicate)
        } else {
            Err(Rejection::Duplicate)
        }
    }

    /// Appends a sample, cutting the open chunk to disk when it is full or crosses the end of
    /// its chunk range. If writing the chunk fails, the chunk stays open and grows instead
    /// (logged), so the sample is not lost.
    pub(crate) fn append(
        &mut self,
        series_ref: u64,
        t: i64,
        v: f64,
        chunk_range: i64,
        chunks: &ChunkDiskMapper,
    ) -> Result<Appended, Rejection> {
        if let Appended::Duplicate = self.appendable(t, v, chunks)? {
            return Ok(Appended::Duplicate);
        }
        let mut new_chunk = self.head.is_none();
        let mut reuse = None;
        if let Some(h) = self.head.as_mut() {
            let n = h.app.num_samples();
            if n == SAMPLES_PER_CHUNK / 4 {
                h.next_at = chunk_end_time(h.mint, h.maxt(), h.next_at);
            }
            // compat: Prometheus also cuts at twice the target count when the rate rose.
            let cut =
                t >= h.next_at || n >= 2 * SAMPLES_PER_CHUNK || t - h.mint >= i64::from(u32::MAX);
            if cut {
                reuse = self.mmap_head(series_ref, chunks);
                new_chunk = reuse.is_some();
            }
        }
        if new_chunk {
            // The full chunk's buffer is reused: no allocation per chunk, and no heap
            // fragmentation from ~100k open chunks growing and being freed in turn.
            let app = match reuse {
                Some(mut app) => {
                    app.reset();
                    app
                }
                None => XorAppender::new(),
            };
            self.head = Some(HeadChunk {
                app,
                mint: t,
                next_at: range_end(t, chunk_range),
            });
        }
        let Some(h) = self.head.as_mut() else {
            return Err(Rejection::ChunkFull);
        };
        if !h.app.append(t, v) {
            return Err(Rejection::ChunkFull);
        }
        Ok(Appended::Stored { new_chunk })
    }

    /// Writes the open chunk to the chunk files. Returns its appender (for its buffer) when it
    /// was written and closed, `None` when it stays open.
    fn mmap_head(&mut self, series_ref: u64, chunks: &ChunkDiskMapper) -> Option<XorAppender> {
        let h = self.head.as_ref()?;
        match chunks.write_chunk(series_ref, h.mint, h.maxt(), h.app.bytes()) {
            Ok(r) => {
                let meta = MmapChunk::new(r, h.mint, h.maxt());
                let app = self.head.take().map(|h| h.app);
                self.push_mmapped(meta);
                app
            }
            Err(e) => {
                tracing::error!(series_ref, error = %e, "write head chunk; keeping it open");
                None
            }
        }
    }

    /// Appends a full chunk's reference. The slice is reallocated to the exact size: one small
    /// realloc per ~120 samples, and no growth slack in ~100k series.
    pub(crate) fn push_mmapped(&mut self, c: MmapChunk) {
        let mut v = std::mem::take(&mut self.mmapped).into_vec();
        v.reserve_exact(1);
        v.push(c);
        self.mmapped = v.into_boxed_slice();
    }

    /// Drops chunks that end before `mint`; returns how many. The open chunk goes too when all
    /// of it is older.
    pub(crate) fn truncate_before(&mut self, mint: i64) -> usize {
        let n = self.mmapped.partition_point(|c| c.maxt() < mint);
        if n > 0 {
            self.mmapped = self.mmapped[n..].into();
        }
        let mut dropped = n;
        if self.head.as_ref().is_some_and(|h| h.maxt() < mint) {
            self.head = None;
            dropped += 1;
        }
        dropped
    }

    /// The max time of data already in chunk files (`i64::MIN` when none).
    pub(crate) fn mmapped_maxt(&self) -> i64 {
        self.mmapped.last().map_or(i64::MIN, MmapChunk::maxt)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.mmapped.is_empty() && self.head.is_none()
    }
}

#[cfg(test)]
impl SeriesState {
    fn mmap_head_for_test(&mut self, head: HeadChunk, chunks: &ChunkDiskMapper) -> bool {
        self.head = Some(head);
        self.mmap_head(1, chunks).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_small() {
        assert_eq!(std::mem::size_of::<MmapChunk>(), 20);
        // A regression guard for the per-series budget; see the bench for measured totals.
        assert!(
            std::mem::size_of::<MemSeries>() <= 128,
            "{}",
            std::mem::size_of::<MemSeries>()
        );
    }

    #[test]
    fn chunk_end_prediction_matches_prometheus_examples() {
        // 15s interval, chunk started at range start: 30 samples span 435s.
        let start = 0;
        let cur = 29 * 15_000;
        let max = 2 * 3600 * 1000;
        let end = chunk_end_time(start, cur, max);
        // 7_200_000 / ((435_001) * 4) = 4 chunks -> 1_800_000.
        assert_eq!(end, 1_800_000);
        assert_eq!(chunk_end_time(0, 3_000_000, max), max);
        assert_eq!(range_end(7_199_999, 7_200_000), 7_200_000);
        assert_eq!(range_end(7_200_000, 7_200_000), 14_400_000);
    }

    #[test]
    fn cuts_follow_prometheus_rules() {
        let dir = tempfile::tempdir().unwrap();
        let (chunks, _) = ChunkDiskMapper::open(dir.path(), 1 << 20).unwrap();
        let s = MemSeries::new(1, model::labels! {"a" => "b"}, true);
        let mut st = s.state.lock();
        let range = 2 * 3600 * 1000;
        // 1 sample/s for 2 hours: chunks of ~120 samples that never cross the range end.
        for i in 0..7300i64 {
            st.append(1, i * 1000, i as f64, range, &chunks).unwrap();
        }
        let lens: Vec<i64> = st.mmapped.iter().map(|c| c.maxt() - c.mint()).collect();
        assert!(lens.iter().all(|&l| l < 130_000), "{lens:?}");
        assert!(
            st.mmapped
                .iter()
                .all(|c| c.mint() / range == c.maxt() / range)
        );
        assert_eq!(
            st.head.as_ref().unwrap().mint,
            range,
            "a new chunk starts at the range boundary"
        );
        assert_eq!(
            st.appendable(7299 * 1000, 7299.0, &chunks),
            Ok(Appended::Duplicate)
        );
        assert_eq!(
            st.appendable(7299 * 1000, 1.0, &chunks),
            Err(Rejection::Duplicate)
        );
        assert_eq!(st.appendable(10, 1.0, &chunks), Err(Rejection::OutOfOrder));
        // Without an open chunk the last value is read back from disk.
        let head = st.head.take().unwrap();
        assert!(st.mmap_head_for_test(head, &chunks));
        assert_eq!(
            st.appendable(7299 * 1000, 7299.0, &chunks),
            Ok(Appended::Duplicate)
        );
        assert_eq!(
            st.appendable(7299 * 1000, 1.0, &chunks),
            Err(Rejection::Duplicate)
        );
    }
}
