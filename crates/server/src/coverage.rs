//! How complete this server's scrapes are over a window, from its own `up` series (what
//! `GET /api/v1/vigil/coverage` answers; see `pushdown`).
//!
//! [`coverage`] reads every `up` sample of the window from storage. [`CoverageCache`] gives
//! the same answer from a summary kept in memory: per `up` series its samples as runs of evenly
//! spaced samples of one kind (successful scrape or not), built from storage at first use (after
//! WAL replay) and then extended with only the samples written since. Scrape timestamps are
//! moved onto the ideal tick, so a target scraped without trouble is one run whatever the
//! window. Samples younger than a settling time are always read from storage (a scrape's `up`
//! is written when it ends, with the time it started), and every extension re-reads the
//! settling time before it and rebuilds the summary if anything there changed (a late sample,
//! a new series). It covers about the last 25 h (older samples are dropped as it grows); a
//! window reaching before its start extends it backwards. Read from
//! storage instead: windows reaching before what time retention keeps, or starting after their
//! end; everything for a while when the summary grows too large (scrapes far off their tick).
//! The summary is built again when the oldest data moves (blocks deleted, head truncated) and
//! after deletions, which must call [`CoverageCache::invalidate`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use model::{Labels, MatchType, Matcher, Timestamp};
use parking_lot::Mutex;
use storage::{Queryable, SelectHints};

/// How far before the window `up` is read, to see whether the window starts inside a gap.
pub const BEFORE_WINDOW_MS: i64 = 5 * 60_000;

/// Completeness of the scrapes over one window, from the `up` series.
#[derive(Debug, Default, PartialEq)]
pub struct Coverage {
    /// The first `up` sample (any target) from shortly before the window on.
    pub first: Option<Timestamp>,
    /// Every target was scraped successfully at every interval from here to the window's end;
    /// `None` when that does not hold at the end either (or nothing is scraped).
    pub clean_since: Option<Timestamp>,
    /// The largest scrape interval seen.
    pub interval: i64,
    pub targets: usize,
    /// Order-independent hash of the targets' `up` label sets.
    pub fingerprint: u64,
    /// The targets not scraped at every interval of the whole window (usually none).
    pub imperfect: Vec<TargetCoverage>,
}

/// One target's scrapes over a window, when they were not all successful.
#[derive(Debug, Default, PartialEq)]
pub struct TargetCoverage {
    /// Hash of its `up` labels.
    pub target: u64,
    /// Its first `up` sample from shortly before the window on.
    pub first: Timestamp,
    /// Where it has no successful scrape: (last success or first sample, next success or the
    /// window's end), inside or overlapping the window, in order.
    pub bad: Vec<(Timestamp, Timestamp)>,
}

/// Appends `(s, e)` to `bad`, joining it to the last stretch when they touch.
fn push_gap(bad: &mut Vec<(Timestamp, Timestamp)>, s: Timestamp, e: Timestamp) {
    match bad.last_mut() {
        Some(l) if s <= l.1 => l.1 = l.1.max(e),
        _ => bad.push((s, e)),
    }
}

/// The gap at the end of a target's samples up to `end`: failing since `failing_since`, or
/// last scraped successfully at `last_good`. `now` tells how much of the end may still be in
/// flight.
fn end_gap(
    bad: &mut Vec<(Timestamp, Timestamp)>,
    failing_since: Option<Timestamp>,
    last_good: Option<Timestamp>,
    ival: i64,
    end: Timestamp,
    now: Timestamp,
) {
    let gap = ival * 3 / 2;
    if let Some(f) = failing_since {
        push_gap(bad, f, end);
    } else if let Some(lg) = last_good {
        // A scrape's `up` is written when it ends, so up to one more interval before `now`
        // may still be in flight; before that the samples are all there.
        let in_flight = (end - (now - ival)).clamp(0, ival);
        if end - lg > gap + in_flight {
            push_gap(bad, lg, end);
        }
    }
}

/// One target's `up` samples up to `end` in time order → (interval, where it was not
/// scraped successfully). `now` tells how much of the end may still be in flight.
pub(crate) fn target_gaps(
    samples: &[(Timestamp, f64)],
    end: Timestamp,
    now: Timestamp,
) -> (i64, Vec<(Timestamp, Timestamp)>) {
    let Some(&(first, _)) = samples.first() else {
        return (0, Vec::new());
    };
    // Its scrape interval: the smallest spacing (a missed scrape doubles one, jitter
    // shortens none by much). One sample: unknown, so nothing after it is known complete.
    let Some(ival) = samples
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|&d| d > 0)
        .min()
    else {
        return (0, vec![(first, end.max(first))]);
    };
    let gap = ival * 3 / 2;
    let mut bad: Vec<(Timestamp, Timestamp)> = Vec::new();
    let mut last_good: Option<Timestamp> = None;
    let mut failing_since: Option<Timestamp> = None;
    for &(t, v) in samples {
        if v != 1.0 {
            failing_since.get_or_insert(last_good.unwrap_or(t));
            continue;
        }
        if let Some(f) = failing_since.take() {
            push_gap(&mut bad, f, t);
        } else if let Some(lg) = last_good
            && t - lg > gap
        {
            push_gap(&mut bad, lg, t);
        }
        last_good = Some(t);
    }
    end_gap(&mut bad, failing_since, last_good, ival, end, now);
    (ival, bad)
}

