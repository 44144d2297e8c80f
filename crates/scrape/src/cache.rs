//! The per-target scrape cache: raw series bytes → series ref and final labels, so a steady
//! state scrape does no label processing, no relabelling and no allocation per sample; the
//! bookkeeping for staleness markers; and the target's metric metadata.
//!
//! Iterations: every scrape has a number. A series is *live* at an iteration when a sample
//! without an explicit timestamp was appended for it then. After a successful scrape, series
//! live at the previous successful scrape but not now get a staleness marker; after a failed
//! one (or when the target goes away) every series live at the previous successful scrape does.
//!
//! Layout: targets write their series in the same order every scrape, so entries are kept in a
//! `Vec` in the order of the last scrape and a scrape walks it with a cursor. A steady-state
//! lookup compares the key at the cursor and moves on: memory is read sequentially, which the
//! CPU prefetches, instead of one cache miss per sample in a hash table (the miss was most of
//! the per-sample cost of the scrape side). A key elsewhere is found by a hash index and
//! swapped to the cursor, so the order follows the target's; what is left behind the cursor
//! after a successful scrape was not seen and is evicted.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;

use model::labels::METRIC_NAME;
use model::{Labels, STALE_NAN, Timestamp};
use storage::{Appender, SeriesRef, StorageError};

use crate::target::MetricMetadata;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An iteration number as kept per series: the low 32 bits of [`ScrapeCache::iter`]. Entries
/// are only compared for equality with recent iterations, and an entry unseen for 2³²
/// scrapes is long evicted, so wrapping is harmless; it keeps a slot at 64 bytes, one cache
/// line.
pub(crate) type Stamp = u32;

/// A cached series.
#[derive(Debug)]
pub(crate) struct SeriesEntry {
    pub series_ref: SeriesRef,
    pub labels: Labels,
    /// `labels.stable_hash()`, to notice two spellings of one series.
    pub hash: u64,
    /// Iteration in which the series was last live, and the one before that.
    pub live: Stamp,
    pub prev_live: Stamp,
}

#[derive(Debug)]
pub(crate) enum CacheEntry {
    Series(SeriesEntry),
    /// Dropped by metric relabelling (or relabelled to nothing).
    Dropped,
}

#[derive(Debug)]
struct Slot {
    key: u128,
    entry: CacheEntry,
}

/// The index half of a key: its low 64 bits. Two keys of one target share it with
/// probability ~n²/2⁶⁵; [`ScrapeCache::collisions`] keeps lookups exact when they do.
fn low(key: u128) -> u64 {
    key as u64
}

/// Hashes an index key, which already is part of a seeded xxh3 hash, to itself: hashing it
/// again (foldhash) cost a visible share of the per-sample time.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, k: u64) {
        self.0 = k;
    }

    /// Only `u128` keys are hashed; this keeps any other input well defined.
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

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

