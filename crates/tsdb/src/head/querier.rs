//! Reading the head: series selection through the postings index, and iterators that decode
//! chunks lazily (full chunks straight from their mapped files, the open chunk from a copy of its
//! few hundred bytes taken under the series lock).

use std::collections::BTreeSet;
use std::sync::Arc;

use model::{Labels, Matcher, Timestamp};
use storage::{Querier, Result, SampleIterator, SelectHints, Series, SeriesSet};

use super::Head;
use crate::head_chunks::ChunkBytes;
use crate::read::{ChunkList, ChunkSeqIter, QueryLive, SeriesGuard, limited};

pub(crate) enum ChunkData {
    Disk(ChunkBytes),
    Mem(Box<[u8]>),
}

pub(crate) struct QueryChunk {
    maxt: i64,
    data: ChunkData,
}

impl QueryChunk {
    fn bytes(&self) -> &[u8] {
        match &self.data {
            ChunkData::Disk(b) => b.as_slice(),
            ChunkData::Mem(b) => b,
        }
    }
}

/// A selected series: labels plus the chunks overlapping the query range.
pub(crate) struct HeadSeries {
    labels: Labels,
    chunks: Vec<QueryChunk>,
    mint: i64,
    maxt: i64,
    /// The inclusive time span of the selected chunks and out-of-order samples.
    span: (i64, i64),
    /// Deleted intervals (tombstones) of this series.
    deleted: Vec<(i64, i64)>,
    /// Out-of-order samples in range (not deleted), merged into the chunks' samples.
    ooo: Vec<(i64, f64)>,
    live: SeriesGuard,
}

impl<'a> ChunkList<'a> for &'a [QueryChunk] {
    fn len(&self) -> usize {
        <[QueryChunk]>::len(self)
    }

    fn maxt(&self, i: usize) -> i64 {
        self[i].maxt
    }

    fn bytes(&self, i: usize) -> Option<&'a [u8]> {
        Some(self[i].bytes())
    }
}

/// The sample iterator of a head series: its chunks, with out-of-order samples merged in when
/// it has any.
pub(crate) enum HeadSampleIter<'a> {
    InOrder(ChunkSeqIter<'a, &'a [QueryChunk]>),
    WithOoo(crate::merge::MergeIter<'a>),
}

impl SampleIterator for HeadSampleIter<'_> {
    #[inline]
    fn next(&mut self) -> Option<(Timestamp, f64)> {
        match self {
            HeadSampleIter::InOrder(it) => it.next(),
            HeadSampleIter::WithOoo(it) => it.next(),
        }
    }

    fn seek(&mut self, t: Timestamp) -> Option<(Timestamp, f64)> {
        match self {
            HeadSampleIter::InOrder(it) => it.seek(t),
            HeadSampleIter::WithOoo(it) => it.seek(t),
        }
    }

    fn max_time_hint(&self) -> Option<Timestamp> {
        match self {
            HeadSampleIter::InOrder(it) => it.max_time_hint(),
            HeadSampleIter::WithOoo(_) => None,
        }
    }

    fn next_until(
        &mut self,
        t: Timestamp,
        out: &mut Vec<(Timestamp, f64)>,
    ) -> Option<(Timestamp, f64)> {
        match self {
            HeadSampleIter::InOrder(it) => it.next_until(t, out),
            HeadSampleIter::WithOoo(it) => it.next_until(t, out),
        }
    }
}

impl HeadSeries {
    pub(crate) fn span(&self) -> (i64, i64) {
        self.span
    }

    pub(crate) fn sample_iter(&self) -> HeadSampleIter<'_> {
        let it = ChunkSeqIter::new(
            self.chunks.as_slice(),
            (self.mint, self.maxt),
            &self.deleted,
            self.live.live(),
        );
        if self.ooo.is_empty() {
            return HeadSampleIter::InOrder(it);
        }
        HeadSampleIter::WithOoo(crate::merge::MergeIter::new(vec![
            Box::new(it),
            Box::new(storage::SliceIter::new(&self.ooo)),
        ]))
    }
}