/// Builds a [`Coverage`] from the targets of a window, given in label order.
struct Acc {
    cov: Coverage,
    clean_since: Option<Timestamp>,
    hashes: Vec<u64>,
    start: Timestamp,
    end: Timestamp,
}

impl Acc {
    fn new(start: Timestamp, end: Timestamp) -> Acc {
        Acc {
            cov: Coverage::default(),
            clean_since: Some(i64::MIN),
            hashes: Vec::new(),
            start,
            end,
        }
    }

    /// One target with samples in the window: its first, interval and gaps.
    fn add(
        &mut self,
        target: u64,
        first: Timestamp,
        ival: i64,
        mut bad: Vec<(Timestamp, Timestamp)>,
    ) {
        let cov = &mut self.cov;
        cov.targets += 1;
        self.hashes.push(target);
        cov.first = Some(cov.first.map_or(first, |f: i64| f.min(first)));
        cov.interval = cov.interval.max(ival);
        // Clean since the end of its last gap; never when the gap lasts to the end.
        self.clean_since = match (self.clean_since, bad.last()) {
            (Some(c), None) => Some(c.max(first)),
            (Some(c), Some(&(_, e))) if e < self.end => Some(c.max(e)),
            _ => None,
        };
        bad.retain(|&(_, e)| e > self.start);
        if first > self.start || !bad.is_empty() {
            cov.imperfect.push(TargetCoverage { target, first, bad });
        }
    }

    fn finish(mut self) -> Coverage {
        self.cov.clean_since = self.clean_since.filter(|_| self.cov.targets > 0);
        self.hashes.sort_unstable();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for x in self.hashes {
            h = (h ^ x).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.cov.fingerprint = h;
        self.cov
    }
}

/// Calls `f` with each `up` series that has samples in `[from, to]` and those samples, in
/// label order.
fn read_up(
    db: &dyn Queryable,
    from: Timestamp,
    to: Timestamp,
    mut f: impl FnMut(&Labels, &[(Timestamp, f64)]),
) -> storage::Result<()> {
    let q = db.querier(from, to)?;
    let hints = SelectHints {
        start: from,
        end: to,
        ..Default::default()
    };
    let m = Matcher::new(MatchType::Equal, "__name__", "up").map_err(|e| {
        storage::StorageError::io("up matcher", std::io::Error::other(e.to_string()))
    })?;
    let mut samples = Vec::new();
    for s in q.select(true, &hints, &[m])? {
        samples.clear();
        let mut it = s.iter();
        let mut cur = it.seek(from);
        while let Some((t, v)) = cur {
            if t > to {
                break;
            }
            samples.push((t, v));
            cur = it.next();
        }
        if !samples.is_empty() {
            f(s.labels(), &samples);
        }
    }
    Ok(())
}

/// Reads `up` over `[start - BEFORE_WINDOW_MS, end]`.
pub fn coverage(
    db: &dyn Queryable,
    start: Timestamp,
    end: Timestamp,
    now: Timestamp,
) -> storage::Result<Coverage> {
    let from = start.saturating_sub(BEFORE_WINDOW_MS);
    let mut acc = Acc::new(start, end);
    read_up(db, from, end, |l, samples| {
        let (ival, bad) = target_gaps(samples, end, now);
        acc.add(l.stable_hash(), samples[0].0, ival, bad);
    })?;
    Ok(acc.finish())
}

/// `count` samples `start`, `start + step`, … of one kind (`up` 1 or not), in 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Run {
    start: Timestamp,
    /// Meaningless when the count is 1.
    step: u32,
    /// The count shifted left by one; the low bit tells a successful scrape.
    meta: u32,
}

/// The most samples one run holds.
const MAX_RUN_COUNT: i64 = (u32::MAX >> 1) as i64;

impl Run {
    fn new(start: Timestamp, step: i64, count: i64, good: bool) -> Run {
        debug_assert!(
            (0..=u32::MAX as i64).contains(&step) && (1..=MAX_RUN_COUNT).contains(&count)
        );
        Run {
            start,
            step: step as u32,
            meta: ((count as u32) << 1) | u32::from(good),
        }
    }

