//! The per-target scrape cache: raw series bytes → series ref and final labels, so a steady
//! state scrape does no label processing, no relabelling and no allocation per sample; the
//! bookkeeping for staleness markers; and the target's metric metadata.
//!
//! Iterations: every scrape has a number. A series is *live* at an iteration when a sample
//! without an explicit timestamp was appended for it then. After a successful scrape, series
//! live at the previous successful scrape but not now get a staleness marker; after a failed
//! one (or when the target goes away) every series live at the previous successful scrape does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use model::labels::METRIC_NAME;
use model::{Labels, STALE_NAN, Timestamp};
use storage::{Appender, SeriesRef, StorageError};

use crate::target::MetricMetadata;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A cached series.
#[derive(Debug)]
pub(crate) struct SeriesEntry {
    pub series_ref: SeriesRef,
    pub labels: Labels,
    /// `labels.stable_hash()`, to notice two spellings of one series.
    pub hash: u64,
    /// Iteration in which the raw bytes were last seen (drives eviction).
    pub seen: u64,
    /// Iteration in which the series was last live, and the one before that.
    pub live: u64,
    pub prev_live: u64,
}

#[derive(Debug)]
pub(crate) enum CacheEntry {
    Series(SeriesEntry),
    /// Dropped by metric relabelling (or relabelled to nothing).
    Dropped {
        seen: u64,
    },
}

/// HELP/TYPE/UNIT of one family and when it was last seen.
#[derive(Debug)]
struct MetaEntry {
    md: MetricMetadata,
    seen: u64,
}

/// How many successful scrapes metadata outlives its family (compat: Prometheus keeps 10).
const METADATA_KEEP_ITERATIONS: u64 = 10;

/// The report series appended after every scrape, in this order.
pub(crate) const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// The cache key of a raw series (`name{labels}` as the target wrote it): a 128-bit hash
/// instead of the bytes themselves, which saves ~100 bytes per series. Two distinct series of
/// one target collide with probability ~n²/2¹²⁹ (about 1e-29 for 100k series), far below the
/// chance of a memory error; Prometheus keeps the full string.
pub(crate) fn series_key(raw: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(raw)
}

#[derive(Debug)]
pub(crate) struct ScrapeCache {
    /// Keyed by [`series_key`] of the raw series bytes.
    pub entries: FastMap<u128, CacheEntry>,
    /// The current iteration; 0 before the first scrape.
    pub iter: u64,
    /// The iteration of the last successful scrape whose series are still live.
    live_iter: Option<u64>,
    metadata: FastMap<Box<str>, MetaEntry>,
    metadata_changed: bool,
    report_labels: [Labels; 5],
    report_refs: [SeriesRef; 5],
    /// Whether the report series have been written (so they need staleness markers).
    report_written: bool,
}

impl ScrapeCache {
    pub(crate) fn new(target_labels: &Labels) -> Self {
        let report_labels = REPORT_NAMES.map(|name| {
            let mut b = target_labels.builder();
            b.set(METRIC_NAME, name);
            b.labels()
        });
        ScrapeCache {
            entries: FastMap::default(),
            iter: 0,
            live_iter: None,
            metadata: FastMap::default(),
            metadata_changed: false,
            report_labels,
            report_refs: [0; 5],
            report_written: false,
        }
    }

    /// Starts a scrape.
    pub(crate) fn begin(&mut self) {
        self.iter += 1;
    }

    /// Ends a successful scrape: appends staleness markers at `t` for series that were live at
    /// the previous successful scrape and are not now, evicts entries not seen this time, and
    /// drops metadata unseen for a while.
    pub(crate) fn end_success(&mut self, app: &mut dyn Appender, t: Timestamp) {
        let cur = self.iter;
        let prev = self.live_iter;
        let mut stale: Vec<(SeriesRef, Labels, u64)> = Vec::new();
        self.entries.retain(|_, e| match e {
            CacheEntry::Series(s) => {
                if prev == Some(s.live) && s.live != cur {
                    stale.push((s.series_ref, s.labels.clone(), s.hash));
                }
                s.seen == cur
            }
            CacheEntry::Dropped { seen } => *seen == cur,
        });
        if !stale.is_empty() {
            let live_now: HashSet<u64> = self
                .entries
                .values()
                .filter_map(|e| match e {
                    CacheEntry::Series(s) if s.live == cur => Some(s.hash),
                    _ => None,
                })
                .collect();
            append_stale(
                app,
                stale.into_iter().filter(|(_, _, h)| !live_now.contains(h)),
                t,
            );
        }
        self.live_iter = Some(cur);
        let before = self.metadata.len();
        self.metadata
            .retain(|_, m| cur - m.seen <= METADATA_KEEP_ITERATIONS);
        self.metadata_changed |= self.metadata.len() != before;
    }

