//! Storage contracts shared by everything that writes or reads series: [`Appender`] for ingestion,
//! [`Queryable`]/[`Querier`] for reads, small in-memory helpers, and the [`dedup`] merge of
//! replica series.
//!
//! This crate owns the interfaces only; it never stores anything itself. Units: timestamps are
//! milliseconds since the epoch; time ranges `[mint, maxt]` are inclusive at both ends.
//! Every trait object here is `Send`, and `Appendable`/`Queryable` are `Sync` so one storage can
//! be shared by scrape loops and HTTP handlers.

use model::{Labels, Matcher, Timestamp};

pub mod dedup;

/// A storage-specific handle to a series, returned by [`Appender::append`] so the next append to
/// the same series can skip the label lookup. `0` means "unknown".
pub type SeriesRef = u64;

/// Why an append or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The sample is older than the newest sample of its series.
    #[error("out of order sample")]
    OutOfOrder,
    /// The same timestamp was appended twice with different values.
    #[error("duplicate sample for timestamp")]
    DuplicateSample,
    /// The sample is older than what the storage still accepts (e.g. before the head's window).
    #[error("out of bounds")]
    OutOfBounds,
    /// The label set is not valid for storage (empty, or duplicate names).
    #[error("invalid labels: {0}")]
    InvalidLabels(String),
    /// A per-query or per-request limit was exceeded.
    #[error("{0}")]
    Limit(String),
    /// The storage is closed or shutting down.
    #[error("storage closed")]
    Closed,
    /// An I/O error with what was being done.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Corrupt data found while reading.
    #[error("corruption: {0}")]
    Corruption(String),
}

impl StorageError {
    /// Whether this error rejects one sample (the rest of a batch can proceed) rather than the
    /// whole batch.
    pub fn is_sample_error(&self) -> bool {
        matches!(
            self,
            StorageError::OutOfOrder | StorageError::DuplicateSample | StorageError::OutOfBounds
        )
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A batch of appends that becomes visible and durable at [`Appender::commit`].
/// Not shared between threads; create one per batch (per scrape).
pub trait Appender: Send {
    /// Adds one float sample. Pass `series_ref` from an earlier call for the same labels (or 0);
    /// when it is non-zero and still valid, `labels` may be ignored. Returns the series' ref.
    /// Sample-level errors ([`StorageError::is_sample_error`]) leave the batch usable.
    fn append(
        &mut self,
        series_ref: SeriesRef,
        labels: &Labels,
        t: Timestamp,
        v: f64,
    ) -> Result<SeriesRef>;

    /// Writes the batch durably (WAL) and makes it visible to queries.
    fn commit(self: Box<Self>) -> Result<()>;

    /// Discards the batch.
    fn rollback(self: Box<Self>);
}

/// Something that hands out appenders.
pub trait Appendable: Send + Sync {
    fn appender(&self) -> Box<dyn Appender>;
}

/// Iterates the samples of one series in increasing timestamp order.
pub trait SampleIterator: Send {
    /// The next sample, or `None` at the end.
    fn next(&mut self) -> Option<(Timestamp, f64)>;

    /// Advances to the first sample with timestamp >= `t` and returns it (may return the current
    /// sample again if it already satisfies the bound).
    fn seek(&mut self, t: Timestamp) -> Option<(Timestamp, f64)>;

    /// An upper bound of the timestamps still to come, when known without reading them
    /// (e.g. from chunk metadata); `None` (the default) when unknown.
    fn max_time_hint(&self) -> Option<Timestamp> {
        None
    }

    /// Appends to `out` the next samples with timestamps up to and including `t`, and returns
    /// the first sample after `t` (consumed, as [`SampleIterator::next`] would have returned
    /// it; it is the current sample for a following `seek`), or `None` at the end. One call per
    /// query step instead of one per sample; storages that hold decoded samples copy them in
    /// bulk. The default loops on `next`.
    fn next_until(
        &mut self,
        t: Timestamp,
        out: &mut Vec<(Timestamp, f64)>,
    ) -> Option<(Timestamp, f64)> {
        loop {
            let s = self.next()?;
            if s.0 > t {
                return Some(s);
            }
            out.push(s);
        }
    }
}

/// One series from a query.
pub trait Series: Send {
    fn labels(&self) -> &Labels;
    /// A fresh iterator over the samples within the querier's time range.
    fn iter(&self) -> Box<dyn SampleIterator + '_>;

    /// The series' samples as the chunks the storage holds, unchanged, when it can hand them
    /// out that way (the remote read server streams them without decoding). `None` (the
    /// default) when it cannot, e.g. when deletions or out-of-order samples must be applied.
    /// The chunks, in time order and not overlapping, hold every sample [`Series::iter`]
    /// returns and may hold more outside the querier's range (whole chunks are kept).
    fn raw_chunks(&self) -> Option<Vec<RawChunk<'_>>> {
        None
    }
}

/// One stored chunk in Prometheus's XOR encoding (`tsdb/docs/format/chunks.md`: a 2-byte big
/// endian sample count, then the bit stream), borrowed from the storage.
#[derive(Debug, Clone, Copy)]
pub struct RawChunk<'a> {
    /// Timestamp of the chunk's last sample (ms).
    pub maxt: Timestamp,
    pub data: &'a [u8],
}