    fn step(&self) -> i64 {
        i64::from(self.step)
    }

    fn count(&self) -> i64 {
        i64::from(self.meta >> 1)
    }

    fn good(&self) -> bool {
        self.meta & 1 == 1
    }

    fn last(&self) -> Timestamp {
        self.start + self.step() * (self.count() - 1)
    }

    /// The samples of the run in `[lo, hi]`, if any.
    fn clip(&self, lo: Timestamp, hi: Timestamp) -> Option<Run> {
        let (step, count) = (self.step(), self.count());
        if count == 1 || step <= 0 {
            return (lo <= self.start && self.start <= hi).then_some(*self);
        }
        if hi < self.start || lo > self.last() {
            return None;
        }
        let k0 = if lo <= self.start {
            0
        } else {
            (lo - self.start + step - 1) / step
        };
        let k1 = if hi >= self.last() {
            count - 1
        } else {
            (hi - self.start) / step
        };
        (k0 <= k1).then(|| Run::new(self.start + k0 * step, step, k1 - k0 + 1, self.good()))
    }
}

/// Appends a sample later than every one in `runs`.
fn push_sample(runs: &mut Vec<Run>, t: Timestamp, v: f64) {
    let good = v == 1.0;
    if let Some(r) = runs.last_mut()
        && r.good() == good
    {
        let (step, count) = (r.step(), r.count());
        if count == 1 && t > r.start && t - r.start <= i64::from(u32::MAX) {
            *r = Run::new(r.start, t - r.start, 2, good);
            return;
        }
        if count > 1 && count < MAX_RUN_COUNT && t - r.last() == step {
            *r = Run::new(r.start, step, count + 1, good);
            return;
        }
    }
    runs.push(Run::new(t, 0, 1, good));
}

/// [`target_gaps`] over samples given as runs (in time order, each later than the one before).
fn run_gaps(runs: &[Run], end: Timestamp, now: Timestamp) -> (i64, Vec<(Timestamp, Timestamp)>) {
    let Some(first) = runs.first().map(|r| r.start) else {
        return (0, Vec::new());
    };
    let mut ival: Option<i64> = None;
    let mut prev_last: Option<Timestamp> = None;
    let mut min = |d: i64| {
        if d > 0 {
            ival = Some(ival.map_or(d, |i| i.min(d)));
        }
    };
    for r in runs {
        if r.count() > 1 {
            min(r.step());
        }
        if let Some(p) = prev_last {
            min(r.start - p);
        }
        prev_last = Some(r.last());
    }
    let Some(ival) = ival else {
        return (0, vec![(first, end.max(first))]);
    };
    let gap = ival * 3 / 2;
    let mut bad = Vec::new();
    let mut last_good: Option<Timestamp> = None;
    let mut failing_since: Option<Timestamp> = None;
    for r in runs {
        if !r.good() {
            failing_since.get_or_insert(last_good.unwrap_or(r.start));
            continue;
        }
        if let Some(f) = failing_since.take() {
            push_gap(&mut bad, f, r.start);
        } else if let Some(lg) = last_good
            && r.start - lg > gap
        {
            push_gap(&mut bad, lg, r.start);
        }
        // Every spacing inside the run is a gap, or none is.
        if r.count() > 1 && r.step() > gap {
            push_gap(&mut bad, r.start, r.last());
        }
        last_good = Some(r.last());
    }
    end_gap(&mut bad, failing_since, last_good, ival, end, now);
    (ival, bad)
}

/// Samples younger than this are read from storage on every request (and this much before the
/// summary's end is re-read at each extension): more than a scrape needs to write its `up`.
const SETTLE_MS: i64 = 5 * 60_000;
/// How far back a new summary starts (unless the first window reaches further).
const INITIAL_SPAN_MS: i64 = 25 * 3_600_000;
/// A summary holding more runs than this (scrapes far off their tick) is given up, and
/// storage read, for [`GIVE_UP_MS`]: 64 MiB. Each scrape off its tick costs two runs
/// (a scrape 2 ms or more late, 7.5% of them on a loaded test machine: about 36,000 runs an
/// hour for 1,000 targets at 15 s).
const MAX_RUNS: usize = 4 << 20;
const GIVE_UP_MS: i64 = 10 * 60_000;
/// The summary is extended once it is this far behind.
const EXTEND_EVERY_MS: i64 = 60_000;

/// One `up` series in the summary.
struct TargetRuns {
    hash: u64,
    runs: Vec<Run>,
}

