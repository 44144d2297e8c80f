//! Compaction: cutting the head into a level-1 block, planning which blocks to merge
//! (Prometheus's leveled scheme: overlapping blocks first, then aligned ranges of min-block
//! ×3, ×9, … up to the max block duration) and merging blocks into one, series by series.
//! Sources are deleted by the caller only after the result is renamed into place; a crash in
//! between leaves sources that name-check against the result's `parents` and are removed at
//! the next open.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use model::Labels;

use crate::block::index::ChunkMeta;
use crate::block::tombstones::is_deleted;
use crate::block::{Block, BlockCompaction, BlockMeta, BlockWriter};
use crate::chunkenc::{XorAppender, XorIterator};
use crate::error::TsdbError;
use crate::head::Head;
use crate::head::series::SAMPLES_PER_CHUNK;
use crate::ulid::Ulid;

/// Failpoint names (see [`crate::failpoint`]).
pub const FP_HEAD_BEFORE_RENAME: &str = "head-compaction-before-rename";
pub const FP_HEAD_AFTER_RENAME: &str = "head-compaction-after-rename";
pub const FP_COMPACT_BEFORE_RENAME: &str = "compaction-before-rename";
pub const FP_COMPACT_AFTER_RENAME: &str = "compaction-after-rename";

/// compat: Prometheus's `ExponentialBlockRanges(min, 10, 3)`, cut at `max`.
pub fn block_ranges(min: i64, max: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut r = min.max(1);
    for _ in 0..10 {
        if r > max && !out.is_empty() {
            break;
        }
        out.push(r);
        r = r.saturating_mul(3);
    }
    out
}

/// compat: Prometheus's rangeForTimestamp.
pub(crate) fn range_end(t: i64, width: i64) -> i64 {
    (t / width).saturating_mul(width).saturating_add(width)
}

/// Which blocks to compact next (indices into `metas`, sorted by min time), if any.
pub fn plan(metas: &[BlockMeta], ranges: &[i64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..metas.len()).collect();
    order.sort_by_key(|&i| (metas[i].min_time, metas[i].max_time));
    let overlapping = select_overlapping(metas, &order);
    if !overlapping.is_empty() {
        return overlapping;
    }
    // compat: the newest block is left alone, giving a full block range to back it up.
    if order.len() < 2 {
        return Vec::new();
    }
    order.pop();
    select_dirs(metas, &order, ranges)
}

fn select_overlapping(metas: &[BlockMeta], order: &[usize]) -> Vec<usize> {
    let mut out = Vec::new();
    let Some(&first) = order.first() else {
        return out;
    };
    let mut global_maxt = metas[first].max_time;
    for w in order.windows(2) {
        let (prev, cur) = (w[0], w[1]);
        if metas[cur].min_time < global_maxt {
            if out.is_empty() {
                out.push(prev);
            }
            out.push(cur);
        } else if !out.is_empty() {
            break;
        }
        global_maxt = global_maxt.max(metas[cur].max_time);
    }
    out
}

fn select_dirs(metas: &[BlockMeta], order: &[usize], ranges: &[i64]) -> Vec<usize> {
    if ranges.len() < 2 || order.is_empty() {
        return Vec::new();
    }
    let high = metas[*order.last().expect("BUG: not empty")].min_time;
    for &r in &ranges[1..] {
        for part in split_by_range(metas, order, r) {
            if part.iter().any(|&i| metas[i].compaction.failed) {
                continue;
            }
            let mint = metas[part[0]].min_time;
            let maxt = metas[*part.last().expect("BUG: not empty")].max_time;
            if (maxt - mint == r || maxt <= high) && part.len() > 1 {
                return part;
            }
        }
    }
    Vec::new()
}