#[derive(Debug)]
pub(crate) struct ScrapeCache {
    /// In the order of the current (or last) scrape; see the module docs.
    slots: Vec<Slot>,
    /// [`low`] half of each slot's key → its position.
    index: KeyMap<u32>,
    /// Keys whose [`low`] half was taken when they were added; they are not in `index`, and
    /// while there are any, a lookup that misses the index scans `slots` (practically never).
    collisions: usize,
    /// Where this scrape's next series is expected; slots before it were seen this scrape.
    cursor: usize,
    /// Seeds [`ScrapeCache::key`], so a target cannot choose bodies whose keys all land in
    /// one probe sequence of `index`.
    seed: u64,
    /// The current iteration; 0 before the first scrape.
    pub iter: u64,
    /// The iteration of the last successful scrape whose series are still live.
    live_iter: Option<Stamp>,
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
            slots: Vec::new(),
            index: KeyMap::default(),
            collisions: 0,
            cursor: 0,
            seed: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
            iter: 0,
            live_iter: None,
            metadata: FastMap::default(),
            metadata_changed: false,
            report_labels,
            report_refs: [0; 5],
            report_written: false,
        }
    }

    /// The cache key of a raw series (`name{labels}` as the target wrote it): a 128-bit hash
    /// instead of the bytes themselves, which saves ~100 bytes per series. Two distinct series
    /// of one target collide with probability ~n²/2¹²⁹ (about 1e-29 for 100k series), far
    /// below the chance of a memory error; Prometheus keeps the full string.
    pub(crate) fn key(&self, raw: &[u8]) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_seed(raw, self.seed)
    }

    /// Starts a scrape.
    pub(crate) fn begin(&mut self) {
        self.iter += 1;
        self.cursor = 0;
    }

    /// Cached series.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The entry of `key`, marked seen in this scrape.
    pub(crate) fn get_mut(&mut self, key: u128) -> Option<&mut CacheEntry> {
        let c = self.cursor;
        if self.slots.get(c).is_some_and(|s| s.key == key) {
            self.cursor += 1;
            return Some(&mut self.slots[c].entry);
        }
        let pos = self.find(key)?;
        let pos = if pos < c {
            // Seen earlier in this scrape (the series is in the body twice).
            pos
        } else {
            self.swap(pos, c);
            self.cursor += 1;
            c
        };
        Some(&mut self.slots[pos].entry)
    }

    /// Adds the entry of a key [`get_mut`](Self::get_mut) did not find, seen in this scrape.
    pub(crate) fn insert(&mut self, key: u128, entry: CacheEntry) -> &mut CacheEntry {
        let pos = self.slots.len();
        self.slots.push(Slot { key, entry });
        let p = u32::try_from(pos).expect("BUG: more than 2^32 series in one target");
        match self.index.entry(low(key)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(p);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.collisions += 1,
        }
        let c = self.cursor;
        self.swap(pos, c);
        self.cursor += 1;
        &mut self.slots[c].entry
    }

    fn find(&self, key: u128) -> Option<usize> {
        if let Some(&p) = self.index.get(&low(key))
            && self.slots[p as usize].key == key
        {
            return Some(p as usize);
        }
        if self.collisions == 0 {
            return None;
        }
        self.slots.iter().position(|s| s.key == key)
    }

    /// Swaps two slots, keeping the index pointing at them.
    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.slots.swap(a, b);
        for (now, was) in [(a, b), (b, a)] {
            if let Some(p) = self.index.get_mut(&low(self.slots[now].key))
                && *p as usize == was
            {
                *p = now as u32;
            }
        }
    }

    /// Drops the slots behind the cursor: those not seen in this scrape.
    fn evict_unseen(&mut self) {
        for (pos, s) in self.slots.iter().enumerate().skip(self.cursor) {
            let k = low(s.key);
            if self.index.get(&k).is_some_and(|&p| p as usize == pos) {
                self.index.remove(&k);
            }
        }
        self.slots.truncate(self.cursor);
        // Growth slack of a Vec is up to half of it; give it back once it is large.
        if self.slots.capacity() > self.slots.len() + self.slots.len() / 4 {
            self.slots
                .shrink_to(self.slots.len() + self.slots.len() / 16);
        }
        if self.collisions > 0 && self.index.len() == self.slots.len() {
            self.collisions = 0;
        }
    }

    /// The current iteration as stored in entries.
    pub(crate) fn stamp(&self) -> Stamp {
        self.iter as Stamp
    }

    /// Ends a successful scrape: appends staleness markers at `t` for series that were live at
    /// the previous successful scrape and are not now, evicts entries not seen this time, and
    /// drops metadata unseen for a while.
    pub(crate) fn end_success(&mut self, app: &mut dyn Appender, t: Timestamp) {
        let cur = self.stamp();
        let prev = self.live_iter;
        let stale: Vec<(SeriesRef, Labels, u64)> = self
            .slots
            .iter()
            .filter_map(|s| match &s.entry {
                CacheEntry::Series(s) if prev == Some(s.live) && s.live != cur => {
                    Some((s.series_ref, s.labels.clone(), s.hash))
                }
                _ => None,
            })
            .collect();
        self.evict_unseen();
        if !stale.is_empty() {
            let live_now: HashSet<u64> = self
                .slots
                .iter()
                .filter_map(|s| match &s.entry {
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
        let iter = self.iter;
        self.metadata
            .retain(|_, m| iter - m.seen <= METADATA_KEEP_ITERATIONS);
        self.metadata_changed |= self.metadata.len() != before;
    }

    /// Ends a failed scrape (after its samples were rolled back): every series live at the
    /// previous successful scrape goes stale at `t`. Also used when a target stops.
    pub(crate) fn end_failure(&mut self, app: &mut dyn Appender, t: Timestamp) {
        let cur = self.stamp();
        let Some(prev) = self.live_iter.take() else {
            return;
        };
        let stale: Vec<(SeriesRef, Labels, u64)> = self
            .slots
            .iter()
            .filter_map(|s| match &s.entry {
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
        let iter = c.stamp();
        let k = c.key(key.as_bytes());
        let e = match c.get_mut(k) {
            Some(e) => e,
            None => {
                let labels = labels! {"__name__" => key};
                let hash = labels.stable_hash();
                c.insert(
                    k,
                    CacheEntry::Series(SeriesEntry {
                        series_ref: 0,
                        labels,
                        hash,
                        live: 0,
                        prev_live: 0,
                    }),
                )
            }
        };
        if let CacheEntry::Series(s) = e
            && live
            && s.live != iter
        {
            s.prev_live = s.live;
            s.live = iter;
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
        assert_eq!(c.len(), 1, "unseen entries are evicted");
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

    /// One scrape of raw keys; returns the order of the slots after it, and checks that each
    /// key found its own entry.
    fn scrape(c: &mut ScrapeCache, keys: &[u128]) -> Vec<u128> {
        c.begin();
        for &k in keys {
            let e = match c.get_mut(k) {
                Some(e) => e,
                None => c.insert(
                    k,
                    CacheEntry::Series(SeriesEntry {
                        series_ref: k as u64 ^ (k >> 64) as u64,
                        labels: Labels::empty(),
                        hash: 0,
                        live: 0,
                        prev_live: 0,
                    }),
                ),
            };
            let CacheEntry::Series(s) = e else {
                panic!("not a series entry")
            };
            assert_eq!(s.series_ref, k as u64 ^ (k >> 64) as u64);
        }
        c.end_success(&mut Rec::default(), 0);
        c.slots.iter().map(|s| s.key).collect()
    }

    #[test]
    fn slots_follow_the_body_order() {
        #[track_caller]
        fn check(before: &[u128], body: &[u128], after: &[u128]) {
            let mut c = ScrapeCache::new(&Labels::empty());
            scrape(&mut c, before);
            assert_eq!(scrape(&mut c, body), after);
            assert_eq!(c.index.len(), after.len());
            // And again: the same body now walks the slots in order.
            assert_eq!(scrape(&mut c, body), after);
        }
        check(&[1, 2, 3], &[1, 2, 3], &[1, 2, 3]);
        check(&[1, 2, 3], &[2, 1, 4, 3], &[2, 1, 4, 3]);
        check(&[1, 2, 3], &[3], &[3]);
        check(&[1, 2, 3], &[], &[]);
        check(&[1, 2, 3], &[5, 3, 1], &[5, 3, 1]);
        check(&[1, 1, 2], &[2, 2, 1, 2], &[2, 1]);
    }

    #[test]
    fn keys_sharing_the_index_half_stay_apart() {
        let (a, b, d) = (1u128 << 64 | 7, 2u128 << 64 | 7, 3u128 << 64 | 7);
        let mut c = ScrapeCache::new(&Labels::empty());
        assert_eq!(scrape(&mut c, &[a, b, 9]), [a, b, 9]);
        assert_eq!(scrape(&mut c, &[9, b, a]), [9, b, a]);
        // The indexed one goes; the other is still found, and a third one joins.
        assert_eq!(scrape(&mut c, &[b, 9, d]), [b, 9, d]);
        assert_eq!(scrape(&mut c, &[d, b]), [d, b]);
        assert_eq!(scrape(&mut c, &[9]), [9]);
        assert_eq!(c.collisions, 0, "reset once every key is indexed again");
    }

    #[test]
    fn entries_fill_one_cache_line() {
        assert_eq!(std::mem::size_of::<Slot>(), 64);
    }

    #[test]
    fn keys_are_seeded_per_cache() {
        let (a, b) = (
            ScrapeCache::new(&Labels::empty()),
            ScrapeCache::new(&Labels::empty()),
        );
        assert_eq!(a.key(b"up"), a.key(b"up"));
        assert_ne!(a.key(b"up"), b.key(b"up"));
        assert_ne!(a.key(b"up"), a.key(b"up{a=\"b\"}"));
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