impl TargetRuns {
    /// Its runs with samples in `[lo, hi]`, clipped to it.
    fn clipped(&self, lo: Timestamp, hi: Timestamp) -> impl Iterator<Item = Run> + '_ {
        // Runs are in time order: skip those that end before `lo` without looking at them.
        let i = self.runs.partition_point(|r| r.last() < lo);
        self.runs[i..]
            .iter()
            .take_while(move |r| r.start <= hi)
            .filter_map(move |r| r.clip(lo, hi))
    }

    /// How many samples lie in `[lo, hi]`.
    fn count(&self, lo: Timestamp, hi: Timestamp) -> i64 {
        self.clipped(lo, hi).map(|r| r.count()).sum()
    }
}

/// Every `up` sample with its time in `[start, horizon]`, as storage had them.
struct Summary {
    generation: u64,
    /// [`Kept::lowest`] when it was built: when that moves, data was deleted.
    lowest: Timestamp,
    /// How many runs it holds.
    runs: usize,
    start: Timestamp,
    horizon: Timestamp,
    /// Whether storage had no sample before `start` (so windows before it are answered too).
    from_beginning: bool,
    /// The largest spacing between two samples of one run (to size the settling time).
    max_step: i64,
    targets: BTreeMap<Labels, TargetRuns>,
}

impl Summary {
    fn settle(&self) -> i64 {
        SETTLE_MS.max(self.max_step.saturating_mul(3))
    }

    /// Reads `[lo, hi]` from storage and appends it (every target's samples must be older).
    fn append(&mut self, db: &dyn Queryable, lo: Timestamp, hi: Timestamp) -> storage::Result<()> {
        if lo > hi {
            return Ok(());
        }
        let targets = &mut self.targets;
        let max_step = &mut self.max_step;
        read_up(db, lo, hi, |l, samples| {
            let t = targets.entry(l.clone()).or_insert_with(|| TargetRuns {
                hash: l.stable_hash(),
                runs: Vec::new(),
            });
            for &(ts, v) in samples {
                push_sample(&mut t.runs, ts, v);
                if let Some(r) = t.runs.last() {
                    *max_step = (*max_step).max(r.step());
                }
            }
        })?;
        self.horizon = hi;
        self.runs = self.targets.values().map(|t| t.runs.len()).sum();
        Ok(())
    }

    /// Reads `[lo, start)` from storage and puts it before what the summary holds.
    fn prepend(&mut self, db: &dyn Queryable, lo: Timestamp) -> storage::Result<()> {
        let mut older: BTreeMap<Labels, Vec<Run>> = BTreeMap::new();
        read_up(db, lo, self.start - 1, |l, samples| {
            let runs = older.entry(l.clone()).or_default();
            for &(ts, v) in samples {
                push_sample(runs, ts, v);
            }
        })?;
        for (l, mut runs) in older {
            self.max_step = self
                .max_step
                .max(runs.iter().map(|r| r.step()).max().unwrap_or(0));
            let t = self.targets.entry(l.clone()).or_insert_with(|| TargetRuns {
                hash: l.stable_hash(),
                runs: Vec::new(),
            });
            runs.append(&mut t.runs);
            t.runs = runs;
        }
        self.start = lo;
        self.runs = self.targets.values().map(|t| t.runs.len()).sum();
        Ok(())
    }

    /// Forgets the samples before `lo`.
    fn trim(&mut self, lo: Timestamp) {
        if lo <= self.start {
            return;
        }
        for t in self.targets.values_mut() {
            t.runs = t.clipped(lo, i64::MAX).collect();
        }
        self.targets.retain(|_, t| !t.runs.is_empty());
        self.start = lo;
        self.from_beginning = false;
        self.runs = self.targets.values().map(|t| t.runs.len()).sum();
    }

    /// Whether the samples of `[lo, horizon]` are still what storage has.
    fn unchanged(&self, db: &dyn Queryable, lo: Timestamp) -> storage::Result<bool> {
        let hi = self.horizon;
        if lo > hi {
            return Ok(true);
        }
        let mut seen: BTreeMap<Labels, i64> = BTreeMap::new();
        read_up(db, lo, hi, |l, samples| {
            seen.insert(l.clone(), samples.len() as i64);
        })?;
        let same = self
            .targets
            .iter()
            .all(|(l, t)| t.count(lo, hi) == seen.get(l).copied().unwrap_or(0))
            && seen.keys().all(|l| self.targets.contains_key(l));
        Ok(same)
    }
}

/// What storage can still give, as [`CoverageCache::coverage`] needs to know it.
#[derive(Clone, Copy, Debug)]
pub struct Kept {
    /// The oldest sample time storage may hold (oldest block's start, or the head's): older
    /// data has been deleted. `i64::MAX` when there is no data.
    pub lowest: Timestamp,
    /// Time-based retention: samples older than `now` minus it may be hidden.
    pub retention_ms: i64,
}