fn split_by_range(metas: &[BlockMeta], order: &[usize], r: i64) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let m = &metas[order[i]];
        let t0 = if m.min_time >= 0 {
            r * (m.min_time / r)
        } else {
            r * ((m.min_time - r + 1) / r)
        };
        if m.max_time > t0 + r {
            i += 1;
            continue;
        }
        let mut group = Vec::new();
        while i < order.len() && metas[order[i]].max_time <= t0 + r {
            group.push(order[i]);
            i += 1;
        }
        if !group.is_empty() {
            out.push(group);
        }
    }
    out
}

/// Re-encodes sorted samples into XOR chunks of at most 120 samples.
pub fn encode_chunks(samples: &[(i64, f64)]) -> Vec<(i64, i64, Vec<u8>)> {
    samples
        .chunks(usize::from(SAMPLES_PER_CHUNK))
        .map(|part| {
            let mut app = XorAppender::new();
            for &(t, v) in part {
                app.append(t, v);
            }
            (part[0].0, part[part.len() - 1].0, app.into_bytes())
        })
        .collect()
}

/// Decodes a chunk, keeping samples in `[lo, hi]` outside `deleted`.
fn decode_into(data: &[u8], lo: i64, hi: i64, deleted: &[(i64, i64)], out: &mut Vec<(i64, f64)>) {
    match XorIterator::new(data) {
        Ok(it) => out.extend(it.filter(|&(t, _)| t >= lo && t <= hi && !is_deleted(deleted, t))),
        Err(e) => tracing::error!(error = %e, "dropping undecodable chunk during compaction"),
    }
}

