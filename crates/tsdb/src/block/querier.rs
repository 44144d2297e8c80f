//! Reading a block: series selection through its index, produced one series at a time, and
//! iterators that decode chunks from the mapped segments only when reached (a query holds
//! chunk metadata, never samples).

use std::collections::BTreeSet;
use std::sync::Arc;

use model::labels::LabelsBuf;
use model::{Labels, Matcher};
use storage::{Querier, Result, SampleIterator, SelectHints, Series, SeriesSet, StorageError};

use super::Block;
use super::chunks::ENCODING_XOR;
use super::index::{ChunkMeta, IndexReader, LabelSpans, SymbolCache};
use super::tombstones::Tombstones;
use crate::read::{ChunkList, ChunkSeqIter, QueryLive, SeriesGuard, limited};

/// A series of a block within a time range. Holds the series' id, not its chunk list: a
/// query over many blocks keeps one small entry per block and series, and the chunk metas are
/// read from the mapped index only while the series is iterated.
pub(crate) struct BlockSeries {
    part: BlockPart,
    labels: Labels,
    live: SeriesGuard,
}

/// A block's part of a series, without its labels: in a series merged from several sources,
/// the merged series holds the labels and counts as one live series.
pub(crate) struct BlockPart {
    block: Arc<Block>,
    id: u64,
    deleted: Vec<(i64, i64)>,
    mint: i64,
    maxt: i64,
}

impl BlockPart {
    /// The chunks overlapping the range and not wholly deleted.
    fn chunks(&self) -> Vec<ChunkMeta> {
        let (mint, maxt, del) = (self.mint, self.maxt, &self.deleted);
        let keep = |c: &ChunkMeta| {
            c.maxt >= mint
                && c.mint <= maxt
                && !del.iter().any(|&(a, b)| a <= c.mint && c.maxt <= b)
        };
        match self.block.index.chunk_metas_where(self.id, keep) {
            Ok(chunks) => chunks,
            Err(e) => {
                tracing::error!(error = %e, "reading block series");
                Vec::new()
            }
        }
    }

    /// The inclusive time span this series' samples can have: the block's range within the
    /// query's.
    pub(crate) fn span(&self) -> (i64, i64) {
        let m = self.block.meta();
        (
            self.mint.max(m.min_time),
            self.maxt.min(m.max_time.saturating_sub(1)),
        )
    }

    /// Its samples, the iterator counted in `live`.
    pub(crate) fn sample_iter<'a>(
        &'a self,
        live: &'a QueryLive,
    ) -> ChunkSeqIter<'a, BlockChunks<'a>> {
        ChunkSeqIter::new(
            BlockChunks {
                block: &self.block,
                metas: self.chunks(),
            },
            (self.mint, self.maxt),
            &self.deleted,
            live,
        )
    }

    pub(crate) fn raw_chunks(&self) -> Option<Vec<storage::RawChunk<'_>>> {
        if !self.deleted.is_empty() {
            return None;
        }
        self.chunks()
            .into_iter()
            .map(|c| match self.block.chunks.chunk(c.chunk_ref) {
                Ok((ENCODING_XOR, data)) => Some(storage::RawChunk { maxt: c.maxt, data }),
                _ => None,
            })
            .collect()
    }
}

/// The chunks of a block series, read from the mapped segments when opened.
pub(crate) struct BlockChunks<'a> {
    block: &'a Block,
    metas: Vec<ChunkMeta>,
}

impl<'a> ChunkList<'a> for BlockChunks<'a> {
    fn len(&self) -> usize {
        self.metas.len()
    }

    fn maxt(&self, i: usize) -> i64 {
        self.metas[i].maxt
    }

    fn bytes(&self, i: usize) -> Option<&'a [u8]> {
        match self.block.chunks.chunk(self.metas[i].chunk_ref) {
            Ok((ENCODING_XOR, data)) => Some(data),
            Ok((enc, _)) => {
                tracing::warn!(
                    encoding = enc,
                    "skipping block chunk of unsupported encoding"
                );
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "skipping unreadable block chunk");
                None
            }
        }
    }
}