/// The [`coverage`] answers from a summary of the `up` series (see the module doc).
pub struct CoverageCache {
    summary: Mutex<Option<Summary>>,
    generation: AtomicU64,
    initial_span_ms: i64,
    max_runs: usize,
    /// Storage is read until then (the summary grew too large).
    given_up_until: AtomicI64,
}

impl Default for CoverageCache {
    fn default() -> Self {
        CoverageCache::with_limits(INITIAL_SPAN_MS, MAX_RUNS)
    }
}

impl CoverageCache {
    pub fn new() -> CoverageCache {
        CoverageCache::default()
    }

    /// A summary starting `initial_span_ms` before the settled end (or where the first window
    /// starts, if earlier), given up when it holds more than `max_runs` runs.
    pub fn with_limits(initial_span_ms: i64, max_runs: usize) -> CoverageCache {
        CoverageCache {
            summary: Mutex::new(None),
            generation: AtomicU64::new(0),
            initial_span_ms,
            max_runs,
            given_up_until: AtomicI64::new(i64::MIN),
        }
    }

    /// How many runs the summary holds now (0 when there is none): its size is 16 bytes each,
    /// plus the series' labels.
    pub fn runs(&self) -> usize {
        self.summary.lock().as_ref().map_or(0, |s| s.runs)
    }