/// Writes the head's samples in `[lo, maxt)` as a level-1 block. `None` when there were none.
/// The out-of-order samples included are appended to `ooo_taken` (series ref, samples), so the
/// caller can forget exactly those.
pub(crate) fn write_head_block(
    parent: &Path,
    head: &Head,
    lo: i64,
    maxt: i64,
    ooo_taken: &mut Vec<(u64, Vec<(i64, f64)>)>,
) -> Result<Option<BlockMeta>, TsdbError> {
    let hi = maxt - 1;
    // (labels, [(mint, maxt, on-disk chunk or open-chunk copy)])
    enum Data {
        Disk(crate::head_chunks::ChunkBytes),
        Mem(Vec<u8>),
    }
    type Chunks = Vec<(i64, i64, Data)>;
    type Intervals = Vec<(i64, i64)>;
    type Samples = Vec<(i64, f64)>;
    let mut series: Vec<(Labels, Chunks, Intervals, Samples)> = Vec::new();
    let tombstones = head.tombstones.read().clone();
    for s in head.all_series() {
        let mut refs = Vec::new();
        let mut open = None;
        let ooo: Samples;
        {
            let st = s.state.lock();
            // Out-of-order samples of this range go into the block with the in-order ones.
            ooo = head.ooo.range(s.series_ref, lo, hi);
            if !ooo.is_empty() {
                ooo_taken.push((s.series_ref, ooo.clone()));
            }
            for c in st
                .mmapped
                .iter()
                .filter(|c| c.maxt() >= lo && c.mint() <= hi)
            {
                refs.push((c.mint(), c.maxt(), c.chunk_ref()));
            }
            if let Some(h) = st.head.as_ref().filter(|h| h.maxt() >= lo && h.mint <= hi) {
                open = Some((h.mint, h.maxt(), h.app.bytes().to_vec()));
            }
        }
        let mut chunks = Vec::with_capacity(refs.len() + 1);
        for (a, b, r) in refs {
            match head.chunks.chunk(r) {
                Ok(bytes) => chunks.push((a, b, Data::Disk(bytes))),
                Err(e) => {
                    tracing::error!(error = %e, "skipping unreadable head chunk in compaction")
                }
            }
        }
        if let Some((a, b, v)) = open {
            chunks.push((a, b, Data::Mem(v)));
        }
        if !chunks.is_empty() || !ooo.is_empty() {
            series.push((
                s.labels.clone(),
                chunks,
                tombstones.get(s.series_ref).to_vec(),
                ooo,
            ));
        }
    }
    if series.is_empty() {
        return Ok(None);
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let symbols = symbols_of(series.iter().map(|s| &s.0));
    let ulid = Ulid::now();
    let mut w = BlockWriter::new(parent, ulid, symbols)?;
    let mut samples = Vec::new();
    for (labels, chunks, deleted, ooo) in &series {
        let whole =
            deleted.is_empty() && ooo.is_empty() && chunks.iter().all(|c| c.0 >= lo && c.1 <= hi);
        let res = if whole {
            let parts: Vec<(i64, i64, &[u8])> = chunks
                .iter()
                .map(|(a, b, d)| {
                    let bytes: &[u8] = match d {
                        Data::Disk(b) => b.as_slice(),
                        Data::Mem(v) => v,
                    };
                    (*a, *b, bytes)
                })
                .collect();
            w.add_series(labels, &parts)
        } else {
            samples.clear();
            for (_, _, d) in chunks {
                let bytes: &[u8] = match d {
                    Data::Disk(b) => b.as_slice(),
                    Data::Mem(v) => v,
                };
                decode_into(bytes, lo, hi, deleted, &mut samples);
            }
            samples.extend(ooo.iter().filter(|x| !is_deleted(deleted, x.0)));
            // Stable: at a repeated timestamp the in-order sample (first) wins.
            samples.sort_by_key(|x| x.0);
            samples.dedup_by_key(|x| x.0);
            if samples.is_empty() {
                continue;
            }
            let enc = encode_chunks(&samples);
            let parts: Vec<(i64, i64, &[u8])> =
                enc.iter().map(|(a, b, v)| (*a, *b, v.as_slice())).collect();
            w.add_series(labels, &parts)
        };
        if let Err(e) = res {
            w.abort();
            return Err(e);
        }
    }
    if w.num_series() == 0 {
        w.abort();
        return Ok(None);
    }
    let meta = BlockMeta {
        ulid: String::new(),
        min_time: lo,
        max_time: maxt,
        stats: Default::default(),
        compaction: BlockCompaction {
            level: 1,
            sources: vec![ulid.to_string()],
            ..Default::default()
        },
        version: 1,
    };
    let dir = w.finish(meta, FP_HEAD_BEFORE_RENAME)?;
    BlockMeta::read(&dir).map(Some)
}

fn symbols_of<'a>(labels: impl Iterator<Item = &'a Labels>) -> Vec<String> {
    let mut set = BTreeSet::new();
    for l in labels {
        for p in l.iter() {
            if !set.contains(p.name) {
                set.insert(p.name.to_string());
            }
            if !set.contains(p.value) {
                set.insert(p.value.to_string());
            }
        }
    }
    set.into_iter().collect()
}

/// A cursor over one block's series in label order.
struct Cursor {
    block: Arc<Block>,
    ids: Vec<u64>,
    pos: usize,
    cur: Option<(Labels, Vec<ChunkMeta>, u64)>,
    symbols: crate::block::index::SymbolCache,
}

impl Cursor {
    fn advance(&mut self) -> Result<(), TsdbError> {
        self.cur = match self.ids.get(self.pos) {
            Some(&id) => {
                self.pos += 1;
                let (l, c) = self.block.index.series_with(id, &mut self.symbols)?;
                Some((l, c, id))
            }
            None => None,
        };
        Ok(())
    }
}