    /// Ends a failed scrape (after its samples were rolled back): every series live at the
    /// previous successful scrape goes stale at `t`. Also used when a target stops.
    pub(crate) fn end_failure(&mut self, app: &mut dyn Appender, t: Timestamp) {
        let cur = self.iter;
        let Some(prev) = self.live_iter.take() else {
            return;
        };
        let stale: Vec<(SeriesRef, Labels, u64)> = self
            .entries
            .values()
            .filter_map(|e| match e {
                CacheEntry::Series(s)
                    if s.live == prev || (s.live == cur && s.prev_live == prev) =>
                {
                    Some((s.series_ref, s.labels.clone(), s.hash))
                }
                _ => None,
            })
            .collect();
        append_stale(app, stale.into_iter(), t);
    }

    /// Appends the report series.
    pub(crate) fn append_report(&mut self, app: &mut dyn Appender, t: Timestamp, values: [f64; 5]) {
        for (i, v) in values.into_iter().enumerate() {
            match app.append(self.report_refs[i], &self.report_labels[i], t, v) {
                Ok(r) => self.report_refs[i] = r,
                Err(e) if e.is_sample_error() => {
                    tracing::debug!(series = %self.report_labels[i], "report sample rejected: {e}");
                }
                Err(e) => {
                    tracing::warn!(series = %self.report_labels[i], "append report sample: {e}")
                }
            }
        }
        self.report_written = true;
    }

    /// Staleness markers for the report series, when the target goes away.
    pub(crate) fn report_stale(&mut self, app: &mut dyn Appender, t: Timestamp) {
        if !self.report_written {
            return;
        }
        let series: Vec<_> = (0..5)
            .map(|i| (self.report_refs[i], self.report_labels[i].clone(), 0))
            .collect();
        append_stale(app, series.into_iter(), t);
    }

    pub(crate) fn set_help(&mut self, metric: &str, help: &str) {
        let iter = self.iter;
        let e = self.meta_entry(metric);
        e.seen = iter;
        if e.md.help != help {
            e.md.help = help.to_string();
            self.metadata_changed = true;
        }
    }

    pub(crate) fn set_type(&mut self, metric: &str, kind: &'static str) {
        let iter = self.iter;
        let e = self.meta_entry(metric);
        e.seen = iter;
        if e.md.kind != kind {
            e.md.kind = kind.to_string();
            self.metadata_changed = true;
        }
    }

    pub(crate) fn set_unit(&mut self, metric: &str, unit: &str) {
        let iter = self.iter;
        let e = self.meta_entry(metric);
        e.seen = iter;
        if e.md.unit != unit {
            e.md.unit = unit.to_string();
            self.metadata_changed = true;
        }
    }

    fn meta_entry(&mut self, metric: &str) -> &mut MetaEntry {
        if !self.metadata.contains_key(metric) {
            self.metadata_changed = true;
            let md = MetricMetadata {
                kind: "unknown".to_string(),
                help: String::new(),
                unit: String::new(),
            };
            self.metadata.insert(
                metric.into(),
                MetaEntry {
                    md,
                    seen: self.iter,
                },
            );
        }
        self.metadata
            .get_mut(metric)
            .expect("BUG: metadata entry inserted above")
    }