    /// Forgets the summary: samples were deleted (call before and after deleting).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The same answer as [`coverage`] over `db` (`kept` describes its retention).
    pub fn coverage(
        &self,
        db: &dyn Queryable,
        kept: Kept,
        start: Timestamp,
        end: Timestamp,
        now: Timestamp,
    ) -> storage::Result<Coverage> {
        let from = start.saturating_sub(BEFORE_WINDOW_MS);
        let hidden_before = now.saturating_sub(kept.retention_ms);
        if from > end
            || from < hidden_before
            || kept.lowest == i64::MAX
            || now < self.given_up_until.load(Ordering::Relaxed)
        {
            return coverage(db, start, end, now);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let mut guard = self.summary.lock();
        let stale = guard
            .as_ref()
            .is_none_or(|s| s.generation != generation || s.lowest != kept.lowest);
        if stale {
            *guard = None;
        }
        if let Some(s) = guard.as_mut() {
            let updated = (|| {
                // Kept to about the initial span (and what this window reads): older windows
                // are rare, and read into it again when asked.
                let keep_from = now.saturating_sub(SETTLE_MS + self.initial_span_ms);
                if s.start < keep_from.saturating_sub(self.initial_span_ms / 2) {
                    s.trim(keep_from.min(from));
                }
                if from < s.start && !s.from_beginning {
                    s.prepend(db, from)?;
                    s.from_beginning = from <= kept.lowest;
                }
                let horizon = now.saturating_sub(s.settle());
                if horizon - s.horizon >= EXTEND_EVERY_MS {
                    let check = (s.horizon - s.settle() + 1).max(s.start);
                    if !s.unchanged(db, check)? {
                        return Ok(false);
                    }
                    let lo = s.horizon + 1;
                    s.append(db, lo, horizon)?;
                }
                Ok::<_, storage::StorageError>(true)
            })();
            match updated {
                Ok(true) => {}
                Ok(false) => *guard = None,
                // A read that failed half-way leaves the summary half-extended.
                Err(e) => {
                    *guard = None;
                    return Err(e);
                }
            }
        }
        let s = match guard.as_mut() {
            Some(s) => s,
            None => {
                let horizon = now.saturating_sub(SETTLE_MS);
                let begin = from.min(horizon.saturating_sub(self.initial_span_ms));
                let begin = begin.max(kept.lowest).min(horizon.saturating_add(1));
                let mut s = Summary {
                    generation,
                    lowest: kept.lowest,
                    runs: 0,
                    start: begin,
                    horizon: begin - 1,
                    from_beginning: begin <= kept.lowest,
                    max_step: 0,
                    targets: BTreeMap::new(),
                };
                s.append(db, begin, horizon.max(begin - 1))?;
                guard.insert(s)
            }
        };
        if s.runs > self.max_runs {
            *guard = None;
            self.given_up_until
                .store(now.saturating_add(GIVE_UP_MS), Ordering::Relaxed);
            return coverage(db, start, end, now);
        }
        s.answer(db, start, end, now)
    }
}

impl Summary {
    /// [`coverage`] from the summary and, after its horizon, storage.
    fn answer(
        &self,
        db: &dyn Queryable,
        start: Timestamp,
        end: Timestamp,
        now: Timestamp,
    ) -> storage::Result<Coverage> {
        let from = start.saturating_sub(BEFORE_WINDOW_MS);
        // The window's samples after the horizon, from storage.
        let mut tail: BTreeMap<Labels, Vec<Run>> = BTreeMap::new();
        let lo = from.max(self.horizon + 1);
        if lo <= end {
            read_up(db, lo, end, |l, samples| {
                let runs = tail.entry(l.clone()).or_default();
                for &(t, v) in samples {
                    push_sample(runs, t, v);
                }
            })?;
        }
        let mut acc = Acc::new(start, end);
        let mut runs: Vec<Run> = Vec::new();
        let mut one = |hash: u64, old: Option<&TargetRuns>, new: Option<&Vec<Run>>| {
            runs.clear();
            if let Some(t) = old {
                runs.extend(t.clipped(from, end));
            }
            if let Some(n) = new {
                runs.extend_from_slice(n);
            }
            if let Some(first) = runs.first().map(|r| r.start) {
                let (ival, bad) = run_gaps(&runs, end, now);
                acc.add(hash, first, ival, bad);
            }
        };
        // Both in label order: merge them.
        let mut old = self.targets.iter().peekable();
        let mut new = tail.iter().peekable();
        loop {
            match (old.peek(), new.peek()) {
                (None, None) => break,
                (Some((lo, t)), Some((ln, n))) if lo == ln => {
                    one(t.hash, Some(t), Some(n));
                    old.next();
                    new.next();
                }
                (Some((lo, t)), Some((ln, _))) if lo < ln => {
                    one(t.hash, Some(t), None);
                    old.next();
                }
                (Some((_, t)), None) => {
                    one(t.hash, Some(t), None);
                    old.next();
                }
                (_, Some((ln, n))) => {
                    one(ln.stable_hash(), None, Some(n));
                    new.next();
                }
            }
        }
        Ok(acc.finish())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use storage::Appendable;

    use super::*;

    #[test]
    fn clean_target() {
        let s = [(1000, 1.0), (2000, 1.0), (3010, 1.0), (4000, 1.0)];
        assert_eq!(target_gaps(&s, 4500, 9000), (990, vec![]));
        // Not settled yet: the next scrape may be in flight.
        assert_eq!(target_gaps(&s, 5800, 5800), (990, vec![]));
        assert_eq!(target_gaps(&s, 5800, 9000), (990, vec![(4000, 5800)]));
    }

    #[test]
    fn failed_scrapes_are_gaps() {
        let s = [(1000, 1.0), (2000, 0.0), (3000, 1.0), (4000, 1.0)];
        assert_eq!(target_gaps(&s, 4000, 4000), (1000, vec![(1000, 3000)]));
        // Gaps that touch become one.
        let s = [(1000, 0.0), (2000, 1.0), (3000, 0.0), (4000, 0.0)];
        assert_eq!(target_gaps(&s, 4000, 4000), (1000, vec![(1000, 4000)]));
    }

    #[test]
    fn missing_scrapes_are_gaps() {
        let s = [(1000, 1.0), (2000, 1.0), (62000, 1.0), (63000, 1.0)];
        assert_eq!(target_gaps(&s, 63000, 63000), (1000, vec![(2000, 62000)]));
    }

    #[test]
    fn stopped_scraping_is_a_gap_to_the_end() {
        let s = [(1000, 1.0), (2000, 1.0), (3000, 1.0)];
        assert_eq!(target_gaps(&s, 9000, 9000), (1000, vec![(3000, 9000)]));
        // A replica that stopped 1.6 intervals before a settled window's end has a gap.
        assert_eq!(target_gaps(&s, 4600, 9000), (1000, vec![(3000, 4600)]));
        let s = [(1000, 1.0), (2000, 1.0), (3000, 0.0)];
        assert_eq!(target_gaps(&s, 3000, 3000), (1000, vec![(2000, 3000)]));
        assert_eq!(
            target_gaps(&[(1000, 1.0)], 1000, 1000),
            (0, vec![(1000, 1000)])
        );
    }

    /// xorshift64*: deterministic randomness without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    /// Random `up` samples: evenly spaced runs, failed, missed and jittered scrapes.
    fn random_samples(rng: &mut Rng) -> Vec<(Timestamp, f64)> {
        let ival = [1000, 1000, 2000, 15_000][rng.below(4) as usize];
        let mut t = 1_000_000 + rng.below(5000) as i64;
        let mut out = Vec::new();
        for _ in 0..rng.below(60) {
            if rng.chance(10) {
                t += ival * rng.below(4) as i64;
            }
            let jitter = if rng.chance(10) {
                rng.below(7) as i64 + 1
            } else {
                0
            };
            let v = match rng.below(20) {
                0 => 0.0,
                1 => f64::NAN,
                _ => 1.0,
            };
            out.push((t + jitter, v));
            t += ival;
        }
        out
    }

    #[test]
    fn runs_are_small() {
        assert_eq!(std::mem::size_of::<Run>(), 16);
        let r = Run::new(5, 1000, MAX_RUN_COUNT, true);
        assert_eq!(
            (r.start, r.step(), r.count(), r.good()),
            (5, 1000, MAX_RUN_COUNT, true)
        );
        let mut runs = vec![Run::new(0, 0, 1, false)];
        // A step too long for a run starts another.
        push_sample(&mut runs, i64::from(u32::MAX) + 1, 0.0);
        assert_eq!(runs.len(), 2);
    }

    #[test]
    fn runs_give_the_gaps_of_their_samples() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let samples = random_samples(&mut rng);
            let mut runs = Vec::new();
            for &(t, v) in &samples {
                push_sample(&mut runs, t, v);
            }
            let total: i64 = runs.iter().map(|r| r.count()).sum();
            assert_eq!(total, samples.len() as i64);
            for _ in 0..10 {
                let lo = 1_000_000 + rng.below(200_000) as i64 - 10_000;
                let hi = lo + rng.below(200_000) as i64;
                let now = hi + rng.below(40_000) as i64;
                let window: Vec<_> = samples
                    .iter()
                    .copied()
                    .filter(|&(t, _)| lo <= t && t <= hi)
                    .collect();
                let clipped: Vec<Run> = runs.iter().filter_map(|r| r.clip(lo, hi)).collect();
                let target = TargetRuns {
                    hash: 0,
                    runs: runs.clone(),
                };
                assert_eq!(target.clipped(lo, hi).collect::<Vec<_>>(), clipped);
                let n: i64 = clipped.iter().map(|r| r.count()).sum();
                assert_eq!(n, window.len() as i64, "{samples:?} [{lo}, {hi}]");
                assert_eq!(
                    run_gaps(&clipped, hi, now),
                    target_gaps(&window, hi, now),
                    "{samples:?} [{lo}, {hi}] now {now}"
                );
            }
        }
    }