impl Series for BlockSeries {
    fn labels(&self) -> &Labels {
        &self.labels
    }

    fn iter(&self) -> Box<dyn SampleIterator + '_> {
        Box::new(self.part.sample_iter(self.live.live()))
    }

    fn raw_chunks(&self) -> Option<Vec<storage::RawChunk<'_>>> {
        self.part.raw_chunks()
    }
}

fn err(e: crate::error::TsdbError) -> StorageError {
    e.into()
}

/// A [`Querier`] over one block for an inclusive range.
pub(crate) struct BlockQuerier {
    pub(crate) block: Arc<Block>,
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    pub(crate) live: Arc<QueryLive>,
}

/// The series of a block selection, produced one at a time in label order (the index order).
/// Holds the matching series ids (from the postings) and reads each series' labels and chunk
/// metas from the mapped index only when reached.
///
/// A merge over several blocks steps with [`BlockSeriesIter::advance`], which finds where the
/// next series' label names and values lie in the index without building its label set;
/// [`BlockSeriesIter::key`] compares it with other sources' series, and
/// [`BlockSeriesIter::take`] builds the series, with a label set from another source when
/// that has the same series (most series are in every block and the head).
pub(crate) struct BlockSeriesIter {
    block: Arc<Block>,
    ids: std::vec::IntoIter<u64>,
    tomb: Arc<Tombstones>,
    mint: i64,
    maxt: i64,
    labels_only: bool,
    live: Arc<QueryLive>,
    symbols: SymbolCache,
    labels_buf: LabelsBuf,
    /// The series [`BlockSeriesIter::advance`] stopped at, not yet taken.
    cur: Option<u64>,
    /// Its labels.
    pairs: Vec<LabelSpans>,
    failed: bool,
}

impl BlockSeriesIter {
    /// Moves to the next series with data in range (not yet taken); false at the end.
    pub(crate) fn advance(&mut self) -> Result<bool> {
        self.cur = None;
        if self.failed {
            return Ok(false);
        }
        let (mint, maxt) = (self.mint, self.maxt);
        for id in self.ids.by_ref() {
            // Checked here so series without data in range are not returned; the metas are
            // read again at iteration instead of being held.
            let deleted = self.tomb.get(id);
            let keep = |c: &ChunkMeta| {
                c.maxt >= mint
                    && c.mint <= maxt
                    && !deleted.iter().any(|&(a, b)| a <= c.mint && c.maxt <= b)
            };
            match self
                .block
                .index
                .series_refs_if(id, &mut self.symbols, &mut self.pairs, keep)
            {
                Ok(true) => {
                    self.cur = Some(id);
                    return Ok(true);
                }
                Ok(false) => {}
                Err(e) => {
                    self.failed = true;
                    return Err(err(e));
                }
            }
        }
        Ok(false)
    }

    /// The labels of the series [`BlockSeriesIter::advance`] stopped at.
    pub(crate) fn key(&self) -> Option<SeriesKey<'_>> {
        self.cur
            .map(|_| SeriesKey::Index(&self.block.index, &self.pairs))
    }

    /// The label set of the series [`BlockSeriesIter::advance`] stopped at.
    pub(crate) fn labels(&mut self) -> Result<Labels> {
        let r = self
            .block
            .index
            .labels_at(&self.pairs, &mut self.labels_buf);
        self.failed |= r.is_err();
        r.map_err(err)
    }

    /// The series [`BlockSeriesIter::advance`] stopped at, without its labels; `None` when
    /// there is none.
    pub(crate) fn take_part(&mut self) -> Option<BlockPart> {
        let id = self.cur.take()?;
        Some(BlockPart {
            block: self.block.clone(),
            id,
            deleted: self.tomb.get(id).to_vec(),
            // Labels-only selects never iterate; an empty range keeps it so.
            mint: if self.labels_only {
                i64::MAX
            } else {
                self.mint
            },
            maxt: if self.labels_only {
                i64::MIN
            } else {
                self.maxt
            },
        })
    }

    /// The series [`BlockSeriesIter::advance`] stopped at; `None` when there is none.
    pub(crate) fn take(&mut self) -> Option<Result<BlockSeries>> {
        self.cur?;
        let labels = match self.labels() {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(BlockSeries {
            part: self.take_part()?,
            labels,
            live: SeriesGuard::new(&self.live),
        }))
    }
}