/// Extra information about a select; storages may use it to read less.
#[derive(Debug, Clone, Default)]
pub struct SelectHints {
    pub start: Timestamp,
    pub end: Timestamp,
    /// Query step in ms, 0 for instant queries.
    pub step: i64,
    /// Aggregation or function name wrapping the selector, if any.
    pub func: Option<String>,
    /// Only label sets are needed, not samples (e.g. `/api/v1/series`).
    pub labels_only: bool,
    /// Stop after this many series (0 = no limit).
    pub limit: usize,
}

/// A stream of series from [`Querier::select_iter`].
pub type SeriesSet<'a> = Box<dyn Iterator<Item = Result<Box<dyn Series>>> + Send + 'a>;

/// Reads a fixed time range of a storage. Cheap to create; holds no long-lived locks.
pub trait Querier: Send {
    /// Series matching all `matchers` (at least one matcher must not match the empty string,
    /// checked by callers), with samples in the querier's range. When `sorted`, series come in
    /// label order.
    fn select(
        &self,
        sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Vec<Box<dyn Series>>>;

    /// Like [`Querier::select`], but the series come one at a time, so a caller that handles
    /// each series before asking for the next holds only what the storage needs to produce the
    /// next one (for a storage of many blocks: one entry per block, not the whole result). An
    /// error ends the stream. The default collects [`Querier::select`].
    fn select_iter(
        &self,
        sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<SeriesSet<'_>> {
        Ok(Box::new(
            self.select(sorted, hints, matchers)?.into_iter().map(Ok),
        ))
    }

    /// Sorted distinct values of label `name` among series matching `matchers` (all series
    /// when empty).
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>>;

    /// Sorted distinct label names among series matching `matchers` (all series when empty).
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>>;
}

/// Something that can be queried over a time range.
pub trait Queryable: Send + Sync {
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> Result<Box<dyn Querier>>;
}

/// A series held in memory as a vector of samples, for tests and small merged results.
#[derive(Debug, Clone)]
pub struct VecSeries {
    pub labels: Labels,
    pub samples: Vec<(Timestamp, f64)>,
}

impl Series for VecSeries {
    fn labels(&self) -> &Labels {
        &self.labels
    }

    fn iter(&self) -> Box<dyn SampleIterator + '_> {
        Box::new(SliceIter {
            s: &self.samples,
            i: 0,
        })
    }
}

/// Fixed in-memory series as a [`Queryable`], for tests. A select returns every series whose
/// labels match, whole: samples outside the querier's range are kept, so a test sees what the
/// code under test filters itself. Series come in the order given, whatever `sorted` says.
#[derive(Debug, Clone, Default)]
pub struct VecQueryable(pub Vec<VecSeries>);

impl VecQueryable {
    fn matching<'a>(&'a self, matchers: &'a [Matcher]) -> impl Iterator<Item = &'a Labels> {
        self.0
            .iter()
            .map(|s| &s.labels)
            .filter(|l| model::matcher::matches_all(l, matchers))
    }
}

impl Queryable for VecQueryable {
    fn querier(&self, _mint: Timestamp, _maxt: Timestamp) -> Result<Box<dyn Querier>> {
        Ok(Box::new(self.clone()))
    }
}

