//! The ref → series index. Refs are handed out sequentially, so the series of one scrape target
//! (created together) sit in neighbouring slots: a steady-state lookup is an index into a slot
//! array whose cache lines the previous lookups already brought in, instead of a hash-map probe
//! per sample (the old per-stripe `HashMap` was 35% of ingestion CPU, nearly all cache misses).
//!
//! Slots come in chunks of [`CHUNK`] refs; a chunk exists only while one of its refs is live,
//! so churn (refs only ever grow) costs no memory for dead ranges, and refs read back sparse
//! from a WAL cost at most one chunk (8 KiB) each. Chunks are spread over [`STRIPES`] locks by
//! chunk number: one target's lookups keep hitting one lock word, which stays in that core's
//! cache, and the lock words are padded so two stripes never share a cache line.

use std::sync::Arc;

use parking_lot::RwLock;

use super::Map;
use super::series::{MemSeries, prefetch_series};

const CHUNK_BITS: u32 = 10;
/// Refs per chunk: 8 KiB of slots, about one typical target's worth of series.
const CHUNK: usize = 1 << CHUNK_BITS;
/// Stripes of chunks. 256 stripes × 1024 refs: a stripe holds a second chunk only beyond 256k
/// refs, and the chunk map of a stripe stays a few entries small.
const STRIPES: usize = 256;

type Slot = Option<Arc<MemSeries>>;

/// How many refs ahead [`RefIndex::get`] prefetches. A sample takes a few hundred ns from
/// parse to append; a few samples ahead gives memory (and page walks) time to answer.
const AHEAD: usize = 4;

struct Chunk {
    slots: Box<[Slot]>,
    /// Occupied slots; the chunk is freed when this reaches 0.
    used: u32,
}

#[derive(Default)]
struct Stripe {
    /// Chunk number (`ref >> CHUNK_BITS`) → its slots.
    chunks: Map<u64, Chunk>,
}

/// A stripe on its own two cache lines (adjacent-line prefetch pairs lines on x86), so readers
/// of one stripe do not bounce the lock word of another between cores.
#[repr(align(128))]
#[derive(Default)]
struct Padded(RwLock<Stripe>);

pub(crate) struct RefIndex {
    stripes: Box<[Padded]>,
}

fn split(r: u64) -> (usize, u64, usize) {
    let chunk = r >> CHUNK_BITS;
    (
        (chunk as usize) & (STRIPES - 1),
        chunk,
        (r as usize) & (CHUNK - 1),
    )
}

impl Default for RefIndex {
    fn default() -> Self {
        RefIndex {
            stripes: (0..STRIPES).map(|_| Padded::default()).collect(),
        }
    }
}

impl RefIndex {
    /// The series of `r`. Also prefetches the series of a ref [`AHEAD`] further on, which is
    /// what an appender asks for next when a target's series are appended in creation order.
    pub(crate) fn get(&self, r: u64) -> Option<Arc<MemSeries>> {
        let (s, chunk, slot) = split(r);
        let st = self.stripes[s].0.read();
        let slots = &st.chunks.get(&chunk)?.slots;
        if let Some(Some(next)) = slots.get(slot + AHEAD) {
            prefetch_series(next);
        }
        slots[slot].clone()
    }

    /// Sets the series of `r`, replacing any.
    pub(crate) fn insert(&self, r: u64, series: Arc<MemSeries>) {
        let (s, chunk, slot) = split(r);
        let mut st = self.stripes[s].0.write();
        let c = st.chunks.entry(chunk).or_insert_with(|| Chunk {
            slots: std::iter::repeat_with(|| None).take(CHUNK).collect(),
            used: 0,
        });
        if c.slots[slot].replace(series).is_none() {
            c.used += 1;
        }
    }

    pub(crate) fn remove(&self, r: u64) {
        let (s, chunk, slot) = split(r);
        let mut st = self.stripes[s].0.write();
        let Some(c) = st.chunks.get_mut(&chunk) else {
            return;
        };
        if c.slots[slot].take().is_some() {
            c.used -= 1;
            if c.used == 0 {
                st.chunks.remove(&chunk);
            }
        }
    }

    /// Calls `f` with the series of each stripe in turn (cloned out, so no lock is held).
    pub(crate) fn for_each_stripe(&self, mut f: impl FnMut(Vec<Arc<MemSeries>>)) {
        for stripe in self.stripes.iter() {
            let list: Vec<Arc<MemSeries>> = stripe
                .0
                .read()
                .chunks
                .values()
                .flat_map(|c| c.slots.iter().flatten().cloned())
                .collect();
            f(list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::labels;

    fn series(r: u64) -> Arc<MemSeries> {
        Arc::new(MemSeries::new(r, labels! {"r" => r.to_string()}, true))
    }

    fn all(ix: &RefIndex) -> Vec<u64> {
        let mut v = Vec::new();
        ix.for_each_stripe(|l| v.extend(l.iter().map(|s| s.series_ref)));
        v.sort_unstable();
        v
    }

    #[test]
    fn dense_sparse_and_freed() {
        let ix = RefIndex::default();
        let refs = [
            1,
            2,
            1023,
            1024,
            5_000_000,
            u64::MAX,
            (STRIPES * CHUNK) as u64 + 1,
        ];
        for r in refs {
            ix.insert(r, series(r));
        }
        for r in refs {
            assert_eq!(ix.get(r).map(|s| s.series_ref), Some(r));
        }
        assert!(ix.get(0).is_none() && ix.get(3).is_none() && ix.get(1025).is_none());
        let mut want = refs.to_vec();
        want.sort_unstable();
        assert_eq!(all(&ix), want);
        // Replacing keeps the count right: removing once empties the slot.
        ix.insert(2, series(2));
        ix.remove(2);
        assert!(ix.get(2).is_none());
        ix.remove(2);
        for r in refs {
            ix.remove(r);
        }
        assert!(all(&ix).is_empty());
        let chunks: usize = ix.stripes.iter().map(|s| s.0.read().chunks.len()).sum();
        assert_eq!(chunks, 0, "empty chunks are freed");
        assert_eq!(std::mem::align_of::<Padded>(), 128);
    }
}