impl Iterator for BlockSeriesIter {
    type Item = Result<BlockSeries>;

    fn next(&mut self) -> Option<Result<BlockSeries>> {
        match self.advance() {
            Ok(true) => self.take(),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// A series' labels as a merge compares them: a label set, or where a block index holds them.
pub(crate) enum SeriesKey<'a> {
    Labels(&'a Labels),
    Index(&'a IndexReader, &'a [LabelSpans]),
}

impl SeriesKey<'_> {
    /// Compares as [`Labels`] do (label by label, name then value; a prefix first), without
    /// building a label set.
    pub(crate) fn cmp(&self, other: &SeriesKey<'_>) -> std::cmp::Ordering {
        match (self, other) {
            (SeriesKey::Labels(a), SeriesKey::Labels(b)) => {
                if a == b {
                    std::cmp::Ordering::Equal
                } else {
                    a.cmp(b)
                }
            }
            _ => self.pairs().cmp(other.pairs()),
        }
    }

    fn pairs(&self) -> KeyPairs<'_> {
        match self {
            SeriesKey::Labels(l) => KeyPairs::Labels(l.iter()),
            SeriesKey::Index(ix, pairs) => KeyPairs::Index(ix, pairs.iter()),
        }
    }
}

/// The (name, value) bytes of a [`SeriesKey`].
enum KeyPairs<'a> {
    Labels(model::labels::LabelsIter<'a>),
    Index(&'a IndexReader, std::slice::Iter<'a, LabelSpans>),
}

impl<'a> Iterator for KeyPairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            KeyPairs::Labels(it) => it.next().map(|l| (l.name.as_bytes(), l.value.as_bytes())),
            KeyPairs::Index(ix, it) => it
                .next()
                .map(|&[n, v]| (ix.symbol_bytes(n), ix.symbol_bytes(v))),
        }
    }
}