/// Merges `blocks` into a new block under `parent`, applying their tombstones. Returns the
/// new block's meta, or `None` when nothing was left to write.
pub(crate) fn compact_blocks(
    parent: &Path,
    blocks: &[Arc<Block>],
) -> Result<Option<(BlockMeta, PathBuf)>, TsdbError> {
    let mut symbols = BTreeSet::new();
    let mut cursors = Vec::with_capacity(blocks.len());
    for b in blocks {
        for s in b.index.symbols() {
            let s = s?;
            if !symbols.contains(s) {
                symbols.insert(s.to_string());
            }
        }
        let mut c = Cursor {
            block: b.clone(),
            ids: b.index.all_postings()?,
            pos: 0,
            cur: None,
            symbols: Default::default(),
        };
        c.advance()?;
        cursors.push(c);
    }
    let ulid = Ulid::now();
    let mut w = BlockWriter::new(parent, ulid, symbols.into_iter().collect())?;
    let res = merge_series(&mut w, &mut cursors);
    if let Err(e) = res {
        w.abort();
        return Err(e);
    }
    if w.num_series() == 0 {
        w.abort();
        return Ok(None);
    }
    let mut sources = BTreeSet::new();
    let mut level = 0;
    for b in blocks {
        let m = b.meta();
        sources.extend(m.compaction.sources.iter().cloned());
        level = level.max(m.compaction.level);
    }
    let meta = BlockMeta {
        ulid: String::new(),
        min_time: blocks.iter().map(|b| b.meta().min_time).min().unwrap_or(0),
        max_time: blocks.iter().map(|b| b.meta().max_time).max().unwrap_or(0),
        stats: Default::default(),
        compaction: BlockCompaction {
            level: level + 1,
            sources: sources.into_iter().collect(),
            parents: blocks.iter().map(|b| b.meta().desc()).collect(),
            ..Default::default()
        },
        version: 1,
    };
    let dir = w.finish(meta, FP_COMPACT_BEFORE_RENAME)?;
    Ok(Some((BlockMeta::read(&dir)?, dir)))
}

fn merge_series(w: &mut BlockWriter, cursors: &mut [Cursor]) -> Result<(), TsdbError> {
    let mut samples = Vec::new();
    loop {
        let Some(min) = cursors
            .iter()
            .filter_map(|c| c.cur.as_ref().map(|x| &x.0))
            .min()
            .cloned()
        else {
            return Ok(());
        };
        // (block index, chunk, deleted intervals) of every part of this series.
        type Part = (usize, ChunkMeta, Vec<(i64, i64)>);
        let mut parts: Vec<Part> = Vec::new();
        for (i, c) in cursors.iter_mut().enumerate() {
            if c.cur.as_ref().is_some_and(|x| x.0 == min) {
                let (_, chunks, id) = c.cur.take().expect("BUG: checked");
                let tomb = c.block.tombstones();
                let deleted = tomb.get(id).to_vec();
                for ch in chunks {
                    parts.push((i, ch, deleted.clone()));
                }
                c.advance()?;
            }
        }
        parts.sort_by_key(|p| (p.1.mint, p.0));
        let clean = parts.iter().all(|p| p.2.is_empty())
            && parts.windows(2).all(|x| x[0].1.maxt < x[1].1.mint);
        if clean {
            let mut data = Vec::with_capacity(parts.len());
            for (i, ch, _) in &parts {
                let (_, d) = cursors[*i].block.chunks.chunk_checked(ch.chunk_ref)?;
                data.push((ch.mint, ch.maxt, d));
            }
            w.add_series(&min, &data)?;
            continue;
        }
        // Overlapping or partly deleted: decode, merge (first block wins a timestamp), re-encode.
        samples.clear();
        for (i, ch, deleted) in &parts {
            let (_, d) = cursors[*i].block.chunks.chunk_checked(ch.chunk_ref)?;
            decode_into(d, i64::MIN, i64::MAX, deleted, &mut samples);
        }
        samples.sort_by_key(|s| s.0);
        samples.dedup_by_key(|s| s.0);
        if samples.is_empty() {
            continue;
        }
        let enc = encode_chunks(&samples);
        let data: Vec<(i64, i64, &[u8])> =
            enc.iter().map(|(a, b, v)| (*a, *b, v.as_slice())).collect();
        w.add_series(&min, &data)?;
    }
}

/// Failpoint before an out-of-order block is renamed into place.
pub const FP_OOO_BEFORE_RENAME: &str = "ooo-compaction-before-rename";

