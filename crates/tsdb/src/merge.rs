//! Merging queriers: the head and the blocks a range touches are read as one, series by series.
//! Each source produces its series lazily in label order; the merge takes the next series from
//! each and yields them in label order, so a query over many blocks holds one series per block
//! at a time, not every block's whole selection. Series with equal labels from several sources
//! become one series: when their parts cover disjoint time spans in source order (blocks by
//! time, then the head — the normal case) their iterators are read one after the other;
//! otherwise (overlapping blocks, or a block and a head not yet truncated after a crash)
//! samples are merged by timestamp, and a timestamp present in several sources is returned
//! once, from the first source.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use model::{Labels, Matcher, Timestamp};
use storage::{Querier, Result, SampleIterator, SelectHints, Series, SeriesSet};

use crate::block::querier::{BlockChunks, BlockPart, BlockQuerier, BlockSeriesIter, SeriesKey};
use crate::head::querier::{HeadQuerier, HeadSampleIter, HeadSeries, HeadSeriesIter};
use crate::read::{ChainIter, ChunkSeqIter, QueryLive, SeriesGuard, limited};

pub(crate) struct MergeQuerier {
    /// Blocks sorted by min time.
    pub(crate) blocks: Vec<BlockQuerier>,
    pub(crate) head: HeadQuerier,
}

/// One source's part of a series.
enum Part {
    Block(BlockPart),
    Head(HeadSeries),
}

impl Part {
    fn span(&self) -> (i64, i64) {
        match self {
            Part::Block(s) => s.span(),
            Part::Head(s) => s.span(),
        }
    }

    /// Its samples; a block's iterator is counted in `live` (a head series counts its own).
    fn sample_iter<'a>(&'a self, live: &'a QueryLive) -> PartIter<'a> {
        match self {
            Part::Block(s) => PartIter::Block(s.sample_iter(live)),
            Part::Head(s) => PartIter::Head(s.sample_iter()),
        }
    }

    fn raw_chunks(&self) -> Option<Vec<storage::RawChunk<'_>>> {
        match self {
            Part::Block(s) => s.raw_chunks(),
            Part::Head(s) => s.raw_chunks(),
        }
    }
}

/// The sample iterator of one part, without dynamic dispatch.
enum PartIter<'a> {
    Block(ChunkSeqIter<'a, BlockChunks<'a>>),
    Head(HeadSampleIter<'a>),
}

impl SampleIterator for PartIter<'_> {
    #[inline]
    fn next(&mut self) -> Option<(Timestamp, f64)> {
        match self {
            PartIter::Block(it) => it.next(),
            PartIter::Head(it) => it.next(),
        }
    }

    fn seek(&mut self, t: Timestamp) -> Option<(Timestamp, f64)> {
        match self {
            PartIter::Block(it) => it.seek(t),
            PartIter::Head(it) => it.seek(t),
        }
    }

    fn max_time_hint(&self) -> Option<Timestamp> {
        match self {
            PartIter::Block(it) => it.max_time_hint(),
            PartIter::Head(it) => it.max_time_hint(),
        }
    }

    fn next_until(
        &mut self,
        t: Timestamp,
        out: &mut Vec<(Timestamp, f64)>,
    ) -> Option<(Timestamp, f64)> {
        match self {
            PartIter::Block(it) => it.next_until(t, out),
            PartIter::Head(it) => it.next_until(t, out),
        }
    }
}

struct MergedSeries {
    labels: Labels,
    parts: Vec<Part>,
    live: SeriesGuard,
}

impl MergedSeries {
    /// Whether the parts' time spans are disjoint and in order, so they can be chained.
    fn disjoint(&self) -> bool {
        self.parts.windows(2).all(|w| w[0].span().1 < w[1].span().0)
    }
}

impl Series for MergedSeries {
    fn labels(&self) -> &Labels {
        &self.labels
    }

    fn iter(&self) -> Box<dyn SampleIterator + '_> {
        if self.disjoint() {
            let max_time = self.parts.last().map(|p| p.span().1);
            return Box::new(ChainIter::new(
                self.parts.iter().map(|p| p.sample_iter(self.live.live())),
                max_time,
            ));
        }
        Box::new(MergeIter::new(
            self.parts
                .iter()
                .map(|p| Box::new(p.sample_iter(self.live.live())) as Box<dyn SampleIterator + '_>)
                .collect(),
        ))
    }

    fn raw_chunks(&self) -> Option<Vec<storage::RawChunk<'_>>> {
        // Parts in time order whose chunks do not overlap can be read one after the other;
        // otherwise (e.g. a block and a head not yet truncated) samples must be merged.
        let mut out: Vec<storage::RawChunk<'_>> = Vec::new();
        for p in &self.parts {
            for c in p.raw_chunks()? {
                let mint = chunk_mint(c.data)?;
                if out.last().is_some_and(|l| l.maxt >= mint) {
                    return None;
                }
                out.push(c);
            }
        }
        Some(out)
    }
}

