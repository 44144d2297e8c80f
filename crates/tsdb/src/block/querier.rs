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
use super::index::{ChunkMeta, SymbolCache};
use super::tombstones::Tombstones;
use crate::read::{ChunkList, ChunkSeqIter, QueryLive, SeriesGuard, limited};

/// A series of a block within a time range. Holds the series' id, not its chunk list: a
/// query over many blocks keeps one small entry per block and series, and the chunk metas are
/// read from the mapped index only while the series is iterated.
pub(crate) struct BlockSeries {
    block: Arc<Block>,
    labels: Labels,
    id: u64,
    deleted: Vec<(i64, i64)>,
    mint: i64,
    maxt: i64,
    live: SeriesGuard,
}

impl BlockSeries {
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

    pub(crate) fn sample_iter(&self) -> ChunkSeqIter<'_, BlockChunks<'_>> {
        ChunkSeqIter::new(
            BlockChunks {
                block: &self.block,
                metas: self.chunks(),
            },
            (self.mint, self.maxt),
            &self.deleted,
            self.live.live(),
        )
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
        Box::new(self.sample_iter())
    }

    fn raw_chunks(&self) -> Option<Vec<storage::RawChunk<'_>>> {
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
    failed: bool,
}

impl Iterator for BlockSeriesIter {
    type Item = Result<BlockSeries>;

    fn next(&mut self) -> Option<Result<BlockSeries>> {
        if self.failed {
            return None;
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
            let labels =
                match self
                    .block
                    .index
                    .series_if(id, &mut self.symbols, &mut self.labels_buf, keep)
                {
                    Ok(Some(l)) => l,
                    Ok(None) => continue,
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(err(e)));
                    }
                };
            return Some(Ok(BlockSeries {
                block: self.block.clone(),
                labels,
                id,
                deleted: deleted.to_vec(),
                // Labels-only selects never iterate; an empty range keeps it so.
                mint: if self.labels_only { i64::MAX } else { mint },
                maxt: if self.labels_only { i64::MIN } else { maxt },
                live: SeriesGuard::new(&self.live),
            }));
        }
        None
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