/// Writes out-of-order samples as level-1 blocks, one per block range they fall in (they may
/// overlap blocks already on disk; vertical compaction merges those). `series` must be sorted
/// by labels, each with sorted samples. Returns the new blocks' directories.
pub(crate) fn write_ooo_blocks(
    parent: &Path,
    series: &[(Labels, Vec<(i64, f64)>)],
    range: i64,
) -> Result<Vec<PathBuf>, TsdbError> {
    let mut starts = BTreeSet::new();
    for (_, s) in series {
        for &(t, _) in s {
            starts.insert(t.div_euclid(range) * range);
        }
    }
    let mut out = Vec::new();
    for r0 in starts {
        let r1 = r0.saturating_add(range);
        let parts: Vec<(&Labels, &[(i64, f64)])> = series
            .iter()
            .filter_map(|(l, s)| {
                let a = s.partition_point(|x| x.0 < r0);
                let b = s.partition_point(|x| x.0 < r1);
                (a < b).then(|| (l, &s[a..b]))
            })
            .collect();
        let ulid = Ulid::now();
        let mut w = BlockWriter::new(parent, ulid, symbols_of(parts.iter().map(|p| p.0)))?;
        let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
        for (l, s) in &parts {
            mint = mint.min(s[0].0);
            maxt = maxt.max(s[s.len() - 1].0);
            let enc = encode_chunks(s);
            let data: Vec<(i64, i64, &[u8])> =
                enc.iter().map(|(a, b, v)| (*a, *b, v.as_slice())).collect();
            if let Err(e) = w.add_series(l, &data) {
                w.abort();
                return Err(e);
            }
        }
        let meta = BlockMeta {
            ulid: String::new(),
            min_time: mint,
            max_time: maxt.saturating_add(1),
            stats: Default::default(),
            compaction: BlockCompaction {
                level: 1,
                sources: vec![ulid.to_string()],
                ..Default::default()
            },
            version: 1,
        };
        out.push(w.finish(meta, FP_OOO_BEFORE_RENAME)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mint: i64, maxt: i64) -> BlockMeta {
        BlockMeta {
            ulid: format!("{mint}"),
            min_time: mint,
            max_time: maxt,
            stats: Default::default(),
            compaction: BlockCompaction {
                level: 1,
                ..Default::default()
            },
            version: 1,
        }
    }

    #[test]
    fn ranges_and_plans_like_prometheus() {
        let h = 3600 * 1000;
        assert_eq!(block_ranges(2 * h, 36 * h), [2 * h, 6 * h, 18 * h]);
        assert_eq!(block_ranges(10_000, 10_000), [10_000]);
        let r = block_ranges(20, 36 * 20);
        // Three 20-blocks fill a 60 range, but the newest is left out: nothing yet.
        let m = vec![meta(0, 20), meta(20, 40), meta(40, 60)];
        assert!(plan(&m, &r).is_empty());
        // A fourth block: [0,60) is complete and older than the newest.
        let m = vec![meta(0, 20), meta(20, 40), meta(40, 60), meta(60, 80)];
        assert_eq!(plan(&m, &r), [0, 1, 2]);
        // Overlapping blocks come first.
        let m = vec![meta(0, 20), meta(10, 30), meta(40, 60)];
        assert_eq!(plan(&m, &r), [0, 1]);
        // A gap is fine when the range ends before the newest block.
        let m = vec![meta(0, 20), meta(40, 60), meta(200, 220)];
        assert_eq!(plan(&m, &r), [0, 1]);
        assert!(plan(&[meta(0, 20)], &r).is_empty());
    }

    #[test]
    fn encode_chunks_splits_at_120() {
        let s: Vec<(i64, f64)> = (0..250).map(|i| (i, i as f64)).collect();
        let c = encode_chunks(&s);
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].0, c[0].1), (0, 119));
        assert_eq!((c[2].0, c[2].1), (240, 249));
    }
}