    const BASE: i64 = 1_700_000_000_000;

    fn open(dir: &Path) -> Arc<tsdb::Db> {
        tsdb::Db::open(
            dir,
            tsdb::Options {
                retention: Duration::from_secs(10 * 365 * 24 * 3600),
                ..tsdb::Options::default()
            },
        )
        .expect("open tsdb")
    }

    fn kept(db: &tsdb::Db) -> Kept {
        Kept {
            lowest: db
                .blocks()
                .first()
                .map_or(db.head_min_time(), |b| b.min_time.min(db.head_min_time())),
            retention_ms: 10 * 365 * 24 * 3_600_000,
        }
    }

    fn up(i: usize) -> Labels {
        Labels::from_pairs([
            ("__name__", "up"),
            ("instance", &format!("host-{i}:9100")),
            ("job", "node"),
        ])
    }

    /// One simulated target: scraped every `ival` from `born` until `dies`.
    struct Target {
        ival: i64,
        next: Timestamp,
        born: Timestamp,
        dies: Timestamp,
        stale_written: bool,
    }

    /// Appends every scrape up to `now`: failed and missed ones, a few off the tick, staleness
    /// markers when a target goes away; nothing while the server is `down`.
    fn scrape_until(
        db: &tsdb::Db,
        rng: &mut Rng,
        targets: &mut [Target],
        now: Timestamp,
        down: Option<(Timestamp, Timestamp)>,
    ) {
        let mut app = db.appender();
        for (i, tg) in targets.iter_mut().enumerate() {
            while tg.next <= now {
                let t = tg.next;
                tg.next += tg.ival;
                if t < tg.born || down.is_some_and(|(a, b)| a <= t && t < b) {
                    continue;
                }
                if t >= tg.dies {
                    if !tg.stale_written {
                        tg.stale_written = true;
                        app.append(0, &up(i), t, f64::from_bits(0x7ff0_0000_0000_0002))
                            .expect("append stale");
                    }
                    continue;
                }
                if rng.chance(2) {
                    continue;
                }
                let v = if rng.chance(3) { 0.0 } else { 1.0 };
                let jitter = if rng.chance(3) {
                    rng.below(9) as i64 + 3
                } else {
                    0
                };
                app.append(0, &up(i), t + jitter, v).expect("append up");
            }
        }
        app.commit().expect("commit");
    }

    /// Random windows ending up to an hour before `now`: each cache answers like storage.
    fn check_windows(caches: &[CoverageCache], db: &tsdb::Db, rng: &mut Rng, now: Timestamp) {
        for _ in 0..6 {
            let end = if rng.chance(30) {
                now
            } else {
                now - rng.below(3_600_000) as i64
            };
            let start = end - rng.below(4 * 3_600_000) as i64;
            let want = coverage(db, start, end, now).expect("coverage");
            for (i, cache) in caches.iter().enumerate() {
                let got = cache
                    .coverage(db, kept(db), start, end, now)
                    .expect("cached coverage");
                assert_eq!(got, want, "cache {i}, window [{start}, {end}] at {now}");
            }
        }
    }