/// The first timestamp of an XOR chunk, `None` when it has no samples or is damaged.
fn chunk_mint(data: &[u8]) -> Option<Timestamp> {
    let mut it = crate::chunkenc::XorIterator::new(data).ok()?;
    it.next().map(|s| s.0)
}

/// Merges sample iterators by time; a timestamp several have is returned once, from the
/// first. `heads[i]` is the next sample of `its[i]` not yet returned.
pub(crate) struct MergeIter<'a> {
    its: Vec<Box<dyn SampleIterator + 'a>>,
    heads: Vec<Option<(Timestamp, f64)>>,
    started: bool,
    last: Option<(Timestamp, f64)>,
}

impl<'a> MergeIter<'a> {
    pub(crate) fn new(its: Vec<Box<dyn SampleIterator + 'a>>) -> Self {
        MergeIter {
            its,
            heads: Vec::new(),
            started: false,
            last: None,
        }
    }

    fn start(&mut self) {
        if !self.started {
            self.heads = self.its.iter_mut().map(|it| it.next()).collect();
            self.started = true;
        }
    }
}

impl SampleIterator for MergeIter<'_> {
    fn next(&mut self) -> Option<(Timestamp, f64)> {
        self.start();
        let mut best: Option<(Timestamp, f64)> = None;
        for h in self.heads.iter().flatten() {
            if best.is_none_or(|b| h.0 < b.0) {
                best = Some(*h);
            }
        }
        let b = best?;
        for (h, it) in self.heads.iter_mut().zip(self.its.iter_mut()) {
            if h.is_some_and(|s| s.0 == b.0) {
                *h = it.next();
            }
        }
        self.last = Some(b);
        Some(b)
    }

    fn seek(&mut self, t: Timestamp) -> Option<(Timestamp, f64)> {
        if let Some(l) = self.last
            && l.0 >= t
        {
            return Some(l);
        }
        self.start();
        for (h, it) in self.heads.iter_mut().zip(self.its.iter_mut()) {
            if h.is_some_and(|s| s.0 < t) {
                *h = it.seek(t);
            }
        }
        self.next()
    }
}

/// The merged series stream: each block's iterator stands at its next series not yet merged
/// ([`BlockSeriesIter::advance`]), `head_next` is the head's. Block series are compared where
/// their labels lie in the block index; a label set is built only for a series that no later
/// source has (the head's is shared, not copied).
struct MergeSeriesSet {
    blocks: Vec<BlockSeriesIter>,
    head: HeadSeriesIter,
    head_next: Option<HeadSeries>,
    started: bool,
    failed: bool,
    /// The sources whose next series is the least, in source order (kept for its capacity).
    ties: Vec<usize>,
    live: Arc<QueryLive>,
}

impl MergeSeriesSet {
    /// The next series of source `i` (the blocks, then the head).
    fn key(&self, i: usize) -> Option<SeriesKey<'_>> {
        match self.blocks.get(i) {
            Some(b) => b.key(),
            None => self
                .head_next
                .as_ref()
                .map(|s| SeriesKey::Labels(s.labels())),
        }
    }

    /// Sets `ties` to the sources whose next series is the least.
    fn least(&self, ties: &mut Vec<usize>) {
        ties.clear();
        let mut min: Option<SeriesKey<'_>> = None;
        for i in 0..=self.blocks.len() {
            let Some(k) = self.key(i) else {
                continue;
            };
            // Usually every source has the same next series.
            match min.as_ref().map(|m| k.cmp(m)) {
                None | Some(Ordering::Less) => {
                    min = Some(k);
                    ties.clear();
                    ties.push(i);
                }
                Some(Ordering::Equal) => ties.push(i),
                Some(Ordering::Greater) => {}
            }
        }
    }

    /// The head's next series, and moves the head on.
    fn take_head(&mut self) -> HeadSeries {
        let s = self
            .head_next
            .take()
            .expect("BUG: the head has a next series");
        self.head_next = self.head.next();
        s
    }

    /// Takes source `i`'s next part and moves the source on.
    fn take_part(&mut self, i: usize) -> Result<Part> {
        let Some(b) = self.blocks.get_mut(i) else {
            return Ok(Part::Head(self.take_head()));
        };
        let p = b.take_part().expect("BUG: the block has a next series");
        b.advance()?;
        Ok(Part::Block(p))
    }

    /// Source `i`'s next series, alone, and moves the source on.
    fn take_series(&mut self, i: usize) -> Result<Box<dyn Series>> {
        let Some(b) = self.blocks.get_mut(i) else {
            return Ok(Box::new(self.take_head()));
        };
        let s = b.take().expect("BUG: the block has a next series")?;
        b.advance()?;
        Ok(Box::new(s))
    }

    /// The series of the sources `ties` as one: the head's label set when it has the series,
    /// else one built from the first block's.
    fn merged(&mut self, ties: &[usize]) -> Result<Box<dyn Series>> {
        let labels = match &self.head_next {
            Some(h) if ties.last() == Some(&self.blocks.len()) => h.labels().clone(),
            _ => self.blocks[ties[0]].labels()?,
        };
        let mut parts = Vec::with_capacity(ties.len());
        for &i in ties {
            parts.push(self.take_part(i)?);
        }
        Ok(Box::new(MergedSeries {
            labels,
            parts,
            live: SeriesGuard::new(&self.live),
        }))
    }

    fn step(&mut self) -> Result<Option<Box<dyn Series>>> {
        if !self.started {
            self.started = true;
            for b in &mut self.blocks {
                b.advance()?;
            }
            self.head_next = self.head.next();
        }
        let mut ties = std::mem::take(&mut self.ties);
        self.least(&mut ties);
        let out = match ties[..] {
            [] => None,
            [i] => Some(self.take_series(i)?),
            _ => Some(self.merged(&ties)?),
        };
        self.ties = ties;
        Ok(out)
    }
}