impl BlockQuerier {
    /// Series in label order (the index order), with chunks overlapping the range, produced
    /// lazily. `hints.limit` is left to the caller.
    pub(crate) fn series_iter(
        &self,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<BlockSeriesIter> {
        let (mut mint, mut maxt) = (self.mint, self.maxt);
        if hints.start != 0 || hints.end != 0 {
            mint = mint.max(hints.start);
            maxt = maxt.min(hints.end);
        }
        let meta = self.block.meta();
        let ids = if mint > maxt || !meta.overlaps(mint, maxt) {
            Vec::new()
        } else {
            self.block.index.for_matchers(matchers).map_err(err)?
        };
        Ok(BlockSeriesIter {
            block: self.block.clone(),
            ids: ids.into_iter(),
            tomb: self.block.tombstones(),
            mint,
            maxt,
            labels_only: hints.labels_only,
            live: self.live.clone(),
            symbols: SymbolCache::default(),
            labels_buf: LabelsBuf::new(),
            cur: None,
            pairs: Vec::new(),
            failed: false,
        })
    }

    fn overlaps(&self) -> bool {
        self.mint <= self.maxt && self.block.meta().overlaps(self.mint, self.maxt)
    }
}

impl Querier for BlockQuerier {
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
        let it = self
            .series_iter(hints, matchers)?
            .map(|r| r.map(|s| Box::new(s) as Box<dyn Series>));
        Ok(limited(it, hints.limit))
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        if !self.overlaps() {
            return Ok(Vec::new());
        }
        let ix = &self.block.index;
        if matchers.is_empty() {
            return Ok(ix
                .label_values(name)
                .into_iter()
                .map(String::from)
                .collect());
        }
        let mut set = BTreeSet::new();
        for id in ix.for_matchers(matchers).map_err(err)? {
            let (l, _) = ix.series(id).map_err(err)?;
            if let Some(v) = l.get(name) {
                set.insert(v.to_string());
            }
        }
        Ok(set.into_iter().collect())
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        if !self.overlaps() {
            return Ok(Vec::new());
        }
        let ix = &self.block.index;
        if matchers.is_empty() {
            return Ok(ix.label_names());
        }
        let mut set = BTreeSet::new();
        for id in ix.for_matchers(matchers).map_err(err)? {
            let (l, _) = ix.series(id).map_err(err)?;
            for p in l.iter() {
                set.insert(p.name.to_string());
            }
        }
        Ok(set.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::index::IndexWriter;

    /// An index of `series` (sorted here), each with one chunk.
    fn index(dir: &std::path::Path, name: &str, series: &[Labels]) -> IndexReader {
        let mut series = series.to_vec();
        series.sort();
        let mut syms: Vec<String> = series
            .iter()
            .flat_map(|l| {
                l.iter()
                    .flat_map(|p| [p.name.to_string(), p.value.to_string()])
            })
            .collect();
        syms.sort();
        syms.dedup();
        let path = dir.join(name);
        let mut w = IndexWriter::new(&path, syms).unwrap();
        for (n, l) in series.iter().enumerate() {
            let c = ChunkMeta {
                mint: 0,
                maxt: 10,
                chunk_ref: 8 + 16 * n as u64,
            };
            w.add_series(l, &[c]).unwrap();
        }
        w.finish().unwrap();
        IndexReader::open(&path).unwrap()
    }

    /// Each series of `ix` in index order: where its labels lie, and its label set.
    fn keyed(ix: &IndexReader) -> Vec<(Vec<LabelSpans>, Labels)> {
        let mut cache = SymbolCache::default();
        ix.all_postings()
            .unwrap()
            .into_iter()
            .map(|id| {
                let mut pairs = Vec::new();
                assert!(
                    ix.series_refs_if(id, &mut cache, &mut pairs, |_| true)
                        .unwrap()
                );
                let l = ix.labels_at(&pairs, &mut LabelsBuf::new()).unwrap();
                assert_eq!(l, ix.series(id).unwrap().0);
                (pairs, l)
            })
            .collect()
    }

    #[test]
    fn series_keys_order_like_label_sets_across_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let l = |p: &[(&str, &str)]| Labels::from_pairs(p.iter().copied());
        // Prefixes of names, values and label lists; symbols the other index lacks, so the
        // same string has different symbol numbers in the two.
        let a = [
            l(&[("a", "1")]),
            l(&[("a", "1"), ("b", "2")]),
            l(&[("a", "10")]),
            l(&[("a", "1"), ("bb", "")]),
            l(&[("__name__", "m"), ("a", "x")]),
            l(&[("aa", "1")]),
        ];
        let b = [
            l(&[("a", "1"), ("b", "2")]),
            l(&[("a", "1"), ("b", "3")]),
            l(&[("a", "0")]),
            l(&[("__name__", "m"), ("a", "x")]),
            l(&[("__name__", "m")]),
            l(&[("a", "10"), ("c", "z")]),
            l(&[("aa", "1")]),
        ];
        let (ia, ib) = (index(dir.path(), "a", &a), index(dir.path(), "b", &b));
        let (ka, kb) = (keyed(&ia), keyed(&ib));
        let keys: Vec<(SeriesKey<'_>, &Labels)> = ka
            .iter()
            .map(|(p, l)| (SeriesKey::Index(&ia, p), l))
            .chain(kb.iter().map(|(p, l)| (SeriesKey::Index(&ib, p), l)))
            .chain(ka.iter().chain(&kb).map(|(_, l)| (SeriesKey::Labels(l), l)))
            .collect();
        for (x, lx) in &keys {
            for (y, ly) in &keys {
                assert_eq!(x.cmp(y), lx.cmp(ly), "{lx} vs {ly}");
            }
        }
    }
}