impl Series for HeadSeries {
    fn labels(&self) -> &Labels {
        &self.labels
    }

    fn iter(&self) -> Box<dyn SampleIterator + '_> {
        Box::new(self.sample_iter())
    }

    fn raw_chunks(&self) -> Option<Vec<storage::RawChunk<'_>>> {
        // Deletions and out-of-order samples are applied while iterating, not in the chunks.
        if !self.deleted.is_empty() || !self.ooo.is_empty() {
            return None;
        }
        Some(
            self.chunks
                .iter()
                .map(|c| storage::RawChunk {
                    maxt: c.maxt,
                    data: c.bytes(),
                })
                .collect(),
        )
    }
}

/// The series of a head selection, produced one at a time: the matching refs are taken (and
/// sorted by labels when asked) up front; each series' chunks are looked up, and its open
/// chunk copied, only when it is reached.
pub(crate) struct HeadSeriesIter {
    head: Arc<Head>,
    refs: std::vec::IntoIter<u64>,
    mint: i64,
    ooo_mint: i64,
    maxt: i64,
    labels_only: bool,
    live: Arc<QueryLive>,
}

impl Iterator for HeadSeriesIter {
    type Item = HeadSeries;

    fn next(&mut self) -> Option<HeadSeries> {
        for r in self.refs.by_ref() {
            if let Some(s) = self.head.series_in_range(
                r,
                (self.mint, self.ooo_mint),
                self.maxt,
                self.labels_only,
                &self.live,
            ) {
                return Some(s);
            }
        }
        None
    }
}

impl Head {
    /// Series `r` with its chunks overlapping `[mint, maxt]` and out-of-order samples in
    /// `[ooo_mint, maxt]`; `None` when it is gone or has nothing in range.
    fn series_in_range(
        &self,
        r: u64,
        (mint, ooo_mint): (i64, i64),
        maxt: i64,
        labels_only: bool,
        live: &Arc<QueryLive>,
    ) -> Option<HeadSeries> {
        let s = self.get_by_ref(r)?;
        let mut disk: Vec<(u64, i64)> = Vec::new();
        let mut mem = None;
        let mut span = (i64::MAX, i64::MIN);
        let deleted = self.tombstones.read().get(r).to_vec();
        let ooo: Vec<(i64, f64)>;
        {
            let st = s.state.lock();
            let mut o = self.ooo.range(r, ooo_mint, maxt);
            o.retain(|x| !crate::block::tombstones::is_deleted(&deleted, x.0));
            ooo = o;
            for c in st
                .mmapped
                .iter()
                .filter(|c| c.maxt() >= mint && c.mint() <= maxt)
            {
                span = (span.0.min(c.mint()), span.1.max(c.maxt()));
                disk.push((c.chunk_ref(), c.maxt()));
            }
            if let Some(h) = st
                .head
                .as_ref()
                .filter(|h| h.maxt() >= mint && h.mint <= maxt)
            {
                span = (span.0.min(h.mint), span.1.max(h.maxt()));
                mem = Some((
                    h.maxt(),
                    (!labels_only).then(|| Box::<[u8]>::from(h.app.bytes())),
                ));
            }
        }
        if disk.is_empty() && mem.is_none() && ooo.is_empty() {
            return None;
        }
        if let (Some(f), Some(l)) = (ooo.first(), ooo.last()) {
            span = (span.0.min(f.0), span.1.max(l.0));
        }
        let mut chunks = Vec::new();
        if !labels_only {
            chunks.reserve_exact(disk.len() + 1);
            for &(cref, cmaxt) in &disk {
                match self.chunks.chunk(cref) {
                    Ok(b) => chunks.push(QueryChunk {
                        maxt: cmaxt,
                        data: ChunkData::Disk(b),
                    }),
                    // Truncated away since the lookup, or damaged: the rest still reads.
                    Err(e) => {
                        tracing::warn!(series = r, error = %e, "skipping unreadable head chunk")
                    }
                }
            }
            if let Some((hmaxt, Some(bytes))) = mem {
                chunks.push(QueryChunk {
                    maxt: hmaxt,
                    data: ChunkData::Mem(bytes),
                });
            }
        }
        Some(HeadSeries {
            labels: s.labels.clone(),
            chunks,
            mint,
            maxt,
            span: (span.0.max(mint.min(ooo_mint)), span.1.min(maxt)),
            deleted,
            ooo,
            live: SeriesGuard::new(live),
        })
    }
}