impl Querier for VecQueryable {
    fn select(
        &self,
        _sorted: bool,
        _hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Vec<Box<dyn Series>>> {
        Ok(self
            .0
            .iter()
            .filter(|s| model::matcher::matches_all(&s.labels, matchers))
            .map(|s| Box::new(s.clone()) as Box<dyn Series>)
            .collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let set: std::collections::BTreeSet<&str> = self
            .matching(matchers)
            .filter_map(|l| l.get(name))
            .collect();
        Ok(set.into_iter().map(String::from).collect())
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let set: std::collections::BTreeSet<&str> = self
            .matching(matchers)
            .flat_map(|l| l.iter().map(|p| p.name))
            .collect();
        Ok(set.into_iter().map(String::from).collect())
    }
}

/// Iterator over a sample slice.
pub struct SliceIter<'a> {
    s: &'a [(Timestamp, f64)],
    i: usize,
}

impl<'a> SliceIter<'a> {
    pub fn new(s: &'a [(Timestamp, f64)]) -> Self {
        SliceIter { s, i: 0 }
    }
}

impl SampleIterator for SliceIter<'_> {
    fn next(&mut self) -> Option<(Timestamp, f64)> {
        let r = self.s.get(self.i).copied();
        if r.is_some() {
            self.i += 1;
        }
        r
    }

    fn seek(&mut self, t: Timestamp) -> Option<(Timestamp, f64)> {
        // The current sample is the one last returned, if any.
        let from = self.i.saturating_sub(1);
        let idx = from + self.s[from.min(self.s.len())..].partition_point(|&(st, _)| st < t);
        self.i = idx;
        self.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_until_stops_after_the_bound() {
        let s = [(1, 1.0), (5, 5.0), (9, 9.0)];
        let mut it = SliceIter::new(&s);
        let mut out = Vec::new();
        assert_eq!(it.next_until(5, &mut out), Some((9, 9.0)));
        assert_eq!(out, [(1, 1.0), (5, 5.0)]);
        assert_eq!(
            it.seek(9),
            Some((9, 9.0)),
            "the returned sample is the current one"
        );
        out.clear();
        assert_eq!(it.next_until(100, &mut out), None);
        assert!(out.is_empty());
    }

    #[test]
    fn vec_queryable_selects_by_matchers() {
        let s = |job: &str, env: Option<&str>| VecSeries {
            labels: match env {
                Some(e) => Labels::from_pairs([("__name__", "up"), ("env", e), ("job", job)]),
                None => Labels::from_pairs([("__name__", "up"), ("job", job)]),
            },
            samples: vec![(1, 1.0), (1000, 2.0)],
        };
        let q = VecQueryable(vec![
            s("b", None),
            s("a", Some("prod")),
            s("c", Some("dev")),
        ])
        .querier(500, 600)
        .unwrap();
        let m = |k, n: &str, v: &str| Matcher::new(k, n, v).unwrap();
        let jobs = |ms: &[Matcher]| -> Vec<String> {
            let got = q.select(true, &SelectHints::default(), ms).unwrap();
            got.iter()
                .map(|s| s.labels().get_or_empty("job").to_string())
                .collect()
        };
        assert_eq!(
            jobs(&[m(model::MatchType::Equal, "__name__", "up")]),
            ["b", "a", "c"]
        );
        assert_eq!(
            jobs(&[m(model::MatchType::RegexMatch, "env", ".+")]),
            ["a", "c"]
        );
        assert!(jobs(&[m(model::MatchType::Equal, "job", "x")]).is_empty());
        let all = q.select(false, &SelectHints::default(), &[]).unwrap();
        assert_eq!(
            all[0].iter().next(),
            Some((1, 1.0)),
            "samples are not trimmed"
        );
        assert_eq!(q.label_values("job", &[]).unwrap(), ["a", "b", "c"]);
        let prod = [m(model::MatchType::Equal, "env", "prod")];
        assert_eq!(q.label_values("job", &prod).unwrap(), ["a"]);
        assert_eq!(q.label_names(&[]).unwrap(), ["__name__", "env", "job"]);
        let no_env = [m(model::MatchType::Equal, "env", "")];
        assert_eq!(q.label_names(&no_env).unwrap(), ["__name__", "job"]);
    }

    #[test]
    fn slice_iter_seek() {
        let s = [(1, 1.0), (5, 5.0), (9, 9.0)];
        let mut it = SliceIter::new(&s);
        assert_eq!(it.seek(4), Some((5, 5.0)));
        assert_eq!(it.seek(5), Some((5, 5.0)));
        assert_eq!(it.next(), Some((9, 9.0)));
        assert_eq!(it.seek(10), None);
        let mut it = SliceIter::new(&s);
        assert_eq!(it.seek(0), Some((1, 1.0)));
        assert_eq!(it.next(), Some((5, 5.0)));
    }
}