impl Iterator for MergeSeriesSet {
    type Item = Result<Box<dyn Series>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.step();
        if r.is_err() {
            self.failed = true;
        }
        r.transpose()
    }
}

impl Querier for MergeQuerier {
    fn select(
        &self,
        sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Vec<Box<dyn Series>>> {
        self.select_iter(sorted, hints, matchers)?.collect()
    }

    fn select_iter(
        &self,
        _sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<SeriesSet<'_>> {
        let blocks = self
            .blocks
            .iter()
            .map(|b| b.series_iter(hints, matchers))
            .collect::<Result<Vec<_>>>()?;
        let set = MergeSeriesSet {
            ties: Vec::with_capacity(blocks.len() + 1),
            blocks,
            head: self.head.series_iter(true, hints, matchers),
            head_next: None,
            started: false,
            failed: false,
            live: self.head.live.clone(),
        };
        Ok(limited(set, hints.limit))
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut set = BTreeSet::new();
        for q in &self.blocks {
            set.extend(q.label_values(name, matchers)?);
        }
        set.extend(self.head.label_values(name, matchers)?);
        Ok(set.into_iter().collect())
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut set = BTreeSet::new();
        for q in &self.blocks {
            set.extend(q.label_names(matchers)?);
        }
        set.extend(self.head.label_names(matchers)?);
        Ok(set.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::SliceIter;

    #[test]
    fn merges_and_dedups() {
        let a = [(1, 1.0), (3, 3.0), (5, 5.0)];
        let b = [(2, 2.0), (3, 30.0), (6, 6.0)];
        let mk = || {
            MergeIter::new(vec![
                Box::new(SliceIter::new(&a)),
                Box::new(SliceIter::new(&b)),
                Box::new(SliceIter::new(&[])),
            ])
        };
        let mut it = mk();
        let mut got = Vec::new();
        while let Some(x) = it.next() {
            got.push(x);
        }
        assert_eq!(got, [(1, 1.0), (2, 2.0), (3, 3.0), (5, 5.0), (6, 6.0)]);
        let mut it = mk();
        assert_eq!(it.seek(4), Some((5, 5.0)));
        assert_eq!(it.seek(5), Some((5, 5.0)));
        assert_eq!(it.next(), Some((6, 6.0)));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn chain_reads_parts_in_turn_and_seeks_across_them() {
        let a = [(1, 1.0), (3, 3.0)];
        let b: [(i64, f64); 0] = [];
        let c = [(5, 5.0), (7, 7.0), (9, 9.0)];
        let mk = || {
            ChainIter::new(
                vec![SliceIter::new(&a), SliceIter::new(&b), SliceIter::new(&c)].into_iter(),
                Some(9),
            )
        };
        let mut it = mk();
        let mut got = Vec::new();
        while let Some(x) = it.next() {
            got.push(x);
        }
        assert_eq!(got, [(1, 1.0), (3, 3.0), (5, 5.0), (7, 7.0), (9, 9.0)]);
        let mut it = mk();
        assert_eq!(it.seek(2), Some((3, 3.0)));
        assert_eq!(it.seek(3), Some((3, 3.0)));
        assert_eq!(it.seek(4), Some((5, 5.0)));
        assert_eq!(it.next(), Some((7, 7.0)));
        assert_eq!(it.seek(8), Some((9, 9.0)));
        assert_eq!(it.seek(10), None);
        let mut it = mk();
        let mut out = Vec::new();
        assert_eq!(it.next_until(5, &mut out), Some((7, 7.0)));
        assert_eq!(out, [(1, 1.0), (3, 3.0), (5, 5.0)]);
        assert_eq!(it.seek(6), Some((7, 7.0)));
        out.clear();
        assert_eq!(it.next_until(20, &mut out), None);
        assert_eq!(out, [(9, 9.0)]);
    }
}