/// A [`Querier`] over the head for a fixed range.
pub(crate) struct HeadQuerier {
    pub(crate) head: Arc<Head>,
    pub(crate) mint: i64,
    /// Out-of-order samples may lie below `mint` (the head's in-order floor).
    pub(crate) ooo_mint: i64,
    pub(crate) maxt: i64,
    pub(crate) live: Arc<QueryLive>,
    /// Keeps a head truncation from dropping what this querier may still read (see
    /// [`crate::readers`]).
    pub(crate) _reader: crate::readers::ReaderGuard,
}

impl HeadQuerier {
    fn overlaps_head(&self) -> bool {
        !self.head.is_empty()
            && self.mint <= self.head.max_time()
            && self.maxt >= self.head.min_time()
            && self.mint <= self.maxt
    }

    fn matching_labels(&self, matchers: &[Matcher]) -> Vec<Labels> {
        let refs = self.head.postings.read().for_matchers(matchers);
        refs.into_iter()
            .filter_map(|r| self.head.get_by_ref(r))
            .map(|s| s.labels.clone())
            .collect()
    }

    /// The matching series, produced lazily (in label order when `sorted`). `hints.limit` is
    /// left to the caller.
    pub(crate) fn series_iter(
        &self,
        sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> HeadSeriesIter {
        let (mut mint, mut ooo_mint, mut maxt) = (self.mint, self.ooo_mint, self.maxt);
        if hints.start != 0 || hints.end != 0 {
            mint = mint.max(hints.start);
            ooo_mint = ooo_mint.max(hints.start);
            maxt = maxt.min(hints.end);
        }
        let mut refs = if mint.min(ooo_mint) > maxt {
            Vec::new()
        } else {
            self.head.postings.read().for_matchers(matchers)
        };
        if sorted {
            let mut by_labels: Vec<(Labels, u64)> = refs
                .iter()
                .filter_map(|&r| Some((self.head.get_by_ref(r)?.labels.clone(), r)))
                .collect();
            by_labels.sort_unstable();
            refs = by_labels.into_iter().map(|(_, r)| r).collect();
        }
        HeadSeriesIter {
            head: self.head.clone(),
            refs: refs.into_iter(),
            mint,
            ooo_mint,
            maxt,
            labels_only: hints.labels_only,
            live: self.live.clone(),
        }
    }
}

impl Querier for HeadQuerier {
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
        sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<SeriesSet<'_>> {
        let it = self
            .series_iter(sorted, hints, matchers)
            .map(|s| Ok(Box::new(s) as Box<dyn Series>));
        Ok(limited(it, hints.limit))
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        if !self.overlaps_head() {
            return Ok(Vec::new());
        }
        if matchers.is_empty() {
            return Ok(self.head.postings.read().label_values(name));
        }
        let mut set = BTreeSet::new();
        for l in self.matching_labels(matchers) {
            if let Some(v) = l.get(name)
                && !set.contains(v)
            {
                set.insert(v.to_string());
            }
        }
        Ok(set.into_iter().collect())
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        if !self.overlaps_head() {
            return Ok(Vec::new());
        }
        if matchers.is_empty() {
            return Ok(self.head.postings.read().label_names());
        }
        let mut set = BTreeSet::new();
        for l in self.matching_labels(matchers) {
            for label in l.iter() {
                if !set.contains(label.name) {
                    set.insert(label.name.to_string());
                }
            }
        }
        Ok(set.into_iter().collect())
    }
}