    #[test]
    fn cached_answers_equal_full_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut targets: Vec<Target> = (0..12)
            .map(|i| {
                let ival = [5000, 5000, 10_000, 15_000][i % 4];
                let born = BASE + rng.below(3_600_000) as i64 * (i as i64 % 3);
                Target {
                    ival,
                    next: BASE + (i as i64 * 137) % ival,
                    born,
                    dies: if i % 5 == 4 {
                        born + 3_600_000 + rng.below(3_600_000) as i64
                    } else {
                        i64::MAX
                    },
                    stale_written: false,
                }
            })
            .collect();
        let mut db = open(dir.path());
        // The default; one starting 30 min back (extended backwards by older windows); one
        // too small to keep (storage read).
        let new_caches = || {
            [
                CoverageCache::new(),
                CoverageCache::with_limits(1_800_000, MAX_RUNS),
                CoverageCache::with_limits(INITIAL_SPAN_MS, 40),
            ]
        };
        let mut caches = new_caches();
        let mut now = BASE;
        // A server outage (no `up` at all) in the second hour.
        let down = Some((BASE + 5_400_000, BASE + 5_700_000));
        let mut restarted = false;
        let mut deleted = false;
        let mut late = false;
        let mut truncated = false;
        while now < BASE + 6 * 3_600_000 {
            now += 10_000 + rng.below(170_000) as i64;
            scrape_until(&db, &mut rng, &mut targets, now, down);
            check_windows(&caches, &db, &mut rng, now);
            if !restarted && now > BASE + 3 * 3_600_000 {
                // Restart: the WAL is replayed and the summary built again.
                restarted = true;
                db.close().expect("close");
                drop(db);
                db = open(dir.path());
                caches = new_caches();
                check_windows(&caches, &db, &mut rng, now);
            }
            if !deleted && now > BASE + 4 * 3_600_000 {
                deleted = true;
                let ms = [
                    Matcher::new(MatchType::Equal, "__name__", "up").expect("matcher"),
                    Matcher::new(MatchType::Equal, "instance", "host-3:9100").expect("matcher"),
                ];
                caches.iter().for_each(CoverageCache::invalidate);
                db.delete_series(&ms, now - 7_200_000, now - 3_600_000)
                    .expect("delete");
                caches.iter().for_each(CoverageCache::invalidate);
                check_windows(&caches, &db, &mut rng, now);
            }
            if !truncated && now > BASE + 4 * 3_600_000 + 1_800_000 {
                // The head drops its oldest data (as after a compaction, or retention).
                truncated = true;
                db.truncate(now - 3 * 3_600_000).expect("truncate");
                check_windows(&caches, &db, &mut rng, now);
            }
            if !late && now > BASE + 5 * 3_600_000 {
                // A new series whose samples arrive behind the summary's end (which is
                // `SETTLE_MS` behind `now`): found when the summary is next extended.
                late = true;
                let horizon = caches[0].summary.lock().as_ref().expect("summary").horizon;
                let mut app = db.appender();
                let l = Labels::from_pairs([("__name__", "up"), ("instance", "late")]);
                for k in 0..10 {
                    app.append(0, &l, horizon - 100_000 + k * 5000, 1.0)
                        .expect("append late");
                }
                app.commit().expect("commit");
                now += EXTEND_EVERY_MS;
                let (start, end) = (horizon - 3_600_000, now - 1000);
                let want = coverage(db.as_ref(), start, end, now).expect("coverage");
                for cache in &caches {
                    let got = cache.coverage(db.as_ref(), kept(&db), start, end, now);
                    assert_eq!(got.expect("cached coverage"), want);
                }
                check_windows(&caches, &db, &mut rng, now);
            }
        }
        assert!(restarted && deleted && late && truncated);
        // The small one was given up; the others were kept, the one of 30 min trimmed.
        let now = now + EXTEND_EVERY_MS;
        let got = caches[1].coverage(db.as_ref(), kept(&db), now - 600_000, now, now);
        assert_eq!(
            got.expect("cached coverage"),
            coverage(db.as_ref(), now - 600_000, now, now).expect("coverage")
        );
        let start = caches[1].summary.lock().as_ref().expect("summary").start;
        assert!(start >= now - SETTLE_MS - 1_800_000, "trimmed to {start}");
        assert!(caches[2].summary.lock().is_none());
        assert!(caches[0].summary.lock().is_some() && caches[1].summary.lock().is_some());
    }
}