    /// The metadata, sorted by metric name, if it changed since the last call.
    pub(crate) fn take_metadata_update(&mut self) -> Option<Arc<Vec<(String, MetricMetadata)>>> {
        if !std::mem::take(&mut self.metadata_changed) {
            return None;
        }
        let mut v: Vec<(String, MetricMetadata)> = self
            .metadata
            .iter()
            .map(|(k, e)| (k.to_string(), e.md.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Some(Arc::new(v))
    }
}

fn append_stale(
    app: &mut dyn Appender,
    series: impl Iterator<Item = (SeriesRef, Labels, u64)>,
    t: Timestamp,
) {
    let mut seen = HashSet::new();
    for (r, labels, hash) in series {
        if hash != 0 && !seen.insert(hash) {
            continue;
        }
        match app.append(r, &labels, t, STALE_NAN) {
            Ok(_) => {}
            // A newer sample (e.g. the target came back elsewhere) makes the marker moot.
            Err(e) if e.is_sample_error() => {}
            Err(StorageError::Closed) => return,
            Err(e) => tracing::warn!(series = %labels, "append staleness marker: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{is_stale_nan, labels};

    #[derive(Default)]
    struct Rec(Vec<(Labels, i64, f64)>);

    impl Appender for Rec {
        fn append(
            &mut self,
            _r: SeriesRef,
            l: &Labels,
            t: Timestamp,
            v: f64,
        ) -> storage::Result<SeriesRef> {
            self.0.push((l.clone(), t, v));
            Ok(1)
        }
        fn commit(self: Box<Self>) -> storage::Result<()> {
            Ok(())
        }
        fn rollback(self: Box<Self>) {}
    }

    fn see(c: &mut ScrapeCache, key: &str, live: bool) {
        let iter = c.iter;
        let labels = labels! {"__name__" => key};
        let hash = labels.stable_hash();
        let e = c
            .entries
            .entry(series_key(key.as_bytes()))
            .or_insert_with(|| {
                CacheEntry::Series(SeriesEntry {
                    series_ref: 0,
                    labels,
                    hash,
                    seen: 0,
                    live: 0,
                    prev_live: 0,
                })
            });
        if let CacheEntry::Series(s) = e {
            s.seen = iter;
            if live && s.live != iter {
                s.prev_live = s.live;
                s.live = iter;
            }
        }
    }

    fn stale_names(r: &Rec) -> Vec<String> {
        let mut v: Vec<String> =
            r.0.iter()
                .filter(|(_, _, v)| is_stale_nan(*v))
                .map(|(l, _, _)| l.metric_name().unwrap_or("").to_string())
                .collect();
        v.sort();
        v
    }

    #[test]
    fn disappearing_series_go_stale_once() {
        let mut c = ScrapeCache::new(&labels! {"job" => "j"});
        let mut r = Rec::default();
        c.begin();
        see(&mut c, "a", true);
        see(&mut c, "b", true);
        see(&mut c, "ts", false);
        c.end_success(&mut r, 1);
        assert!(stale_names(&r).is_empty());
        c.begin();
        see(&mut c, "a", true);
        c.end_success(&mut r, 2);
        assert_eq!(
            stale_names(&r),
            vec!["b"],
            "series with explicit timestamps are not tracked"
        );
        assert_eq!(c.entries.len(), 1, "unseen entries are evicted");
        c.begin();
        see(&mut c, "a", true);
        c.end_success(&mut r, 3);
        assert_eq!(stale_names(&r), vec!["b"]);
    }

    #[test]
    fn failure_marks_everything_live_stale_even_after_partial_append() {
        let mut c = ScrapeCache::new(&Labels::empty());
        let mut r = Rec::default();
        c.begin();
        see(&mut c, "a", true);
        see(&mut c, "b", true);
        c.end_success(&mut r, 1);
        c.begin();
        see(&mut c, "a", true); // appended, then rolled back
        c.end_failure(&mut r, 2);
        assert_eq!(stale_names(&r), vec!["a", "b"]);
        // A second failure has nothing left to mark.
        c.begin();
        c.end_failure(&mut r, 3);
        assert_eq!(stale_names(&r).len(), 2);
        // Recovery does not produce markers for series it did not see live.
        c.begin();
        see(&mut c, "a", true);
        c.end_success(&mut r, 4);
        assert_eq!(stale_names(&r).len(), 2);
    }

    #[test]
    fn metadata_changes_are_published() {
        let mut c = ScrapeCache::new(&Labels::empty());
        c.begin();
        c.set_type("m", "counter");
        c.set_help("m", "help");
        let md = c.take_metadata_update().unwrap();
        assert_eq!(
            md[0].1,
            MetricMetadata {
                kind: "counter".into(),
                help: "help".into(),
                unit: String::new()
            }
        );
        c.begin();
        c.set_type("m", "counter");
        c.set_help("m", "help");
        assert!(
            c.take_metadata_update().is_none(),
            "unchanged metadata is not republished"
        );
    }
}
